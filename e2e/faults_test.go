package e2e

// The fault suite (docs/reliability.md): each test injects one fault into a restore
// on a real target (a 3-member etcd cluster of OS processes, a mariadbd run as a
// service) and checks the outcome, that the target's previous data survived, and
// how long the target took to serve the right data again (time to recover, from
// the fault to the target serving: the new data after a successful run or resume,
// the previous data after a rollback). Each test records a row; with
// -fault-table FILE, TestMain writes them as the Markdown table of
// docs/reliability.md:
//
//	go test ./e2e -run 'TestFault' -count=1 -fault-table /tmp/faults.md

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/etcdops"
	"github.com/restore-run/restore-run/internal/s3test"
)

var faultTable = flag.String("fault-table", "", "write the fault suite's results as a Markdown table to this file")

// faultRow is one line of the fault table.
type faultRow struct {
	Driver, Fault, Outcome, Previous string
	Recover                          time.Duration
	Passed                           bool
}

var faultRows struct {
	sync.Mutex
	rows []faultRow
}

// recordFault adds the test's row (at its end, so that a failure shows).
func recordFault(t *testing.T, row faultRow) {
	t.Helper()
	t.Logf("fault %s / %s: %s; previous data: %s; recovered in %.2fs", row.Driver, row.Fault, row.Outcome, row.Previous, row.Recover.Seconds())
	t.Cleanup(func() {
		row.Passed = !t.Failed()
		faultRows.Lock()
		faultRows.rows = append(faultRows.rows, row)
		faultRows.Unlock()
	})
}

// writeFaultTable writes the recorded rows as Markdown (TestMain).
func writeFaultTable() {
	if *faultTable == "" {
		return
	}
	faultRows.Lock()
	defer faultRows.Unlock()
	var b strings.Builder
	drivers := map[string][]faultRow{}
	var names []string
	for _, r := range faultRows.rows {
		if _, ok := drivers[r.Driver]; !ok {
			names = append(names, r.Driver)
		}
		drivers[r.Driver] = append(drivers[r.Driver], r)
	}
	sort.Strings(names)
	for _, d := range names {
		fmt.Fprintf(&b, "### %s\n\n| fault | outcome | previous data survived | time to recover | test |\n| --- | --- | --- | --- | --- |\n", d)
		for _, r := range drivers[d] {
			res := "pass"
			if !r.Passed {
				res = "**FAIL**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.2f s | %s |\n", r.Fault, r.Outcome, r.Previous, r.Recover.Seconds(), res)
		}
		b.WriteString("\n")
	}
	os.WriteFile(*faultTable, []byte(b.String()), 0o644)
}

// ---- helpers ----

// kill9 kills restore-run with SIGKILL and waits for it.
func kill9(t *testing.T, r *rtRun) time.Time {
	t.Helper()
	at := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	return at
}

// waitStderr waits until restore-run's log matches re.
func waitStderr(t *testing.T, r *rtRun, re string, timeout time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for !rx.MatchString(r.stderr.String()) {
		if !r.running() {
			res := r.wait(t, time.Second)
			t.Fatalf("restore-run exited (%d) before its log matched %q\nstdout:\n%s\nstderr:\n%s", res.Code, re, res.Stdout, rtTail(res.Stderr, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore-run's log did not match %q within %s:\n%s", re, timeout, rtTail(r.stderr.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// phaseStarted is the log line of a phase's first attempt.
func phaseStarted(phase string) string {
	return `"phase":"` + phase + `".*"message":"phase starts"`
}

// resumeRun runs `restore-run resume WORKDIR args...` with the lock dir of the
// interrupted run and waits for it.
func resumeRun(t *testing.T, lockDir, workDir string, args ...string) result {
	t.Helper()
	r := rtStart(t, lockDir, append([]string{"resume", workDir}, args...)...)
	return r.wait(t, rtTimeout)
}

// scriptsWith writes a copy of the shipped driver script with lines inserted at
// the top of its validate function into a new --scripts dir.
func scriptsWith(t *testing.T, driver string, validateLines ...string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, "scripts", driver+".star"))
	if err != nil {
		t.Fatal(err)
	}
	head := "def validate(ctx, snapshot, target):\n"
	if !strings.Contains(string(text), head) {
		t.Fatalf("%s.star has no %q", driver, head)
	}
	ins := ""
	for _, l := range validateLines {
		ins += "    " + l + "\n"
	}
	dir := t.TempDir()
	writeText(t, filepath.Join(dir, driver+".star"), strings.Replace(string(text), head, head+ins, 1))
	return dir
}

// bigEtcdSnapshot saves a snapshot of a source member holding n keys of size
// bytes each (prefix new/), for downloads that take a while.
func bigEtcdSnapshot(t *testing.T, n, size int) *rtSource {
	t.Helper()
	s := &rtSource{src: startSource(t), dir: t.TempDir()}
	ctx := context.Background()
	val := strings.Repeat("v", size)
	for i := 0; i < n; i++ {
		if err := s.src.client.Put(ctx, fmt.Sprintf("new/big-%05d", i), fmt.Sprintf("%d:%s", i, val)); err != nil {
			t.Fatal(err)
		}
	}
	s.save(t, "big.db")
	return s
}

// packWithParts packs a bare etcd snapshot file into a manifest snapshot with
// part digests.
func packWithParts(t *testing.T, file string, partSize int64) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "snapshot")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "etcd", Source: "e2e fault suite",
		Files: []blobstore.PackFile{{Path: file, Name: "member.db"}}, Dest: dest, PartSize: partSize}); err != nil {
		t.Fatal(err)
	}
	return dest
}

