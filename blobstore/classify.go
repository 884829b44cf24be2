package blobstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"

	"github.com/restore-run/restore-run/drivers"
)

// MaxRetryAfter caps the delay Classify passes on from a Retry-After header, so that
// a store asking for an hour cannot stall a restore silently.
const MaxRetryAfter = 5 * time.Minute

// Error codes of S3-compatible stores (and Azure's, where they coincide).
var (
	deniedCodes = map[string]bool{
		"AccessDenied": true, "Forbidden": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"InvalidToken": true, "ExpiredToken": true, "TokenRefreshRequired": true, "InvalidSecurity": true,
		"AllAccessDisabled": true, "AccountProblem": true, "AuthorizationHeaderMalformed": true,
		"Unauthorized": true, "AuthenticationFailed": true, "AuthorizationFailure": true,
		"AuthorizationPermissionMismatch": true, "InsufficientAccountPermissions": true,
		// versitygw answers an unknown access key with 404 XAdminUserNotFound.
		"XAdminUserNotFound": true,
	}
	notFoundCodes = map[string]bool{
		"NoSuchKey": true, "NotFound": true, "BlobNotFound": true, "ObjectNotInActiveTierError": true,
	}
	noBucketCodes = map[string]bool{
		"NoSuchBucket": true, "ContainerNotFound": true,
	}
	throttleCodes = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
		"TooManyRequests": true, "RequestThrottled": true, "ServerBusy": true,
	}
)

// Classify says what kind of failure a store error is, and how long the store asked
// us to wait before trying again:
//
//   - an error that already carries a class keeps it;
//   - context.Canceled, and a bare context.DeadlineExceeded: Cancelled; a request
//     or connection that timed out (*url.Error or *net.OpError with Timeout, which
//     is also what an HTTP request whose own deadline passed returns): Transient.
//     Classify does not know the run's context: a caller should check it first, as
//     classify does;
//   - 401, 403, AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, expired
//     tokens: Permanent (wrong credentials do not heal by retrying);
//   - 404, NoSuchKey, NoSuchBucket: Permanent;
//   - 429, 503 and SlowDown-like codes: Throttled, with the Retry-After of the
//     response when it has one (seconds or an HTTP date, capped at MaxRetryAfter);
//   - other 5xx: Transient;
//   - other 4xx (bad request, range not satisfiable, precondition failed):
//     Permanent;
//   - without a response: connection resets and refusals, broken pipes, network
//     timeouts, an unexpected EOF (a truncated body): Transient; a local "not
//     found" or "permission denied": Permanent; anything else from a store:
//     Transient, as the store's I/O errors are.
//
// The pipeline calls it for per-part retries; classify uses it for every store
// error this package returns.
func Classify(err error) (drivers.Class, time.Duration) {
	if err == nil {
		return "", 0
	}
	after := RetryAfter(err)
	var de *drivers.Error
	if errors.As(err, &de) && de.Class != "" {
		return de.Class, after
	}
	if errors.Is(err, context.Canceled) {
		return drivers.Cancelled, 0
	}
	var ue *url.Error
	var oe *net.OpError
	if (errors.As(err, &ue) && ue.Timeout()) || (errors.As(err, &oe) && oe.Timeout()) {
		return drivers.Transient, 0 // a request or connection timed out
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return drivers.Cancelled, 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return drivers.Transient, 0
	}
	switch storeProblem(err) {
	case problemDenied, problemNotFound, problemNoBucket:
		return drivers.Permanent, 0
	}
	code, status := apiCode(err), httpStatus(err)
	switch {
	case throttleCodes[code] || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return drivers.Throttled, after
	case status >= 500:
		return drivers.Transient, 0
	case status >= 400:
		return drivers.Permanent, 0
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return drivers.Transient, 0
	}
	switch gcerrors.Code(err) {
	case gcerrors.InvalidArgument, gcerrors.FailedPrecondition, gcerrors.Unimplemented, gcerrors.AlreadyExists:
		return drivers.Permanent, 0
	case gcerrors.ResourceExhausted:
		return drivers.Throttled, after
	case gcerrors.Canceled:
		return drivers.Cancelled, 0
	}
	return drivers.Transient, 0
}

type problem int

const (
	problemNone problem = iota
	problemDenied
	problemNotFound
	problemNoBucket
)

// storeProblem recognises refused access, a missing object and a missing bucket.
func storeProblem(err error) problem {
	code, status := apiCode(err), httpStatus(err)
	switch {
	case noBucketCodes[code]:
		return problemNoBucket
	case deniedCodes[code], status == http.StatusUnauthorized, status == http.StatusForbidden:
		return problemDenied
	case notFoundCodes[code], status == http.StatusNotFound:
		return problemNotFound
	case code == "" && status == 0 && (errors.Is(err, fs.ErrPermission) || gcerrors.Code(err) == gcerrors.PermissionDenied):
		return problemDenied
	case code == "" && status == 0 && isNotExist(err):
		return problemNotFound
	}
	return problemNone
}

// deniedReason is the store's code for a refusal, or its HTTP status.
func deniedReason(err error) string {
	if c := apiCode(err); c != "" {
		return c
	}
	if s := httpStatus(err); s != 0 {
		return strconv.Itoa(s) + " " + http.StatusText(s)
	}
	return "permission denied"
}

// apiCode returns the error code the store sent (S3's <Code>, Azure's
// x-ms-error-code), or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		return az.ErrorCode
	}
	return ""
}

// httpStatus returns the HTTP status of the store's response, or 0.
func httpStatus(err error) int {
	var sr *smithyhttp.ResponseError
	if errors.As(err, &sr) && sr.Response != nil {
		return sr.HTTPStatusCode()
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		return az.StatusCode
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		return hs.HTTPStatusCode()
	}
	return 0
}

// httpHeader returns the headers of the store's response, or nil.
func httpHeader(err error) http.Header {
	var sr *smithyhttp.ResponseError
	if errors.As(err, &sr) && sr.Response != nil && sr.Response.Response != nil {
		return sr.Response.Header
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) && az.RawResponse != nil {
		return az.RawResponse.Header
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Header
	}
	var hr interface{ HTTPResponse() *http.Response }
	if errors.As(err, &hr) && hr.HTTPResponse() != nil {
		return hr.HTTPResponse().Header
	}
	return nil
}

// RetryAfter returns the delay the store asked for in the Retry-After header of the
// response behind err (seconds or an HTTP date), capped at MaxRetryAfter; 0 when
// there is none.
func RetryAfter(err error) time.Duration {
	h := httpHeader(err)
	if h == nil {
		return 0
	}
	return parseRetryAfter(h.Get("Retry-After"), time.Now())
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}
