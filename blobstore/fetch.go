package blobstore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/transfer"
)

// copyBufferSize is the size of the reads Pack issues.
const copyBufferSize = 1 << 20

// PartialSuffix is appended to a Fetch destination while it is being written.
const PartialSuffix = transfer.PartialSuffix

// JournalSuffix names the resume journal of a destination (DST.partial.journal) when
// no state directory is given.
const JournalSuffix = transfer.JournalSuffix

// FetchResult describes one fetched file.
type FetchResult struct {
	// Name is the file's name in the manifest.
	Name string `json:"name"`
	// Path is where it was written ("" for a stream).
	Path string `json:"path,omitempty"`
	// SHA256 is the hex digest of the stored bytes (verified against the manifest
	// when it has one; for a bare file, computed only). When every part was verified
	// and the whole file was not hashed again it is the manifest's digest, which the
	// parts establish.
	SHA256 string `json:"sha256"`
	// Size is the number of stored bytes; Written the bytes written (the
	// decompressed size when decompressing).
	Size    int64 `json:"size"`
	Written int64 `json:"written"`
	// Fetched is what was read from the store, retries included; Resumed what an
	// earlier, interrupted download had already verified; Skipped is true when an
	// earlier run had completed the file (with a state dir).
	Fetched int64 `json:"fetched"`
	Resumed int64 `json:"resumed,omitempty"`
	Skipped bool  `json:"skipped,omitempty"`
	// Retries counts the reads retried after a transient or throttling error, a
	// stall or a part that did not match.
	Retries int64 `json:"retries,omitempty"`
	// Duration is how long the fetch took.
	Duration time.Duration `json:"duration"`
}

func fetchResult(r transfer.Result) FetchResult {
	return FetchResult{Name: r.Name, Path: r.Path, SHA256: r.SHA256, Size: r.Size, Written: r.Written, Fetched: r.Fetched,
		Resumed: r.Resumed, Skipped: r.Skipped, Retries: r.Retries, Duration: r.Duration}
}

// FileRequest names a file of the manifest and where FetchFiles writes it.
type FileRequest struct {
	Name string
	Dst  string
}

// Fetch copies file name (which must be listed in the manifest) to the local path dst
// with the download pipeline (package transfer; docs/downloads.md): parallel ranged
// reads, the size checked first, each part's digest as it arrives (a part that does
// not match is read once more, then fails the download naming its index and byte
// range), and the whole-file sha256 when the file has no parts. The stored bytes are
// written: see FetchWith to decompress.
//
// The copy is atomic: bytes go to dst+".partial" (parent directories are created
// 0o755, the file 0o600), which is fsynced and renamed to dst only once every check
// passed. On failure nothing is left at dst (a file already there is left as it
// was; parent directories it created stay). A download that failed for a reason
// that may pass (transient, throttled, cancelled) keeps dst+".partial" and its resume
// journal (dst+".partial.journal", or one in TransferOptions.StateDir) so that the
// next Fetch to dst reads only the parts not yet verified; any other failure removes
// both. Fetch writes nothing but these paths (and the state dir), whatever the name.
// It honours ctx while copying.
func (s *Source) Fetch(ctx context.Context, name, dst string) (FetchResult, error) {
	return s.FetchWith(ctx, name, dst, FetchOptions{})
}

// FetchWith is Fetch with per-call options: decompression, a state dir, a logger.
// A decompressed file is written from the first byte again by a rerun (it is not
// resumable within the file); with a state dir a completed file, decompressed or
// not, is not fetched again while it is unchanged at dst.
func (s *Source) FetchWith(ctx context.Context, name, dst string, opts FetchOptions) (FetchResult, error) {
	res, err := s.FetchFiles(ctx, []FileRequest{{Name: name, Dst: dst}}, opts)
	if len(res) == 1 {
		return res[0], err
	}
	return FetchResult{Name: name, Path: dst}, err
}

// FetchAll fetches every file of the manifest into dir, each at dir/NAME (names may
// hold "/"), TransferOptions.FilesAtOnce at a time, and returns what it fetched, in
// manifest order. It stops at the first error (files in progress are cancelled and
// keep their resume state as for Fetch; files already fetched stay). It refuses to
// write through a symbolic link or outside dir.
func (s *Source) FetchAll(ctx context.Context, dir string) ([]FetchResult, error) {
	var reqs []FileRequest
	for _, f := range s.manifest.Files {
		dst, err := localPath(dir, f.Name)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, FileRequest{Name: f.Name, Dst: dst})
	}
	return s.FetchFiles(ctx, reqs, FetchOptions{})
}

