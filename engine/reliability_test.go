package engine

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

func toyRunner(t *testing.T, script string) *Runner {
	t.Helper()
	dir := writeScripts(t, map[string]string{"toy.star": script})
	h := NewHost([]Source{DirSource(dir)})
	h.MaxSteps = 100_000
	r := &Runner{Catalog: h.Discover()}
	if len(r.Catalog.Problems) > 0 {
		t.Fatalf("script problems: %v", r.Catalog.Problems)
	}
	return r
}

func fastRetry() RetryPolicy {
	return RetryPolicy{Phases: map[string]Backoff{"download": {Attempts: 3, BaseDelay: time.Millisecond}, "validate": {Attempts: 3, BaseDelay: time.Millisecond}},
		Call: Backoff{Attempts: 3, BaseDelay: time.Millisecond}}
}

func TestRetryByClass(t *testing.T) {
	for _, tc := range []struct {
		cls      string
		attempts int
	}{{"transient", 3}, {"throttled", 3}, {"permanent", 1}, {"corruption", 1}, {"validation", 1}, {"script", 1}} {
		script := `driver(name = "toy", version = "1.0.0", api = 1)
def download(ctx, snapshot):
    fail("always", cls = "` + tc.cls + `")
def execute(ctx, snapshot, target):
    pass
def validate(ctx, snapshot, target):
    return []
`
		rep, err := toyRunner(t, script).Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy", Retry: fastRetry()})
		if err == nil || drivers.ClassOf(err) != drivers.Class(tc.cls) {
			t.Fatalf("%s: err %v", tc.cls, err)
		}
		p := rep.Phases[0]
		if p.Attempts != tc.attempts || len(p.AttemptLog) != tc.attempts {
			t.Errorf("%s: %d attempts (%d logged), want %d", tc.cls, p.Attempts, len(p.AttemptLog), tc.attempts)
		}
		for i, a := range p.AttemptLog {
			if a.ErrorClass != tc.cls || (i < len(p.AttemptLog)-1) != (a.RetryInSeconds > 0 || tc.attempts > 1 && i < len(p.AttemptLog)-1) {
				t.Errorf("%s: attempt %+v", tc.cls, a)
			}
		}
	}
}

func TestDriverDeclaresRetryAndTimeouts(t *testing.T) {
	script := `driver(name = "toy", version = "1.0.0", api = 1, retry = {"download": {"attempts": 5, "base_delay": 0.001}}, timeouts = {"validate": "200ms"})
def download(ctx, snapshot):
    if ctx.attempt < 5:
        fail("not yet", cls = "transient")
def execute(ctx, snapshot, target):
    pass
def validate(ctx, snapshot, target):
    time.sleep(5)
    return []
`
	start := time.Now()
	rep, err := toyRunner(t, script).Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy"})
	if err == nil || !strings.Contains(err.Error(), "phase validate exceeded its deadline of 200ms") || drivers.ClassOf(err) != drivers.Permanent {
		t.Fatalf("err %v (class %s)", err, drivers.ClassOf(err))
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("the validate deadline did not stop time.sleep: %s", time.Since(start))
	}
	if rep.Phases[0].Attempts != 5 || rep.Phases[0].Result != "ok" {
		t.Errorf("download: %+v", rep.Phases[0])
	}
	// The command line wins over the script.
	_, err = toyRunner(t, script).Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy",
		Override: Policy{Timeouts: Timeouts{Phases: map[string]time.Duration{"validate": 100 * time.Millisecond}}}})
	if err == nil || !strings.Contains(err.Error(), "deadline of 100ms") {
		t.Errorf("override: %v", err)
	}
}

func TestPerCallRetry(t *testing.T) {
	script := `driver(name = "toy", version = "1.0.0", api = 1)
def execute(ctx, snapshot, target):
    fs.move("a", "b", retry = 3)
def validate(ctx, snapshot, target):
    return []
`
	_, err := toyRunner(t, script).Run(context.Background(), Options{Driver: "toy", Snapshot: toySnapshot(t, "toy"), Target: "scratch://toy", Retry: fastRetry()})
	if err == nil || !strings.Contains(err.Error(), "fs.move is not idempotent") || drivers.ClassOf(err) != drivers.Script {
		t.Errorf("retry= on a non-idempotent builtin: %v", err)
	}
}

