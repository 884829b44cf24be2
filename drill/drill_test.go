package drill

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/transfer"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func quickstartSnapshot() string { return filepath.Join(repoRoot(), "testdata", "etcd", "quickstart") }

// run runs the drill text (or the embedded drill name) with params and returns
// its report and error.
func run(t *testing.T, text string, params map[string]string) (*Report, error, string) {
	t.Helper()
	dir := t.TempDir()
	host := engine.NewHost([]engine.Source{engine.Embedded()})
	d := New(Options{Host: host, Params: params, ReportDir: dir, Log: zerolog.Nop()})
	src, p := engine.Embedded(), ""
	if strings.HasPrefix(text, "embedded:") {
		p = strings.TrimPrefix(text, "embedded:")
	} else {
		sdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(sdir, "test.star"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		src, p = engine.DirSource(sdir), "test.star"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := d.Run(ctx, src, p)
	return rep, err, dir
}

// TestQuickstartDrill runs the embedded quickstart drill: three in-process etcd
// members, expectations on keys, an RTO objective, every report written.
func TestQuickstartDrill(t *testing.T) {
	rep, err, dir := run(t, "embedded:drills/quickstart.star", map[string]string{"snapshot": quickstartSnapshot()})
	if err != nil {
		t.Fatalf("drill: %v\nfailures: %v", err, rep.Failures)
	}
	if rep.Result != Passed || rep.Drill != "quickstart" || len(rep.Restores) != 1 || rep.RTOObjective == nil || *rep.RTOObjective != 120 {
		t.Fatalf("report: %+v", rep)
	}
	r := rep.Restores[0]
	kinds := map[string]int{}
	for _, c := range r.Checks {
		kinds[c.Kind]++
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Detail)
		}
	}
	if kinds["expectation"] != 4 || kinds["objective"] != 1 || kinds["outcome"] != 1 {
		t.Errorf("checks by kind: %v", kinds)
	}
	if r.ExpectEndSeconds < r.ExpectStartSeconds || r.ExpectStartSeconds < r.StartSeconds+r.RTOSeconds-0.01 || r.EndSeconds < r.ExpectEndSeconds {
		t.Errorf("expectations at %.3f..%.3f, validated at %.3f, torn down at %.3f", r.ExpectStartSeconds, r.ExpectEndSeconds, r.StartSeconds+r.RTOSeconds, r.EndSeconds)
	}
	for _, f := range []string{"report.json", "junit.xml", "report.html", "restores/etcd.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// The expectations' builtin calls are in the run's own report.
	run, err := engine.ReadReport(filepath.Join(dir, "restores", "etcd.json"))
	if err != nil {
		t.Fatal(err)
	}
	expects := 0
	for _, c := range run.Calls {
		if c.Phase == "expect" {
			expects++
		}
	}
	if expects != 4 {
		t.Errorf("%d builtin calls in phase expect, want 4", expects)
	}
}

// TestObjectivesNameThePhase: a phase objective missed is named; the RTO check
// names the longest phase.
func TestObjectivesNameThePhase(t *testing.T) {
	rep, err, _ := run(t, `
drill(name = "slow")
drill.restore(name = "etcd", driver = "etcd", snapshot = "`+quickstartSnapshot()+`", target = "scratch://etcd",
    rto = 0.5, phase_rto = {"download": 0.2, "validate": 30},
    faults = [drill.slow_store(bandwidth = "96KiB")])
`, nil)
	if err == nil || drivers.ClassOf(err) != drivers.Validation || rep.Result != Failed {
		t.Fatalf("err %v, result %s", err, rep.Result)
	}
	var got []string
	for _, c := range rep.Restores[0].Checks {
		if !c.OK {
			got = append(got, c.Name+": "+c.Detail)
		}
	}
	text := strings.Join(got, "\n")
	if !strings.Contains(text, "phase download within 0.20s: download ran long") || !strings.Contains(text, "RTO within 0.50s: RTO") || !strings.Contains(text, "download ran long") {
		t.Errorf("failed checks:\n%s", text)
	}
	if strings.Contains(text, "validate within") {
		t.Errorf("validate kept its objective:\n%s", text)
	}
	for _, p := range rep.Restores[0].Phases {
		if p.Over != (p.Name == "download") {
			t.Errorf("phase %s over: %v", p.Name, p.Over)
		}
	}
}

// TestScriptMistakes: mistakes in a drill script are script or usage errors
// with their position, found before any restore runs where possible.
func TestScriptMistakes(t *testing.T) {
	snap := quickstartSnapshot()
	for _, tc := range []struct {
		name, text, want string
		usage            bool
	}{
		{"syntax", "drill.restore(\n", "test.star:2:1", false},
		{"undefined", "nope()", "undefined: nope", false},
		{"param", `drill(name = "x", params = {"a": 1})`, "unknown --param b", true},
		{"no params", `drill.restore(name = "x", driver = "etcd", snapshot = "` + snap + `", target = "scratch://etcd")`, "unknown --param b", true},
		{"twice", `drill(name = "x")` + "\n" + `drill(name = "y")`, "declared twice", false},
		{"names", `s = drill.spec(name = "x", driver = "etcd", snapshot = "s", target = "t")` + "\ndrill.parallel([s, s])", `restore name "x" is used twice`, false},
		{"bad name", `drill.spec(name = "a/b", driver = "etcd", snapshot = "s", target = "t")`, "names report files", false},
		{"fault kind", `drill.store_errors(kind = "404", rate = 0.1)`, `kind "404"`, false},
		{"failure and data", `drill.spec(name = "x", driver = "etcd", snapshot = "s", target = "t", expect = [drill.expect_failure(), drill.expect_key("k", "v")])`, "cannot go with expectations", false},
		{"kill both", `drill.kill(before = "etcd.status", after = "etcd.status")`, "not both", false},
		{"loop", "def loop():\n    x = 0\n    while True:\n        x += 1\nloop()\n", "step limit", false},
		{"fail", `fail("stop here")`, "stop here", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]string{}
			if tc.usage {
				params["b"] = "2"
			}
			rep, err, _ := runSteps(t, tc.text, params, tc.name == "loop")
			if err == nil {
				t.Fatalf("no error")
			}
			var usage *engine.UsageError
			if tc.usage != errors.As(err, &usage) || (!tc.usage && drivers.ClassOf(err) != drivers.Script) {
				t.Errorf("error %v: usage %v, class %s", err, errors.As(err, &usage), drivers.ClassOf(err))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if rep.Result != ScriptError || len(rep.Restores) != 0 {
				t.Errorf("result %s with %d restores", rep.Result, len(rep.Restores))
			}
		})
	}
}

