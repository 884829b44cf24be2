package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// Reader delivers the stored bytes of a file in order while later parts are
// fetched in parallel, at most Options.Window parts ahead. A part no larger than
// Options.PartSize is verified before any of its bytes is delivered; a larger part
// is verified as its last byte is delivered (the Read that completes it fails).
// The Read that reaches the end returns a Corruption error instead of io.EOF when
// the whole-file sha256 does not match. Reads fail once ctx is done. Close stops
// the fetches; it must be called.
type Reader struct {
	j      *job
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	units  []unit
	slots  []slot
	next   int    // the unit being delivered
	cur    []byte // what is left of it
	held   []byte // its buffer, returned to the pool when delivered
	whole  hash.Hash
	part   hash.Hash
	err    error // sticky
	sum    string
	wg     sync.WaitGroup

	errMu    sync.Mutex
	firstErr error
	closed   bool
	onEnd    func(error)
	// parentIsOpen: the Reader was returned by Open, whose Close reports the stats.
	parentIsOpen bool
}

type slot struct {
	done chan struct{}
	buf  []byte
	err  error
}

// Open returns a Reader of req's stored bytes (req.Dst and req.Decompress are
// ignored). The stored size is checked at once.
func (d *Downloader) Open(ctx context.Context, req Request) (*Reader, error) {
	j, err := d.newJob(req)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, cancelled(ctx, "read "+req.Name)
	}
	if err := j.checkStoredSize(ctx); err != nil {
		return nil, err
	}
	j.fc = d.c.beginFile(req.Name, j.f.Size)
	r := j.newReader(ctx)
	r.onEnd = func(err error) { j.fc.end(err, false) }
	r.parentIsOpen = true
	return r, nil
}

func (j *job) newReader(ctx context.Context) *Reader {
	r := &Reader{j: j, parent: ctx}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	r.units = j.layout(j.d.o.PartSize, j.d.o.PartSize)
	r.slots = make([]slot, len(r.units))
	for i := range r.slots {
		r.slots[i].done = make(chan struct{})
	}
	if !j.parts || j.f.SHA256 == "" || j.d.o.VerifyWholeFile {
		r.whole = sha256.New()
	}
	r.part = sha256.New()
	r.wg.Add(1)
	go r.dispatch()
	return r
}

// fail records the first error of a fetch and stops the others.
func (r *Reader) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
	r.cancel(err)
}

func (r *Reader) dispatch() {
	defer r.wg.Done()
	d := r.j.d
	for i, u := range r.units {
		buf, err := d.bufs.get(r.ctx, u.n)
		if err != nil {
			return
		}
		if err := d.acquire(r.ctx); err != nil {
			d.bufs.put(buf)
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.j.fetchUnit(r.ctx, u, nil, buf)
			d.release()
			s := &r.slots[i]
			if err != nil {
				d.bufs.put(buf)
				s.err = err
				close(s.done)
				r.fail(err)
				return
			}
			s.buf = buf
			close(s.done)
		}()
	}
}

// wait returns the buffer of unit i once fetched.
func (r *Reader) wait(i int) ([]byte, error) {
	s := &r.slots[i]
	select {
	case <-s.done:
		if s.err != nil {
			return nil, s.err
		}
		return s.buf, nil
	case <-r.ctx.Done():
		select {
		case <-s.done:
			if s.err == nil {
				return s.buf, nil
			}
		default:
		}
		if r.parent.Err() != nil {
			return nil, cancelled(r.parent, "read "+r.j.req.Name)
		}
		r.errMu.Lock()
		defer r.errMu.Unlock()
		if r.firstErr != nil {
			return nil, r.firstErr
		}
		return nil, cancelled(r.ctx, "read "+r.j.req.Name)
	}
}

// advance makes the next unit current, verifying what must be verified in order.
// It returns io.EOF (or the final check's error) after the last unit.
func (r *Reader) advance() error {
	if r.held != nil {
		r.j.d.bufs.put(r.held)
		r.held, r.slots[r.next].buf = nil, nil
		r.next++
	}
	if r.next == len(r.units) {
		return r.finish()
	}
	buf, err := r.wait(r.next)
	if err != nil {
		return err
	}
	u := r.units[r.next]
	r.held, r.cur = buf, buf
	if r.whole != nil {
		r.whole.Write(buf)
	}
	if u.part >= 0 && !u.whole {
		r.part.Write(buf)
		if u.last {
			sum := hex.EncodeToString(r.part.Sum(nil))
			r.part.Reset()
			if want := r.j.f.Parts[u.part]; sum != want {
				off, n := r.j.partRange(u.part)
				return r.j.req.Corrupt("%s sha256 mismatch: expected %s, actual %s", partText(u.part, off, n), want, sum)
			}
		}
	}
	return nil
}

