package builtins

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
)

func module(t *testing.T, name string) Module {
	if name == "" {
		return Globals
	}
	for _, m := range Modules() {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no module %s", name)
	return Module{}
}

type harness struct {
	env    *Env
	work   string
	target string
}

func newHarness(t *testing.T, plan bool) *harness {
	work, target := t.TempDir(), t.TempDir()
	env := &Env{
		Run:      &drivers.Run{ID: "r1", WorkDir: work},
		Target:   &drivers.Target{Ref: "t", Dirs: []string{target}},
		Log:      zerolog.Nop(),
		Redactor: redact.New("hunter2"),
		Plan:     plan,
	}
	return &harness{env: env, work: work, target: target}
}

// call runs module.fn(args...) on a phase thread.
func (h *harness) call(t *testing.T, mod, fn string, args ...starlark.Value) (starlark.Value, error) {
	t.Helper()
	f, ok := module(t, mod).Func(fn)
	if !ok {
		t.Fatalf("no %s.%s", mod, fn)
	}
	thread := &starlark.Thread{}
	Bind(context.Background(), thread, h.env, "execute")
	return starlark.Call(thread, f.Builtin(mod), args, nil)
}

func s(v string) starlark.Value { return starlark.String(v) }

func TestFSConfinedToRoots(t *testing.T) {
	h := newHarness(t, false)
	outside := t.TempDir()
	// Plain escapes.
	for _, p := range []string{outside + "/x", h.work + "/../x", "/etc/passwd"} {
		if _, err := h.call(t, "fs", "write", s(p), s("data")); err == nil || drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "outside the run's work dir") {
			t.Errorf("write %s: %v", p, err)
		}
	}
	// A symlink inside a root pointing outside does not get around it, even for a
	// path below it that does not exist yet.
	os.Symlink(outside, filepath.Join(h.target, "link"))
	if _, err := h.call(t, "fs", "mkdir", s(h.target+"/link/new/dir")); err == nil {
		t.Error("mkdir through a symlink escaped the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("directory created outside the roots")
	}
	// Inside the roots everything works; relative paths are in the work dir.
	if _, err := h.call(t, "fs", "write", s("rel/f.txt"), s("hello")); err != nil {
		t.Fatal(err)
	}
	v, err := h.call(t, "fs", "read", s(h.work+"/rel/f.txt"))
	if err != nil || v.(starlark.String) != "hello" {
		t.Fatalf("read: %v %v", v, err)
	}
}

func TestFSMoveNeverOverwritesAndRootsStay(t *testing.T) {
	h := newHarness(t, false)
	a, b := filepath.Join(h.target, "a"), filepath.Join(h.target, "b")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	if _, err := h.call(t, "fs", "move", s(a), s(b)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("move onto existing: %v", err)
	}
	if _, err := h.call(t, "fs", "remove", s(h.target)); err == nil || !strings.Contains(err.Error(), "is a root") {
		t.Errorf("remove root: %v", err)
	}
	if _, err := h.call(t, "fs", "move", s(h.work), s(h.target+"/w")); err == nil {
		t.Error("moved the work dir")
	}
	if _, err := h.call(t, "fs", "move", s(a), s(h.target+"/c")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.target, "c")); err != nil {
		t.Error("move did not happen")
	}
}

func TestPlanModeRecordsWrites(t *testing.T) {
	h := newHarness(t, true)
	dir := filepath.Join(h.target, "planned")
	v, err := h.call(t, "fs", "mkdir", s(dir))
	if err != nil || v.(starlark.String) != starlark.String(dir) {
		t.Fatalf("planned mkdir returned %v, %v", v, err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("plan mode created the directory")
	}
	// Reads still run.
	if v, err := h.call(t, "fs", "exists", s(h.target)); err != nil || v != starlark.True {
		t.Errorf("exists in plan mode: %v %v", v, err)
	}
	calls := h.env.Calls()
	if len(calls) != 2 || !calls[0].Planned || calls[1].Planned || calls[0].Effect != "WRITE" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestCallsAreRedactedAndClassified(t *testing.T) {
	h := newHarness(t, false)
	_, err := h.call(t, "fs", "write", s("f"), s("password is hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.call(t, "fs", "mkdir", starlark.MakeInt(3))
	if drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "fs.mkdir") {
		t.Errorf("bad argument: %v (class %s)", err, drivers.ClassOf(err))
	}
	for _, c := range h.env.Calls() {
		if strings.Contains(c.Args, "hunter2") {
			t.Errorf("secret in recorded args: %s", c.Args)
		}
	}
	_, err = h.call(t, "", "fail", s("slow down"))
	if drivers.ClassOf(err) != drivers.Permanent {
		t.Errorf("fail default class = %s", drivers.ClassOf(err))
	}
}

func TestOutsidePhaseRefused(t *testing.T) {
	f, _ := module(t, "fs").Func("exists")
	_, err := starlark.Call(&starlark.Thread{}, f.Builtin("fs"), starlark.Tuple{s("/")}, nil)
	if err == nil || !strings.Contains(err.Error(), "inside a phase function") {
		t.Errorf("err = %v", err)
	}
}

func TestFailClasses(t *testing.T) {
	h := newHarness(t, false)
	f := Globals.Funcs[0]
	thread := &starlark.Thread{}
	Bind(context.Background(), thread, h.env, "download")
	for _, cls := range []string{"transient", "throttled", "corruption", "validation"} {
		_, err := starlark.Call(thread, f.Builtin(""), starlark.Tuple{s("x")}, []starlark.Tuple{{s("cls"), s(cls)}})
		if string(drivers.ClassOf(err)) != cls {
			t.Errorf("fail(cls=%s) -> %s", cls, drivers.ClassOf(err))
		}
	}
	_, err := starlark.Call(thread, f.Builtin(""), starlark.Tuple{s("x")}, []starlark.Tuple{{s("cls"), s("bogus")}})
	if drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "unknown error class") {
		t.Errorf("bogus class: %v", err)
	}
}

func TestConvertRoundTrip(t *testing.T) {
	in := map[string]any{"a": int64(1), "b": []any{"x", true, nil, 2.5}, "c": map[string]any{"d": "e"}}
	v, err := ToValue(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := FromValue(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := starlarkRepr(out), starlarkRepr(in); got != want {
		t.Errorf("round trip: %s != %s", got, want)
	}
}

func starlarkRepr(v any) string {
	sv, _ := ToValue(v)
	return sv.String()
}
