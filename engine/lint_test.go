package engine

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/scripts"
)

func lint(t *testing.T, text string) []string {
	t.Helper()
	h := NewHost(nil)
	var out []string
	for _, d := range h.Lint("x.star", []byte(text), LintOptions{}) {
		out = append(out, d.String())
	}
	return out
}

// The shipped scripts pass check with nothing to say.
func TestLintShippedScripts(t *testing.T) {
	h := NewHost([]Source{Embedded()})
	entries, err := fs.ReadDir(scripts.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".star") || strings.HasSuffix(e.Name(), "_test.star") {
			continue
		}
		data, _ := fs.ReadFile(scripts.FS, e.Name())
		if d := h.Lint(e.Name(), data, LintOptions{}); len(d) > 0 {
			t.Errorf("%s: %v", e.Name(), d)
		}
	}
	data, _ := fs.ReadFile(scripts.FS, "lib/checks.star")
	if d := h.Lint("lib/checks.star", data, LintOptions{Kind: LintLib}); len(d) > 0 {
		t.Errorf("lib/checks.star: %v", d)
	}
}

func TestLintFindsMistakes(t *testing.T) {
	got := lint(t, `
driver(name = "toy", version = "1.0.0", api = 7)

def download(ctx):
    etcd.stauts("x")
    etcd.snapshot_restore("p", name = "m1", data_dir = "d", peer_url = "u", initial_cluster = "c", token = "t", bump = 3)
    etcd.hashkv("a", 0, 1)
    fs.move("a")
    fail("x", clas = "permanent")
    check("n", True, details = "")
    helper(1, 2)
    helper(1, y = 2)
    undefined_thing()
    json.encode(1, 2)

def helper(x):
    return x

def valdate(ctx, snapshot, target):
    return []

def execute(ctx, snapshot, target):
    pass
`)
	want := []string{
		"x.star:2:47: driver asks for api 7",
		"x.star:2:1: the driver defines no validate(ctx, snapshot, target) function",
		"x.star:4:1: def download must take exactly (ctx, snapshot), not (ctx)",
		"x.star:5:10: etcd.stauts: module etcd has no function stauts (did you mean status?)",
		"x.star:6:5: etcd.snapshot_restore: unknown keyword argument bump (did you mean bump_revision?)",
		"x.star:7:5: etcd.hashkv: 3 positional arguments given, it takes at most 2",
		"x.star:8:5: fs.move: missing argument dst; its signature is fs.move(src, dst)",
		"x.star:9:5: fail: unknown keyword argument clas (did you mean cls?)",
		"x.star:10:5: check: unknown keyword argument details (did you mean detail?)",
		"x.star:11:5: helper: 2 positional arguments given, it takes at most 1",
		"x.star:12:5: helper: unknown keyword argument y",
		"x.star:13:5: undefined: undefined_thing",
		"x.star:14:5: json.encode: 2 positional arguments given",
		"x.star:19:1: def valdate is not a phase the engine calls; did you mean validate?",
	}
	text := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing diagnostic %q in:\n%s", w, text)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d diagnostics, want %d:\n%s", len(got), len(want), text)
	}
}

func TestLintSyntaxError(t *testing.T) {
	got := lint(t, "def execute(ctx, snapshot, target)\n    pass\n")
	if len(got) != 1 || !strings.HasPrefix(got[0], "x.star:2:1: syntax error") {
		t.Errorf("got %v", got)
	}
}

func TestLintSpreadAndKwargs(t *testing.T) {
	got := lint(t, `
driver(name = "toy", version = "1.0.0", api = 1)
def execute(ctx, snapshot, target):
    args = ["a", "b"]
    fs.move(*args)
    log.info("msg", anything = 1, other = 2)
    fs.join("a", "b", "c")
    struct(a = 1)
def validate(ctx, snapshot, target):
    return []
`)
	if len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

// The engine's own globals accept the parameters EngineFuncs declares: a call
// naming each one by keyword never fails for an unknown keyword.
func TestEngineFuncsMatchImplementation(t *testing.T) {
	h := NewHost(nil)
	pre := h.Predeclared()
	for _, f := range append(append([]builtins.Func{}, EngineFuncs...), JSONModule.Funcs...) {
		sig, err := f.Signature()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		var fn starlark.Value
		if v, ok := JSONModule.Func(f.Name); ok && v.Name == f.Name && pre[f.Name] == nil {
			fn, _ = pre["json"].(starlark.HasAttrs).Attr(f.Name)
		} else {
			fn = pre[f.Name]
		}
		for _, p := range sig.Params {
			if p.Kind == builtins.VarArgs || p.Kind == builtins.KwArgs || (p.Kind == builtins.Positional && f.Name != "driver" && f.Name != "param" && f.Name != "check" && f.Name != "decode") {
				continue
			}
			thread := &starlark.Thread{}
			thread.SetLocal(localDecl, &declaration{})
			_, err := starlark.Call(thread, fn.(starlark.Callable), nil, []starlark.Tuple{{starlark.String(p.Name), starlark.None}})
			if err != nil && strings.Contains(err.Error(), "unexpected keyword argument") {
				t.Errorf("%s does not accept %s=: %v", f.Name, p.Name, err)
			}
		}
	}
	_ = context.Background
}
