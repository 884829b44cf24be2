package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/restore-run/restore-run/drivers"
)

// Object is a stored object that can be read by byte ranges.
type Object interface {
	// Size is the object's size as the store reports it. Errors are classified and
	// retried like those of reads.
	Size(ctx context.Context) (int64, error)
	// NewRangeReader reads length bytes from offset off. The reader must stop
	// (return an error) once ctx is done.
	NewRangeReader(ctx context.Context, off, length int64) (io.ReadCloser, error)
}

// Versioned is implemented by objects that know their version (an ETag, a
// modification time). A file without a manifest sha256 (a bare file) is resumed only
// when its object is Versioned and the version did not change.
type Versioned interface {
	Version() string
}

// Request asks for one file.
type Request struct {
	// Name names the file in messages, progress and the journal.
	Name string
	// File is the manifest entry: size, sha256, parts, compression. An empty SHA256
	// (a bare file) means only the size is checked and the sha256 is computed.
	File drivers.File
	// Object is where the stored bytes are read from.
	Object Object
	// Dst is the destination path for Fetch. The bytes go to Dst+".partial", which is
	// renamed to Dst once everything is verified.
	Dst string
	// Decompress writes the decompressed bytes (File.Compression) instead of the
	// stored ones. Stored bytes are verified before they are decompressed.
	Decompress bool
	// Corrupt builds the error for bytes that do not match the manifest; it should
	// have class Corruption. Nil: a generic one naming Name.
	Corrupt func(format string, args ...any) error
	// StoreErr turns a final store error (permanent, or retryable but out of
	// retries) of the class the pipeline gave it into the error returned. Nil: the
	// error with that class, naming the bytes that could not be read.
	StoreErr func(err error, class drivers.Class) error
	// LocalErr turns an error of the local disk or of the consumer into the error
	// returned. Nil: Permanent, naming the path.
	LocalErr func(op, path string, err error) error
}

// Result describes one transferred file.
type Result struct {
	Name string
	// Path is the destination (Fetch) or "" (Stream).
	Path string
	// SHA256 is the hex sha256 of the stored bytes: computed, or, when every part was
	// verified and the whole file was not hashed again, the manifest's.
	SHA256 string
	// Size is the stored size; Written the bytes written to the destination
	// (different when decompressing).
	Size, Written int64
	// Fetched is what was read from the store for this file, retries included;
	// Resumed what a previous attempt had already verified.
	Fetched, Resumed int64
	// Skipped is true when a previous run had completed the file (StateDir).
	Skipped bool
	// Retries counts retried reads of this file.
	Retries int64
	// Duration is how long the call took.
	Duration time.Duration
}

// Downloader fetches files with parallel ranged reads. Its methods may be called
// from several goroutines; the concurrency, bandwidth and memory limits hold across
// all of them.
type Downloader struct {
	o Options
	// maxInline is the largest part a Fetch to a file reads in one ranged read
	// (maxInlinePart; tests lower it).
	maxInline int64
	sem       chan struct{} // ranged reads in flight
	lim       *rate.Limiter
	bufs      *bufPool
	gate      gate
	c         counters
	copy      sync.Pool

	progMu   sync.Mutex
	progRefs int
	progStop func()
}

// New returns a Downloader with options o (zero fields take their defaults).
func New(o Options) (*Downloader, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Downloader{o: o, maxInline: maxInlinePart, sem: make(chan struct{}, o.Concurrency), bufs: newBufPool(o.Window, o.PartSize)}
	if o.BandwidthLimit > 0 {
		burst := int(min(max(o.BandwidthLimit/10, 32<<10), copyBufferSize))
		d.lim = rate.NewLimiter(rate.Limit(o.BandwidthLimit), burst)
	}
	d.copy.New = func() any { b := make([]byte, copyBufferSize); return &b }
	return d, nil
}

// Options returns the options in force, defaults filled in.
func (d *Downloader) Options() Options { return d.o }

// Stats returns the Downloader's counters.
func (d *Downloader) Stats() Stats { return d.c.snapshot() }