// finish runs the whole-file check.
func (r *Reader) finish() error {
	f := r.j.f
	r.sum = f.SHA256
	if r.whole != nil {
		sum := hex.EncodeToString(r.whole.Sum(nil))
		if f.SHA256 != "" && sum != f.SHA256 {
			return r.j.req.Corrupt("sha256 mismatch: expected %s, actual %s", f.SHA256, sum)
		}
		r.sum = sum
	}
	return io.EOF
}

func (r *Reader) setErr(err error) error {
	r.err = err
	if r.onEnd != nil {
		if errors.Is(err, io.EOF) {
			r.onEnd(nil)
		} else {
			r.onEnd(err)
		}
		r.onEnd = nil
	}
	return err
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.parent.Err() != nil {
		return 0, r.setErr(cancelled(r.parent, "read "+r.j.req.Name))
	}
	for len(r.cur) == 0 {
		if err := r.advance(); err != nil {
			return 0, r.setErr(err)
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo implements io.WriterTo: each part is written in one call.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return total, nil
			}
			return total, r.err
		}
		if r.parent.Err() != nil {
			return total, r.setErr(cancelled(r.parent, "read "+r.j.req.Name))
		}
		if len(r.cur) > 0 {
			n, err := w.Write(r.cur)
			total += int64(n)
			r.cur = r.cur[n:]
			if err != nil {
				return total, &consumerError{err}
			}
			continue
		}
		if err := r.advance(); err != nil {
			r.setErr(err)
		}
	}
}

// SHA256 returns the stored bytes' sha256 once Read returned io.EOF, else "".
func (r *Reader) SHA256() string { return r.sum }

// Close stops the fetches and releases the buffers.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel(errors.New("reader closed"))
	r.wg.Wait()
	if r.held != nil {
		r.j.d.bufs.put(r.held)
		r.held, r.slots[r.next].buf = nil, nil
	}
	for i := r.next; i < len(r.slots); i++ {
		s := &r.slots[i]
		select {
		case <-s.done:
			if s.buf != nil {
				r.j.d.bufs.put(s.buf)
				s.buf = nil
			}
		default:
		}
	}
	if r.onEnd != nil {
		r.onEnd(errors.New("closed before the end"))
		r.onEnd = nil
	}
	if r.j.fc != nil && r.j.d.o.OnStats != nil && r.parentIsOpen {
		r.j.d.reportStats()
	}
	return nil
}

// consumerError is an error of the writer a Reader writes to.
type consumerError struct{ err error }

func (e *consumerError) Error() string { return e.err.Error() }
func (e *consumerError) Unwrap() error { return e.err }

// Stream writes req's bytes to w in order (decompressed when req.Decompress), with
// parallel ranged reads ahead of the writer. Nothing is staged on disk; a Stream
// cannot be resumed (the consumer has seen the bytes). See Reader for when bytes are
// verified; a non-nil error means w must discard what it got.
func (d *Downloader) Stream(ctx context.Context, req Request, w io.Writer) (Result, error) {
	d.progressStart()
	defer d.progressStop()
	start := time.Now()
	res := Result{Name: req.Name}
	j, err := d.newJob(req)
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, cancelled(ctx, "stream "+req.Name)
	}
	j.fc = d.c.beginFile(req.Name, j.f.Size)
	if err = j.checkStoredSize(ctx); err == nil {
		res, err = j.stream(ctx, w, "consumer of "+req.Name)
	}
	res.Name = req.Name
	j.fc.end(err, false)
	res.Retries, res.Fetched, res.Duration = j.fc.retries.Load(), j.fc.fetched.Load(), time.Since(start)
	if err == nil {
		j.log.Info().Int64("bytes", res.Size).Int64("written", res.Written).Dur("took", res.Duration).Int64("retries", res.Retries).
			Str("rate", rateText(res.Size, res.Duration)).Msg("streamed and verified")
	}
	d.reportStats()
	return res, err
}

