package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
)

// PackFile is one local file to put into a snapshot.
type PackFile struct {
	// Path is the local file to upload.
	Path string
	// Name is its name in the snapshot (a clean relative slash-separated path);
	// default: the base name of Path.
	Name string
}

// PackOptions says what Pack writes and where.
type PackOptions struct {
	// Engine is the database engine the snapshot is for ("etcd", "mysql",
	// "cassandra"); required.
	Engine string
	// EngineVersion is the version of the engine that made the files, if known.
	EngineVersion string
	// Source says where the snapshot was taken (a host, a cluster name). It is written
	// to the manifest as is: it must not hold secrets.
	Source string
	// Files are the local files to upload, in manifest order; at least one.
	Files []PackFile
	// Dest is the snapshot reference to write: a local directory (created if needed)
	// or a file:// URL (mem:// in tests).
	Dest string
	// Metadata is the engine-specific metadata (docs/manifest.md), e.g. for etcd
	// {"revision": 42, "total_key": 7}.
	Metadata map[string]any
	// PartSize, when positive, records the sha256 of every PartSize-byte part of each
	// file besides the whole-file digest. 0 means no parts.
	PartSize int64
	// Overwrite allows writing over a destination that already holds manifest.json.
	// The old manifest is deleted first, so an interrupted overwrite leaves no
	// manifest rather than one that lists the old bytes.
	Overwrite bool
	// Created is the snapshot's creation time; zero means now. Stored in UTC.
	Created time.Time
}

// Pack writes a snapshot: it uploads each local file to the destination under its
// name, computing size, sha256 and (with PartSize) part digests as it streams, then
// writes manifest.json last, so that a snapshot without a manifest is visibly
// incomplete. It refuses a destination that already holds manifest.json unless
// opts.Overwrite. Every input is checked before anything is written. It returns the
// manifest written.
//
// Files stay as uploaded when Pack fails part way (the missing manifest marks the
// snapshot as incomplete); objects under the destination that are not listed are
// left alone.
func Pack(ctx context.Context, opts PackOptions) (*drivers.Manifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, "pack")
	}
	bad := func(format string, args ...any) error {
		return drivers.Errorf(drivers.Permanent, "pack: "+format, args...)
	}
	switch {
	case opts.Dest == "":
		return nil, bad("no destination given")
	case opts.Engine == "":
		return nil, bad("no engine given")
	case len(opts.Files) == 0:
		return nil, bad("no files given")
	case opts.PartSize < 0:
		return nil, bad("part size %d is negative", opts.PartSize)
	}
	loc, err := parseRef(opts.Dest)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(opts.Files))
	seen := map[string]bool{}
	for i, pf := range opts.Files {
		name := pf.Name
		if name == "" {
			name = filepath.Base(pf.Path)
		}
		if err := drivers.CheckFileName(name); err != nil {
			return nil, drivers.WithHint(bad("%s: %v", pf.Path, err), "set PackFile.Name")
		}
		if loc.scheme == "file" && strings.HasSuffix(name, ".attrs") {
			return nil, drivers.WithHint(bad("%s: local snapshot files may not end in .attrs (reserved by the blob store)", name), "set PackFile.Name")
		}
		if seen[name] {
			return nil, drivers.WithHint(bad("two files are named %q", name), "set PackFile.Name")
		}
		seen[name] = true
		names[i] = name
		fi, err := os.Stat(pf.Path)
		if err != nil {
			return nil, localError(ctx, "pack "+name, pf.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, bad("%s is not a regular file", pf.Path)
		}
	}

	b, owned, prefix, err := openDest(ctx, loc)
	if err != nil {
		return nil, err
	}
	if owned {
		defer b.Close()
	}
	mkey := joinKey(prefix, drivers.ManifestName)
	op := "pack " + loc.redacted
	exists, err := b.Exists(ctx, mkey)
	if err != nil {
		return nil, loc.scrub(classify(ctx, op, loc.where(mkey), err))
	}
	if exists {
		if !opts.Overwrite {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "pack: %s already holds a snapshot (%s exists)", loc.redacted, drivers.ManifestName),
				"choose another destination, or overwrite it on purpose")
		}
		if err := b.Delete(ctx, mkey); err != nil && !isNotExist(err) {
			return nil, loc.scrub(classify(ctx, op, loc.where(mkey), err))
		}
	}

	created := opts.Created
	if created.IsZero() {
		created = time.Now().Truncate(time.Second)
	}
	m := &drivers.Manifest{
		Format:        drivers.ManifestFormat,
		Engine:        opts.Engine,
		EngineVersion: opts.EngineVersion,
		Created:       created.UTC(),
		Source:        opts.Source,
		Metadata:      opts.Metadata,
	}
	for i, pf := range opts.Files {
		f, err := upload(ctx, b, loc, joinKey(prefix, names[i]), names[i], pf.Path, opts.PartSize)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "pack: encode manifest", err)
	}
	data = append(data, '\n')
	if ctx.Err() != nil {
		return nil, cancelled(ctx, op)
	}
	if err := b.WriteAll(ctx, mkey, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return nil, loc.scrub(classify(ctx, op, loc.where(mkey), err))
	}
	return m, nil
}

// openDest opens the bucket a Pack writes to, creating a local directory if needed.
func openDest(ctx context.Context, loc *location) (b *blob.Bucket, owned bool, prefix string, err error) {
	if loc.scheme != "file" {
		b, owned, err := openObjectBucket(ctx, loc)
		return b, owned, loc.prefix, err
	}
	if fi, err := os.Stat(loc.dir); err == nil && !fi.IsDir() {
		return nil, false, "", drivers.WithHint(drivers.Errorf(drivers.Permanent, "pack: destination %s is not a directory", loc.redacted),
			"give a directory (it is created if missing)")
	}
	b, err = openLocalBucket(loc.dir, true)
	if err != nil {
		return nil, false, "", localError(ctx, "pack "+loc.redacted, loc.dir, err)
	}
	return b, true, "", nil
}

// upload copies the local file path to key, returning its manifest entry.
func upload(ctx context.Context, b *blob.Bucket, loc *location, key, name, path string, partSize int64) (drivers.File, error) {
	op := "pack " + name
	where := loc.where(key)
	in, err := os.Open(path)
	if err != nil {
		return drivers.File{}, localError(ctx, op, path, err)
	}
	defer in.Close()

	var parts []string
	d := newDigester(partSize, func(_ int, _, _ int64, sum string) error {
		parts = append(parts, sum)
		return nil
	})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return drivers.File{}, loc.scrub(classify(ctx, op, where, err))
	}
	abort := func(err error) (drivers.File, error) {
		cancel() // a cancelled writer discards what it got
		_ = w.Close()
		return drivers.File{}, err
	}
	buf := make([]byte, copyBufferSize)
	for {
		if ctx.Err() != nil {
			return abort(cancelled(ctx, op))
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			_ = d.write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				return abort(loc.scrub(classify(ctx, op, where, err)))
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return abort(localError(ctx, op, path, rerr))
		}
	}
	_ = d.endPart()
	if err := w.Close(); err != nil {
		return drivers.File{}, loc.scrub(classify(ctx, op, where, err))
	}
	f := drivers.File{Name: name, Size: d.n, SHA256: d.sum()}
	if partSize > 0 && d.n > 0 {
		// An empty file has no parts, and so no part size (drivers.Manifest.Check).
		f.PartSize, f.Parts = partSize, parts
	}
	return f, nil
}