// job is one file being transferred.
type job struct {
	d     *Downloader
	req   Request
	f     drivers.File
	fc    *fileCounters
	parts bool // the manifest entry has part digests
	log   zerolog.Logger
}

func (d *Downloader) newJob(req Request) (*job, error) {
	f := req.File
	j := &job{d: d, req: req, f: f}
	if req.Corrupt == nil {
		j.req.Corrupt = func(format string, args ...any) error {
			return drivers.Errorf(drivers.Corruption, "file %q: %s", req.Name, fmt.Sprintf(format, args...))
		}
	}
	if req.LocalErr == nil {
		j.req.LocalErr = func(op, path string, err error) error {
			return drivers.WithClass(drivers.Permanent, op+" "+path, err)
		}
	}
	if req.Object == nil {
		return nil, drivers.Errorf(drivers.Permanent, "transfer %s: no object", req.Name)
	}
	if f.Size < 0 {
		return nil, drivers.Errorf(drivers.Permanent, "transfer %s: negative size %d", req.Name, f.Size)
	}
	if f.PartSize > 0 || len(f.Parts) > 0 {
		want := int64(0)
		if f.PartSize > 0 {
			want = (f.Size + f.PartSize - 1) / f.PartSize
		}
		if f.PartSize <= 0 || int64(len(f.Parts)) != want {
			return nil, j.req.Corrupt("the manifest lists %d parts of %d bytes for %d bytes", len(f.Parts), f.PartSize, f.Size)
		}
		j.parts = f.Size > 0
	}
	if req.Decompress {
		switch f.Compression {
		case "", "none", "zstd", "gzip", "lz4":
		default:
			return nil, drivers.Errorf(drivers.Permanent, "transfer %s: unknown compression %q", req.Name, f.Compression)
		}
	}
	j.log = d.o.Log.With().Str("file", req.Name).Logger()
	return j, nil
}

// decompressing reports whether the job writes decompressed bytes.
func (j *job) decompressing() bool {
	return j.req.Decompress && j.f.Compression != "" && j.f.Compression != "none"
}

// checkStoredSize refuses an object whose stored size differs from the manifest's,
// before any byte is read.
func (j *job) checkStoredSize(ctx context.Context) error {
	var size int64
	err := j.retry(ctx, "stat", func() error {
		var err error
		size, err = j.req.Object.Size(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if size != j.f.Size {
		return j.req.Corrupt("size mismatch: expected %d bytes, the stored object has %d", j.f.Size, size)
	}
	return nil
}

// retry runs a store call other than a read, retrying it per the retry policy.
func (j *job) retry(ctx context.Context, what string, call func() error) error {
	o := &j.d.o
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return cancelled(ctx, what+" "+j.req.Name)
		}
		class, wait := o.Classify(err)
		if class == drivers.Cancelled {
			class = drivers.Transient
		}
		if !class.Retryable() {
			return j.storeErr(err, class, 0, j.f.Size)
		}
		if attempt >= o.Retry.MaxAttempts || time.Since(start) >= o.Retry.MaxElapsed {
			return j.storeErr(fmt.Errorf("gave up after %d failed attempts: %w", attempt, err), class, 0, j.f.Size)
		}
		delay := max(o.Retry.backoff(attempt), wait)
		j.d.c.retries.Add(1)
		j.retryLog().Err(err).Str("class", string(class)).Dur("wait", delay).Msg(what + " failed; retrying")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return cancelled(ctx, what+" "+j.req.Name)
		case <-t.C:
		}
	}
}

// unit is one ranged read.
type unit struct {
	off, n int64
	part   int  // the manifest part it belongs to, -1 without parts
	whole  bool // the unit is its whole part, verified as it streams
	last   bool // the last unit of its part
}

