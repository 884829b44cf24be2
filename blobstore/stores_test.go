package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/testcheck"
)

// s3Err builds the error the AWS SDK returns for a response with status and code.
func s3Err(status int, code string, header http.Header) error {
	if header == nil {
		header = http.Header{}
	}
	return fmt.Errorf("operation error S3: GetObject: %w", &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
	})
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassifyStoreErrors(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		err   error
		class drivers.Class
		after time.Duration
	}{
		{"403 AccessDenied", s3Err(403, "AccessDenied", nil), drivers.Permanent, 0},
		{"403 InvalidAccessKeyId", s3Err(403, "InvalidAccessKeyId", nil), drivers.Permanent, 0},
		{"403 SignatureDoesNotMatch", s3Err(403, "SignatureDoesNotMatch", nil), drivers.Permanent, 0},
		{"403 without code (HEAD)", s3Err(403, "", nil), drivers.Permanent, 0},
		{"404 NoSuchKey", s3Err(404, "NoSuchKey", nil), drivers.Permanent, 0},
		{"404 NoSuchBucket", s3Err(404, "NoSuchBucket", nil), drivers.Permanent, 0},
		{"503 SlowDown", s3Err(503, "SlowDown", nil), drivers.Throttled, 0},
		{"503 SlowDown Retry-After 7", s3Err(503, "SlowDown", http.Header{"Retry-After": {"7"}}), drivers.Throttled, 7 * time.Second},
		{"429 Retry-After huge", s3Err(429, "TooManyRequests", http.Header{"Retry-After": {"86400"}}), drivers.Throttled, MaxRetryAfter},
		{"429 no code", s3Err(429, "", nil), drivers.Throttled, 0},
		{"500", s3Err(500, "InternalError", nil), drivers.Transient, 0},
		{"502", s3Err(502, "", nil), drivers.Transient, 0},
		{"400", s3Err(400, "InvalidArgument", nil), drivers.Permanent, 0},
		{"416", s3Err(416, "InvalidRange", nil), drivers.Permanent, 0},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, drivers.Transient, 0},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, drivers.Transient, 0},
		{"timeout", fmt.Errorf("get: %w", timeoutErr{}), drivers.Transient, 0},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), drivers.Transient, 0},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), drivers.Cancelled, 0},
		{"deadline", context.DeadlineExceeded, drivers.Cancelled, 0},
		{"request timeout", &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, drivers.Transient, 0},
		{"classified", drivers.Errorf(drivers.Corruption, "bad"), drivers.Corruption, 0},
		{"local not found", &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}, drivers.Permanent, 0},
		{"unknown", errors.New("something odd"), drivers.Transient, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, after := Classify(tc.err)
			if c != tc.class || after != tc.after {
				t.Errorf("Classify = %s, %s; want %s, %s", c, after, tc.class, tc.after)
			}
		})
	}
	// An HTTP date, and the class survives classify's wrapping.
	date := now.Add(30 * time.Second).UTC().Format(http.TimeFormat)
	err := classify(context.Background(), "fetch member.db", "s3://b/p/member.db", s3Err(503, "SlowDown", http.Header{"Retry-After": {date}}))
	c, after := Classify(err)
	if c != drivers.Throttled || after < 25*time.Second || after > 31*time.Second {
		t.Errorf("Classify(classify(503 with date)) = %s, %s", c, after)
	}
	if Classify(nil); RetryAfter(errors.New("x")) != 0 {
		t.Error("RetryAfter of a plain error")
	}

	// Messages name the object and the fix.
	ctx := context.Background()
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/manifest.json", s3Err(403, "InvalidAccessKeyId", nil)), drivers.Permanent,
		"access denied to s3://b/p/manifest.json (InvalidAccessKeyId): check the credentials")
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/manifest.json", s3Err(403, "", nil)), drivers.Permanent, "(403 Forbidden): check the credentials")
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/manifest.json", s3Err(404, "NoSuchBucket", nil)), drivers.Permanent, `bucket "b" of s3://b/p/manifest.json does not exist`)
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/x", s3Err(404, "NoSuchKey", nil)), drivers.Permanent, "s3://b/p/x not found")
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/x", s3Err(503, "SlowDown", nil)), drivers.Throttled)
	testcheck.Class(t, classify(ctx, "read", "s3://b/p/x", s3Err(500, "", nil)), drivers.Transient)
}

