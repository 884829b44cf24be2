package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/etcdops"
)

// The tests of this file give restore-run bad input and expect a clear message
// naming the problem and the fix, the documented exit code (1 restore failed, 2
// usage, configuration or script error, 130 interrupted), and nothing started or
// changed. They also cover the inspection commands: check, drivers, drivers show,
// drivers export and plan.

// badinput is the directory of this file's fixture scripts.
func badinput(parts ...string) string {
	return filepath.Join(append([]string{repoRoot, "e2e", "testdata", "badinput"}, parts...)...)
}

// quickstart is the bundled snapshot every test may use as a good snapshot.
const quickstart = "testdata/etcd/quickstart"

// nothingStarted checks that a failed run started nothing and left nothing: no
// phase beyond those in allowed ran, the work dir is gone and no scratch member
// answers. A nil report (the run stopped before one was made) passes.
func nothingStarted(t *testing.T, rep *engine.Report, allowed ...string) {
	t.Helper()
	if rep == nil {
		return
	}
	var ran []string
	for _, p := range rep.Phases {
		ran = append(ran, p.Name+"="+p.Result)
	}
	if len(rep.Phases) > len(allowed) {
		t.Errorf("phases %v ran; want at most %v", ran, allowed)
	}
	for i, p := range rep.Phases {
		if i < len(allowed) && p.Name != allowed[i] {
			t.Errorf("phases %v ran; want at most %v", ran, allowed)
		}
		if p.Name == "execute" || p.Name == "rollback" || p.Name == "commit" {
			t.Errorf("phase %s ran (%v): the target was touched", p.Name, ran)
		}
	}
	if rep.Result == "success" {
		t.Errorf("report result %q for a failed run", rep.Result)
	}
	if rep.WorkDir != "" {
		if _, err := os.Stat(rep.WorkDir); !os.IsNotExist(err) {
			t.Errorf("work dir %s left behind (stat: %v)", rep.WorkDir, err)
		}
	}
	mustNotAnswer(t, targetClientURLs(rep))
}

