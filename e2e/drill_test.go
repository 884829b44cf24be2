package e2e

// Drills through the binary: the quickstart drill by name, a drill that misses its
// RTO (the report names the phase that ran long), the full drill against real
// servers (MariaDB, a Cassandra node, etcd from an S3 store through latest) with
// store faults and servers killed mid-restore, a drill whose script fails and one
// that is interrupted (every scratch server and temp dir is gone afterwards), and
// the HTML report rendered by headless Chromium.

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drill"
)

// drillRun is one `restore-run drill` invocation: its output, exit code and
// report.json.
type drillRun struct {
	result
	rep *drill.Report
	dir string // --report-dir
	tmp string // the binary's TMPDIR
}

// runDrill runs restore-run drill args with a --report-dir and a private TMPDIR,
// and reads the report. It fails the test if the binary does not finish within
// timeout.
func runDrill(t *testing.T, timeout time.Duration, args ...string) drillRun {
	t.Helper()
	d := drillRun{dir: filepath.Join(t.TempDir(), "report"), tmp: t.TempDir()}
	cmd, out, errb := drillCmd(t, d, args)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		t.Fatalf("restore-run %s: did not finish within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, out, errb)
	}
	d.Stdout, d.Stderr = out.String(), errb.String()
	if ee, ok := err.(*exec.ExitError); ok {
		d.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if rep, err := drill.ReadReport(filepath.Join(d.dir, "report.json")); err == nil {
		d.rep = rep
	}
	return d
}

func drillCmd(t *testing.T, d drillRun, args []string) (*exec.Cmd, *lockedBuffer, *lockedBuffer) {
	cmd := exec.Command(binary, append(append([]string{"drill"}, args...), "--report-dir", d.dir)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "TMPDIR="+d.tmp, "RESTORE_RUN_LOCK_DIR="+t.TempDir())
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	return cmd, out, errb
}

func (d drillRun) mustExit(t *testing.T, code int) drillRun {
	t.Helper()
	if d.Code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr (end):\n%s", d.Code, code, d.Stdout, drillTail(d.Stderr, 6000))
	}
	if d.rep == nil {
		t.Fatalf("no report.json in %s\nstdout:\n%s", d.dir, d.Stdout)
	}
	return d
}

func drillTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// restore returns the drill report's restore called name.
func (d drillRun) restore(t *testing.T, name string) *drill.RestoreReport {
	t.Helper()
	for _, r := range d.rep.Restores {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("the report has no restore %q", name)
	return nil
}

// nothingLeft fails the test if a process still runs whose command line names
// the run's TMPDIR (a scratch mariadbd, a Cassandra JVM) or if anything is left
// in that TMPDIR (work dirs, sockets).
func (d drillRun) nothingLeft(t *testing.T) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(d.tmp)) {
			t.Errorf("a process of the drill still runs: pid %s: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	left, _ := os.ReadDir(d.tmp)
	for _, e := range left {
		t.Errorf("left in the drill's TMPDIR: %s", e.Name())
	}
}

func writeDrill(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drill.star")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDrillQuickstart runs the embedded quickstart drill by name, twice, with a
// metrics textfile: the second run misses an impossible objective, and the
// textfile keeps the first run's last success.
func TestDrillQuickstart(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "drills.prom")
	d := runDrill(t, 2*time.Minute, "quickstart", "--metrics-textfile", prom).mustExit(t, 0)
	if d.rep.Result != drill.Passed || len(d.rep.Restores) != 1 {
		t.Fatalf("result %s, %d restores\n%s", d.rep.Result, len(d.rep.Restores), d.Stdout)
	}
	r := d.restore(t, "etcd")
	if !r.Passed || r.Result != "success" || r.RTOObjective == nil || len(r.Checks) != 6 {
		t.Errorf("restore: passed %v, result %s, checks %+v", r.Passed, r.Result, r.Checks)
	}
	for _, f := range []string{"report.json", "junit.xml", "report.html", "restores/etcd.json"} {
		if _, err := os.Stat(filepath.Join(d.dir, f)); err != nil {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	if !strings.Contains(d.Stdout, "drill quickstart: PASSED") {
		t.Errorf("stdout:\n%s", d.Stdout)
	}
	drillJUnit(t, filepath.Join(d.dir, "junit.xml"), 2, 0)
	d.nothingLeft(t)
	metrics1, _ := os.ReadFile(prom)
	for _, want := range []string{`restore_run_drill_passed{drill="quickstart"} 1`, `restore_run_drill_runs_total{drill="quickstart",result="passed"} 1`,
		`restore_run_drill_restore_rto_objective_seconds{drill="quickstart",driver="etcd",restore="etcd"} 30`, `restore_run_drill_last_success_timestamp_seconds{drill="quickstart"}`} {
		if !strings.Contains(string(metrics1), want) {
			t.Errorf("the metrics textfile lacks %s:\n%s", want, metrics1)
		}
	}

	f := runDrill(t, 2*time.Minute, "quickstart", "--param", "rto=1ms", "--metrics-textfile", prom).mustExit(t, 1)
	if f.rep.Result != drill.Failed || !strings.Contains(strings.Join(f.rep.Failures, "\n"), "missed its objective") {
		t.Errorf("failures: %v", f.rep.Failures)
	}
	metrics2, _ := os.ReadFile(prom)
	for _, want := range []string{`restore_run_drill_passed{drill="quickstart"} 0`, `restore_run_drill_runs_total{drill="quickstart",result="passed"} 1`,
		`restore_run_drill_runs_total{drill="quickstart",result="failed"} 1`} {
		if !strings.Contains(string(metrics2), want) {
			t.Errorf("the second textfile lacks %s:\n%s", want, metrics2)
		}
	}
	if drillMetricValue(t, metrics2, `restore_run_drill_last_success_timestamp_seconds{drill="quickstart"}`) != drillMetricValue(t, metrics1, `restore_run_drill_last_success_timestamp_seconds{drill="quickstart"}`) {
		t.Errorf("a failed drill moved the last success time")
	}
}

func drillMetricValue(t *testing.T, text []byte, series string) string {
	t.Helper()
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no series %s in\n%s", series, text)
	return ""
}

// checkJUnit parses a junit.xml and checks its test and failure counts.
func drillJUnit(t *testing.T, path string, tests, failures int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, data)
	}
	if suites.Tests != tests || suites.Failures != failures || len(suites.Suites) != 1 || len(suites.Suites[0].Cases) != tests {
		t.Errorf("junit: %d tests, %d failures, want %d and %d\n%s", suites.Tests, suites.Failures, tests, failures, data)
	}
	return string(data)
}

// TestDrillMissesRTO: a slow store makes the download take most of the time; the
// drill fails (exit 1) and every report says that download ran long.
func TestDrillMissesRTO(t *testing.T) {
	p := writeDrill(t, `
drill(name = "slow-store")
drill.restore(
    name = "etcd",
    driver = "etcd",
    snapshot = "testdata/etcd/quickstart",
    target = "scratch://etcd",
    rto = 1,
    faults = [drill.slow_store(bandwidth = "48KiB")],
    expect = [drill.expect_key("/app/config/global/schema_version", "43")],
)
`)
	var pushed struct {
		sync.Mutex
		method, path, body string
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		pushed.Lock()
		pushed.method, pushed.path, pushed.body = req.Method, req.URL.Path, string(body)
		pushed.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	d := runDrill(t, 2*time.Minute, p, "--metrics-push", gw.URL).mustExit(t, 1)
	pushed.Lock()
	// The grouping labels come in any order: /metrics/job/restore_run/{instance/HOST,restore_drill/NAME}.
	if pushed.method != http.MethodPost || !strings.HasPrefix(pushed.path, "/metrics/job/restore_run/") || !strings.Contains(pushed.path+"/", "/restore_drill/slow-store/") ||
		!strings.Contains(pushed.path, "/instance/") ||
		!strings.Contains(pushed.body, "restore_run_drill_passed") {
		t.Errorf("push: %s %s (%d bytes)", pushed.method, pushed.path, len(pushed.body))
	}
	pushed.Unlock()
	r := d.restore(t, "etcd")
	if r.Passed || r.Result != "success" {
		t.Fatalf("passed %v, result %s: the restore itself works, only its objective is missed", r.Passed, r.Result)
	}
	var rto *drill.Check
	for i, c := range r.Checks {
		if c.Kind == "objective" {
			rto = &r.Checks[i]
		}
	}
	if rto == nil || rto.OK || !strings.Contains(rto.Detail, "download ran long") {
		t.Fatalf("the RTO check does not name the phase that ran long: %+v", rto)
	}
	over := ""
	for _, ph := range r.Phases {
		if ph.Over {
			over += ph.Name
		}
	}
	if over != "download" {
		t.Errorf("phases marked as over: %q, want download", over)
	}
	if r.FaultStats["throttled_bytes"] != 110624 {
		t.Errorf("fault stats %v: every byte of the snapshot should have been slowed", r.FaultStats)
	}
	for _, f := range []string{"junit.xml", "report.html"} {
		data, _ := os.ReadFile(filepath.Join(d.dir, f))
		if !strings.Contains(string(data), "download ran long") {
			t.Errorf("%s does not say that download ran long", f)
		}
	}
	if !strings.Contains(d.Stdout, "FAIL etcd: RTO within") || !strings.Contains(d.Stdout, "download ran long") {
		t.Errorf("stdout:\n%s", d.Stdout)
	}
	drillJUnit(t, filepath.Join(d.dir, "junit.xml"), 1, 1)
	d.nothingLeft(t)
}

// TestDrillUsageErrors: a script that does not parse, an unknown --param, an
// unknown drill name and an unknown driver are usage or script errors (exit 2).
func TestDrillUsageErrors(t *testing.T) {
	syntax := writeDrill(t, "drill(name = \"x\")\ndrill.restore(name = \n")
	d := runDrill(t, time.Minute, syntax)
	if d.Code != 2 || !strings.Contains(d.Stderr, "drill.star:3:1") {
		t.Errorf("syntax error: exit %d\n%s", d.Code, d.Stderr)
	}
	d = runDrill(t, time.Minute, "quickstart", "--param", "nope=1")
	if d.Code != 2 || !strings.Contains(d.Stderr, "unknown --param nope") {
		t.Errorf("unknown param: exit %d\n%s", d.Code, d.Stderr)
	}
	d = runDrill(t, time.Minute, "no-such-drill")
	if d.Code != 2 || !strings.Contains(d.Stderr, "drills: full, quickstart") {
		t.Errorf("unknown drill: exit %d\n%s", d.Code, d.Stderr)
	}
	unknown := writeDrill(t, `drill.restore(name = "x", driver = "nosuch", snapshot = "testdata/etcd/quickstart", target = "scratch://etcd")`)
	d = runDrill(t, time.Minute, unknown).mustExit(t, 2)
	if d.rep.Result != drill.ScriptError || !strings.Contains(d.Stderr, "nosuch") {
		t.Errorf("unknown driver: %s\n%s", d.rep.Result, d.Stderr)
	}
	d.nothingLeft(t)
}

// TestDrillScriptFailsCleansUp: a custom expectation with a bug runs while a
// scratch mariadbd and a scratch etcd serve; the drill stops with the script's
// error (exit 2) and its backtrace, and nothing is left: no process, no temp dir.
func TestDrillScriptFailsCleansUp(t *testing.T) {
	shop := theShop(t)
	p := writeDrill(t, fmt.Sprintf(`
drill(name = "broken")

def broken(r):
    rows = sql.query("SELECT COUNT(*) AS n FROM shop.customers")
    return rows[0]["no such column"] > 0

drill.parallel([
    drill.spec(name = "mysql", driver = "mysql", snapshot = %q, target = "scratch://mysql",
               expect = [drill.expect(name = "buggy", fn = broken)]),
    drill.spec(name = "etcd", driver = "etcd", snapshot = "testdata/etcd/quickstart", target = "scratch://etcd?members=3"),
])
fail("not reached")
`, shop.snaps["dump"]))
	d := runDrill(t, 4*time.Minute, p).mustExit(t, 2)
	if d.rep.Result != drill.ScriptError || d.rep.Error == nil || !strings.Contains(d.rep.Error.Message, "no such column") {
		t.Fatalf("result %s, error %+v", d.rep.Result, d.rep.Error)
	}
	if !strings.Contains(d.Stderr, "drill.star:6:") || strings.Contains(d.Stderr, "not reached") {
		t.Errorf("stderr does not point at the broken line:\n%s", drillTail(d.Stderr, 3000))
	}
	if r := d.restore(t, "etcd"); !r.Passed {
		t.Errorf("the etcd restore beside it: %+v", r.Checks)
	}
	if !strings.Contains(string(drillRead(t, filepath.Join(d.dir, "junit.xml"))), `<error message=`) {
		t.Errorf("junit.xml has no error test case")
	}
	d.nothingLeft(t)
}

func drillRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDrillInterrupted: SIGINT while a scratch mariadbd loads a dump through a
// slow store: the drill exits 130, reports itself interrupted, and nothing is
// left behind.
func TestDrillInterrupted(t *testing.T) {
	shop := theShop(t)
	p := writeDrill(t, fmt.Sprintf(`
drill(name = "interrupted")
drill.parallel([
    drill.spec(name = "mysql", driver = "mysql", snapshot = %q, target = "scratch://mysql",
               faults = [drill.slow_store(bandwidth = "64KiB")]),
    drill.spec(name = "etcd", driver = "etcd", snapshot = "testdata/etcd/quickstart", target = "scratch://etcd?members=3",
               faults = [drill.slow_store(bandwidth = "4KiB")]),
])
`, shop.snaps["dump"]))
	d := drillRun{dir: filepath.Join(t.TempDir(), "report"), tmp: t.TempDir()}
	cmd, out, errb := drillCmd(t, d, []string{p})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until the scratch server runs (mariadbd under the drill's TMPDIR).
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(errb.String(), `"process ready"`) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the scratch mariadbd did not start\n%s", drillTail(errb.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("no exit within 2 minutes of SIGINT\n%s", drillTail(errb.String(), 4000))
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, out, drillTail(errb.String(), 4000))
	}
	rep, err := drill.ReadReport(filepath.Join(d.dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != drill.Interrupted || len(rep.Restores) != 2 {
		t.Errorf("result %s, %d restores", rep.Result, len(rep.Restores))
	}
	for _, r := range rep.Restores {
		if r.Result != "cancelled" || r.Passed {
			t.Errorf("restore %s: %s, passed %v", r.Name, r.Result, r.Passed)
		}
	}
	d.nothingLeft(t)
}

// TestDrillFull runs the shipped full drill against real servers: MySQL (the
// shop dump, packed with 256 KiB parts), Cassandra (a one-node cluster filled and
// packed here) and etcd (the quickstart snapshot in an S3 store, reached through
// latest), restored side by side with store faults, then an etcd member, a
// mariadbd and a Cassandra node killed mid-restore. Every restore must do what the drill expects, and nothing
// may be left behind.
func TestDrillFull(t *testing.T) {
	start := time.Now()
	shop := theShop(t)
	s3 := newS3Setup(t)
	for _, f := range []string{"manifest.json", "snapshot.db"} {
		s3.srv.PutObject(t, s3.bucket, "etcd/2026-11-25/"+f, drillRead(t, filepath.Join(repoRoot, "testdata", "etcd", "quickstart", f)))
	}
	mysqlSnap := filepath.Join(t.TempDir(), "mysql")
	md := shop.md
	md.Format = "mysqldump"
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "mysql", EngineVersion: md.ServerVersion, Source: "e2e shop",
		Files: []blobstore.PackFile{{Path: shop.bare["dump"]}}, Dest: mysqlSnap, Metadata: md.Map(), PartSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	src := startCassandras(t, clusterSpec{name: "drillsrc", nodes: 1})[0]
	fillOneNode(t, src.session(t))
	cassSnap := filepath.Join(t.TempDir(), "cassandra")
	cli(t, 5*time.Minute, "snapshot", "pack", "--engine", "cassandra", "--from-cluster", src.Target, "--to", cassSnap).mustSucceed(t)
	cassops.StopNodes(src.Nodes, 5*time.Second) // the drill has the CPU to itself
	t.Logf("snapshots ready in %s", time.Since(start).Round(time.Second))

	prom := filepath.Join(t.TempDir(), "drills.prom")
	d := runDrill(t, 10*time.Minute, "full",
		"--param", "etcd_snapshot="+s3.ref("etcd/latest"),
		"--param", "mysql_snapshot="+mysqlSnap,
		"--param", "cassandra_snapshot="+cassSnap,
		"--store-config", s3.config, "--metrics-textfile", prom)
	if d.Code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr (end):\n%s", d.Code, d.Stdout, drillTail(d.Stderr, 8000))
	}
	t.Logf("full drill: %.1fs (drill RTO %.1fs)\n%s", d.rep.DurationSeconds, d.rep.RTOSeconds, d.Stdout)
	if keep := os.Getenv("DRILL_FULL_REPORT"); keep != "" {
		os.WriteFile(keep, drillRead(t, filepath.Join(d.dir, "report.html")), 0o644)
	}
	if len(d.rep.Restores) != 6 {
		t.Fatalf("%d restores, want 6", len(d.rep.Restores))
	}
	for _, r := range d.rep.Restores {
		if !r.Passed {
			t.Errorf("restore %s did not pass: %+v", r.Name, r.Checks)
		}
	}
	etcd := d.restore(t, "etcd")
	if !strings.Contains(etcd.Snapshot, "etcd/2026-11-25") || etcd.FaultStats["failed_503"] == 0 || etcd.FaultStats["throttled_bytes"] == 0 {
		t.Errorf("etcd: snapshot %s (latest should resolve to etcd/2026-11-25), fault stats %v", etcd.Snapshot, etcd.FaultStats)
	}
	mysql := d.restore(t, "mysql")
	if mysql.FaultStats["failed_reset"] != 2 || mysql.FaultStats["corrupted_reads"] != 1 {
		t.Errorf("mysql fault stats %v: want 2 resets and 1 corrupted read", mysql.FaultStats)
	}
	expectations := 0
	for _, r := range []*drill.RestoreReport{etcd, mysql, d.restore(t, "cassandra")} {
		for _, c := range r.Checks {
			if c.Kind == "expectation" {
				expectations++
				if !c.OK {
					t.Errorf("%s: expectation %s failed: %s", r.Name, c.Name, c.Detail)
				}
			}
		}
		if r.ExpectEndSeconds <= r.ExpectStartSeconds || r.ExpectStartSeconds < r.StartSeconds+r.RTOSeconds-0.5 {
			t.Errorf("%s: expectations ran %.2f..%.2f, the restore was validated at %.2f", r.Name, r.ExpectStartSeconds, r.ExpectEndSeconds, r.StartSeconds+r.RTOSeconds)
		}
	}
	if expectations != 4 {
		t.Errorf("%d expectations, want 4", expectations)
	}
	for _, name := range []string{"etcd-member-lost", "mysql-server-killed", "cassandra-node-killed"} {
		r := d.restore(t, name)
		if r.Result != "failed" || len(r.Events) == 0 || r.Events[0].Error != "" || r.Group != 2 {
			t.Errorf("%s: result %s, group %d, events %+v", name, r.Result, r.Group, r.Events)
		}
	}
	if k := d.restore(t, "mysql-server-killed"); !strings.Contains(k.Events[0].What, "mariadbd with SIGKILL") || k.FailedIn != "execute" || !k.RolledBack {
		t.Errorf("mysql-server-killed: failed in %s, rolled back %v, events %+v", k.FailedIn, k.RolledBack, k.Events)
	}
	if !strings.Contains(string(drillRead(t, prom)), `restore_run_drill_passed{drill="full"} 1`) {
		t.Errorf("metrics:\n%s", drillRead(t, prom))
	}
	if k := d.restore(t, "cassandra-node-killed"); !strings.Contains(k.Events[0].What, "Cassandra node") || k.FailedIn != "execute" {
		t.Errorf("cassandra-node-killed: failed in %s, events %+v", k.FailedIn, k.Events)
	}
	drillJUnit(t, filepath.Join(d.dir, "junit.xml"), 7, 0)
	d.nothingLeft(t)
	noCassandraLeft(t, d.tmp)
}

// TestDrillReportInChromium renders the HTML report of a drill with faults in
// headless Chromium (Debian's chromium package, installed by test.sh) and checks
// the screenshot: a PNG of the window's size whose pixels show the timeline's
// phase colors and the objective line. Set DRILL_SCREENSHOT=FILE to keep it.
func TestDrillReportInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (./test.sh installs Debian's chromium package): %v", err)
	}
	p := writeDrill(t, `
drill(name = "rendered", rto = 30)
snap = "testdata/etcd/quickstart"
drill.parallel([
    drill.spec(name = "etcd", driver = "etcd", snapshot = snap, target = "scratch://etcd?members=3", rto = 10,
               faults = [drill.slow_store(bandwidth = "96KiB"), drill.store_errors(kind = "503", first = 1)],
               expect = [drill.expect_key("/app/config/global/schema_version", "43")]),
    drill.spec(name = "slow-download", driver = "etcd", snapshot = snap, target = "scratch://etcd", rto = 1,
               faults = [drill.slow_store(bandwidth = "64KiB")]),
    drill.spec(name = "member-lost", driver = "etcd", snapshot = snap, target = "scratch://etcd?members=3",
               faults = [drill.kill(phase = "validate", node = 1)], retry = {"validate": 1, "calls": 1},
               expect = [drill.expect_failure(phase = "validate")]),
])
`)
	d := runDrill(t, 3*time.Minute, p).mustExit(t, 1)
	html := filepath.Join(d.dir, "report.html")
	text := string(drillRead(t, html))
	for _, bad := range []string{"<script", "src=", "<link", "@import", "url(http"} {
		if strings.Contains(text, bad) {
			t.Errorf("the report is not self-contained: it holds %q", bad)
		}
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1280,2000", "file://"+html)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, drillTail(string(out), 3000))
	}
	data := drillRead(t, shot)
	if keep := os.Getenv("DRILL_SCREENSHOT"); keep != "" {
		os.WriteFile(keep, data, 0o644)
	}
	if len(data) < 50_000 {
		t.Errorf("the screenshot is only %d bytes: nothing rendered?", len(data))
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot of %dx%d, want 1280x2000", b.Dx(), b.Dy())
	}
	// The legend's swatches are 168 pixels each: the bars must add thousands.
	for name, least := range map[string]int{"download": 3000, "execute": 600, "validate": 2500} {
		hex := drill.PhaseColors[name]
		n := drillCountColor(img, hex)
		t.Logf("%d pixels of the %s color %s", n, name, hex)
		if n < least {
			t.Errorf("%d pixels of the %s color %s in the screenshot, want at least %d: the timeline did not render", n, name, hex, least)
		}
	}
	if n := drillCountColor(img, "#b91c1c"); n < 100 {
		t.Errorf("%d pixels of the objective/failure red", n)
	}
}

// countColor counts the pixels within a small distance of the color #rrggbb.
func drillCountColor(img image.Image, hex string) int {
	var want [3]int
	for i := range want {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		want[i] = int(v)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			got := [3]int{int(r >> 8), int(g >> 8), int(bl >> 8)}
			ok := true
			for i := range got {
				if d := got[i] - want[i]; d > 10 || d < -10 {
					ok = false
				}
			}
			if ok {
				n++
			}
		}
	}
	return n
}
