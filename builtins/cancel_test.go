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
		"mysql.load_dump": {args: starlark.Tuple{str("dump.sql")}},
		"time.sleep":      {args: starlark.Tuple{starlark.MakeInt(600)}},
	}
	// The Cassandra builtins run against a cluster whose one node's CQL and JMX
	// ports both go to the unresponsive endpoint (nodetool, sstableloader and
	// nodetool import are JVMs that connect to it), and start_nodes against a
	// scratch target (a JVM that never gets to serve CQL within the deadline).
	cassEnv, scratchEnv, jobDir, staging := cassandraEnvs(t, host, port)
	cassandraCalls := map[string]call{
		"cql.query":                 {args: starlark.Tuple{str("SELECT * FROM ks.t")}},
		"cql.exec":                  {args: starlark.Tuple{str("TRUNCATE ks.t")}},
		"cql.wait_schema_agreement": {kwargs: []starlark.Tuple{kw("timeout", starlark.MakeInt(600))}},
		"cql.schema_versions":       {},
		"cql.keyspace":              {args: starlark.Tuple{str("ks")}},
		"cql.columns":               {args: starlark.Tuple{str("ks"), str("t")}},
		"cql.count":                 {args: starlark.Tuple{str("ks"), str("t")}},
		"cql.sample_digest":         {args: starlark.Tuple{str("ks"), str("t")}},
		"cassandra.status":          {},
		"cassandra.nodetool":        {args: starlark.Tuple{str("n1"), str("status")}},
		"cassandra.snapshot":        {args: starlark.Tuple{str("tag"), starlark.NewList([]starlark.Value{str("ks.t")})}},
		"cassandra.clear_snapshot":  {args: starlark.Tuple{str("tag")}},
		"cassandra.import_all": {args: starlark.Tuple{starlark.NewList([]starlark.Value{mustValue(t, map[string]any{
			"node": "n1", "keyspace": "ks", "table": "t", "dirs": []any{jobDir}, "staging": staging})})}},
		"cassandra.sstableloader": {args: starlark.Tuple{starlark.NewList([]starlark.Value{mustValue(t, map[string]any{
			"keyspace": "ks", "table": "t", "dirs": []any{jobDir}})})}},
		"cassandra.start_nodes": {args: starlark.Tuple{starlark.NewList([]starlark.Value{str("n1")}), str("cancel")},
			kwargs: []starlark.Tuple{kw("timeout", starlark.MakeInt(600))}},
	}
	for name, c := range cassandraCalls {
		blocking[name] = c
	}
	envOf := func(name string) *Env {
		switch {
		case name == "cassandra.start_nodes":
			return scratchEnv
		case strings.HasPrefix(name, "cql.") || strings.HasPrefix(name, "cassandra."):
			return cassEnv
		}
		return env
	}
	// Local work, bounded without a peer: files, parsing, the process table,
	// and etcd's own restore and in-process members (loopback, bounded waits).
	local := map[string]bool{
		"fail": true, "time.now": true, "exec.version": true, "proc.stop": true, "proc.status": true, "proc.memory": true,
		"mysql.backup_info": true, "mysql.mydumper_info": true, "mysql.parse_version": true,
		"etcd.snapshot_status": true, "etcd.snapshot_restore": true, "etcd.start_members": true, "etcd.stop_member": true,
		// Cassandra: reading downloaded files, splitting and quoting CQL, globbing a
		// data dir, and stopping a scratch node this run started (bounded by its timeout).
		"cassandra.inspect_snapshot": true, "cassandra.snapshot_dirs": true, "cassandra.stop_node": true,
		"cql.statements": true, "cql.ident": true,
	}
	for _, m := range append(Modules(), Globals) {
		for _, f := range m.Funcs {
			name := f.Name
			if m.Name != "" {
				name = m.Name + "." + f.Name
			}
			c, isBlocking := blocking[name]
			switch {
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
				Bind(ctx, thread, envOf(name), "execute")
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

// cassandraEnvs returns the run environments of the Cassandra builtins: a target
// file whose one node's CQL and JMX ports are host:port, and a scratch target of
// one node. The jars must be installed (./test.sh): nodetool, sstableloader and
// the scratch node are JVMs run from them. jobDir holds one SSTable for the loads,
// staging is where an import gathers it.
func cassandraEnvs(t *testing.T, host, port string) (cass, scratch *Env, jobDir, staging string) {
	t.Helper()
	lib, err := filepath.Abs(filepath.Join("..", "third_party", "cassandra", "lib"))
	if err != nil {
		t.Fatal(err)
	}
	if v := os.Getenv("RESTORE_RUN_CASSANDRA_LIB"); v != "" {
		lib = v
	}
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("the Cassandra jars are not installed in %s (./test.sh installs them, or set RESTORE_RUN_CASSANDRA_LIB): %v", lib, err)
	}
	work := t.TempDir()
	data := filepath.Join(work, "data")
	jobDir = filepath.Join(work, "sstables", "ks", "t")
	for _, d := range []string{data, jobDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"Data.db", "TOC.txt"} {
		if err := os.WriteFile(filepath.Join(jobDir, "nb-1-big-"+c), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(work, "cluster.yaml")
	yaml := fmt.Sprintf("engine: cassandra\ncassandra_lib: %s\ncql_port: %s\nnodes:\n  - name: n1\n    host: %s\n    jmx_host: %s\n    jmx_port: %s\n    data_dirs: [%s]\n",
		lib, port, host, host, port, data)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	target, err := targets.Parse(file, filepath.Join(work, "scratch"))
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(work, "scratch-cassandra")
	starget, err := targets.Parse("scratch://cassandra?nodes=1&lib="+lib, sdir)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(tg *drivers.Target) *Env {
		return &Env{Run: &drivers.Run{ID: "cancel", WorkDir: work}, Target: tg, Log: zerolog.Nop(), Redactor: redact.New(),
			CallRetry: Backoff{Attempts: 5, BaseDelay: time.Second, MaxDelay: time.Second}}
	}
	cass, scratch = mk(target), mk(starget)
	t.Cleanup(func() {
		// The scratch node start_nodes launched is stopped with the run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scratch.RunCleanups(ctx)
		cass.RunCleanups(ctx)
	})
	return cass, scratch, jobDir, filepath.Join(work, "staging")
}

// mustValue converts a Go value to Starlark.
func mustValue(t *testing.T, v any) starlark.Value {
	t.Helper()
	sv, err := ToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}
