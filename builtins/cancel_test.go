package builtins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/targets"
)

// blackhole is a TCP listener that accepts connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(done)
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// stallingStore is an S3 endpoint that serves a snapshot's manifest and never
// answers for its files.
func stallingStore(t *testing.T) string {
	t.Helper()
	manifest, _ := json.Marshal(map[string]any{
		"format": "restore-run/v1", "engine": "mysql", "created": "2026-11-25T10:00:00Z",
		"files": []map[string]any{{"name": "dump.sql", "size": 1 << 20, "sha256": strings.Repeat("ab", 32)}},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifest.json"):
			w.Header().Set("ETag", `"m1"`)
			http.ServeContent(w, r, "manifest.json", time.Unix(1795600000, 0), bytes.NewReader(manifest))
		case strings.HasSuffix(r.URL.Path, "/dump.sql"):
			<-r.Context().Done() // the file: nothing, ever
		default:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>`)
		}
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}

// TestEveryBlockingBuiltinHonoursItsContext runs each registered builtin that can
// block (on a network peer, a process, a timer) against an endpoint that accepts
// and never answers, with a 300 ms deadline, and checks that it returns within a
// few seconds, with class cancelled. Every registered builtin must be listed here,
// as blocking (with its call) or as bounded local work, so that a new builtin is
// classified when it is added.
func TestEveryBlockingBuiltinHonoursItsContext(t *testing.T) {
	if _, err := exec.LookPath("mariadb"); err != nil {
		t.Fatalf("mariadb is not installed (./test.sh installs it): %v", err)
	}
	hole := blackhole(t)
	host, port, _ := net.SplitHostPort(hole)
	work := t.TempDir()
	targetFile := filepath.Join(work, "target.yaml")
	yaml := fmt.Sprintf("engine: mysql\nhost: %s\nport: %s\nuser: restorer\npassword: {env: CANCEL_TEST_PW}\ndatadir: %s\nservice:\n  start: [sleep, \"100\"]\n  stop: [sleep, \"100\"]\n  timeout: 600\n", host, port, filepath.Join(work, "data"))
	if err := os.WriteFile(targetFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CANCEL_TEST_PW", "pw")
	target, err := targets.Parse(targetFile, filepath.Join(work, "scratch"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := blobstore.ParseStoreConfig("test", []byte(fmt.Sprintf("stores:\n  - match: s3://\n    endpoint: %s\n    region: us-east-1\n    path_style: true\n    anonymous: true\n", stallingStore(t))))
	if err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	src, err := blobstore.OpenWith(octx, "s3://bucket/snap", blobstore.OpenOptions{Stores: blobstore.StoreConfig{Layers: []blobstore.StoreLayer{cfg}},
		Transfer: blobstore.TransferOptions{IdleTimeout: time.Hour}})
	cancel()
	if err != nil {
		t.Fatalf("open the stalling store: %v", err)
	}
	defer src.Close()
	env := &Env{
		Run:      &drivers.Run{ID: "cancel", WorkDir: work},
		Snapshot: src.Snapshot(), Source: src, Target: target,
		Log: zerolog.Nop(), Redactor: redact.New(),
		CallRetry: Backoff{Attempts: 5, BaseDelay: time.Second, MaxDelay: time.Second},
	}
	svc := starlark.Value(MustStruct(map[string]any{"start": []any{"sleep", "100"}, "stop": []any{"sleep", "100"}, "timeout": int64(600)}))
	ep := starlark.String("http://" + hole)
	eps := starlark.NewList([]starlark.Value{ep})
	str := func(v string) starlark.Value { return starlark.String(v) }
	kw := func(k string, v starlark.Value) starlark.Tuple { return starlark.Tuple{starlark.String(k), v} }
	type call struct {
		args   starlark.Tuple
		kwargs []starlark.Tuple
	}
	blocking := map[string]call{
		"etcd.status":       {args: starlark.Tuple{ep}},
		"etcd.member_list":  {args: starlark.Tuple{eps}},
		"etcd.hashkv":       {args: starlark.Tuple{ep}},
		"etcd.count":        {args: starlark.Tuple{eps}},
		"etcd.get":          {args: starlark.Tuple{eps, str("k")}},
		"etcd.wait_healthy": {args: starlark.Tuple{eps}, kwargs: []starlark.Tuple{kw("timeout", starlark.MakeInt(600))}},
		"sql.query":         {args: starlark.Tuple{str("SELECT 1")}},
		"sql.exec":          {args: starlark.Tuple{str("DO 1")}},
		"sql.wait_ready":    {kwargs: []starlark.Tuple{kw("timeout", starlark.MakeInt(600))}},
		"sql.inventory":     {},
		"sql.objects":       {args: starlark.Tuple{str("shop")}},
		"sql.move_aside":    {args: starlark.Tuple{str("shop"), str("rr_shop")}},
		"sql.move_back":     {args: starlark.Tuple{str("rr_shop"), str("shop")}},
		"sql.drop_holding":  {args: starlark.Tuple{str("rr_shop")}},
		"service.start":     {args: starlark.Tuple{svc}},
		"service.stop":      {args: starlark.Tuple{svc}},
		"exec.run": {args: starlark.Tuple{starlark.NewList([]starlark.Value{str("mariadb"), str("--connect-timeout=600"), str("-e"), str("SELECT 1")})},
			kwargs: []starlark.Tuple{kw("connect", starlark.True)}},
		"proc.start": {args: starlark.Tuple{str("client"), starlark.NewList([]starlark.Value{str("mariadb"), str("--connect-timeout=600"), str("-h" + host), str("-P" + port)})},
			kwargs: []starlark.Tuple{kw("ready_tcp", str("127.0.0.1:1")), kw("timeout", starlark.MakeInt(600))}},
		"blob.fetch":      {args: starlark.Tuple{str("dump.sql")}},
		"blob.fetch_all":  {},
		"blob.read":       {args: starlark.Tuple{str("dump.sql")}},
		"mysql.scan_dump": {args: starlark.Tuple{str("dump.sql")}},
		"time.sleep":      {args: starlark.Tuple{starlark.MakeInt(600)}},
	}
	// Local work, bounded without a peer: files, parsing, the process table,
	// and etcd's own restore and in-process members (loopback, bounded waits).
	local := map[string]bool{
		"fail": true, "time.now": true, "exec.version": true, "proc.stop": true, "proc.status": true, "proc.memory": true,
		"mysql.backup_info": true, "mysql.mydumper_info": true, "mysql.parse_version": true,
		"etcd.snapshot_status": true, "etcd.snapshot_restore": true, "etcd.start_members": true, "etcd.stop_member": true,
	}
	// Modules of work in progress elsewhere (the Cassandra driver): classified by
	// their owners.
	pending := map[string]bool{"cql": true, "cassandra": true}
	for _, m := range append(Modules(), Globals) {
		for _, f := range m.Funcs {
			name := f.Name
			if m.Name != "" {
				name = m.Name + "." + f.Name
			}
			c, isBlocking := blocking[name]
			switch {
			case pending[m.Name]:
				continue
			case m.Name == "fs" || m.Name == "log":
				continue // local files and log lines
			case local[name]:
				continue
			case !isBlocking:
				t.Errorf("builtin %s is not classified: add it to this test as blocking (with a call against the unresponsive endpoint) or as local work", name)
				continue
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				thread := &starlark.Thread{}
				Bind(ctx, thread, env, "execute")
				start := time.Now()
				done := make(chan error, 1)
				go func() {
					_, err := starlark.Call(thread, f.Builtin(m.Name), c.args, c.kwargs)
					done <- err
				}()
				select {
				case err := <-done:
					took := time.Since(start)
					if err == nil {
						t.Fatalf("returned no error against an unresponsive endpoint after %s", took)
					}
					if cls := drivers.ClassOf(err); cls != drivers.Cancelled {
						t.Errorf("class %s, want cancelled: %v", cls, err)
					}
					if took > 3*time.Second {
						t.Errorf("returned %s after a 300 ms deadline", took)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("still blocked 10 s after a 300 ms deadline")
				}
			})
		}
	}
}