// countingWriter counts the bytes written through it and keeps its error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// stream copies the file's bytes, decompressed if asked, into w.
func (j *job) stream(ctx context.Context, w io.Writer, consumer string) (Result, error) {
	f := j.f
	res := Result{Size: f.Size}
	r := j.newReader(ctx)
	defer r.Close()
	cw := &countingWriter{w: w}
	var err error
	if j.decompressing() {
		err = j.decompress(r, cw)
	} else {
		_, err = r.WriteTo(cw)
	}
	res.Written = cw.n
	j.d.c.written.Add(cw.n)
	if err != nil {
		var ce *consumerError
		switch {
		case r.err != nil && !errors.Is(r.err, io.EOF):
			return res, r.err
		case cw.err != nil || errors.As(err, &ce):
			if ctx.Err() != nil {
				return res, cancelled(ctx, "stream "+j.req.Name)
			}
			werr := cw.err
			if werr == nil {
				werr = ce.err
			}
			return res, j.req.LocalErr("write", consumer, werr)
		default:
			return res, err
		}
	}
	res.SHA256 = r.SHA256()
	return res, nil
}

// decompress copies the decompressed bytes of r to w; then r must be at its end
// (all its checks passed).
func (j *job) decompress(r *Reader, w io.Writer) error {
	kind := j.f.Compression
	var dec io.Reader
	var closeDec func()
	switch kind {
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return err
		}
		dec, closeDec = zr, zr.Close
	case "gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			if r.err != nil && !errors.Is(r.err, io.EOF) {
				return r.err
			}
			return j.badCompression(err)
		}
		dec, closeDec = gr, func() { gr.Close() }
	case "lz4":
		dec, closeDec = lz4.NewReader(r), func() {}
	default:
		return drivers.Errorf(drivers.Permanent, "unknown compression %q", kind)
	}
	defer closeDec()
	if _, err := io.Copy(w, dec); err != nil {
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return r.err
		}
		if c, ok := w.(*countingWriter); ok && c.err != nil {
			return &consumerError{c.err}
		}
		return j.badCompression(err)
	}
	// The decompressor stopped: the stored stream must be at its end, so that its
	// final checks ran and nothing follows the compressed data.
	extra, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if extra > 0 {
		return j.req.Corrupt("%d bytes follow the end of the %s stream", extra, kind)
	}
	return nil
}

func (j *job) badCompression(err error) error {
	if j.parts && j.f.PartSize <= j.d.o.PartSize {
		// Every byte the decompressor saw belonged to a verified part.
		return j.req.Corrupt("the stored bytes match the manifest but do not decompress as %s (%v): the file was compressed wrongly or its compression field is wrong", j.f.Compression, err)
	}
	return j.req.Corrupt("the stored bytes do not decompress as %s (%v): they are corrupt, or the file was compressed wrongly or its compression field is wrong", j.f.Compression, err)
}

// fetchOrdered decompresses into the partial file, then renames it. It is not
// resumable within the file: an interrupted one starts again from its first byte
// (with a state dir, a completed file is still skipped by a rerun).
func (j *job) fetchOrdered(ctx context.Context, res *Result) (Result, error) {
	dst := j.req.Dst
	op := "fetch " + j.req.Name
	tmp := dst + PartialSuffix
	if j.f.SHA256 == "" {
		if err := j.checkStoredSize(ctx); err != nil {
			return *res, err
		}
	}
	jr, sum, complete := j.stateFor(dst, "decompressed:"+j.f.Compression)
	if complete {
		fi, _ := os.Stat(dst)
		res.SHA256, res.Size, res.Resumed, res.Skipped = sum, j.f.Size, j.f.Size, true
		if fi != nil {
			res.Written = fi.Size()
		}
		j.fc.addDone(j.f.Size)
		j.d.c.resumed.Add(j.f.Size)
		return *res, nil
	}
	if j.f.SHA256 != "" {
		if err := j.checkStoredSize(ctx); err != nil {
			return *res, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return *res, j.req.LocalErr(op, dst, err)
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return *res, j.req.LocalErr(op, tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	r, err := j.stream(ctx, out, tmp)
	r.Name, r.Path = res.Name, res.Path
	if err != nil {
		return r, err
	}
	if err := out.Sync(); err != nil {
		return r, j.req.LocalErr(op, tmp, err)
	}
	if err := out.Close(); err != nil {
		return r, j.req.LocalErr(op, tmp, err)
	}
	if ctx.Err() != nil {
		return r, cancelled(ctx, op)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return r, j.req.LocalErr(op, dst, err)
	}
	ok = true
	atomicfile.SyncDir(filepath.Dir(dst))
	if jr != nil && j.d.o.StateDir != "" {
		j.finishJournal(jr, dst, r.SHA256)
	}
	return r, nil
}