func TestPolicyParseAndMerge(t *testing.T) {
	p, err := ParsePolicy("test", map[string]any{"download": float64(5), "calls": map[string]any{"attempts": float64(2), "max_delay": "3s"}},
		map[string]any{"run": "1h", "execute": float64(90)})
	if err != nil {
		t.Fatal(err)
	}
	m := DefaultPolicy().Merge(p)
	if b := m.Retry.Phases["download"]; b.Attempts != 5 || b.BaseDelay != time.Second {
		t.Errorf("download %+v", b)
	}
	if m.Retry.Call.Attempts != 2 || m.Retry.Call.MaxDelay != 3*time.Second || m.Retry.Call.BaseDelay != 200*time.Millisecond {
		t.Errorf("calls %+v", m.Retry.Call)
	}
	if m.Timeouts.Run != time.Hour || m.Timeouts.Phases["execute"] != 90*time.Second {
		t.Errorf("timeouts %+v", m.Timeouts)
	}
	for _, bad := range []map[string]any{{"downlaod": float64(3)}, {"download": float64(0)}, {"download": map[string]any{"tries": float64(1)}}} {
		if _, err := ParsePolicy("test", bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// Full jitter stays within [0, min(max, base*2^(n-1))].
	b := Backoff{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n := 1; n < 10; n++ {
		for i := 0; i < 50; i++ {
			limit := 100 * time.Millisecond << (n - 1)
			if limit > time.Second {
				limit = time.Second
			}
			if d := b.Delay(n); d < 0 || d > limit {
				t.Fatalf("delay(%d) = %s, limit %s", n, d, limit)
			}
		}
	}
}

const resumeScript = `driver(name = "toy", version = "1.0.0", api = 1)
def download(ctx, snapshot):
    ctx.state["downloads"] = ctx.state.get("downloads", 0) + 1
def execute(ctx, snapshot, target):
    ctx.state["resumed"] = ctx.resumed
    ctx.state["had_a"] = ctx.reached("a")
    ctx.checkpoint("a")
    ctx.checkpoint("b")
def validate(ctx, snapshot, target):
    return [check("ok", True)]
`

func TestRunStateAndResume(t *testing.T) {
	r := toyRunner(t, resumeScript)
	wd := t.TempDir()
	snap := toySnapshot(t, "toy")
	rep, err := r.Run(context.Background(), Options{Driver: "toy", Snapshot: snap, Target: "scratch://toy", WorkDir: wd})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadRunState(wd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Outcome != "success" || st.RunID != rep.RunID || strings.Join(st.CheckpointNames(), ",") != "a,b" || st.Phases["validate"] != PhaseDone {
		t.Fatalf("run state %+v", st)
	}
	// A finished run is not resumed.
	if _, err := r.Run(context.Background(), Options{Driver: "toy@=1.0.0", WorkDir: wd, Snapshot: snap, Target: "scratch://toy", Resume: st}); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume of a finished run: %v", err)
	}
	// As if killed during execute after checkpoint a.
	st.Outcome = ""
	st.Phases["execute"], st.Phases["validate"], st.Phases["commit"] = PhaseRunning, "", ""
	st.Checkpoints = st.Checkpoints[:1]
	data, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(wd, RunStateFile), data, 0o600)
	// A new restore into the same work dir is refused, naming resume.
	if _, err := r.Run(context.Background(), Options{Driver: "toy", Snapshot: snap, Target: "scratch://toy", WorkDir: wd}); err == nil || !strings.Contains(err.Error(), "restore-run resume") {
		t.Errorf("a new run over an unfinished one: %v", err)
	}
	st, _ = ReadRunState(wd)
	rep2, err := r.Run(context.Background(), Options{Driver: "toy@=1.0.0", Snapshot: snap, Target: "scratch://toy", WorkDir: wd, Resume: st})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.RunID != rep.RunID {
		t.Errorf("resumed as %s, not %s", rep2.RunID, rep.RunID)
	}
	st, _ = ReadRunState(wd)
	if st.State["downloads"] != float64(1) || st.State["resumed"] != true || st.State["had_a"] != true || st.Outcome != "success" || st.Resumes != 1 {
		t.Errorf("after resume: %+v", st)
	}
	// A changed script is refused (unless forced).
	st.Outcome = ""
	st.Driver.SHA256 = "0000"
	if _, err := r.Run(context.Background(), Options{Driver: "toy@=1.0.0", Snapshot: snap, Target: "scratch://toy", WorkDir: wd, Resume: st}); err == nil || !strings.Contains(err.Error(), "driver script changed") {
		t.Errorf("changed script: %v", err)
	}
	if _, err := r.Run(context.Background(), Options{Driver: "toy@=1.0.0", Snapshot: snap, Target: "scratch://toy", WorkDir: wd, Resume: st, ForceResume: true}); err != nil {
		t.Errorf("forced: %v", err)
	}
}

// TestStaleLockOfKilledProcess: a process takes a target lock and is killed with
// SIGKILL; the next LockTarget gets the lock and names the dead holder. A lock file
// naming a live process whose flock is not held (a filesystem that does not enforce
// flock) is refused, and so is one naming another host, unless broken.
func TestStaleLockOfKilledProcess(t *testing.T) {
	target := &drivers.Target{Ref: "t.yaml", Dirs: []string{"/srv/x"}}
	if os.Getenv("RESTORE_RUN_LOCK_CHILD") != "1" {
		t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	}
	if os.Getenv("RESTORE_RUN_LOCK_CHILD") == "1" {
		if _, err := LockTarget(target, "child-run"); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleLockOfKilledProcess$")
	cmd.Env = append(os.Environ(), "RESTORE_RUN_LOCK_CHILD=1", "RESTORE_RUN_LOCK_DIR="+os.Getenv("RESTORE_RUN_LOCK_DIR"))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := LockTarget(target, "second"); err == nil || !strings.Contains(err.Error(), "child-run") {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	lock, err := LockTarget(target, "third")
	if err != nil {
		t.Fatal(err)
	}
	if lock.Stale == nil || lock.Stale.PID != cmd.Process.Pid || lock.Stale.RunID != "child-run" {
		t.Errorf("stale holder %+v, want the killed child %d", lock.Stale, cmd.Process.Pid)
	}
	lock.Unlock()

	// A live process named in the file, its flock not held.
	sleeper := exec.Command("sleep", "30")
	sleeper.Start()
	defer sleeper.Process.Kill()
	host, _ := os.Hostname()
	path := lockPath(t, target)
	write := func(h LockHolder) {
		data, _ := json.Marshal(h)
		os.WriteFile(path, data, 0o644)
	}
	write(LockHolder{PID: sleeper.Process.Pid, Host: host, RunID: "ghost", Start: time.Now(), ProcStart: procStart(sleeper.Process.Pid)})
	if _, err := LockTarget(target, "fourth"); err == nil || !strings.Contains(err.Error(), "process is alive") {
		t.Errorf("live holder without flock: %v", err)
	}
	// The same pid, another process start: a reused pid, stale.
	write(LockHolder{PID: sleeper.Process.Pid, Host: host, RunID: "old", Start: time.Now(), ProcStart: 1})
	if l, err := LockTarget(target, "fifth"); err != nil || l.Stale == nil {
		t.Errorf("reused pid: %v", err)
	} else {
		l.Unlock()
	}
	write(LockHolder{PID: 1234, Host: "elsewhere", RunID: "remote", Start: time.Now()})
	if _, err := LockTarget(target, "sixth"); err == nil || !strings.Contains(err.Error(), "another host") {
		t.Errorf("other host: %v", err)
	}
	if l, err := LockTargetWith(target, "seventh", LockOptions{Break: true}); err != nil || l.Stale == nil || l.Stale.Host != "elsewhere" {
		t.Errorf("broken: %v", err)
	} else {
		l.Unlock()
	}
}

func lockPath(t *testing.T, target *drivers.Target) string {
	t.Helper()
	l, err := LockTargetWith(target, "probe", LockOptions{Break: true})
	if err != nil {
		t.Fatal(err)
	}
	p := l.path
	l.Unlock()
	return p
}