// etcdPrevious checks that every member's previous-RUN holds the OLD dataset.
func etcdPrevious(t *testing.T, c *realCluster, runID string) {
	t.Helper()
	for _, m := range c.Members {
		sameKeys(t, c.Old, rtBoltKeys(t, filepath.Join(m.side(), "previous-"+runID)))
	}
}

// untouched checks that no member was restarted or had its service called.
type snapshotOfCluster struct {
	pids   []int
	events []string
}

func clusterState(t *testing.T, c *realCluster) snapshotOfCluster {
	s := snapshotOfCluster{pids: c.pids(t)}
	for _, m := range c.Members {
		s.events = append(s.events, m.events())
	}
	return s
}

func (s snapshotOfCluster) untouched(t *testing.T, c *realCluster) {
	t.Helper()
	if got := c.pids(t); fmt.Sprint(got) != fmt.Sprint(s.pids) {
		t.Errorf("member pids %v, were %v: members were restarted", got, s.pids)
	}
	for i, m := range c.Members {
		if ev := m.events(); ev != s.events[i] {
			t.Errorf("member %s: the service was called:\n%s", m.Name, strings.TrimPrefix(ev, s.events[i]))
		}
	}
}

func etcdRestoreArgs(snap string, c *realCluster, workDir string, extra ...string) []string {
	return append([]string{"restore", "--driver", "etcd", "--snapshot", snap, "--target", c.Target, "--workdir", workDir,
		"--param", "keep_previous=true", "--progress", "none"}, extra...)
}

// ---- etcd ----

// TestFaultEtcdBlobStore: connection resets, a burst of 503 SlowDown and a stalled
// connection while the snapshot downloads from S3: every read is retried and the
// restore succeeds; the previous data is kept in previous-RUN.
func TestFaultEtcdBlobStore(t *testing.T) {
	c := startRealCluster(t)
	src := bigEtcdSnapshot(t, 400, 1000)
	s := newS3Setup(t)
	s.pack(t, src.snap, "etcd/faults", "2026-11-25T10:00:00Z")
	proxy := s3test.NewFaultProxy(t, s.srv.Addr, func(n int64) s3test.Fault {
		switch {
		case n == 1 || n == 4:
			return s3test.Reset
		case n >= 2 && n <= 3, n >= 6 && n <= 8:
			return s3test.SlowDown
		case n == 5:
			return s3test.Stall
		}
		return s3test.Pass
	})
	cfg := filepath.Join(t.TempDir(), "stores.yaml")
	writeText(t, cfg, fmt.Sprintf("stores:\n  - match: s3://\n    endpoint: %s\n    region: %s\n    path_style: true\n", proxy.URL, s.srv.Region))
	start := time.Now()
	r := rtStart(t, t.TempDir(), etcdRestoreArgs(s.ref("etcd/faults"), c, t.TempDir(), "--store-config", cfg, "--part-size", "64KiB", "--stall-timeout", "1s", "--concurrency", "2")...)
	res := r.wait(t, rtTimeout).mustSucceed(t)
	took := time.Since(start)
	c.servesExactly(t, "NEW", src.want)
	etcdPrevious(t, c, res.Report.RunID)
	if proxy.Faults.Load() < 6 {
		t.Errorf("only %d faults injected", proxy.Faults.Load())
	}
	if !strings.Contains(res.Stderr, "retry") {
		t.Errorf("no retry in the log:\n%s", rtTail(res.Stderr, 20))
	}
	recordFault(t, faultRow{Driver: "etcd", Fault: fmt.Sprintf("blob store: 2 resets, 5× 503 SlowDown, 1 stalled read (%d faults in %d ranged reads)", proxy.Faults.Load(), proxy.Gets.Load()),
		Outcome: "success: each read retried (backoff, Retry-After, 1 s stall timeout)", Previous: "yes: kept in previous-RUN (keep_previous)", Recover: took})
}

