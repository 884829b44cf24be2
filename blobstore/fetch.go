package blobstore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
)

// copyBufferSize is the size of the reads Fetch and Pack issue.
const copyBufferSize = 1 << 20

// PartialSuffix is appended to a Fetch destination while it is being written.
const PartialSuffix = ".partial"

// FetchResult describes one fetched file.
type FetchResult struct {
	// Name is the file's name in the manifest.
	Name string `json:"name"`
	// Path is where it was written.
	Path string `json:"path"`
	// SHA256 is the hex digest of the bytes fetched (verified against the manifest
	// when it has one; for a bare file, computed only).
	SHA256 string `json:"sha256"`
	// Size is the number of bytes fetched.
	Size int64 `json:"size"`
	// Duration is how long the fetch took.
	Duration time.Duration `json:"duration"`
}

// Fetch copies file name (which must be listed in the manifest) to the local path dst,
// hashing as it streams. It checks the size and, when the manifest gives them, the
// sha256 and the digest of each part (failing at the first bad part, named by its
// index and byte range).
//
// The copy is atomic: bytes go to dst+".partial" (parent directories are created
// 0o755, the file 0o600), which is fsynced and renamed to dst only once every check
// passed. On any failure nothing is left at dst (a file already there is left as it
// was; parent directories it created stay) and the .partial file is removed. Fetch writes nothing but these two paths,
// whatever the name. It honours ctx while copying.
func (s *Source) Fetch(ctx context.Context, name, dst string) (FetchResult, error) {
	start := time.Now()
	res := FetchResult{Name: name, Path: dst}
	op := "fetch " + name
	f, key, err := s.entry(name)
	if err != nil {
		return res, err
	}
	if dst == "" {
		return res, drivers.Errorf(drivers.Permanent, "fetch %s: empty destination path", name)
	}
	if err := ctx.Err(); err != nil {
		return res, cancelled(ctx, op)
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return res, s.storeErr(ctx, op, name, key, err)
	}
	defer r.Close()
	v := newVerifier(f, s.corrupt(name))
	if err := v.checkStoredSize(r.Size()); err != nil {
		return res, err
	}

	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return res, localError(ctx, op, dst, err)
	}
	tmp := dst + PartialSuffix
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return res, localError(ctx, op, tmp, err)
	}
	done := false
	defer func() {
		if !done {
			out.Close()
			os.Remove(tmp)
		}
	}()

	buf := make([]byte, copyBufferSize)
	for {
		if ctx.Err() != nil {
			return res, cancelled(ctx, op)
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := v.write(buf[:n]); err != nil {
				return res, err
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return res, localError(ctx, op, tmp, err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return res, s.storeErr(ctx, op, name, key, rerr)
		}
	}
	sum, err := v.finish()
	if err != nil {
		return res, err
	}
	if err := out.Sync(); err != nil {
		return res, localError(ctx, op, tmp, err)
	}
	if err := out.Close(); err != nil {
		return res, localError(ctx, op, tmp, err)
	}
	if ctx.Err() != nil {
		return res, cancelled(ctx, op)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return res, localError(ctx, op, dst, err)
	}
	done = true
	syncDir(filepath.Dir(dst))
	res.SHA256, res.Size, res.Duration = sum, f.Size, time.Since(start)
	return res, nil
}

// syncDir makes a rename in dir durable; errors are ignored (not every filesystem
// supports fsync on a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// FetchAll fetches every file of the manifest into dir, each at dir/NAME (names may
// hold "/"), in manifest order, and returns what it fetched. It stops at the first
// error; files already fetched stay. It refuses to write through a symbolic link or
// outside dir.
func (s *Source) FetchAll(ctx context.Context, dir string) ([]FetchResult, error) {
	var out []FetchResult
	for _, f := range s.manifest.Files {
		dst, err := localPath(dir, f.Name)
		if err != nil {
			return out, err
		}
		r, err := s.Fetch(ctx, f.Name, dst)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// localPath joins a manifest file name to dir, refusing a result outside dir or
// reached through an existing symbolic link below dir.
func localPath(dir, name string) (string, error) {
	if err := drivers.CheckFileName(name); err != nil {
		return "", drivers.Errorf(drivers.Permanent, "fetch into %s: %v", dir, err)
	}
	dst := filepath.Join(dir, filepath.FromSlash(name))
	rel, err := filepath.Rel(dir, dst)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", drivers.Errorf(drivers.Permanent, "fetch into %s: file name %q leaves the directory", dir, name)
	}
	p := dir
	for _, el := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if err != nil {
			break // does not exist yet: nothing below it can be a link
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", drivers.WithHint(drivers.Errorf(drivers.Permanent, "fetch into %s: %s is a symbolic link; refusing to write %q through it", dir, p, name),
				"fetch into an empty directory")
		}
	}
	return dst, nil
}

// OpenFile returns a reader of file name (which must be listed in the manifest) that
// verifies the bytes as they are read: a stored object of the wrong size is refused
// at once, a bad part fails the Read that completes it, and the Read that reaches the
// end returns a Corruption error instead of io.EOF when the size or sha256 do not
// match. A consumer streaming into a restore tool thus learns of corruption before it
// commits. Reads honour ctx. The caller must Close the reader. The reader also has a
// method SHA256() string giving the verified digest after io.EOF.
func (s *Source) OpenFile(ctx context.Context, name string) (io.ReadCloser, error) {
	op := "read " + name
	f, key, err := s.entry(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, op)
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, s.storeErr(ctx, op, name, key, err)
	}
	v := newVerifier(f, s.corrupt(name))
	if err := v.checkStoredSize(r.Size()); err != nil {
		r.Close()
		return nil, err
	}
	return &verifyingReader{ctx: ctx, op: op, s: s, name: name, key: key, r: r, v: v}, nil
}

// verifyingReader is the reader OpenFile returns.
type verifyingReader struct {
	ctx  context.Context
	op   string
	s    *Source
	name string
	key  string
	r    *blob.Reader
	v    *verifier
	err  error // sticky: the first error (or io.EOF) returned
	sum  string
}

// Read implements io.Reader, verifying as it goes.
func (vr *verifyingReader) Read(p []byte) (int, error) {
	if vr.err != nil {
		return 0, vr.err
	}
	if vr.ctx.Err() != nil {
		vr.err = cancelled(vr.ctx, vr.op)
		return 0, vr.err
	}
	n, err := vr.r.Read(p)
	if n > 0 {
		if verr := vr.v.write(p[:n]); verr != nil {
			vr.err = verr
			return n, verr
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		sum, ferr := vr.v.finish()
		if ferr != nil {
			vr.err = ferr
			return n, ferr
		}
		vr.sum, vr.err = sum, io.EOF
		return n, io.EOF
	case err != nil:
		vr.err = vr.s.storeErr(vr.ctx, vr.op, vr.name, vr.key, err)
		return n, vr.err
	}
	return n, nil
}

// SHA256 returns the hex digest of the file once Read returned io.EOF (all checks
// passed), and "" before. Callers reach it with an interface{ SHA256() string }
// assertion on the reader OpenFile returns.
func (vr *verifyingReader) SHA256() string { return vr.sum }

// Close implements io.Closer.
func (vr *verifyingReader) Close() error {
	if err := vr.r.Close(); err != nil {
		return vr.s.storeErr(vr.ctx, "close "+vr.name, vr.name, vr.key, err)
	}
	return nil
}
