package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
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
	// Dest is the snapshot reference to write: a local directory (created if needed),
	// a file:// URL, or an s3://, gs:// or azblob:// prefix reached as Stores says
	// (mem:// in tests). Its last element may not be "latest".
	Dest string
	// Stores configures object-store access for Dest (see StoreConfig).
	Stores StoreConfig
	// Redactor, if set, learns every store secret resolved for Dest.
	Redactor *redact.Redactor
	// Compression, "zstd" or "gzip", compresses each file as it is uploaded
	// (github.com/klauspost/compress) and records it in the manifest; size, sha256
	// and parts then describe the compressed bytes as stored. "" or "none" stores
	// the files as they are (the field is left out of the manifest). Names stay as
	// given: the object under a name holds the compressed bytes, and a download
	// writes the decompressed file under the same name.
	Compression string
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
// name (compressing it when asked), computing size, sha256 and (with PartSize) part
// digests of the stored bytes as it streams, then
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
	switch opts.Compression {
	case "", "none", "zstd", "gzip":
	default:
		return nil, drivers.WithHint(bad("compression %q is not supported", opts.Compression), "use zstd, gzip or none")
	}
	loc, err := parseRef(opts.Dest)
	if err != nil {
		return nil, err
	}
	if isLatest(loc) {
		return nil, drivers.WithHint(bad("destination %s: %q is reserved for the newest snapshot of a prefix", loc.redacted, LatestName),
			"name the snapshot, e.g. by its date; `"+LatestName+"` then resolves to it")
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

	b, owned, prefix, err := openDest(ctx, loc, opts)
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
		f, err := upload(ctx, b, loc, joinKey(prefix, names[i]), names[i], pf.Path, opts.PartSize, opts.Compression)
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
func openDest(ctx context.Context, loc *location, opts PackOptions) (b *blob.Bucket, owned bool, prefix string, err error) {
	if loc.scheme != "file" {
		b, owned, err := openObjectBucket(ctx, loc, OpenOptions{Stores: opts.Stores, Redactor: opts.Redactor})
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

// upload copies the local file path to key, compressed as asked, returning its
// manifest entry (size and digests of the bytes as stored).
func upload(ctx context.Context, b *blob.Bucket, loc *location, key, name, path string, partSize int64, compression string) (drivers.File, error) {
	op := "pack " + name
	where := loc.where(key)
	in, err := os.Open(path)
	if err != nil {
		return drivers.File{}, localError(ctx, op, path, err)
	}
	defer in.Close()

	d := newPackDigest(partSize)
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
	// The stored bytes go through the digester on their way to the store.
	stored := &digestWriter{d: d, w: w}
	var dst io.Writer = stored
	var enc io.WriteCloser
	switch compression {
	case "zstd":
		enc, err = zstd.NewWriter(stored, zstd.WithEncoderConcurrency(2))
		if err != nil {
			return abort(drivers.WithClass(drivers.Permanent, op, err))
		}
		dst = enc
	case "gzip":
		enc = gzip.NewWriter(stored)
		dst = enc
	}
	writeErr := func(err error) error {
		if stored.err != nil {
			return loc.scrub(classify(ctx, op, where, stored.err))
		}
		return drivers.WithClass(drivers.Permanent, op+": compress", err)
	}
	buf := make([]byte, copyBufferSize)
	for {
		if ctx.Err() != nil {
			return abort(cancelled(ctx, op))
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return abort(writeErr(err))
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return abort(localError(ctx, op, path, rerr))
		}
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return abort(writeErr(err))
		}
	}
	parts := d.finish()
	if err := w.Close(); err != nil {
		return drivers.File{}, loc.scrub(classify(ctx, op, where, err))
	}
	f := drivers.File{Name: name, Size: d.n, SHA256: hex.EncodeToString(d.whole.Sum(nil))}
	if compression == "zstd" || compression == "gzip" {
		f.Compression = compression
	}
	if partSize > 0 && d.n > 0 {
		// An empty file has no parts, and so no part size (drivers.Manifest.Check).
		f.PartSize, f.Parts = partSize, parts
	}
	return f, nil
}

// packDigest computes the size, sha256 and part digests of the bytes Pack stores.
// (Pack keeps its own, so that the download side may change its verifier freely.)
type packDigest struct {
	partSize int64
	n        int64
	whole    hash.Hash
	part     hash.Hash // nil without parts
	partN    int64
	parts    []string
}

func newPackDigest(partSize int64) *packDigest {
	d := &packDigest{partSize: partSize, whole: sha256.New()}
	if partSize > 0 {
		d.part = sha256.New()
	}
	return d
}

func (d *packDigest) write(p []byte) {
	d.whole.Write(p)
	d.n += int64(len(p))
	for d.part != nil && len(p) > 0 {
		chunk := min(int64(len(p)), d.partSize-d.partN)
		d.part.Write(p[:chunk])
		d.partN += chunk
		p = p[chunk:]
		if d.partN == d.partSize {
			d.endPart()
		}
	}
}

func (d *packDigest) endPart() {
	if d.part == nil || d.partN == 0 {
		return
	}
	d.parts = append(d.parts, hex.EncodeToString(d.part.Sum(nil)))
	d.part.Reset()
	d.partN = 0
}

// finish ends the last, shorter part and returns every part's digest.
func (d *packDigest) finish() []string {
	d.endPart()
	return d.parts
}

// digestWriter hashes what it passes on to the store's writer, and keeps the
// store's error apart from a compressor's.
type digestWriter struct {
	d   *packDigest
	w   io.Writer
	err error
}

func (dw *digestWriter) Write(p []byte) (int, error) {
	if dw.err != nil {
		return 0, dw.err
	}
	dw.d.write(p)
	n, err := dw.w.Write(p)
	if err != nil {
		dw.err = err
	}
	return n, err
}