// layout splits a file into ranged reads of at most maxUnit bytes that never cross
// a manifest part (a part of at most maxPart bytes is one read).
func (j *job) layout(maxUnit, maxPart int64) []unit {
	f := j.f
	var us []unit
	if !j.parts {
		for off := int64(0); off < f.Size; off += maxUnit {
			us = append(us, unit{off: off, n: min(maxUnit, f.Size-off), part: -1})
		}
		return us
	}
	for p := range f.Parts {
		off := int64(p) * f.PartSize
		n := min(f.PartSize, f.Size-off)
		if n <= maxPart {
			us = append(us, unit{off: off, n: n, part: p, whole: true, last: true})
			continue
		}
		for o := off; o < off+n; o += maxUnit {
			us = append(us, unit{off: o, n: min(maxUnit, off+n-o), part: p, last: o+maxUnit >= off+n})
		}
	}
	return us
}

// partRange returns the byte range of manifest part p.
func (j *job) partRange(p int) (off, n int64) {
	off = int64(p) * j.f.PartSize
	return off, min(j.f.PartSize, j.f.Size-off)
}

// localError marks an error of the destination: never retried.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// fetchUnit reads unit u into sink, verifying it inline when it is a whole part. A
// part that does not match its digest is read once more (the mismatch may have been
// a corruption in flight); a second mismatch is a Corruption error naming the part.
// undo is called before the second read with the bytes already counted as done.
func (j *job) fetchUnit(ctx context.Context, u unit, sink func(p []byte, at int64) error, into []byte) error {
	for try := 0; ; try++ {
		var h hash.Hash
		if u.whole {
			h = sha256.New()
		}
		if err := j.fetchRange(ctx, u.off, u.n, h, sink, into); err != nil {
			return err
		}
		if h == nil {
			return nil
		}
		sum := hex.EncodeToString(h.Sum(nil))
		want := j.f.Parts[u.part]
		if sum == want {
			return nil
		}
		if try == 0 {
			j.d.c.checksumRetries.Add(1)
			j.fc.addRetry()
			j.fc.addDone(-u.n)
			j.retryLog().Int("part", u.part).Str("expected", want).Str("actual", sum).Msg("part does not match its digest; reading it again")
			continue
		}
		return j.req.Corrupt("%s sha256 mismatch: expected %s, actual %s (read twice)", partText(u.part, u.off, u.n), want, sum)
	}
}

// retryLog is where retries are logged: at warn level, or at debug level when a
// progress bar shows them.
func (j *job) retryLog() *zerolog.Event {
	if j.d.o.Progress == ProgressBar {
		return j.log.Debug()
	}
	return j.log.Warn()
}