// TestFaultEtcdKillDuringDownload: kill -9 while the snapshot downloads (slowly,
// --bandwidth-limit): the target was not touched; resume fetches only the parts
// not yet verified and finishes the restore.
func TestFaultEtcdKillDuringDownload(t *testing.T) {
	c := startRealCluster(t)
	src := bigEtcdSnapshot(t, 2500, 1000)
	snap := packWithParts(t, src.snap, 64<<10)
	before := clusterState(t, c)
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, etcdRestoreArgs(snap, c, wd, "--bandwidth-limit", "256KiB", "--concurrency", "2")...)
	waitStderr(t, r, phaseStarted("download"), time.Minute)
	// The journal is made durable every 2 s (transfer.SyncInterval).
	time.Sleep(4500 * time.Millisecond)
	killed := kill9(t, r)
	before.untouched(t, c)
	c.servesExactly(t, "OLD", c.Old)
	textfile := filepath.Join(t.TempDir(), "restore.prom")
	res := resumeRun(t, lockDir, wd, "--metrics-textfile", textfile).mustSucceed(t)
	took := time.Since(killed)
	c.servesExactly(t, "NEW", src.want)
	etcdPrevious(t, c, res.Report.RunID)
	if p := rtPhase(res.Report, "download"); p == nil || p.Result != "ok" {
		t.Errorf("download on resume: %+v", p)
	}
	prom, _ := os.ReadFile(textfile)
	m := regexp.MustCompile(`restore_run_download_resumed_bytes_total\{driver="etcd"\} (\S+)`).FindSubmatch(prom)
	resumed := 0.0
	if m != nil {
		resumed, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if resumed == 0 {
		t.Errorf("the resume fetched everything again: %q", m)
	}
	recordFault(t, faultRow{Driver: "etcd", Fault: "kill -9 of restore-run during download, then `resume`",
		Outcome: fmt.Sprintf("target untouched by the killed run; resume fetched only the missing parts (%.0f bytes were not fetched again) and restored", resumed), Previous: "yes: served until the resume, then kept in previous-RUN", Recover: took})
}

// TestFaultEtcdKillDuringExecute: kill -9 while the members start on the
// restored data (one start is slow): the previous data is on disk in
// previous-RUN; resume re-enters execute (staged restore kept, swap already done),
// validates and commits. The resume takes over the lock the dead run left.
func TestFaultEtcdKillDuringExecute(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	slow := c.Members[2]
	slow.mark(t, "slow-start")
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, etcdRestoreArgs(src.snap, c, wd)...)
	rtWaitEvent(t, r, slow, "slow start", 2*time.Minute)
	runID := rtRunID(t, r.stderr.String())
	killed := kill9(t, r)
	pid := r.cmd.Process.Pid
	// The machine's service manager would have gone on: here the orphaned slow
	// start is stopped, like after a reboot.
	for _, p := range rtProcsWith(slow.State, "") {
		syscall.Kill(p, syscall.SIGKILL)
	}
	etcdPrevious(t, c, runID) // the previous data is safe on disk while the cluster is down
	res := resumeRun(t, lockDir, wd).mustSucceed(t)
	took := time.Since(killed)
	if res.Report.RunID != runID {
		t.Errorf("resume ran as %s, the interrupted run was %s", res.Report.RunID, runID)
	}
	if p := rtPhase(res.Report, "download"); p == nil || p.Result != "done before resume" {
		t.Errorf("download on resume: %+v", p)
	}
	if !strings.Contains(res.Stderr, fmt.Sprintf(`pid %d`, pid)) || !strings.Contains(res.Stderr, "taking over the lock of the interrupted run") {
		t.Errorf("the resume does not name the dead holder of the lock (pid %d):\n%s", pid, rtTail(res.Stderr, 40))
	}
	for _, call := range res.Report.Calls {
		if call.Builtin == "etcd.snapshot_restore" {
			t.Errorf("resume restored the snapshot again (checkpoint etcd:staged ignored): %s", call)
		}
	}
	c.servesExactly(t, "NEW", src.want)
	etcdPrevious(t, c, runID)
	recordFault(t, faultRow{Driver: "etcd", Fault: "kill -9 of restore-run during execute (members starting on the restored data), then `resume`",
		Outcome: "resume took over the stale lock (dead pid named), kept the staged restore (checkpoint), finished the swap, validated", Previous: "yes: on disk in previous-RUN throughout", Recover: took})
}