// withReport fails the test unless the run wrote its report: every run whose
// driver resolves does, failed or not.
func withReport(t *testing.T, res result) *engine.Report {
	t.Helper()
	if res.Report == nil {
		t.Fatalf("no report written\nstdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	}
	return res.Report
}

// failedPhase fails the test unless the last phase of the report is name, failed
// with class, at its first attempt, and the report's error has that class.
func failedPhase(t *testing.T, rep *engine.Report, name, class string) {
	t.Helper()
	if rep == nil {
		t.Fatal("no report written")
	}
	if len(rep.Phases) == 0 {
		t.Fatalf("no phase ran; want %s failed with class %s", name, class)
	}
	p := rep.Phases[len(rep.Phases)-1]
	if p.Name != name || p.Result != "failed" || p.ErrorClass != class || p.Attempts != 1 {
		t.Errorf("last phase %s: %s (class %q) after %d attempts; want %s failed (class %s) at the first attempt", p.Name, p.Result, p.ErrorClass, p.Attempts, name, class)
	}
	if rep.Error == nil || rep.Error.Class != class {
		t.Errorf("report error %+v; want class %s", rep.Error, class)
	}
}

// flipByte inverts the byte in the middle of the file at path.
func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// smallSnapshot saves a snapshot of a live etcd holding a few keys.
func smallSnapshot(t *testing.T) savedSnapshot {
	t.Helper()
	ctx := context.Background()
	src := startSource(t)
	fill(t, src.client, "/bad", 40)
	keys := dump(t, []string{src.member.ClientURL()})
	path := filepath.Join(t.TempDir(), "etcd.db")
	version, err := etcdops.Save(ctx, src.member.ClientURL(), path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := etcdops.Status(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return savedSnapshot{path: path, version: version, revision: st.Revision, keys: keys, status: st}
}

func restoreArgs(snapshot string, extra ...string) []string {
	return append([]string{"restore", "--driver", "etcd", "--snapshot", snapshot, "--target", "scratch://etcd?members=3"}, extra...)
}

func TestBadInputMissingSnapshot(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-snapshot.db")
	res := cli(t, time.Minute, restoreArgs(missing)...).mustFail(t, 1, "not found", missing, "check the path")
	nothingStarted(t, withReport(t, res))
	if len(res.Report.Phases) != 0 || res.Report.Error == nil || res.Report.Error.Class != "permanent" {
		t.Errorf("report %+v; want no phase and a permanent error", res.Report)
	}
}

// TestBadInputCorruptBareSnapshot flips one byte of a file from `etcdctl snapshot
// save` (etcdops.Save): its sha256 trailer no longer matches, and the download phase
// fails with class corruption before anything is prepared.
func TestBadInputCorruptBareSnapshot(t *testing.T) {
	snap := smallSnapshot(t)
	flipByte(t, snap.path)
	res := cli(t, time.Minute, restoreArgs(snap.path)...).mustFail(t, 1, "fails its checksum", "trailer", "fetch or save it again")
	failedPhase(t, res.Report, "download", "corruption")
	nothingStarted(t, res.Report, "download")
}

// TestBadInputCorruptManifestSnapshot flips one byte of the file of a manifest
// snapshot: its sha256 no longer matches the manifest's, and the download phase
// fails with class corruption before anything is prepared.
func TestBadInputCorruptManifestSnapshot(t *testing.T) {
	snap := smallSnapshot(t)
	ref := packEtcdSnapshot(t, "etcd", snap)
	flipByte(t, filepath.Join(ref, "member.db"))
	res := cli(t, time.Minute, restoreArgs(ref)...).mustFail(t, 1, "member.db", "sha256")
	failedPhase(t, res.Report, "download", "corruption")
	nothingStarted(t, res.Report, "download")
}

// TestBadInputManifestRevisionMismatch gives a manifest whose metadata revision is
// not the file's: the download phase refuses it as corrupt.
func TestBadInputManifestRevisionMismatch(t *testing.T) {
	snap := smallSnapshot(t)
	wrong := snap
	wrong.revision = snap.revision + 1
	ref := packEtcdSnapshot(t, "etcd", wrong)
	res := cli(t, time.Minute, restoreArgs(ref)...).mustFail(t, 1, "manifest says")
	failedPhase(t, res.Report, "download", "corruption")
	nothingStarted(t, res.Report, "download")
}

// TestBadInputOtherEngineSnapshot gives the etcd driver a snapshot whose manifest
// says mysql: refused before download, naming the driver to use.
func TestBadInputOtherEngineSnapshot(t *testing.T) {
	snap := smallSnapshot(t)
	ref := packEtcdSnapshot(t, "mysql", snap)
	res := cli(t, time.Minute, restoreArgs(ref)...).mustFail(t, 1, "mysql snapshot", "--driver mysql")
	nothingStarted(t, res.Report)
}

func TestBadInputUnknownDriver(t *testing.T) {
	res := cli(t, time.Minute, "restore", "--driver", "nosuchdb", "--snapshot", quickstart, "--target", "scratch://etcd").
		mustFail(t, 2, `unknown driver "nosuchdb"`, "available", "etcd@1.0.0", "restore-run drivers")
	nothingStarted(t, res.Report)
}

func TestBadInputUnknownDriverVersion(t *testing.T) {
	res := cli(t, time.Minute, "restore", "--driver", "etcd@^9", "--snapshot", quickstart, "--target", "scratch://etcd").
		mustFail(t, 2, `"^9"`, "available: 1.0.0")
	nothingStarted(t, res.Report)
}

// fileLineCol matches a position like etcd.star:8:4.
var fileLineCol = regexp.MustCompile(`etcd\.star:\d+:\d+`)

func TestBadInputScriptSyntaxError(t *testing.T) {
	res := cli(t, time.Minute, "restore", "--scripts", badinput("syntax"), "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd").
		mustFail(t, 2, "syntax error", badinput("syntax", "etcd.star"))
	if !fileLineCol.MatchString(res.Stderr) {
		t.Errorf("stderr does not name file:line:col:\n%s", res.Stderr)
	}
	nothingStarted(t, res.Report)
}

func TestBadInputScriptEndlessLoop(t *testing.T) {
	start := time.Now()
	res := cli(t, time.Minute, "restore", "--scripts", badinput("loop"), "--max-steps", "100000", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd").
		mustFail(t, 2, "step limit", "--max-steps", "etcd@9.0.0")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("stopping the endless loop took %s", took)
	}
	if !fileLineCol.MatchString(res.Stderr) {
		t.Errorf("stderr does not name file:line:col of the loop:\n%s", res.Stderr)
	}
	if res.Report == nil || res.Report.Driver.Version != "9.0.0" {
		t.Fatalf("report %+v; want the run of etcd@9.0.0 from --scripts", res.Report)
	}
	failedPhase(t, res.Report, "download", "script")
	nothingStarted(t, res.Report, "download")
}

func TestBadInputScriptLoadOutside(t *testing.T) {
	if _, err := os.Stat(badinput("escape", "outside.star")); err != nil {
		t.Fatal(err)
	}
	res := cli(t, time.Minute, "restore", "--scripts", badinput("escape", "scripts"), "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd").
		mustFail(t, 2, `load("../outside.star") refused`, "lib/")
	nothingStarted(t, res.Report)
}

func TestBadInputUnknownParam(t *testing.T) {
	res := cli(t, time.Minute, restoreArgs(quickstart, "--param", "bump_revison=5")...).
		mustFail(t, 2, `unknown param "bump_revison"`, "bump_revision", "mark_compacted", "skip_hash_check", "drivers show etcd")
	nothingStarted(t, withReport(t, res))
	if res.Report != nil && len(res.Report.Phases) > 0 {
		t.Errorf("phases ran with an unknown param: %+v", res.Report.Phases)
	}
}

func TestBadInputBadParamValue(t *testing.T) {
	res := cli(t, time.Minute, restoreArgs(quickstart, "--param", "bump_revision=lots")...).
		mustFail(t, 2, "bump_revision", "lots")
	nothingStarted(t, withReport(t, res))
	if res.Report != nil && len(res.Report.Phases) > 0 {
		t.Errorf("phases ran with a bad param value: %+v", res.Report.Phases)
	}
}

// TestBadInputBumpWithoutCompacted: the driver refuses bump_revision without
// mark_compacted (etcdutl would silently ignore the bump) in its download phase,
// before anything is prepared. The check is the script's fail(), class permanent,
// so the run counts as a failed restore (exit 1), not as a usage error.
func TestBadInputBumpWithoutCompacted(t *testing.T) {
	res := cli(t, time.Minute, restoreArgs(quickstart, "--param", "bump_revision=1000")...).
		mustFail(t, 1, "bump_revision and mark_compacted go together", "--param mark_compacted=true")
	failedPhase(t, res.Report, "download", "permanent")
	nothingStarted(t, res.Report, "download")
}

func TestBadInputTargetOfAnotherEngine(t *testing.T) {
	t.Run("scratch mysql", func(t *testing.T) {
		res := cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://mysql").
			mustFail(t, 2, "scratch://mysql", "mysql", "etcd")
		nothingStarted(t, withReport(t, res))
	})
	t.Run("unknown scratch engine", func(t *testing.T) {
		res := cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://nosuchdb?members=3").
			mustFail(t, 2, `"nosuchdb"`, "known: ", "etcd")
		nothingStarted(t, withReport(t, res))
	})
	t.Run("target file of another engine", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "db.yaml")
		if err := os.WriteFile(file, []byte("engine: mysql\nhost: 127.0.0.1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res := cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", quickstart, "--target", file).
			mustFail(t, 2, file, "mysql")
		nothingStarted(t, withReport(t, res))
	})
	t.Run("unknown scheme", func(t *testing.T) {
		res := cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "etcd://127.0.0.1:2379").
			mustFail(t, 2, "unknown scheme", "scratch://")
		nothingStarted(t, res.Report)
	})
}

// TestBadInputUsageErrors: command-line mistakes exit 2 (usage) with a message
// naming the mistake, before anything runs. This includes the errors cobra finds
// itself (a required flag not given, wrong positional arguments, an unknown
// command), which do not pass through the flag error function.
func TestBadInputUsageErrors(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"missing --target", []string{"restore", "--driver", "etcd", "--snapshot", quickstart}, []string{"--target", "not set"}},
		{"unknown flag", []string{"restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd", "--no-such-flag"}, []string{"--no-such-flag"}},
		{"stray argument", []string{"restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd", "stray"}, []string{"stray"}},
		{"unknown command", []string{"restor", "--driver", "etcd"}, []string{`unknown command "restor"`}},
		{"drivers show without a name", []string{"drivers", "show"}, []string{"arg"}},
		{"missing --scripts dir", []string{"restore", "--scripts", "/nonexistent/restore-run-scripts", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd"}, []string{"--scripts", "not a directory"}},
		{"bad --log-level", []string{"drivers", "--log-level", "bogus"}, []string{"--log-level", "bogus"}},
		{"empty --log-level", []string{"drivers", "--log-level", ""}, []string{"--log-level"}},
		{"bad param syntax", []string{"restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd", "--param", "bump_revision"}, []string{"KEY=VALUE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := cli(t, time.Minute, c.args...).mustFail(t, 2, c.wants...)
			if strings.Contains(res.Stderr, "panic:") || strings.Contains(res.Stderr, "goroutine ") {
				t.Errorf("restore-run panicked:\n%s", res.Stderr)
			}
			nothingStarted(t, res.Report)
			if res.Report != nil && len(res.Report.Phases) > 0 {
				t.Errorf("phases ran after a usage error: %+v", res.Report.Phases)
			}
		})
	}
}

// TestInterruptDuringExecute interrupts a restore into a three-member scratch
// target while its execute phase runs (members restored and started, then a 30 s
// sleep of the fixture driver): restore-run must exit 130 within seconds, run the
// rollback phase, report the run as cancelled, stop the members and remove its work
// dir.
func TestInterruptDuringExecute(t *testing.T) {
	r := startCLI(t, "restore", "--scripts", badinput("slow"), "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3")
	r.waitLine(t, r.errLines, time.Minute, `log line of the execute phase start`, func(l string) bool {
		return strings.Contains(l, `"phase":"execute"`) && strings.Contains(l, "phase starts")
	})
	started := r.waitLine(t, r.errLines, time.Minute, `fixture's "members restored and started" log line`, func(l string) bool {
		return strings.Contains(l, "e2e: members restored and started")
	})
	// log.info renders the list of endpoints as one string: pick the URLs out of it.
	endpoints := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindAllString(started, -1)
	if len(endpoints) != 3 {
		t.Fatalf("log line %s: want 3 endpoints", started)
	}
	for _, ep := range endpoints {
		if !answers(ep) {
			t.Fatalf("member %s does not answer while execute sleeps", ep)
		}
	}
	code, took := r.interruptAndWait(t, 20*time.Second)
	if code != 130 {
		t.Errorf("exit %d after SIGINT, want 130\n%s", code, r.output())
	}
	if took > 10*time.Second {
		t.Errorf("restore-run took %s to stop after SIGINT; want a few seconds", took.Round(time.Millisecond))
	}
	if !strings.Contains(r.stderr.String(), "rolling back and cleaning up") {
		t.Errorf("stderr does not say that the run stops and rolls back:\n%s", r.stderr.String())
	}
	rep := r.report(t)
	if rep.Result != "cancelled" || rep.Error == nil || rep.Error.Class != "cancelled" {
		t.Errorf("report result %q, error %+v; want cancelled", rep.Result, rep.Error)
	}
	if rep.Driver.Version != "9.0.0" {
		t.Errorf("report driver %+v; want the 9.0.0 fixture", rep.Driver)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name+"="+p.Result)
	}
	if got, want := strings.Join(phases, ","), "download=ok,prepare=ok,execute=failed,rollback=ok"; got != want {
		t.Errorf("report phases %s; want %s", got, want)
	}
	if !rep.RolledBack {
		t.Error("report rolled_back is false")
	}
	if len(rep.Checks) != 0 {
		t.Errorf("validation ran after the interruption: %+v", rep.Checks)
	}
	if rep.WorkDir == "" {
		t.Error("report has no work_dir")
	} else if _, err := os.Stat(rep.WorkDir); !os.IsNotExist(err) {
		t.Errorf("work dir %s (scratch data) left behind (stat: %v)", rep.WorkDir, err)
	}
	mustNotAnswer(t, endpoints)
	mustNotAnswer(t, targetClientURLs(rep))
}

func TestCheckCommand(t *testing.T) {
	res := cli(t, time.Minute, "check", "scripts/etcd.star").mustSucceed(t)
	if !strings.HasPrefix(res.Stdout, "ok   scripts/etcd.star: driver etcd@1.0.0") {
		t.Errorf("check of a good script printed:\n%s", res.Stdout)
	}
	bad := badinput("syntax", "etcd.star")
	res = cli(t, time.Minute, "check", "scripts/etcd.star", bad).mustFail(t, 2)
	if !strings.Contains(res.Stdout, "ok   scripts/etcd.star") || !strings.Contains(res.Stdout, "FAIL "+bad) || !strings.Contains(res.Stdout, "syntax error") || !fileLineCol.MatchString(res.Stdout) {
		t.Errorf("check of a good and a bad script printed:\n%s", res.Stdout)
	}
}

// driversTable parses the output of `restore-run drivers` into rows of fields.
func driversTable(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME VERSION API SOURCE SHADOWED BY" {
		t.Fatalf("drivers printed:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "not loaded:") {
			continue
		}
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestDriversCommand(t *testing.T) {
	res := cli(t, time.Minute, "drivers").mustSucceed(t)
	found := false
	for _, row := range driversTable(t, res.Stdout) {
		if len(row) == 5 && row[0] == "etcd" && row[1] == "1.0.0" && row[2] == "1" && row[3] == "embedded:etcd.star" && row[4] == "-" {
			found = true
		}
	}
	if !found {
		t.Errorf("drivers does not list etcd 1.0.0 api 1 embedded, not shadowed:\n%s", res.Stdout)
	}

	// An override of the same name and version shadows the embedded script.
	dir := t.TempDir()
	text, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "etcd.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd.star"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	override := filepath.Join(dir, "etcd.star")
	res = cli(t, time.Minute, "drivers", "--scripts", dir).mustSucceed(t)
	var embedded, over bool
	for _, row := range driversTable(t, res.Stdout) {
		if len(row) == 5 && row[0] == "etcd" && row[1] == "1.0.0" && row[3] == "embedded:etcd.star" && row[4] == override {
			embedded = true
		}
		if len(row) == 5 && row[0] == "etcd" && row[1] == "1.0.0" && row[3] == override && row[4] == "-" {
			over = true
		}
	}
	if !embedded || !over {
		t.Errorf("drivers --scripts %s does not show %s shadowing embedded:etcd.star:\n%s", dir, override, res.Stdout)
	}

	// A restore with the override runs it and says so.
	res = cli(t, 2*time.Minute, "restore", "--scripts", dir, "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd").mustSucceed(t)
	if res.Report == nil || res.Report.Driver.Source != override || len(res.Report.Shadows) != 1 || res.Report.Shadows[0].Loser != "embedded:etcd.star" {
		t.Errorf("report of a restore with the override: driver %+v, shadows %+v; want the override, shadowing embedded:etcd.star", res.Report.Driver, res.Report.Shadows)
	}
}

func TestDriversShow(t *testing.T) {
	res := cli(t, time.Minute, "drivers", "show", "etcd").mustSucceed(t)
	for _, want := range []string{"etcd@1.0.0 (api 1, engine etcd)", "source: embedded:etcd.star", "sha256: " + etcdStarSHA256(t), "params:",
		"bump_revision (int, default 0)", "mark_compacted (bool, default false)", "skip_hash_check (bool, default false)", "keep_previous (bool, default false)"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("drivers show etcd does not print %q:\n%s", want, res.Stdout)
		}
	}
	cli(t, time.Minute, "drivers", "show", "nosuchdb").mustFail(t, 2, "nosuchdb")
}

func TestDriversExport(t *testing.T) {
	res := cli(t, time.Minute, "drivers", "export", "etcd").mustSucceed(t)
	want, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "etcd.star"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != string(want) {
		t.Errorf("drivers export etcd printed %d bytes that differ from scripts/etcd.star (%d bytes)", len(res.Stdout), len(want))
	}
}

func TestPlan(t *testing.T) {
	res := cli(t, time.Minute, "plan", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3").mustSucceed(t)
	for _, want := range []string{"etcd.snapshot_restore", "etcd.start_members", "Nothing was changed"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("plan output does not mention %q:\n%s", want, res.Stdout)
		}
	}
	if n := strings.Count(res.Stdout, "WRITE restore etcd member "); n != 3 || strings.Count(res.Stdout, "etcd.snapshot_restore(") != 3 {
		t.Errorf("plan lists %d member restores, want 3:\n%s", n, res.Stdout)
	}
	rep := res.Report
	if rep == nil || rep.Result != "planned" {
		t.Fatalf("plan report %+v; want result planned", rep)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name+"="+p.Result)
	}
	if got, want := strings.Join(phases, ","), "download=planned,prepare=planned,execute=planned,validate=skipped"; got != want {
		t.Errorf("plan phases %s; want %s", got, want)
	}
	if _, err := os.Stat(rep.WorkDir); !os.IsNotExist(err) {
		t.Errorf("plan left its work dir %s (stat: %v)", rep.WorkDir, err)
	}
	mustNotAnswer(t, targetClientURLs(rep))
}
