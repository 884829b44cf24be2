package builtins

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

func list(items ...string) *starlark.List {
	var vs []starlark.Value
	for _, s := range items {
		vs = append(vs, starlark.String(s))
	}
	return starlark.NewList(vs)
}

func TestExecAllowList(t *testing.T) {
	h := newHarness(t, false)
	h.env.Snapshot = &drivers.Snapshot{Manifest: &drivers.Manifest{}}
	for _, argv := range [][]string{{"sh", "-c", "true"}, {"/bin/sh"}, {"../mariadb"}, {"rm", "-rf", "/"}} {
		if _, err := h.call(t, "exec", "run", list(argv...)); drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("exec.run(%v): %v", argv, err)
		}
		if _, err := h.call(t, "proc", "start", s("x"), list(argv...)); drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("proc.start(%v): %v", argv, err)
		}
	}
}

func TestExecConnectUsesOptionFile(t *testing.T) {
	h := newHarness(t, false)
	h.env.Snapshot = &drivers.Snapshot{Manifest: &drivers.Manifest{}}
	h.env.Target = &drivers.Target{Ref: "t", Engine: "mysql", Spec: map[string]any{"host": "127.0.0.1", "port": 1.0, "user": "restorer", "socket": ""}}
	h.env.Target.SetSecret("password", "hunter2")
	argv, err := withConnection(h.env, []string{"mariadb", "--batch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 3 || !strings.HasPrefix(argv[1], "--defaults-extra-file="+h.work) || strings.Contains(strings.Join(argv, " "), "hunter2") {
		t.Errorf("argv %v", argv)
	}
	data, err := os.ReadFile(strings.TrimPrefix(argv[1], "--defaults-extra-file="))
	if err != nil || !strings.Contains(string(data), `password="hunter2"`) {
		t.Errorf("option file: %s %v", data, err)
	}
	fi, _ := os.Stat(filepath.Join(h.work, ".restore-run-client.cnf"))
	if fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("option file mode: %v", fi)
	}
	if argv, _ := withConnection(h.env, []string{"myloader"}); !strings.HasPrefix(argv[1], "--defaults-file=") {
		t.Errorf("myloader argv %v", argv)
	}
	if _, err := withConnection(h.env, []string{"mbstream"}); drivers.ClassOf(err) != drivers.Script {
		t.Errorf("connect for mbstream: %v", err)
	}
	// The run's cleanups remove the option file.
	h.env.RunCleanups(t.Context())
	if _, err := os.Stat(filepath.Join(h.work, ".restore-run-client.cnf")); err == nil {
		t.Error("option file left after the run")
	}
}

func TestSQLNeedsMySQLTarget(t *testing.T) {
	h := newHarness(t, false)
	if _, err := h.call(t, "sql", "query", s("SELECT 1")); drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "not a mysql target") {
		t.Errorf("sql.query on a non-mysql target: %v", err)
	}
}

func TestExecRunPlanned(t *testing.T) {
	h := newHarness(t, true)
	h.env.Snapshot = &drivers.Snapshot{Manifest: &drivers.Manifest{}}
	v, err := h.call(t, "exec", "run", list("mariadb-install-db", "--datadir=/nonexistent"))
	if err != nil || !strings.Contains(v.String(), "code = 0") {
		t.Errorf("planned exec.run: %v %v", v, err)
	}
	calls := h.env.Calls()
	if len(calls) != 1 || !calls[0].Planned || !strings.Contains(calls[0].Args, "mariadb-install-db") {
		t.Errorf("calls %+v", calls)
	}
}
