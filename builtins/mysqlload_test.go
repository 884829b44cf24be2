package builtins

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

// loadSnapshot packs files into a snapshot and opens it as the env's source.
func loadSnapshot(t *testing.T, env *Env, files map[string][]byte) {
	t.Helper()
	src := t.TempDir()
	var pf []blobstore.PackFile
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		pf = append(pf, blobstore.PackFile{Path: p, Name: name})
	}
	dest := filepath.Join(t.TempDir(), "snap")
	ctx := context.Background()
	if _, err := blobstore.Pack(ctx, blobstore.PackOptions{Engine: "mysql", EngineVersion: "10.11.19-MariaDB-log", Files: pf, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	s, err := blobstore.OpenWith(ctx, dest, blobstore.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	env.Snapshot, env.Source = s.Snapshot(), s
}

func testDump(rows int) string {
	var b strings.Builder
	b.WriteString("-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n")
	b.WriteString("-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000004', MASTER_LOG_POS=77;\n")
	b.WriteString("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `shop`;\n")
	b.WriteString("CREATE TABLE `t` (\n  `id` int NOT NULL PRIMARY KEY,\n  `v` varchar(20)\n) ENGINE=InnoDB;\n")
	for i := 0; i < rows; i += 10 {
		b.WriteString("INSERT INTO `t` VALUES ")
		for j := i; j < i+10; j++ {
			if j > i {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "(%d,'r;%d')", j, j)
		}
		b.WriteString(";\n")
	}
	b.WriteString("-- Dump completed on 2026-11-25 18:19:37\n")
	return b.String()
}

// TestLoadDumpBuiltin loads a zstd dump from a snapshot into a real server
// under another name, in parallel, and refuses bad arguments with the fix.
func TestLoadDumpBuiltin(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := mysqlops.InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
		t.Fatalf("%v (./test.sh installs MariaDB)", err)
	}
	srv, err := mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(time.Minute)

	var zbuf strings.Builder
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write([]byte(testDump(500)))
	zw.Close()
	h := newHarness(t, false)
	h.env.Target = &drivers.Target{Ref: "t", Engine: "mysql", Spec: map[string]any{"socket": srv.Config.Socket, "user": "root"}}
	loadSnapshot(t, h.env, map[string][]byte{"shop.sql.zst": []byte(zbuf.String())})
	f, _ := module(t, "mysql").Func("load_dump")
	call := func(kwargs ...starlark.Tuple) (starlark.Value, error) {
		thread := &starlark.Thread{}
		Bind(ctx, thread, h.env, "execute")
		return starlark.Call(thread, f.Builtin("mysql"), starlark.Tuple{starlark.String("shop.sql.zst")}, kwargs)
	}
	kw := func(k string, v any) starlark.Tuple { return starlark.Tuple{starlark.String(k), mustValueOf(t, v)} }

	v, err := call(kw("threads", 2), kw("rename", map[string]any{"shop": "shop2"}), kw("schemas", []any{"shop2"}))
	if err != nil {
		t.Fatal(err)
	}
	res := v.String()
	for _, want := range []string{"sessions = 3", "inserts = 50", "complete = True", `"position": 77`} {
		if !strings.Contains(res, want) {
			t.Errorf("result %s lacks %s", res, want)
		}
	}
	db, err := srv.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var last string
	if err := db.QueryRow("SELECT COUNT(*), MAX(v) FROM shop2.t").Scan(&n, &last); err != nil || n != 500 || last != "r;99" {
		t.Errorf("loaded %d rows, max %q: %v", n, last, err)
	}

	for _, c := range []struct {
		kwargs []starlark.Tuple
		want   string
	}{
		{[]starlark.Tuple{kw("threads", -1)}, "threads must be 0"},
		{[]starlark.Tuple{kw("commit_mb", 0)}, "commit_mb must be at least 1"},
		{[]starlark.Tuple{kw("decompress", "lz4")}, "decompress must be"},
		{[]starlark.Tuple{kw("rename", []any{"x"})}, "rename must be a dict"},
		{[]starlark.Tuple{kw("database", "a"), kw("rename", map[string]any{"shop": "b"})}, "not both"},
		// The dump names shop: a load limited to other schemas refuses it.
		{[]starlark.Tuple{kw("schemas", []any{"other"})}, "not among the schemas"},
	} {
		if _, err := call(c.kwargs...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.kwargs, err, c.want)
		}
	}
	thread := &starlark.Thread{}
	Bind(ctx, thread, h.env, "execute")
	if _, err := starlark.Call(thread, f.Builtin("mysql"), starlark.Tuple{starlark.String("nope.sql")}, nil); drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "shop.sql.zst") {
		t.Errorf("an unknown file: %v", err)
	}
}

// TestLoadDumpBuiltinCancelled: against a server that accepts and never
// answers, a 300 ms deadline ends the load within seconds, class cancelled.
func TestLoadDumpBuiltinCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	h := newHarness(t, false)
	h.env.Target = &drivers.Target{Ref: "t", Engine: "mysql", Spec: map[string]any{"host": host, "port": port, "user": "root"}}
	var p float64
	fmt.Sscan(port, &p)
	h.env.Target.Spec["port"] = p
	loadSnapshot(t, h.env, map[string][]byte{"shop.sql": []byte(testDump(100))})
	f, _ := module(t, "mysql").Func("load_dump")
	for _, threads := range []int{1, 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		thread := &starlark.Thread{}
		Bind(ctx, thread, h.env, "execute")
		start := time.Now()
		_, err := starlark.Call(thread, f.Builtin("mysql"), starlark.Tuple{starlark.String("shop.sql")},
			[]starlark.Tuple{{starlark.String("threads"), starlark.MakeInt(threads)}})
		cancel()
		if drivers.ClassOf(err) != drivers.Cancelled || time.Since(start) > 5*time.Second {
			t.Errorf("threads=%d: %v (class %s) after %s; want cancelled within seconds", threads, err, drivers.ClassOf(err), time.Since(start))
		}
	}
}

func mustValueOf(t *testing.T, v any) starlark.Value {
	t.Helper()
	sv, err := ToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}