// fetchRange reads [off, off+n) of the object into sink, or straight into into
// (n bytes) when it is not nil, and into h if not nil, retrying transient and
// throttled failures per the retry policy. A retry resumes at the first byte not yet
// received. It returns a classified error.
func (j *job) fetchRange(ctx context.Context, off, n int64, h hash.Hash, sink func(p []byte, at int64) error, into []byte) error {
	d := j.d
	o := &d.o
	var buf []byte
	if into == nil {
		bp := d.copy.Get().(*[]byte)
		defer d.copy.Put(bp)
		buf = *bp
	}
	readMax := int64(copyBufferSize)
	if d.lim != nil {
		readMax = int64(d.lim.Burst())
	}
	var got int64
	failures := 0
	start := time.Now()
	for {
		if err := d.gate.wait(ctx); err != nil {
			return cancelled(ctx, "read "+j.req.Name)
		}
		actx, cancel := context.WithCancelCause(ctx)
		idle := time.AfterFunc(o.IdleTimeout, func() { cancel(ErrStalled) })
		before := got
		err := func() error {
			r, err := j.req.Object.NewRangeReader(actx, off+got, n-got)
			if err != nil {
				return err
			}
			defer r.Close()
			for got < n {
				want := min(readMax, n-got)
				var p []byte
				if into != nil {
					p = into[got : got+want]
				} else {
					p = buf[:want]
				}
				idle.Reset(o.IdleTimeout)
				k, rerr := r.Read(p)
				idle.Stop()
				if k > 0 {
					if d.lim != nil {
						if err := d.lim.WaitN(ctx, k); err != nil {
							return err
						}
					}
					d.c.fetched.Add(int64(k))
					j.fc.fetched.Add(int64(k))
					if h != nil {
						h.Write(p[:k])
					}
					if sink != nil {
						if err := sink(p[:k], off+got); err != nil {
							return &localError{err}
						}
					}
					got += int64(k)
					j.fc.addDone(int64(k))
				}
				if errors.Is(rerr, io.EOF) {
					if got < n {
						return &ShortBodyError{Off: off, Want: n, Got: got}
					}
					return nil
				}
				if rerr != nil {
					return rerr
				}
			}
			return nil
		}()
		idle.Stop()
		cause := context.Cause(actx)
		cancel(nil)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return cancelled(ctx, "read "+j.req.Name)
		}
		var le *localError
		if errors.As(err, &le) {
			return le.err
		}
		var class drivers.Class
		var wait time.Duration
		if errors.Is(cause, ErrStalled) {
			err = fmt.Errorf("%w (%s)", ErrStalled, o.IdleTimeout)
			class = drivers.Transient
			d.c.stalls.Add(1)
		} else {
			class, wait = o.Classify(err)
			if class == drivers.Cancelled {
				class = drivers.Transient // our context is alive: the store's own cancellation
			}
		}
		if !class.Retryable() {
			return j.storeErr(err, class, off, n)
		}
		if got > before {
			failures = 0 // progress: count consecutive failures only
		}
		failures++
		if failures >= o.Retry.MaxAttempts || time.Since(start) >= o.Retry.MaxElapsed {
			return j.storeErr(fmt.Errorf("gave up after %d failed attempts in %s: %w", failures, time.Since(start).Round(time.Millisecond), err), class, off, n)
		}
		delay := o.Retry.backoff(failures)
		if wait > delay {
			delay = wait
		}
		if class == drivers.Throttled {
			d.c.throttled.Add(1)
			d.gate.pause(delay)
		}
		j.fc.addRetry()
		j.retryLog().Err(err).Str("class", string(class)).Int64("offset", off+got).Dur("wait", delay).Int("attempt", failures).Msg("read failed; retrying")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return cancelled(ctx, "read "+j.req.Name)
		case <-t.C:
		}
	}
}

// storeErr returns the final error of a read of [off, off+n).
func (j *job) storeErr(err error, class drivers.Class, off, n int64) error {
	if j.req.StoreErr != nil {
		return j.req.StoreErr(err, class)
	}
	return drivers.WithClass(class, fmt.Sprintf("read bytes %d-%d of %q", off, off+n-1, j.req.Name), err)
}

// acquire takes a ranged-read slot.
func (d *Downloader) acquire(ctx context.Context) error {
	select {
	case d.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Downloader) release() { <-d.sem }

// gate pauses new reads of every file after a throttling answer, for as long as the
// store asked (or the backoff says).
type gate struct {
	mu    sync.Mutex
	until time.Time
}

func (g *gate) pause(d time.Duration) {
	g.mu.Lock()
	if u := time.Now().Add(d); u.After(g.until) {
		g.until = u
	}
	g.mu.Unlock()
}

func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		wait := time.Until(g.until)
		g.mu.Unlock()
		if wait <= 0 {
			return ctx.Err()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// bufPool hands out at most n buffers at once: the window of an ordered download.
type bufPool struct {
	tokens chan struct{}
	size   int64
	mu     sync.Mutex
	free   [][]byte
}

func newBufPool(n int, size int64) *bufPool {
	return &bufPool{tokens: make(chan struct{}, n), size: size}
}

// get returns a buffer of n bytes (n <= size), waiting for a free slot.
func (p *bufPool) get(ctx context.Context, n int64) ([]byte, error) {
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n < p.size/2 {
		return make([]byte, n), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b[:n], nil
	}
	return make([]byte, n, p.size), nil
}

func (p *bufPool) put(b []byte) {
	if int64(cap(b)) == p.size {
		p.mu.Lock()
		p.free = append(p.free, b[:0])
		p.mu.Unlock()
	}
	<-p.tokens
}