func TestParseStoreConfig(t *testing.T) {
	good := `
transfer: {concurrency: 4}   # other sections are not ours
stores:
  - match: s3://backups/
    endpoint: http://127.0.0.1:7070
    region: eu-west-1
    path_style: true
    access_key_id: AKIDCLEAR
    secret_access_key: {file: /run/secrets/s3}
  - match: s3://backups/etcd/
    access_key_id: {env: ETCD_AK}
    secret_access_key: {env: ETCD_SK}
    session_token: {env: ETCD_TOKEN}
`
	l, err := ParseStoreConfig("cfg.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Stores) != 2 || l.Stores[0].Endpoint != "http://127.0.0.1:7070" || !*l.Stores[0].PathStyle || l.Stores[0].SecretAccessKey.File != "/run/secrets/s3" ||
		l.Stores[1].SessionToken.Env != "ETCD_TOKEN" {
		t.Fatalf("parsed %+v", l)
	}
	// A secret never comes back out, even when marshalled.
	out, _ := json.Marshal(l.Stores[0])
	if strings.Contains(string(out), "AKIDCLEAR") || strings.Contains(string(out), "/run/secrets/s3") == false {
		t.Errorf("marshalled entry shows the clear key id: %s", out)
	}
	for name, bad := range map[string]struct{ yaml, want string }{
		"clear secret":   {"stores: [{match: 's3://b/', secret_access_key: hunter2, access_key_id: x}]", "secret_access_key is given in clear text"},
		"clear token":    {"stores: [{match: 's3://b/', session_token: t0k3nValue}]", "session_token is given in clear text"},
		"unknown key":    {"stores: [{match: 's3://b/', secret_key: {env: X}}]", `unknown field "secret_key"`},
		"no match":       {"stores: [{region: x}]", "match is missing"},
		"bad match":      {"stores: [{match: 'backups'}]", "not a reference prefix"},
		"bad scheme":     {"stores: [{match: 'ftp://x/'}]", "s3://, gs:// or azblob://"},
		"bad endpoint":   {"stores: [{match: 's3://b/', endpoint: 'ftp://x'}]", "not an http(s) URL"},
		"creds endpoint": {"stores: [{match: 's3://b/', endpoint: 'http://u:p@x'}]", "user info"},
		"bad ref":        {"stores: [{match: 's3://b/', secret_access_key: {env: VAR1, file: /p}}]", "exactly one"},
		"not yaml":       {"stores: [", "not valid YAML"},
		"yaml bool name": {"stores: [{match: 's3://b/', access_key_id: {env: Y}, secret_access_key: {env: N}}]", "not a string (quote it"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStoreConfig("cfg.yaml", []byte(bad.yaml))
			testcheck.Class(t, err, drivers.Permanent, "cfg.yaml", bad.want)
			for _, secret := range []string{"hunter2", "t0k3nValue"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the secret: %v", err)
				}
			}
		})
	}
}

func TestStoreSettingsPrecedence(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "sk")
	if err := os.WriteFile(secretFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_REGION": "env-region",
		"AWS_ENDPOINT_URL_S3": "http://env-endpoint", "RESTORE_RUN_S3_ENDPOINT": "http://rr-endpoint",
		"TGT_AK": "target-id", "TGT_SK": "target-secret",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	file, err := ParseStoreConfig("cfg", []byte(`
stores:
  - match: s3://
    region: file-region-all
  - match: s3://backups/
    region: file-region
    endpoint: http://file-endpoint
  - match: s3://backups/etcd
    access_key_id: file-id
    secret_access_key: {file: `+secretFile+`}
  - match: s3://backups2/
    region: never
`))
	if err != nil {
		t.Fatal(err)
	}
	var target json.RawMessage = []byte(`{"access_key_id": {"env": "TGT_AK"}, "secret_access_key": {"env": "TGT_SK"}}`)
	tl, err := ParseStoreSection("target file t.yaml", target)
	if err != nil {
		t.Fatal(err)
	}
	settings := func(cfg StoreConfig, ref string) *storeSettings {
		t.Helper()
		loc, err := parseRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		st, err := cfg.settingsFor(loc)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Environment only.
	st := settings(StoreConfig{Env: lookup}, "s3://backups/etcd/s1")
	if st.endpoint != "http://rr-endpoint" || st.region != "env-region" || st.accessKeyID != "env-id" || st.secretAccessKey != "env-secret" {
		t.Errorf("env: %+v", st)
	}
	// The file overrides the environment, the longest match last.
	st = settings(StoreConfig{Env: lookup, Layers: []StoreLayer{file}}, "s3://backups/etcd/s1")
	if st.endpoint != "http://file-endpoint" || st.region != "file-region" || st.accessKeyID != "file-id" || st.secretAccessKey != "file-secret" {
		t.Errorf("file: %+v", st)
	}
	// A match ends at a boundary; s3:// matches every bucket.
	st = settings(StoreConfig{Layers: []StoreLayer{file}}, "s3://backups-other/x")
	if st.region != "file-region-all" || st.endpoint != "" {
		t.Errorf("boundary: %+v", st)
	}
	st = settings(StoreConfig{Layers: []StoreLayer{file}}, "s3://backups/etcdx/s1")
	if st.accessKeyID != "" {
		t.Errorf("s3://backups/etcd must not match s3://backups/etcdx: %+v", st)
	}
	// The target file overrides both.
	st = settings(StoreConfig{Env: lookup, Layers: []StoreLayer{file, tl}}, "s3://backups/etcd/s1")
	if st.accessKeyID != "target-id" || st.secretAccessKey != "target-secret" || st.endpoint != "http://file-endpoint" {
		t.Errorf("target: %+v", st)
	}
	if len(st.secrets) == 0 || st.credsFrom != `target file t.yaml (entry "")` {
		t.Errorf("secrets %d, from %q", len(st.secrets), st.credsFrom)
	}
	// Without Env, the environment is not read.
	st = settings(StoreConfig{}, "s3://backups/etcd/s1")
	if st.accessKeyID != "" || st.region != "" {
		t.Errorf("no env: %+v", st)
	}
	// A key id without its secret is refused.
	half, _ := ParseStoreConfig("half", []byte("stores: [{match: 's3://b/', access_key_id: x}]"))
	loc, _ := parseRef("s3://b/x")
	_, err = StoreConfig{Layers: []StoreLayer{half}}.settingsFor(loc)
	testcheck.Class(t, err, drivers.Permanent, "go together")
	// A target section may be a list too.
	l, err := ParseStoreSection("t", []byte(`[{"match": "s3://b/", "region": "r"}]`))
	if err != nil || len(l.Stores) != 1 || l.Stores[0].Region != "r" {
		t.Errorf("list section: %+v %v", l, err)
	}
	_, err = ParseStoreSection("t", []byte(`{"secret_access_key": "clear"}`))
	testcheck.Class(t, err, drivers.Permanent, "in clear text")
}