// TestFaultEtcdKillDuringValidate: kill -9 during validate (made slow by a script
// override): resume runs validate again and commits.
func TestFaultEtcdKillDuringValidate(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	scripts := scriptsWith(t, "etcd", "time.sleep(4)")
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, etcdRestoreArgs(src.snap, c, wd, "--scripts", scripts)...)
	waitStderr(t, r, phaseStarted("validate"), 2*time.Minute)
	runID := rtRunID(t, r.stderr.String())
	time.Sleep(time.Second)
	killed := kill9(t, r)
	etcdPrevious(t, c, runID)
	res := resumeRun(t, lockDir, wd).mustSucceed(t)
	took := time.Since(killed)
	var phases []string
	for _, p := range res.Report.Phases {
		phases = append(phases, p.Name+":"+p.Result)
	}
	if got := strings.Join(phases, " "); got != "download:done before resume prepare:done before resume execute:done before resume validate:ok commit:ok" {
		t.Errorf("resume phases: %s", got)
	}
	c.servesExactly(t, "NEW", src.want)
	etcdPrevious(t, c, runID)
	recordFault(t, faultRow{Driver: "etcd", Fault: "kill -9 of restore-run during validate, then `resume`",
		Outcome: "resume skipped the finished phases, validated again, committed", Previous: "yes: in previous-RUN", Recover: took})
}

