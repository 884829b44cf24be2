package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
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

// classify attaches a class (see Classify) to an error from the store while doing
// op on the object named what (a path or redacted URL), with a message that names
// the object and the fix:
//
//   - the context is done: Cancelled;
//   - the error already has a class: kept;
//   - not found (404, NoSuchKey), a missing bucket (NoSuchBucket): Permanent,
//     naming the object or the bucket;
//   - access refused (401, 403, AccessDenied, InvalidAccessKeyId,
//     SignatureDoesNotMatch, a local permission error): Permanent, naming the
//     object, "check the credentials";
//   - otherwise the class Classify gives: Throttled for 429 and 503 SlowDown
//     (RetryAfter reads the delay the store asked for), Transient for other 5xx,
//     resets, timeouts and truncated bodies, Permanent for other 4xx.
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
	class, _ := Classify(err)
	switch storeProblem(err) {
	case problemNoBucket:
		bucket := bucketOf(what)
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("bucket %q of %s does not exist: %w", bucket, what, err)),
			"check the bucket name in the reference and the endpoint in the store config")
	case problemNotFound:
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("%s not found: %w", what, err)),
			"check the snapshot reference, or that the snapshot was not moved or deleted")
	case problemDenied:
		if strings.Contains(what, "://") {
			return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("access denied to %s (%s): check the credentials: %w", what, deniedReason(err), err)),
				"check the store credentials (access key and secret key, their source in the store config or environment) and that they may read "+what)
		}
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, fmt.Errorf("permission denied on %s: %w", what, err)),
			"grant the user running restore-run access to "+what+" (or fix the store credentials)")
	}
	return drivers.WithClass(class, op, err)
}

// bucketOf returns the bucket of a URL like s3://bucket/key, or what itself.
func bucketOf(what string) string {
	if i := strings.Index(what, "://"); i >= 0 {
		rest := what[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	return what
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
