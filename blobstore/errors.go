package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"gocloud.dev/gcerrors"

	"github.com/restore-run/restore-run/drivers"
)

// corruptTail ends every Corruption message about stored bytes.
const corruptTail = "the snapshot is corrupt or was changed after it was written"

// hintCorrupt is the fix for a file that does not match its manifest.
const hintCorrupt = "do not restore from it: use another snapshot, or re-create this one"

// cancelled returns the Cancelled error for op once ctx is done.
func cancelled(ctx context.Context, op string) error {
	err := context.Cause(ctx)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = context.Canceled
	}
	return drivers.WithClass(drivers.Cancelled, op, err)
}

// isNotExist reports whether err says a path or object does not exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		gcerrors.Code(err) == gcerrors.NotFound
}

// isPermission reports whether err says access was refused.
func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || gcerrors.Code(err) == gcerrors.PermissionDenied
}

// classify attaches a class to an error from the store while doing op on the object
// named what (a path or redacted URL):
//
//   - the context is done: Cancelled;
//   - the error already has a class: kept;
//   - not found, permission denied, invalid argument, failed precondition,
//     unimplemented, already exists: Permanent, naming what and the fix;
//   - resource exhausted (the store throttles us): Throttled;
//   - anything else (I/O, 5xx, a reset connection): Transient.
func classify(ctx context.Context, op, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return cancelled(ctx, op)
	}
	var de *drivers.Error
	if errors.As(err, &de) {
		return drivers.WithClass(drivers.ClassOf(err), op, err)
	}
	switch {
	case isNotExist(err):
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("%s not found: %w", what, err)),
			"check the snapshot reference, or that the snapshot was not moved or deleted")
	case isPermission(err):
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("permission denied on %s: %w", what, err)),
			"grant the user running restore-run access to "+what+" (or fix the store credentials)")
	}
	switch gcerrors.Code(err) {
	case gcerrors.InvalidArgument, gcerrors.FailedPrecondition, gcerrors.Unimplemented, gcerrors.AlreadyExists:
		return drivers.WithClass(drivers.Permanent, op, err)
	case gcerrors.ResourceExhausted:
		return drivers.WithClass(drivers.Throttled, op, err)
	case gcerrors.Canceled:
		return drivers.WithClass(drivers.Cancelled, op, err)
	}
	return drivers.WithClass(drivers.Transient, op, err)
}

// localError classifies an error writing or reading the local disk (not the store):
// Cancelled once ctx is done, else Permanent, since a full disk or a refused directory
// does not heal by retrying.
func localError(ctx context.Context, op, path string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return cancelled(ctx, op)
	}
	hint := "check free space and permissions under " + filepath.Dir(path)
	if isNotExist(err) {
		hint = "check that " + path + " exists"
	}
	return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, err), hint)
}
