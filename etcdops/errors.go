package etcdops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/restore-run/restore-run/drivers"
)

// DefaultCallTimeout bounds one client call whose context has no deadline.
const DefaultCallTimeout = 10 * time.Second

// DefaultDialTimeout bounds Dial (and the connection probe of Save).
const DefaultDialTimeout = 5 * time.Second

// callCtx returns ctx bounded by DefaultCallTimeout when ctx has no deadline.
func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultCallTimeout)
}

// cancelled returns a Cancelled error for op when ctx is done, or nil.
func cancelled(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return drivers.WithClass(drivers.Cancelled, op, fmt.Errorf("%w (the run was interrupted or its deadline passed)", context.Cause(ctx)))
	}
	return nil
}

// hasClass reports whether err already carries a class of its own: a *drivers.Error
// or a context error (which drivers.ClassOf maps to Cancelled).
func hasClass(err error) bool {
	var e *drivers.Error
	return errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// classifyRPC attaches a class to an error from a client v3 call made under the
// caller's context parent. op names the call, e.g. "etcd status http://127.0.0.1:2379".
func classifyRPC(parent context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return drivers.WithClass(drivers.Cancelled, op, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return drivers.WithClass(drivers.Transient, op, fmt.Errorf("no answer in time (%w); the member may be down, overloaded or without quorum: check it and retry", err))
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		code = codes.Unavailable
	} else if errors.Is(err, context.Canceled) {
		// The client was closed under the call.
		return drivers.WithClass(drivers.Permanent, op, fmt.Errorf("%w (the client was closed; Dial again)", err))
	}
	switch code {
	case codes.Unavailable, codes.Aborted, codes.Internal, codes.DeadlineExceeded, codes.Canceled:
		return drivers.WithClass(drivers.Transient, op, fmt.Errorf("%w (member unavailable, no leader or connection lost; retry)", err))
	case codes.ResourceExhausted:
		return drivers.WithClass(drivers.Throttled, op, fmt.Errorf("%w (the server asks to slow down; retry later)", err))
	default:
		return drivers.WithClass(drivers.Permanent, op, err)
	}
}

// isAddrInUse reports whether err is a failure to bind an address already in use.
func isAddrInUse(err error) bool {
	if errors.Is(err, syscall.EADDRINUSE) {
		return true
	}
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "address already in use")
}
