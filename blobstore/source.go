package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
)

// MaxManifestSize bounds the manifest Open reads, so that a wrong object named
// manifest.json cannot exhaust memory.
const MaxManifestSize = 64 << 20

// Source is an opened snapshot: the bucket that holds it, the key prefix of its files
// and its manifest. Its methods may be called from several goroutines at once.
type Source struct {
	loc      *location
	bucket   *blob.Bucket
	owned    bool   // Close closes bucket
	prefix   string // key prefix of the snapshot's files, without trailing "/"
	bareKey  string // key of the native file when bare
	bare     bool
	manifest *drivers.Manifest
	// opts are the options the snapshot was opened with: the download pipeline
	// (pipeline.go) reads Transfer, and Stores to open its data connection.
	opts OpenOptions
	// stats adds up the counters of the downloads (TransferStats).
	stats transferTotals
}

// Open resolves a snapshot reference: a local path, a file:// URL, an s3://, gs://
// or azblob:// URL (reached as OpenOptions.Stores says; see docs/stores.md), or
// mem:// for tests.
//
//   - A directory (or prefix) holding manifest.json is a manifest snapshot; its
//     manifest is parsed with drivers.ParseManifest, and a manifest that fails keeps
//     its Corruption class. A reference naming manifest.json itself opens the same
//     snapshot.
//   - A single file is a "bare" native file (e.g. from `etcdctl snapshot save`): Bare
//     is true and the manifest is synthesized with one file named after the base
//     name, its size, no sha256 and an empty Engine.
//   - Nothing there is a Permanent "snapshot REF not found" error; a directory without
//     manifest.json is a Permanent "REF has no manifest.json" error.
//   - A reference whose last element is "latest" (s3://b/etcd/latest,
//     /backups/etcd/latest) and that names nothing itself opens the newest complete
//     snapshot directly under its parent (see ResolveLatest); Ref then reports the
//     snapshot it resolved to.
//   - A manifest listing a file larger than MaxFileSize is refused (Permanent),
//     before anything is downloaded.
//
// Open reads only the manifest; objects are checked when fetched (or by
// CheckObjects). It is OpenWith with default options.
func Open(ctx context.Context, ref string) (*Source, error) {
	return OpenWith(ctx, ref, OpenOptions{})
}