func runSteps(t *testing.T, text string, params map[string]string, small bool) (*Report, error, string) {
	if !small {
		return run(t, text, params)
	}
	dir := t.TempDir()
	host := engine.NewHost([]engine.Source{engine.Embedded()})
	host.MaxSteps = 100_000
	d := New(Options{Host: host, Params: params, ReportDir: dir, Log: zerolog.Nop()})
	sdir := t.TempDir()
	os.WriteFile(filepath.Join(sdir, "test.star"), []byte(text), 0o644)
	rep, err := d.Run(context.Background(), engine.DirSource(sdir), "test.star")
	return rep, err, dir
}

// memObject is a transfer.Object over bytes.
type memObject struct{ data []byte }

func (m memObject) Size(context.Context) (int64, error) { return int64(len(m.data)), nil }
func (m memObject) NewRangeReader(_ context.Context, off, n int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.data[off : off+n])), nil
}

// TestStoreFaults: the fault object fails reads as a store would (classified by
// blobstore.Classify like the real answers), resets a body half way, flips one
// byte of the reads covering its offset, and slows reads to the bandwidth.
func TestStoreFaults(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	read := func(o transfer.Object, off, n int64) ([]byte, error) {
		r, err := o.NewRangeReader(ctx, off, n)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	for kind, class := range map[string]drivers.Class{"503": drivers.Throttled, "500": drivers.Transient} {
		fs := newFaultState(storeFaults{errKind: kind, errFirst: 2}, nil)
		o := fs.wrap("f", memObject{data})
		for i := 0; i < 2; i++ {
			_, err := read(o, 0, 10)
			if c, _ := blobstore.Classify(err); c != class {
				t.Errorf("%s read %d: %v classified %s, want %s", kind, i, err, c, class)
			}
		}
		if got, err := read(o, 0, 10); err != nil || string(got) != "0123456789" {
			t.Errorf("%s: third read %q, %v", kind, got, err)
		}
		if st := fs.stats(); st["failed_"+kind] != 2 || st["reads"] != 3 {
			t.Errorf("%s stats %v", kind, st)
		}
	}

	fs := newFaultState(storeFaults{errKind: "reset", errFirst: 1}, nil)
	got, err := read(fs.wrap("f", memObject{data}), 0, 1000)
	if c, _ := blobstore.Classify(err); len(got) != 500 || c != drivers.Transient {
		t.Errorf("reset: %d bytes, %v (%s)", len(got), err, c)
	}

	var events []string
	fs = newFaultState(storeFaults{corrupt: []*corruptSpec{{file: "f", offset: -1, times: 1}}}, func(s string) { events = append(events, s) })
	o := fs.wrap("f", memObject{data})
	if got, _ := read(o, 0, 1000); !bytes.Equal(got, data[:1000]) {
		t.Errorf("a read that does not cover the middle was changed")
	}
	got, _ = read(o, 30000, 4000)
	diff := 0
	for i := range got {
		if got[i] != data[30000+i] {
			diff++
			if 30000+i != len(data)/2 {
				t.Errorf("byte %d changed, want %d", 30000+i, len(data)/2)
			}
		}
	}
	if diff != 1 || len(events) != 1 {
		t.Errorf("%d bytes changed, events %v", diff, events)
	}
	if got, _ := read(o, 30000, 4000); !bytes.Equal(got, data[30000:34000]) {
		t.Errorf("times=1: the second read was corrupted too")
	}
	if fs.wrap("g", memObject{data}).(*faultObject).name != "g" {
		t.Fatal("name")
	}
	if got, _ := read(newFaultState(storeFaults{corrupt: []*corruptSpec{{file: "f", offset: 5, times: 1}}}, nil).wrap("other", memObject{data}), 0, 10); !bytes.Equal(got, data[:10]) {
		t.Errorf("corrupt(file=f) changed another file")
	}

	fs = newFaultState(storeFaults{bandwidth: 64 << 10}, nil)
	start := time.Now()
	if got, _ := read(fs.wrap("f", memObject{data}), 0, 32<<10); len(got) != 32<<10 {
		t.Fatalf("slow read: %d bytes", len(got))
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("32 KiB at 64 KiB/s took %s", took)
	}
}

// TestReports renders a report by hand: JUnit XML that parses with one test
// case per restore, the drill's checks and its script error; a self-contained
// HTML page with a timeline.
func TestReports(t *testing.T) {
	rep := &Report{Drill: "d", File: "d.star", Start: time.Now(), DurationSeconds: 12, Result: ScriptError, RTOSeconds: 9, RTOObjective: fptr(8),
		Checks: []Check{{Kind: "objective", Name: "drill RTO within 8.00s", Detail: "over"}},
		Error:  &ErrorReport{Message: "d.star:3:1: boom <&>", Class: "script", Backtrace: "Traceback"},
		Restores: []*RestoreReport{
			{Name: "a", Driver: "etcd@1.0.0", Target: "scratch://etcd", Result: "success", Passed: true, RTOSeconds: 4, StartSeconds: 0, EndSeconds: 5, RTOObjective: fptr(30),
				Phases: []Phase{{Name: "download", DurationSeconds: 1, Result: "ok"}, {Name: "execute", StartSeconds: 1, DurationSeconds: 3, Result: "ok"}},
				Checks: []Check{{Kind: "outcome", Name: "restore succeeds", OK: true}}},
			{Name: "b<x>", Driver: "mysql@1.0.0", Target: "scratch://mysql", Result: "failed", RTOSeconds: 9, StartSeconds: 0, EndSeconds: 11, RTOObjective: fptr(5),
				Phases: []Phase{{Name: "download", DurationSeconds: 8, Result: "ok", Over: true}, {Name: "execute", StartSeconds: 8, DurationSeconds: 1, Result: "failed"}},
				Events: []Event{{AtSeconds: 8.5, What: "killed mariadbd"}},
				Checks: []Check{{Kind: "objective", Name: "RTO within 5.00s", Detail: "download ran long"}}},
		}}
	data, err := JUnit(rep)
	if err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(data, &s); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if s.Tests != 4 || s.Failures != 2 || s.Errors != 1 || len(s.Suites[0].Cases) != 4 || !strings.Contains(string(data), "download ran long") {
		t.Errorf("junit: %d tests, %d failures, %d errors\n%s", s.Tests, s.Failures, s.Errors, data)
	}
	page, err := HTML(rep)
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	for _, want := range []string{"<svg", "b&lt;x&gt;", "boom &lt;&amp;&gt;", "download ran long", "ran long", "objective 5.00s", "⚡", PhaseColors["download"]} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", " src=", "<link", "b<x>"} {
		if strings.Contains(text, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
}

// TestMetricsTextfile: a drill's textfile keeps other drills' series, goes on
// counting runs, and keeps the last success time of a failed run.
func TestMetricsTextfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drills.prom")
	write := func(rep *Report) string {
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SeedFromTextfile(path, rep.Drill); err != nil {
			t.Fatal(err)
		}
		m.DrillEnd(rep)
		if err := prometheus.WriteToTextfile(path, reg); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		return string(data)
	}
	ok := &Report{Drill: "a", Result: Passed, RTOSeconds: 3, Restores: []*RestoreReport{{Name: "r", Driver: "etcd@1.0.0", Passed: true, RTOSeconds: 3}}}
	write(ok)
	first := write(&Report{Drill: "b", Result: Passed})
	bad := &Report{Drill: "a", Result: Failed, Restores: []*RestoreReport{{Name: "r", Driver: "etcd@1.0.0"}}}
	last := write(bad)
	for _, want := range []string{
		`restore_run_drill_runs_total{drill="a",result="passed"} 1`, `restore_run_drill_runs_total{drill="a",result="failed"} 1`,
		`restore_run_drill_runs_total{drill="b",result="passed"} 1`, `restore_run_drill_passed{drill="a"} 0`, `restore_run_drill_passed{drill="b"} 1`,
		`restore_run_drill_restore_passed{drill="a",driver="etcd",restore="r"} 0`,
	} {
		if !strings.Contains(last, want) {
			t.Errorf("lacks %s:\n%s", want, last)
		}
	}
	line := func(text, prefix string) string {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		return ""
	}
	for _, series := range []string{`restore_run_drill_last_success_timestamp_seconds{drill="a"}`, `restore_run_drill_restore_last_success_timestamp_seconds{drill="a",driver="etcd",restore="r"}`} {
		if a, b := line(first, series), line(last, series); a == "" || a != b {
			t.Errorf("%s: %q then %q", series, a, b)
		}
	}
}

// TestParallelWithFaults runs restores side by side: one through a failing and
// slow store that recovers, one whose member is killed in validate and must
// fail there, one whose snapshot is corrupted on every read.
func TestParallelWithFaults(t *testing.T) {
	snap := quickstartSnapshot()
	rep, err, _ := run(t, `
drill(name = "par", rto = 60)
res = drill.parallel([
    drill.spec(name = "ok", driver = "etcd", snapshot = "`+snap+`", target = "scratch://etcd",
               faults = [drill.store_errors(kind = "reset", first = 2), drill.slow_store(latency = 0.05)],
               expect = [drill.expect_keys("/app/config/", 62)]),
    drill.spec(name = "lost", driver = "etcd", snapshot = "`+snap+`", target = "scratch://etcd?members=3",
               faults = [drill.kill(node = 2)], retry = {"validate": 1, "calls": 1},
               expect = [drill.expect_failure(phase = "validate")]),
    drill.spec(name = "corrupt", driver = "etcd", snapshot = "`+snap+`", target = "scratch://etcd",
               faults = [drill.corrupt(times = 100)], expect = [drill.expect_failure(cls = "corruption", phase = "download")]),
])
drill.check("results in order", [r.name for r in res] == ["ok", "lost", "corrupt"])
drill.check("lost failed in validate", res[1].failed_phase == "validate" and not res[1].ok and res[1].passed)
`, nil)
	if err != nil {
		for _, r := range rep.Restores {
			t.Logf("%s: %+v %+v", r.Name, r.Checks, r.Events)
		}
		t.Fatalf("%v: %v", err, rep.Failures)
	}
	byName := map[string]*RestoreReport{}
	for _, r := range rep.Restores {
		byName[r.Name] = r
		if r.Group != 1 {
			t.Errorf("%s in group %d", r.Name, r.Group)
		}
	}
	if st := byName["ok"].FaultStats; st["failed_reset"] != 2 {
		t.Errorf("ok: fault stats %v", st)
	}
	if ev := byName["lost"].Events; len(ev) != 1 || !strings.Contains(ev[0].What, "stopped etcd member m3") {
		t.Errorf("lost: events %+v", ev)
	}
	if c := byName["corrupt"]; c.FailedIn != "download" || c.ErrorClass != "corruption" || c.FaultStats["corrupted_reads"] == 0 {
		t.Errorf("corrupt: failed in %s with %s, stats %v", c.FailedIn, c.ErrorClass, c.FaultStats)
	}
}

// TestTimeout: the drill's own deadline fails it (not an interruption); the
// restore running then is rolled back and torn down.
func TestTimeout(t *testing.T) {
	sdir := t.TempDir()
	os.WriteFile(filepath.Join(sdir, "t.star"), []byte(`drill.restore(name = "slow", driver = "etcd", snapshot = "`+quickstartSnapshot()+`",
    target = "scratch://etcd", faults = [drill.slow_store(bandwidth = "4KiB")])
`), 0o644)
	d := New(Options{Host: engine.NewHost([]engine.Source{engine.Embedded()}), Timeout: time.Second, Log: zerolog.Nop()})
	start := time.Now()
	rep, err := d.Run(context.Background(), engine.DirSource(sdir), "t.star")
	if err == nil || drivers.ClassOf(err) == drivers.Cancelled || rep.Result != Failed || time.Since(start) > 20*time.Second {
		t.Fatalf("err %v (%s), result %s after %s", err, drivers.ClassOf(err), rep.Result, time.Since(start))
	}
	if !strings.Contains(strings.Join(rep.Failures, "\n"), "--timeout of 1s") || len(rep.Restores) != 1 || rep.Restores[0].Result != "cancelled" {
		t.Errorf("failures %v, restores %+v", rep.Failures, rep.Restores)
	}
}
