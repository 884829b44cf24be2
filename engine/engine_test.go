package engine

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/targets"
)

func init() {
	// A target kind for the test engine "toy": scratch targets with one dir.
	targets.Register(targets.Kind{
		Engine: "toy",
		Scratch: func(opts url.Values, dir string) (*drivers.Target, error) {
			return &drivers.Target{Spec: map[string]any{"data_dir": filepath.Join(dir, "data")}, Dirs: []string{dir}}, nil
		},
		Check: func(spec map[string]any) ([]string, error) {
			dd, _ := spec["data_dir"].(string)
			return []string{dd}, nil
		},
	})
}

// writeScripts writes name -> text under a new temp dir and returns it.
func writeScripts(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func toy(version string, body string) string {
	return `driver(name = "toy", version = "` + version + `", api = 1, params = {"n": 1, "flag": False, "label": param("x", "a label")})
` + body + `
def execute(ctx, snapshot, target):
    return {"version": "` + version + `"}

def validate(ctx, snapshot, target):
    return [check("ok", True)]
`
}

func TestDiscoveryShadowingAndVersionSelection(t *testing.T) {
	a := writeScripts(t, map[string]string{"toy.star": toy("1.0.0", ""), "toy-1.2.star": toy("1.2.0", "")})
	b := writeScripts(t, map[string]string{"toy.star": toy("1.0.0", "# override"), "toy-2.star": toy("2.0.0", "")})
	h := NewHost([]Source{DirSource(a), DirSource(b)})
	c := h.Discover()
	if len(c.Problems) != 0 {
		t.Fatalf("problems: %v", c.Problems)
	}
	if len(c.Shadows) != 1 || c.Shadows[0].ID != "toy@1.0.0" || !strings.HasPrefix(c.Shadows[0].Winner, b) || !strings.HasPrefix(c.Shadows[0].Loser, a) {
		t.Fatalf("shadows = %+v", c.Shadows)
	}
	for spec, want := range map[string]string{
		"toy":        "2.0.0",
		"toy@1":      "1.2.0",
		"toy@^1.1":   "1.2.0",
		"toy@=1.0.0": "1.0.0",
		"toy@~1.0":   "1.0.0",
	} {
		d, err := c.Resolve(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := d.Info().Version.String(); got != want {
			t.Errorf("%s resolved to %s, want %s", spec, got, want)
		}
	}
	d, _ := c.Resolve("toy@=1.0.0")
	if !strings.HasPrefix(d.Info().Source, b) {
		t.Errorf("toy@=1.0.0 came from %s, want the shadowing script in %s", d.Info().Source, b)
	}
	listed := 0
	for _, e := range c.Registry.List() {
		if e.ShadowedBy != "" {
			listed++
		}
	}
	if listed != 1 {
		t.Errorf("shadowed entries listed: %d, want 1", listed)
	}
	_, err := c.Resolve("toy@^3")
	if err == nil || !strings.Contains(err.Error(), "available: 2.0.0, 1.2.0, 1.0.0") {
		t.Errorf("unmatched version error = %v", err)
	}
	_, err = c.Resolve("nosuch")
	if err == nil || !strings.Contains(err.Error(), `unknown driver "nosuch"`) || !strings.Contains(err.Error(), "toy@2.0.0") {
		t.Errorf("unknown driver error = %v", err)
	}
}

func TestEmbeddedEtcdScriptLoads(t *testing.T) {
	c := NewHost([]Source{Embedded()}).Discover()
	if len(c.Problems) > 0 {
		t.Fatalf("embedded scripts do not load: %v", c.Problems)
	}
	d, err := c.Resolve("etcd@^1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().API != 1 || len(d.Info().Params) == 0 {
		t.Errorf("etcd info = %+v", d.Info())
	}
}

func loadErr(t *testing.T, files map[string]string, name string) error {
	t.Helper()
	dir := writeScripts(t, files)
	h := NewHost([]Source{DirSource(dir)})
	_, err := h.LoadScript(DirSource(dir), name)
	if err == nil {
		t.Fatalf("%s loaded; want an error", name)
	}
	if c := drivers.ClassOf(err); c != drivers.Script {
		t.Errorf("class = %s, want script (%v)", c, err)
	}
	return err
}

func TestLoadRefusals(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"api", `driver(name="toy", version="1.0.0", api=2)
def execute(ctx, s, t): pass
def validate(ctx, s, t): return []`, []string{"asks for api 2", "supports api 1", "x.star:1:"}},
		{"syntax", "driver(name=\"toy\", version=\"1.0.0\", api=1)\ndef execute(ctx, s, t)\n    pass\n", []string{"syntax error", "x.star:3:1", "want ':'"}},
		{"undefined", "driver(name=\"toy\", version=\"1.0.0\", api=1)\ndef execute(ctx, s, t):\n    nosuch.call()\ndef validate(ctx, s, t): return []\n", []string{"x.star:3:5", "undefined: nosuch"}},
		{"no declaration", "def execute(ctx, s, t): pass\ndef validate(ctx, s, t): return []\n", []string{"no driver("}},
		{"bad version", `driver(name="toy", version="1.0", api=1)`, []string{"not a semantic version"}},
		{"no validate", "driver(name=\"toy\", version=\"1.0.0\", api=1)\ndef execute(ctx, s, t): pass\n", []string{"no validate"}},
		{"bad arity", "driver(name=\"toy\", version=\"1.0.0\", api=1)\ndef execute(ctx, s): pass\ndef validate(ctx, s, t): return []\n", []string{"def execute must take exactly (ctx, snapshot, target)"}},
		{"load outside lib", "load(\"../evil.star\", \"x\")\ndriver(name=\"toy\", version=\"1.0.0\", api=1)\n", []string{`load("../evil.star") refused`}},
		{"load absolute", "load(\"/etc/passwd\", \"x\")\ndriver(name=\"toy\", version=\"1.0.0\", api=1)\n", []string{`refused`}},
		{"builtin at top level", "driver(name=\"toy\", version=\"1.0.0\", api=1)\nfs.mkdir(\"x\")\n", []string{"only be called inside a phase function", "x.star:2:"}},
		{"endless top level", "driver(name=\"toy\", version=\"1.0.0\", api=1)\nwhile True:\n    pass\n", []string{"too many steps"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := loadErr(t, map[string]string{"x.star": tc.text, "evil.star": "x = 1"}, "x.star")
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFromLib(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"lib/helpers.star": "def twice(x):\n    return 2 * x\n",
		"x.star": "load(\"lib/helpers.star\", \"twice\")\ndriver(name=\"toy\", version=\"1.0.0\", api=1, params={\"n\": twice(2)})\n" +
			"def execute(ctx, s, t): pass\ndef validate(ctx, s, t): return []\n",
	})
	h := NewHost([]Source{DirSource(dir)})
	d, err := h.LoadScript(DirSource(dir), "x.star")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Info().Params[0].Default; got != int64(4) {
		t.Errorf("param default from lib = %v, want 4", got)
	}
}

// toySnapshot packs a one-file snapshot of engine "toy" (or engine).
func toySnapshot(t *testing.T, engine string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "data.bin")
	os.WriteFile(src, []byte("toy data"), 0o644)
	dest := t.TempDir()
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: engine, Files: []blobstore.PackFile{{Path: src}}, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	return dest
}

func runToy(t *testing.T, ctx context.Context, script string, mode Mode, params map[string]string) (*Report, error) {
	t.Helper()
	dir := writeScripts(t, map[string]string{"toy.star": script})
	h := NewHost([]Source{DirSource(dir)})
	h.MaxSteps = 100_000
	r := &Runner{Catalog: h.Discover()}
	if len(r.Catalog.Problems) > 0 {
		t.Fatalf("script problems: %v", r.Catalog.Problems)
	}
	return r.Run(ctx, Options{Mode: mode, Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy", Params: params,
		Retry: RetryPolicy{Phases: map[string]Backoff{"download": {Attempts: 3, BaseDelay: time.Millisecond}}, Call: Backoff{Attempts: 3, BaseDelay: time.Millisecond}}})
}

func TestRunPhasesStateAndChecks(t *testing.T) {
	script := `driver(name = "toy", version = "1.0.0", api = 1, params = {"n": 1})
def download(ctx, snapshot):
    ctx.state["path"] = blob.fetch(snapshot.files[0].name)
    ctx.state["n"] = ctx.params.n
def prepare(ctx, snapshot, target):
    fs.mkdir(target.data_dir)
def execute(ctx, snapshot, target):
    fs.write(target.data_dir + "/copy", fs.read(ctx.state["path"]))
    return {"endpoints": ["toy://1"], "n": ctx.state["n"]}
def validate(ctx, snapshot, target):
    return [check("copied", fs.read(target.data_dir + "/copy") == "toy data"), check("n", ctx.state["n"] == 5, expected = 5, actual = ctx.state["n"])]
`
	rep, err := runToy(t, context.Background(), script, ModeRestore, map[string]string{"n": "5"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Result != "success" || len(rep.Checks) != 2 || !rep.Checks[0].OK || !rep.Checks[1].OK {
		t.Fatalf("report = %+v", rep)
	}
	if got := rep.Target.Endpoints; len(got) != 1 || got[0] != "toy://1" {
		t.Errorf("endpoints = %v", got)
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name+":"+p.Result)
	}
	if strings.Join(names, " ") != "download:ok prepare:ok execute:ok validate:ok commit:ok" {
		t.Errorf("phases = %v", names)
	}
	if rep.RTOSeconds <= 0 || rep.Driver.SHA256 == "" {
		t.Errorf("rto %v sha %q", rep.RTOSeconds, rep.Driver.SHA256)
	}

	// A failing check fails the run with class validation, and rollback runs.
	failing := strings.Replace(script, `ctx.state["n"] == 5, expected = 5`, `ctx.state["n"] == 6, expected = 6`, 1) + `
def rollback(ctx, snapshot, target):
    fs.write(ctx.work_dir + "/rolled-back", "yes")
`
	rep, err = runToy(t, context.Background(), failing, ModeRestore, map[string]string{"n": "5"})
	if drivers.ClassOf(err) != drivers.Validation || !strings.Contains(err.Error(), "n (expected 6, got 5)") {
		t.Fatalf("err = %v (class %s)", err, drivers.ClassOf(err))
	}
	if !rep.RolledBack || rep.Phases[len(rep.Phases)-1].Name != "rollback" {
		t.Errorf("rollback not run: %+v", rep.Phases)
	}
}

func TestUnknownParamAndBadValue(t *testing.T) {
	_, err := runToy(t, context.Background(), toy("1.0.0", ""), ModeRestore, map[string]string{"nope": "1"})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown param "nope"`) || !strings.Contains(err.Error(), "known: flag, label, n") {
		t.Errorf("unknown param: %v", err)
	}
	_, err = runToy(t, context.Background(), toy("1.0.0", ""), ModeRestore, map[string]string{"n": "many"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "want an integer") {
		t.Errorf("bad int: %v", err)
	}
}

func TestStepLimitStopsEndlessLoop(t *testing.T) {
	script := toy("1.0.0", "") + `
def prepare(ctx, snapshot, target):
    n = 0
    while True:
        n += 1
`
	start := time.Now()
	_, err := runToy(t, context.Background(), script, ModeRestore, nil)
	if drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "step limit") {
		t.Fatalf("err = %v (class %s)", err, drivers.ClassOf(err))
	}
	if !strings.Contains(BacktraceOf(err), "toy.star:") {
		t.Errorf("no backtrace with position: %q", BacktraceOf(err))
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestCancellationStopsBuiltinAndStarlark(t *testing.T) {
	for name, body := range map[string]string{
		"in builtin":  "    time.sleep(60)\n",
		"in starlark": "    while True:\n        pass\n",
	} {
		t.Run(name, func(t *testing.T) {
			script := toy("1.0.0", "") + "\ndef prepare(ctx, snapshot, target):\n" + body
			dir := writeScripts(t, map[string]string{"toy.star": script})
			h := NewHost([]Source{DirSource(dir)}) // default step limit: only cancellation stops the loop quickly
			r := &Runner{Catalog: h.Discover()}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			rep, err := r.Run(ctx, Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy"})
			if drivers.ClassOf(err) != drivers.Cancelled {
				t.Fatalf("err = %v (class %s)", err, drivers.ClassOf(err))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("cancellation took %v", d)
			}
			if rep.Result != "cancelled" {
				t.Errorf("result = %s", rep.Result)
			}
		})
	}
}

func TestPlanModeRecordsWritesAndRunsNone(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "should-not-exist")
	script := toy("1.0.0", "") + `
def prepare(ctx, snapshot, target):
    fs.mkdir(target.data_dir)
    fs.write(target.data_dir + "/f", "x")
    if fs.exists(target.data_dir):
        fail("plan mode created the dir")
`
	_ = marker
	rep, err := runToy(t, context.Background(), script, ModePlan, nil)
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, c := range rep.Calls {
		if c.Planned {
			planned = append(planned, c.Builtin)
		}
	}
	if strings.Join(planned, ",") != "blob.fetch_all,fs.mkdir,fs.write" {
		t.Errorf("planned calls = %v", planned)
	}
	if rep.Result != "planned" || rep.Phases[len(rep.Phases)-1].Result != "skipped" {
		t.Errorf("report: %s %+v", rep.Result, rep.Phases)
	}
}

func TestFSConfinement(t *testing.T) {
	outside := t.TempDir()
	script := toy("1.0.0", "") + `
def prepare(ctx, snapshot, target):
    fs.write("` + outside + `/evil", "x")
`
	_, err := runToy(t, context.Background(), script, ModeRestore, nil)
	if drivers.ClassOf(err) != drivers.Script || !strings.Contains(err.Error(), "outside the run's work dir") {
		t.Fatalf("err = %v", err)
	}
	if _, serr := os.Stat(filepath.Join(outside, "evil")); serr == nil {
		t.Fatal("file written outside the roots")
	}
	// A symlink inside the work dir pointing outside does not get around it.
	script = toy("1.0.0", "") + `
def prepare(ctx, snapshot, target):
    fs.mkdir(target.data_dir)
`
	_ = script
}

func TestWrongEngineRefusedBeforeDownload(t *testing.T) {
	dir := writeScripts(t, map[string]string{"toy.star": toy("1.0.0", "")})
	r := &Runner{Catalog: NewHost([]Source{DirSource(dir)}).Discover()}
	rep, err := r.Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "mysql"), Target: "scratch://toy"})
	if err == nil || !strings.Contains(err.Error(), "is a mysql snapshot") || drivers.HintOf(err) != "use --driver mysql" {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Phases) != 0 || len(rep.Calls) != 0 {
		t.Errorf("something ran: %+v %+v", rep.Phases, rep.Calls)
	}
}

func TestTransientDownloadIsRetried(t *testing.T) {
	script := toy("1.0.0", "") + `
def download(ctx, snapshot):
    if ctx.attempt < 3:
        fail("blip", cls = "transient")
`
	rep, err := runToy(t, context.Background(), script, ModeRestore, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phases[0].Attempts != 3 {
		t.Errorf("attempts = %d", rep.Phases[0].Attempts)
	}
	// Permanent errors are not retried.
	script = toy("1.0.0", "") + `
def download(ctx, snapshot):
    fail("gone", cls = "permanent")
`
	rep, err = runToy(t, context.Background(), script, ModeRestore, nil)
	if err == nil || rep.Phases[0].Attempts != 1 || rep.Phases[0].ErrorClass != "permanent" {
		t.Errorf("permanent: err %v phases %+v", err, rep.Phases)
	}
}

// Fakes keep the central wrapper: a replaced Impl is still recorded.
func TestFakeBuiltinIsRecorded(t *testing.T) {
	var fsMod builtins.Module
	for _, m := range builtins.Modules() {
		if m.Name == "fs" {
			fsMod = m
		}
	}
	called := 0
	fake := fsMod.WithImpl("mkdir", func(ctx context.Context, env *builtins.Env, args starlarkTuple, kwargs []starlarkKV) (starlarkValue, error) {
		called++
		return starlarkNone, nil
	})
	dir := writeScripts(t, map[string]string{"toy.star": toy("1.0.0", "") + "\ndef prepare(ctx, s, t):\n    fs.mkdir(t.data_dir)\n"})
	h := NewHost([]Source{DirSource(dir)})
	for i, m := range h.Modules {
		if m.Name == "fs" {
			h.Modules[i] = fake
		}
	}
	r := &Runner{Catalog: h.Discover()}
	rep, err := r.Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy"})
	if err != nil || called != 1 {
		t.Fatalf("err %v called %d", err, called)
	}
	found := false
	for _, c := range rep.Calls {
		found = found || c.Builtin == "fs.mkdir"
	}
	if !found {
		t.Error("fake call not recorded")
	}
}