// OpenWith is Open with store configuration and transfer settings.
func OpenWith(ctx context.Context, ref string, opts OpenOptions) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, "open snapshot")
	}
	loc, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	if isLatest(loc) {
		if loc, err = resolveLatest(ctx, ref, loc, opts); err != nil {
			return nil, err
		}
	}
	var s *Source
	if loc.scheme == "file" {
		s, err = openLocal(ctx, loc)
	} else {
		s, err = openObject(ctx, loc, opts)
	}
	if err != nil {
		return nil, err
	}
	s.opts = opts
	if !s.bare {
		if err := s.readManifest(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func notFound(loc *location, detail string) error {
	return drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot %s not found: %s", loc.redacted, detail),
		"check the path or URL: a snapshot is a directory with manifest.json or a single native file")
}

func noManifest(loc *location) error {
	return drivers.WithHint(drivers.Errorf(drivers.Permanent,
		"%s has no manifest.json: a snapshot is a directory with manifest.json or a single native file (e.g. from etcdctl snapshot save)", loc.redacted),
		"if a Pack into it was interrupted, pack the snapshot again")
}

// openLocal resolves a local path by looking at the filesystem.
func openLocal(ctx context.Context, loc *location) (*Source, error) {
	op := "open snapshot " + loc.redacted
	fi, err := os.Stat(loc.dir)
	switch {
	case err != nil && isNotExist(err):
		return nil, notFound(loc, "no file or directory at "+loc.dir)
	case err != nil:
		return nil, classify(ctx, op, loc.dir, err)
	}
	dir, base := loc.dir, ""
	switch {
	case fi.IsDir():
		mfi, err := os.Stat(filepath.Join(dir, drivers.ManifestName))
		if err != nil && isNotExist(err) {
			return nil, noManifest(loc)
		} else if err != nil {
			return nil, classify(ctx, op, filepath.Join(dir, drivers.ManifestName), err)
		}
		if !mfi.Mode().IsRegular() {
			return nil, drivers.Errorf(drivers.Permanent, "%s: %s is not a regular file", loc.redacted, filepath.Join(dir, drivers.ManifestName))
		}
	case fi.Mode().IsRegular():
		dir, base = filepath.Dir(loc.dir), filepath.Base(loc.dir)
		if base == drivers.ManifestName {
			base = "" // the manifest of the directory's snapshot
		}
	default:
		return nil, drivers.Errorf(drivers.Permanent, "snapshot %s is neither a directory nor a regular file (mode %s)", loc.redacted, fi.Mode())
	}
	b, err := openLocalBucket(dir, false)
	if err != nil {
		return nil, classify(ctx, op, dir, err)
	}
	// Messages name objects relative to the directory the bucket is rooted at.
	l := *loc
	l.dir = dir
	s := &Source{loc: &l, bucket: b, owned: true}
	if base != "" {
		if err := checkBareName(loc, base); err != nil {
			b.Close()
			return nil, err
		}
		s.bare, s.bareKey = true, base
		s.manifest = bareManifest(base, fi.Size())
	}
	return s, nil
}

// openObject resolves a reference to an object store by looking at its keys:
// PREFIX/manifest.json, then PREFIX as an object (a bare file), then anything under
// PREFIX/.
func openObject(ctx context.Context, loc *location, opts OpenOptions) (*Source, error) {
	b, owned, err := openObjectBucket(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	s := &Source{loc: loc, bucket: b, owned: owned, prefix: loc.prefix}
	fail := func(err error) (*Source, error) {
		s.Close()
		return nil, loc.scrub(err)
	}
	op := "open snapshot " + loc.redacted
	if path.Base(loc.prefix) == drivers.ManifestName {
		s.prefix = strings.TrimSuffix(strings.TrimSuffix(loc.prefix, drivers.ManifestName), "/")
	}
	mkey := joinKey(s.prefix, drivers.ManifestName)
	ok, err := b.Exists(ctx, mkey)
	if err != nil {
		return fail(classify(ctx, op, loc.where(mkey), err))
	}
	if ok {
		return s, nil
	}
	if loc.prefix != "" && s.prefix == loc.prefix {
		attrs, err := b.Attributes(ctx, loc.prefix)
		if err == nil {
			base := path.Base(loc.prefix)
			if err := checkBareName(loc, base); err != nil {
				return fail(err)
			}
			s.prefix = path.Dir(loc.prefix)
			if s.prefix == "." {
				s.prefix = ""
			}
			s.bare, s.bareKey = true, loc.prefix
			s.manifest = bareManifest(base, attrs.Size)
			return s, nil
		}
		if !isNotExist(err) {
			return fail(classify(ctx, op, loc.where(loc.prefix), err))
		}
	}
	listPrefix := ""
	if s.prefix != "" {
		listPrefix = s.prefix + "/"
	}
	_, err = b.List(&blob.ListOptions{Prefix: listPrefix}).Next(ctx)
	switch {
	case err == nil:
		return fail(noManifest(loc))
	case errors.Is(err, io.EOF):
		return fail(notFound(loc, "no object or prefix "+loc.where(s.prefix)))
	default:
		return fail(classify(ctx, op, loc.where(s.prefix), err))
	}
}

// checkBareName refuses a native file whose name cannot be a manifest file name.
func checkBareName(loc *location, base string) error {
	if err := drivers.CheckFileName(base); err != nil {
		return drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot %s: %v", loc.redacted, err), "rename the file")
	}
	if loc.scheme == "file" && strings.HasSuffix(base, ".attrs") {
		return drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot %s: local snapshot files may not end in .attrs (reserved by the blob store)", loc.redacted), "rename the file")
	}
	return nil
}

// bareManifest synthesizes the manifest of a native file.
func bareManifest(name string, size int64) *drivers.Manifest {
	return &drivers.Manifest{
		Format: drivers.ManifestFormat,
		Engine: "",
		Files:  []drivers.File{{Name: name, Size: size}},
	}
}

// readManifest reads and parses PREFIX/manifest.json.
func (s *Source) readManifest(ctx context.Context) error {
	key := joinKey(s.prefix, drivers.ManifestName)
	where := s.loc.where(key)
	op := "read manifest " + where
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if isNotExist(err) && ctx.Err() == nil {
			return noManifest(s.loc) // removed between the check and the read
		}
		return s.loc.scrub(classify(ctx, op, where, err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return s.loc.scrub(classify(ctx, op, where, err))
	}
	if len(data) > MaxManifestSize {
		return drivers.WithHint(drivers.Errorf(drivers.Corruption, "%s is larger than %d bytes: it is not a restore-run manifest", where, MaxManifestSize),
			"check that the reference names a restore-run snapshot")
	}
	m, err := drivers.ParseManifest(data)
	if err != nil {
		return drivers.WithHint(drivers.WithClass(drivers.ClassOf(err), where, err),
			"the manifest was damaged or edited by hand; see docs/manifest.md, or re-create the snapshot")
	}
	if err := checkSizes(where, m); err != nil {
		return err
	}
	s.manifest = m
	return nil
}

// Ref returns the reference the snapshot was opened with, with any credentials (user
// info, secret query parameters) removed. It is safe to log.
func (s *Source) Ref() string { return s.loc.redacted }

// Bare reports whether the reference names a single native file rather than a
// snapshot with a manifest.
func (s *Source) Bare() bool { return s.bare }

// Manifest returns the snapshot's manifest; for a bare file, the synthesized one
// (one file, its size, no sha256, empty Engine).
func (s *Source) Manifest() *drivers.Manifest { return s.manifest }

// Snapshot returns the snapshot as the drivers see it: its redacted reference, its
// manifest and whether it is bare.
func (s *Source) Snapshot() *drivers.Snapshot {
	return &drivers.Snapshot{Ref: s.loc.redacted, Manifest: s.manifest, Bare: s.bare}
}

// Close releases the store connection. Readers returned by OpenFile must be closed
// first.
func (s *Source) Close() error {
	if s == nil || s.bucket == nil || !s.owned {
		return nil
	}
	b := s.bucket
	s.bucket = nil
	return b.Close()
}

// entry returns the manifest entry and object key of file name, refusing names that
// are not listed (or could escape the snapshot).
func (s *Source) entry(name string) (drivers.File, string, error) {
	if s.bucket == nil {
		return drivers.File{}, "", drivers.Errorf(drivers.Permanent, "snapshot %s: source is closed", s.loc.redacted)
	}
	if err := drivers.CheckFileName(name); err != nil {
		return drivers.File{}, "", drivers.Errorf(drivers.Permanent, "snapshot %s: %v", s.loc.redacted, err)
	}
	f, ok := s.manifest.File(name)
	if !ok {
		names := make([]string, 0, len(s.manifest.Files))
		for _, f := range s.manifest.Files {
			names = append(names, f.Name)
		}
		return drivers.File{}, "", drivers.WithHint(
			drivers.Errorf(drivers.Permanent, "snapshot %s has no file %q", s.loc.redacted, name),
			"its manifest lists: "+strings.Join(names, ", "))
	}
	if s.bare {
		return f, s.bareKey, nil
	}
	return f, joinKey(s.prefix, name), nil
}

// corrupt returns the Corruption error for file name: what is wrong, and that the
// snapshot is corrupt or changed after it was written.
func (s *Source) corrupt(name string) func(format string, args ...any) error {
	return func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return drivers.WithHint(
			drivers.Errorf(drivers.Corruption, "snapshot %s: file %q: %s: %s", s.loc.redacted, name, msg, corruptTail),
			hintCorrupt)
	}
}

// missing returns the Permanent error for an object the manifest lists but the store
// does not hold.
func (s *Source) missing(name, key string) error {
	return drivers.WithHint(
		drivers.Errorf(drivers.Permanent, "snapshot %s: file %q is listed in the manifest but its object %s does not exist", s.loc.redacted, name, s.loc.where(key)),
		"the snapshot is incomplete or was changed after it was written; use another snapshot or re-create it")
}

// storeErr classifies an error reading file name's object.
func (s *Source) storeErr(ctx context.Context, op, name, key string, err error) error {
	if isNotExist(err) && ctx.Err() == nil {
		return s.missing(name, key)
	}
	return s.loc.scrub(classify(ctx, op, s.loc.where(key), err))
}

// CheckObjects checks, without downloading, that every file of the manifest exists in
// the store with the size the manifest gives: a missing object is Permanent, a wrong
// size Corruption. Digests are only checked by Fetch and OpenFile.
func (s *Source) CheckObjects(ctx context.Context) error {
	for _, f := range s.manifest.Files {
		_, key, err := s.entry(f.Name)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return cancelled(ctx, "check "+s.loc.redacted)
		}
		attrs, err := s.bucket.Attributes(ctx, key)
		if err != nil {
			return s.storeErr(ctx, "check "+f.Name, f.Name, key, err)
		}
		if attrs.Size != f.Size {
			return s.corrupt(f.Name)("size mismatch: expected %d bytes, the stored object has %d", f.Size, attrs.Size)
		}
	}
	return nil
}
