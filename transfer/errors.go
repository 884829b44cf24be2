package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// ErrStalled is the cause of a read that delivered no byte for Options.IdleTimeout.
var ErrStalled = errors.New("stalled: no data received within the idle timeout")

// ShortBodyError reports a ranged read whose body ended before the bytes asked for:
// a truncated response. It is Transient.
type ShortBodyError struct {
	Off, Want, Got int64
}

func (e *ShortBodyError) Error() string {
	return fmt.Sprintf("truncated body: the read at offset %d ended after %d of %d bytes", e.Off, e.Got, e.Want)
}

// RetryAfterError may be implemented by store errors that carry the wait the store
// asked for (an HTTP Retry-After); DefaultClassify honours it.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// StatusError may be implemented by store errors that carry an HTTP status code.
type StatusError interface {
	error
	HTTPStatusCode() int
}

// DefaultClassify classifies errors without knowledge of a particular store:
//
//   - context cancellation: Cancelled;
//   - an error with a drivers class: that class;
//   - a truncated body, a stall, an unexpected EOF, a network error (reset,
//     refused, timeout, broken pipe): Transient;
//   - an HTTP status (StatusError): 429 and 503 Throttled, 408 and other 5xx
//     Transient, any other Permanent;
//   - anything else: Permanent (nothing is retried blindly).
//
// The wait is RetryAfterError's, if the error carries one.
func DefaultClassify(err error) (drivers.Class, time.Duration) {
	var wait time.Duration
	var ra RetryAfterError
	if errors.As(err, &ra) {
		wait = ra.RetryAfter()
	}
	var de *drivers.Error
	var se StatusError
	var sb *ShortBodyError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return drivers.Cancelled, 0
	case errors.As(err, &de) && de.Class != "":
		return de.Class, wait
	case errors.As(err, &se):
		switch c := se.HTTPStatusCode(); {
		case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
			return drivers.Throttled, wait
		case c == http.StatusRequestTimeout || c >= 500:
			return drivers.Transient, wait
		default:
			return drivers.Permanent, 0
		}
	case errors.As(err, &sb), errors.Is(err, ErrStalled), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne):
		return drivers.Transient, wait
	}
	return drivers.Permanent, 0
}

// cancelled is the Cancelled error of op once ctx is done.
func cancelled(ctx context.Context, op string) error {
	err := context.Cause(ctx)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = context.Canceled
	}
	var de *drivers.Error
	if errors.As(err, &de) && de.Class != drivers.Cancelled {
		return err // a sibling's failure cancelled us: report that
	}
	return drivers.WithClass(drivers.Cancelled, op, err)
}

// isCancelled reports whether err is a Cancelled error.
func isCancelled(err error) bool { return drivers.ClassOf(err) == drivers.Cancelled }

// rangeText names the bytes of a part for messages: "part 2 (bytes 2048-3071)".
func partText(idx int, off, n int64) string {
	return fmt.Sprintf("part %d (bytes %d-%d)", idx, off, off+n-1)
}
