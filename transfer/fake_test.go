package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// fault says what a faulty read does.
type fault struct {
	status     int           // NewRangeReader fails with this HTTP status
	retryAfter time.Duration // ... and this Retry-After
	resetAfter int64         // the body breaks (ECONNRESET) after this many bytes (>0)
	shortAfter int64         // the body ends (EOF) after this many bytes (>0)
	stallAfter int64         // the body stalls after this many bytes (>=0 with stall)
	stall      bool
	flip       int64 // the byte at this offset of the object is flipped (>=0 with doFlip)
	doFlip     bool
}

// fakeObject is an object in memory whose reads can fail on demand.
type fakeObject struct {
	data    []byte
	version string
	mu      sync.Mutex
	calls   int
	// faults decides, for each read (numbered from 0), what goes wrong; nil: nothing.
	faults  func(call int, off, n int64) *fault
	fetched atomic.Int64 // bytes delivered
	delay   time.Duration
}

func (o *fakeObject) Size(context.Context) (int64, error) { return int64(len(o.data)), nil }
func (o *fakeObject) Version() string                     { return o.version }

type statusErr struct {
	code int
	ra   time.Duration
}

func (e *statusErr) Error() string             { return fmt.Sprintf("HTTP %d", e.code) }
func (e *statusErr) HTTPStatusCode() int       { return e.code }
func (e *statusErr) RetryAfter() time.Duration { return e.ra }

func (o *fakeObject) NewRangeReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	o.mu.Lock()
	call := o.calls
	o.calls++
	var f *fault
	if o.faults != nil {
		f = o.faults(call, off, n)
	}
	o.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end := min(off+n, int64(len(o.data)))
	body := o.data[off:end]
	if f != nil && f.status != 0 {
		return nil, &statusErr{f.status, f.retryAfter}
	}
	if f != nil && f.doFlip && f.flip >= off && f.flip < end {
		body = append([]byte(nil), body...)
		body[f.flip-off] ^= 0x01
	}
	return &fakeBody{ctx: ctx, o: o, r: bytes.NewReader(body), f: f}, nil
}

type fakeBody struct {
	ctx context.Context
	o   *fakeObject
	r   *bytes.Reader
	f   *fault
	n   int64
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.o.delay > 0 {
		select {
		case <-time.After(b.o.delay):
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	limit := int64(-1)
	if f := b.f; f != nil {
		switch {
		case f.resetAfter > 0:
			limit = f.resetAfter
		case f.shortAfter > 0:
			limit = f.shortAfter
		case f.stall:
			limit = f.stallAfter
		}
	}
	if limit >= 0 && b.n >= limit {
		switch {
		case b.f.resetAfter > 0:
			return 0, &netOpError{syscall.ECONNRESET}
		case b.f.shortAfter > 0:
			return 0, io.EOF
		default:
			<-b.ctx.Done()
			return 0, b.ctx.Err()
		}
	}
	if limit >= 0 && int64(len(p)) > limit-b.n {
		p = p[:limit-b.n]
	}
	k, err := b.r.Read(p)
	b.n += int64(k)
	b.o.fetched.Add(int64(k))
	return k, err
}

func (b *fakeBody) Close() error { return nil }

// netOpError wraps a syscall error like net.OpError does.
type netOpError struct{ err error }

func (e *netOpError) Error() string { return "read tcp: " + e.err.Error() }
func (e *netOpError) Unwrap() error { return e.err }

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// manifestFile describes data as a manifest entry with parts of partSize (0: none).
func manifestFile(name string, data []byte, partSize int64) drivers.File {
	f := drivers.File{Name: name, Size: int64(len(data)), SHA256: hexSum(data)}
	if partSize > 0 && len(data) > 0 {
		f.PartSize = partSize
		for off := int64(0); off < int64(len(data)); off += partSize {
			f.Parts = append(f.Parts, hexSum(data[off:min(off+partSize, int64(len(data)))]))
		}
	}
	return f
}
