// Package s3test runs a real S3-compatible server for tests: versitygw (Apache-2.0)
// serving a temporary POSIX folder on a free loopback port, with random access and
// secret keys.
//
// The binary is $RESTORE_RUN_VERSITYGW, else <repo>/third_party/bin/versitygw,
// which ./test.sh installs (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
// When it is missing, Start fails the test naming ./test.sh: S3 tests never skip.
//
//	srv := s3test.Start(t)           // stopped at t.Cleanup
//	srv.CreateBucket(t, "backups")
//	// reach it at srv.Endpoint with srv.AccessKey / srv.SecretKey, path-style
//
// Fault-injection tests put a proxy between client and server: start the proxy
// towards srv.Addr and hand the clients srv.Through(proxyURL), a copy of the server
// description whose Endpoint is the proxy's.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the tests use (and ./test.sh installs).
const Version = "v1.8.0"

// Region is the region the server reports.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	// Endpoint is the S3 endpoint URL, http://127.0.0.1:PORT (a proxy's, for a
	// copy made by Through).
	Endpoint string
	// Addr is the server's own host:port, where a proxy forwards to.
	Addr string
	// AccessKey and SecretKey are the root credentials, random for each server.
	AccessKey, SecretKey string
	// Region is the server's region.
	Region string
	// Dir is the POSIX folder the server serves: one directory per bucket, one
	// file per object (Dir/BUCKET/KEY).
	Dir string

	cmd  *exec.Cmd
	logs *syncBuffer
}

// Binary returns the path of the versitygw binary, or an error naming ./test.sh.
func Binary() (string, error) {
	p := os.Getenv("RESTORE_RUN_VERSITYGW")
	if p == "" {
		p = filepath.Join(repoRoot(), "third_party", "bin", "versitygw")
	}
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("the S3 test server versitygw is not installed at %s: run ./test.sh once (it runs `GOBIN=$PWD/third_party/bin go install github.com/versity/versitygw/cmd/versitygw@%s`), or set RESTORE_RUN_VERSITYGW", p, Version)
	}
	return p, nil
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

func randomKey(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Start starts versitygw on a free loopback port with a fresh folder and random
// keys, waits until it answers, and stops it at the end of the test. It fails the
// test when the binary is missing or the server does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		last = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("s3test: %v", last)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(t.TempDir(), "s3root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{
		Addr:      fmt.Sprintf("127.0.0.1:%d", port),
		AccessKey: "AK" + strings.ToUpper(randomKey(9)),
		SecretKey: randomKey(20),
		Region:    Region,
		Dir:       dir,
		logs:      &syncBuffer{},
	}
	s.Endpoint = "http://" + s.Addr
	s.cmd = exec.Command(bin, "--port", s.Addr, "--region", s.Region, "--quiet", "posix", dir)
	// The keys go through the environment, not argv, so `ps` does not show them.
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	stop := func() {
		if s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("versitygw exited before it answered (%v); its output:\n%s", err, s.logs.String())
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break // any HTTP answer (403 without credentials) means it serves
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("versitygw did not answer on %s within 20s; its output:\n%s", s.Addr, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(stop)
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Through returns a copy of the server description whose Endpoint is endpoint (a
// proxy in front of Addr). The copy does not own the server.
func (s *Server) Through(endpoint string) *Server {
	c := *s
	c.Endpoint = strings.TrimSuffix(endpoint, "/")
	c.cmd = nil
	return &c
}

// Logs returns what the server printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// Client returns an S3 client of the server (path-style, root credentials, no
// retries), for tests that create, read or tamper with objects directly.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RetryMaxAttempts:           1,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func ctx10s() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// CreateBucket creates a bucket, failing the test if it cannot.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v\nserver output:\n%s", name, err, s.Logs())
	}
}

// PutObject writes an object, failing the test if it cannot.
func (s *Server) PutObject(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		t.Fatalf("s3test: put s3://%s/%s: %v", bucket, key, err)
	}
}

// GetObject reads an object, failing the test if it cannot.
func (s *Server) GetObject(t testing.TB, bucket, key string) []byte {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("s3test: get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("s3test: read s3://%s/%s: %v", bucket, key, err)
	}
	return data
}

// DeleteObject removes an object, failing the test if it cannot.
func (s *Server) DeleteObject(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("s3test: delete s3://%s/%s: %v", bucket, key, err)
	}
}

// Keys lists the keys under prefix in bucket, failing the test if it cannot.
func (s *Server) Keys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	var out []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var nb interface{ ErrorCode() string }
			if errors.As(err, &nb) && nb.ErrorCode() == "NoSuchBucket" {
				return nil
			}
			t.Fatalf("s3test: list s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// StoreConfigYAML returns a store config file (docs/stores.md) for references
// starting with match: this server's endpoint and region, path-style, and the keys
// by reference to the environment variables accessEnv and secretEnv.
func (s *Server) StoreConfigYAML(match, accessEnv, secretEnv string) string {
	return fmt.Sprintf("stores:\n  - match: %q\n    endpoint: %q\n    region: %q\n    path_style: true\n    access_key_id: {env: %s}\n    secret_access_key: {env: %s}\n",
		match, s.Endpoint, s.Region, accessEnv, secretEnv)
}

// syncBuffer is a bytes.Buffer safe for the server's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil // keep the start; a chatty server must not fill memory
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