// TestFaultEtcdMemberKilledDuringExecute: an etcd member process is killed
// (SIGKILL) as soon as it starts on the restored data: the cluster never gets
// healthy, execute fails, the rollback puts the previous data back and starts
// every member again.
func TestFaultEtcdMemberKilledDuringExecute(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	victim := c.Members[0]
	before := victim.pid(t)
	r := rtStart(t, t.TempDir(), etcdRestoreArgs(src.snap, c, t.TempDir(), "--param", "health_timeout=8")...)
	var killed time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for killed.IsZero() {
		if p := victim.pid(t); p != 0 && p != before && strings.Contains(victim.events(), fmt.Sprintf("started pid %d", p)) {
			syscall.Kill(p, syscall.SIGKILL)
			killed = time.Now()
			break
		}
		if !r.running() || time.Now().After(deadline) {
			t.Fatalf("member %s was not restarted:\n%s", victim.Name, rtTail(r.stderr.String(), 30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := r.wait(t, rtTimeout).mustFail(t, 1)
	rtCheckRolledBack(t, c, res, "failed", src.want)
	c.servesExactly(t, "OLD", c.Old)
	took := time.Since(killed)
	recordFault(t, faultRow{Driver: "etcd", Fault: "an etcd member killed (SIGKILL) as it starts on the restored data",
		Outcome: "execute failed (cluster not healthy within health_timeout), rolled back, exit 1", Previous: "yes: served again by every member", Recover: took})
}

// TestFaultEtcdDiskFull: the work dir is a 4 MiB tmpfs and the snapshot is larger:
// download fails at once with "no space left", before the target is touched.
func TestFaultEtcdDiskFull(t *testing.T) {
	wd := smallFS(t, "4m")
	c := startRealCluster(t)
	src := bigEtcdSnapshot(t, 6000, 1000)
	before := clusterState(t, c)
	start := time.Now()
	res := cli(t, rtTimeout, etcdRestoreArgs(src.snap, c, wd)...).mustFail(t, 1, "no space left on device")
	took := time.Since(start)
	failedPhase(t, res.Report, "download", "permanent")
	before.untouched(t, c)
	c.servesExactly(t, "OLD", c.Old)
	recordFault(t, faultRow{Driver: "etcd", Fault: "disk full during download (4 MiB tmpfs work dir, ~7 MiB snapshot)",
		Outcome: "download failed at once (fallocate: no space left on device), exit 1; nothing touched", Previous: "yes: never touched", Recover: took})
}

// smallFS mounts a tmpfs of size (e.g. "4m") on a new dir, unmounted at the end.
// It needs root: the suite runs as root (./test.sh, CI); anyone else gets a clear
// failure, never a silent skip.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the disk-full fault mounts a %s tmpfs and needs root (run the e2e tests as root, as ./test.sh and CI do)", size)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v: %s", size, dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestFaultEtcdCorruptPart: one byte of one part of a manifest snapshot is
// flipped: the part fails its digest (read twice), download fails with class
// corruption and nothing is touched.
func TestFaultEtcdCorruptPart(t *testing.T) {
	c := startRealCluster(t)
	src := bigEtcdSnapshot(t, 300, 1000)
	snap := packWithParts(t, src.snap, 64<<10)
	flipByte(t, filepath.Join(snap, "member.db"))
	before := clusterState(t, c)
	start := time.Now()
	res := cli(t, rtTimeout, etcdRestoreArgs(snap, c, t.TempDir())...).mustFail(t, 1, "part")
	took := time.Since(start)
	failedPhase(t, res.Report, "download", "corruption")
	before.untouched(t, c)
	c.servesExactly(t, "OLD", c.Old)
	recordFault(t, faultRow{Driver: "etcd", Fault: "a corrupt part (one flipped byte)",
		Outcome: "download failed, class corruption, naming the part (read twice); exit 1; nothing touched", Previous: "yes: never touched", Recover: took})
}

// TestFaultEtcdScriptErrorInValidate: validate raises a Starlark error after the
// swap: the run fails with class script (exit 2) and rolls back.
func TestFaultEtcdScriptErrorInValidate(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	scripts := scriptsWith(t, "etcd", `{}["no such key"]`)
	start := time.Now()
	res := cli(t, rtTimeout, etcdRestoreArgs(src.snap, c, t.TempDir(), "--scripts", scripts)...).mustFail(t, 2, "no such key")
	took := time.Since(start)
	rtCheckRolledBack(t, c, res, "failed", src.want)
	if p := rtPhase(res.Report, "validate"); p == nil || p.ErrorClass != "script" || p.Attempts != 1 {
		t.Errorf("validate %+v, want failed once with class script", p)
	}
	c.servesExactly(t, "OLD", c.Old)
	recordFault(t, faultRow{Driver: "etcd", Fault: "a script error in validate (after the swap)",
		Outcome: "validate failed, class script, not retried; rolled back; exit 2", Previous: "yes: served again by every member", Recover: took})
}

// TestFaultEtcdCtrlC: SIGINT while a member starts on the restored data: exit 130
// after the rollback.
func TestFaultEtcdCtrlC(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	slow := c.Members[2]
	slow.mark(t, "slow-start")
	r := rtStart(t, t.TempDir(), etcdRestoreArgs(src.snap, c, t.TempDir())...)
	rtWaitEvent(t, r, slow, "slow start", 2*time.Minute)
	sig := time.Now()
	interrupt(r.cmd)
	res := r.wait(t, time.Minute)
	if res.Code != 130 {
		t.Fatalf("exit %d, want 130\n%s", res.Code, rtTail(res.Stderr, 30))
	}
	rtCheckRolledBack(t, c, res, "cancelled", src.want)
	c.servesExactly(t, "OLD", c.Old)
	recordFault(t, faultRow{Driver: "etcd", Fault: "Ctrl-C (SIGINT) during execute",
		Outcome: "in-flight service start stopped, rolled back, exit 130", Previous: "yes: served again by every member", Recover: time.Since(sig)})
}

// auditLines reads an audit log.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

var _ = etcdops.FreeLoopbackPorts