// FetchFiles fetches several files, each to its own destination, as FetchAll does
// (several at once, stopping at the first error) and with the per-call options of
// FetchWith. Results are in request order, for the files that completed.
func (s *Source) FetchFiles(ctx context.Context, files []FileRequest, opts FetchOptions) ([]FetchResult, error) {
	var reqs []transfer.Request
	var keys []string
	for _, fr := range files {
		f, key, err := s.entry(fr.Name)
		if err != nil {
			return nil, err
		}
		if fr.Dst == "" {
			return nil, drivers.Errorf(drivers.Permanent, "fetch %s: empty destination path", fr.Name)
		}
		reqs = append(reqs, transfer.Request{Name: fr.Name, File: f, Dst: fr.Dst, Decompress: opts.Decompress})
		keys = append(keys, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, "fetch")
	}
	p, err := s.pipeline(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer p.close()
	for i, r := range reqs {
		reqs[i] = p.request(ctx, "fetch "+r.Name, r.File, keys[i], r.Dst, r.Decompress)
	}
	res, err := p.d.FetchAll(ctx, reqs)
	out := make([]FetchResult, 0, len(res))
	for _, r := range res {
		out = append(out, fetchResult(r))
	}
	return out, s.loc.scrub(err)
}

// Stream writes file name, verified and decompressed when decompress is true, to w:
// the input of a restore tool, with nothing staged on disk. Parts are fetched in
// parallel ahead of the writer. A part no larger than TransferOptions.PartSize is
// verified before any of its bytes reaches w; a file without parts is checked as a
// whole after its last byte was written. A non-nil error therefore means w must
// discard what it received (a restore tool must be stopped and its output thrown
// away). A stream cannot be resumed; its parts are retried like a Fetch's.
func (s *Source) Stream(ctx context.Context, name string, w io.Writer, decompress bool) (FetchResult, error) {
	return s.StreamWith(ctx, name, w, FetchOptions{Decompress: decompress})
}

// StreamWith is Stream with per-call options (Decompress, Log).
func (s *Source) StreamWith(ctx context.Context, name string, w io.Writer, opts FetchOptions) (FetchResult, error) {
	f, key, err := s.entry(name)
	if err != nil {
		return FetchResult{Name: name}, err
	}
	if err := ctx.Err(); err != nil {
		return FetchResult{Name: name}, cancelled(ctx, "stream "+name)
	}
	p, err := s.pipeline(ctx, opts)
	if err != nil {
		return FetchResult{Name: name}, err
	}
	defer p.close()
	res, err := p.d.Stream(ctx, p.request(ctx, "stream "+name, f, key, "", opts.Decompress), w)
	return fetchResult(res), s.loc.scrub(err)
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

// OpenFile returns a reader of file name's stored bytes (which must be listed in the
// manifest) that verifies them as they are read, fetching parts in parallel ahead of
// the reader: a stored object of the wrong size is refused at once; a part no larger
// than TransferOptions.PartSize is verified before any of its bytes is delivered (a
// bad one fails the Read that reaches it); and the Read that reaches the end returns
// a Corruption error instead of io.EOF when the whole-file sha256 does not match. A
// consumer streaming into a restore tool thus learns of corruption before it commits.
// Reads honour ctx. The caller must Close the reader. The reader also has a method
// SHA256() string giving the verified digest after io.EOF.
func (s *Source) OpenFile(ctx context.Context, name string) (io.ReadCloser, error) {
	op := "read " + name
	f, key, err := s.entry(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, op)
	}
	p, err := s.pipeline(ctx, FetchOptions{})
	if err != nil {
		return nil, err
	}
	req := p.request(ctx, op, f, key, "", false)
	r, err := p.d.Open(ctx, req)
	if err != nil {
		p.close()
		return nil, s.loc.scrub(err)
	}
	return &fileReader{r: r, p: p, s: s}, nil
}

// fileReader is the reader OpenFile returns.
type fileReader struct {
	r *transfer.Reader
	p *pipeline
	s *Source
}

func (fr *fileReader) Read(b []byte) (int, error) {
	n, err := fr.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fr.s.loc.scrub(err)
	}
	return n, err
}

// SHA256 returns the hex digest of the file once Read returned io.EOF (all checks
// passed), and "" before.
func (fr *fileReader) SHA256() string { return fr.r.SHA256() }

// Close implements io.Closer.
func (fr *fileReader) Close() error {
	err := fr.r.Close()
	fr.p.close()
	return err
}
