package s3test

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	var addr string
	t.Run("serve", func(t *testing.T) {
		s := Start(t)
		addr = s.Addr
		if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.AccessKey == "" || len(s.SecretKey) < 32 || s.Region != Region {
			t.Fatalf("server %+v", s)
		}
		s.CreateBucket(t, "bkt")
		s.PutObject(t, "bkt", "dir/x", []byte("hello"))
		if got := string(s.GetObject(t, "bkt", "dir/x")); got != "hello" {
			t.Fatalf("got %q", got)
		}
		if keys := s.Keys(t, "bkt", "dir/"); len(keys) != 1 || keys[0] != "dir/x" {
			t.Fatalf("keys %v", keys)
		}
		s.DeleteObject(t, "bkt", "dir/x")
		if keys := s.Keys(t, "bkt", ""); len(keys) != 0 {
			t.Fatalf("keys after delete %v", keys)
		}
		if c := s.Through("http://127.0.0.1:1/"); c.Endpoint != "http://127.0.0.1:1" || c.Addr != s.Addr || c.SecretKey != s.SecretKey {
			t.Errorf("Through: %+v", c)
		}
		if strings.Contains(strings.Join(s.cmd.Args, " "), s.SecretKey) {
			t.Error("the secret key is on the command line")
		}
	})
	// Stopped at the end of the subtest.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers after the test ended", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBinaryMissing(t *testing.T) {
	t.Setenv("RESTORE_RUN_VERSITYGW", "/nonexistent/versitygw")
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "./test.sh") || !strings.Contains(err.Error(), "/nonexistent/versitygw") {
		t.Fatalf("Binary() = %v", err)
	}
}
