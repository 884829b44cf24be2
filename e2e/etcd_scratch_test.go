package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/etcdops"
)

// The tests of this file restore snapshots through the restore-run binary into
// scratch targets and compare every key and value of the restored cluster with the
// source. With --keep the binary holds the scratch cluster up after validation, so
// the test can read it, then stops it with SIGINT.

// savedSnapshot is a snapshot file saved from a live source cluster, with what the
// source held when it was saved.
type savedSnapshot struct {
	path     string
	version  string            // server version Save reported
	revision int64             // the source's revision at the save
	keys     map[string]string // every key and value of the source
	status   etcdops.SnapshotStatus
}

// saveFilledSnapshot starts an in-process etcd, writes a few hundred keys (with
// overwrites and deletes, a large value, an empty value and unusual key bytes) and
// saves a snapshot with etcdops.Save, the same code as `etcdctl snapshot save`.
func saveFilledSnapshot(t *testing.T) savedSnapshot {
	t.Helper()
	ctx := context.Background()
	src := startSource(t)
	fill(t, src.client, "/e2e/apps", 300)
	fill(t, src.client, "/e2e/config", 60)
	for k, v := range map[string]string{
		"/e2e/large":                strings.Repeat("0123456789abcdef", 32<<10), // 512 KiB
		"/e2e/empty":                "",
		"/e2e/unicode/ключ/キー":      "värde ✓",
		"/e2e/binary\x01\x7f\xff":   "\x00\x01\x02\xfe\xff",
		"top-level key without /":   "v",
		"/e2e/config/key-0001/deep": "a key below another key",
	} {
		if err := src.client.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	keys := dump(t, []string{src.member.ClientURL()})
	st, err := src.client.Status(ctx, src.member.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "etcd.db")
	version, err := etcdops.Save(ctx, src.member.ClientURL(), path)
	if err != nil {
		t.Fatal(err)
	}
	fst, err := etcdops.Status(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if fst.Revision != st.Revision || fst.TotalKey != len(keys) || !fst.HasChecksum {
		t.Fatalf("saved snapshot status %+v; want revision %d, %d keys and a checksum", fst, st.Revision, len(keys))
	}
	if int(st.Revision) <= len(keys) {
		t.Fatalf("source revision %d is not ahead of its %d keys: overwrites and deletes are missing", st.Revision, len(keys))
	}
	return savedSnapshot{path: path, version: version, revision: st.Revision, keys: keys, status: fst}
}

// packEtcdSnapshot writes a manifest snapshot (restore-run/v1) of the file at path
// under a new temp dir and returns its reference.
func packEtcdSnapshot(t *testing.T, engineName string, s savedSnapshot) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "snapshot")
	_, err := blobstore.Pack(context.Background(), blobstore.PackOptions{
		Engine: engineName, EngineVersion: s.version, Source: "e2e test source",
		Files:    []blobstore.PackFile{{Path: s.path, Name: "member.db"}},
		Dest:     dest,
		Metadata: map[string]any{"revision": s.revision, "total_key": s.status.TotalKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dest
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a restore-run process the test started and talks to.
type running struct {
	cmd        *exec.Cmd
	args       []string
	reportPath string
	stdout     lockedBuffer
	stderr     lockedBuffer
	lines      chan string // stdout lines
	errLines   chan string // stderr lines
	done       chan struct{}
	exitCode   int
}

// startCLI starts restore-run with args plus --report in the background. The
// process is killed at the end of the test if it still runs.
func startCLI(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{reportPath: filepath.Join(t.TempDir(), "report.json"),
		lines: make(chan string, 1000), errLines: make(chan string, 10000), done: make(chan struct{})}
	r.args = append(append([]string(nil), args...), "--report", r.reportPath)
	r.cmd = exec.Command(binary, r.args...)
	r.cmd.Dir = repoRoot
	r.cmd.Env = append(os.Environ(), "RESTORE_RUN_LOCK_DIR="+t.TempDir())
	outPipe, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pipes sync.WaitGroup
	scan := func(rd io.Reader, buf *lockedBuffer, ch chan string) {
		defer pipes.Done()
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			buf.Write([]byte(line + "\n"))
			select {
			case ch <- line:
			default: // nobody reads this many lines; the buffer keeps them
			}
		}
		io.Copy(io.Discard, rd)
	}
	pipes.Add(2)
	go scan(outPipe, &r.stdout, r.lines)
	go scan(errPipe, &r.stderr, r.errLines)
	go func() {
		pipes.Wait()
		err := r.cmd.Wait()
		r.exitCode = 0
		if ee, ok := err.(*exec.ExitError); ok {
			r.exitCode = ee.ExitCode()
		} else if err != nil {
			r.exitCode = -1
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// output is what the process printed so far, for failure messages.
func (r *running) output() string {
	return fmt.Sprintf("restore-run %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.stdout.String(), r.stderr.String())
}

// waitLine waits until a line of ch satisfies match, failing the test when the
// process exits first or timeout passes.
func (r *running) waitLine(t *testing.T, ch chan string, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line := <-ch:
			if match(line) {
				return line
			}
		case <-r.done:
			// Lines may still sit in the channel.
			for {
				select {
				case line := <-ch:
					if match(line) {
						return line
					}
				default:
					t.Fatalf("restore-run exited (code %d) before %s\n%s", r.exitCode, what, r.output())
				}
			}
		case <-deadline:
			t.Fatalf("no %s within %s\n%s", what, timeout, r.output())
		}
	}
}

// waitReady waits for the `ready: ENDPOINTS` line of --keep and returns the endpoints.
func (r *running) waitReady(t *testing.T, timeout time.Duration) []string {
	t.Helper()
	line := r.waitLine(t, r.lines, timeout, "`ready: ENDPOINTS` line on stdout", func(l string) bool { return strings.HasPrefix(l, "ready: ") })
	eps := strings.Split(strings.TrimPrefix(line, "ready: "), ",")
	for _, ep := range eps {
		if _, err := url.Parse(ep); err != nil || !strings.HasPrefix(ep, "http://") {
			t.Fatalf("ready line %q: %q is not an endpoint URL", line, ep)
		}
	}
	return eps
}

// interruptAndWait sends SIGINT and waits up to timeout for the process to exit; it
// returns the exit code and how long the exit took.
func (r *running) interruptAndWait(t *testing.T, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := interrupt(r.cmd); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	select {
	case <-r.done:
		return r.exitCode, time.Since(start)
	case <-time.After(timeout):
		t.Fatalf("restore-run did not exit within %s of SIGINT\n%s", timeout, r.output())
	}
	return 0, 0
}

// report reads the run's JSON report.
func (r *running) report(t *testing.T) *engine.Report {
	t.Helper()
	rep, err := engine.ReadReport(r.reportPath)
	if err != nil {
		t.Fatalf("reading the report: %v\n%s", err, r.output())
	}
	return rep
}

// answers reports whether something accepts TCP connections at the endpoint URL.
func answers(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", u.Host, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// mustNotAnswer fails the test if any endpoint still accepts connections.
func mustNotAnswer(t *testing.T, endpoints []string) {
	t.Helper()
	for _, ep := range endpoints {
		if answers(ep) {
			t.Errorf("%s still accepts connections after restore-run exited: a scratch member was left running", ep)
		}
	}
}

// targetClientURLs returns the client URLs of the members of a report's scratch
// target spec.
func targetClientURLs(rep *engine.Report) []string {
	if rep == nil || rep.Target == nil {
		return nil
	}
	ms, _ := rep.Target.Spec["members"].([]any)
	var out []string
	for _, m := range ms {
		if mm, ok := m.(map[string]any); ok {
			if s, ok := mm["client_url"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// etcdStarSHA256 is the sha256 of scripts/etcd.star, the embedded driver's text.
func etcdStarSHA256(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "etcd.star"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// checkSuccessReport checks the report of a successful restore with the embedded
// etcd driver: driver identity, snapshot, every phase ok in order, every check ok,
// an RTO, and the endpoints when the target was kept.
func checkSuccessReport(t *testing.T, rep *engine.Report, snapshotRef string, endpoints []string) {
	t.Helper()
	if rep == nil {
		t.Fatal("no report written")
	}
	if rep.Result != "success" || rep.Error != nil {
		t.Errorf("report result %q, error %+v; want success without error", rep.Result, rep.Error)
	}
	d := rep.Driver
	if d.Name != "etcd" || d.Version != "1.0.0" || d.Source != "embedded:etcd.star" || d.API != 1 {
		t.Errorf("report driver %+v; want etcd 1.0.0 api 1 from embedded:etcd.star", d)
	}
	if want := etcdStarSHA256(t); d.SHA256 != want {
		t.Errorf("report driver sha256 %q; want %s, the sha256 of scripts/etcd.star", d.SHA256, want)
	}
	if rep.Snapshot.Ref != snapshotRef {
		t.Errorf("report snapshot ref %q; want %q", rep.Snapshot.Ref, snapshotRef)
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		if p.Result != "ok" || p.Attempts != 1 {
			t.Errorf("phase %s: result %q after %d attempts (%s); want ok at the first attempt", p.Name, p.Result, p.Attempts, p.Error)
		}
	}
	if got, want := strings.Join(names, ","), "download,prepare,execute,validate,commit"; got != want {
		t.Errorf("report phases %s; want %s", got, want)
	}
	if len(rep.Checks) == 0 {
		t.Error("report has no validation checks")
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("check %q failed: expected %s, got %s: %s", c.Name, c.Expected, c.Actual, c.Detail)
		}
	}
	if !(rep.RTOSeconds > 0) {
		t.Errorf("report rto_seconds %v; want > 0", rep.RTOSeconds)
	}
	if rep.Target == nil || !rep.Target.Scratch || rep.Target.Engine != "etcd" {
		t.Errorf("report target %+v; want a scratch etcd target", rep.Target)
	} else if endpoints != nil && strings.Join(rep.Target.Endpoints, ",") != strings.Join(endpoints, ",") {
		t.Errorf("report target endpoints %v; want the ready endpoints %v", rep.Target.Endpoints, endpoints)
	}
	if rep.WorkDir == "" {
		t.Error("report has no work_dir")
	} else if _, err := os.Stat(rep.WorkDir); !os.IsNotExist(err) {
		t.Errorf("work dir %s is left behind after the run (stat: %v)", rep.WorkDir, err)
	}
}

// checkByName fails the test unless the report has a check named name.
func checkByName(t *testing.T, rep *engine.Report, name string) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return
		}
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	t.Errorf("report has no check %q (checks: %s)", name, strings.Join(names, "; "))
}

// keptRestore restores snapshotRef into target with --keep plus extra args, waits
// for the ready line, runs inspect on the live cluster, stops the binary with SIGINT
// and checks that it exits 0 promptly, tears the cluster down and removes its work
// dir. It returns the report and the endpoints.
func keptRestore(t *testing.T, snapshotRef, target string, extra []string, inspect func(endpoints []string)) (*engine.Report, []string) {
	t.Helper()
	args := append([]string{"restore", "--driver", "etcd", "--snapshot", snapshotRef, "--target", target, "--keep"}, extra...)
	r := startCLI(t, args...)
	eps := r.waitReady(t, 2*time.Minute)
	inspect(eps)
	code, took := r.interruptAndWait(t, 15*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGINT on a kept target, want 0\n%s", code, r.output())
	}
	if took > 5*time.Second {
		t.Errorf("restore-run took %s to stop after SIGINT; want a few seconds at most", took.Round(time.Millisecond))
	}
	mustNotAnswer(t, eps)
	rep := r.report(t)
	checkSuccessReport(t, rep, snapshotRef, eps)
	return rep, eps
}

// dumpEach reads every key from each endpoint on its own, so every member, not
// just one, is proven to hold the data.
func dumpEach(t *testing.T, endpoints []string, want map[string]string) {
	t.Helper()
	for _, ep := range endpoints {
		got := dump(t, []string{ep})
		if len(got) != len(want) {
			t.Errorf("member %s holds %d keys, the source %d", ep, len(got), len(want))
		}
		sameKeys(t, want, got)
	}
}

// revisionOf returns the revision every member reports (they must agree).
func revisionOf(t *testing.T, endpoints []string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := etcdops.Dial(ctx, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rev int64
	for i, ep := range endpoints {
		st, err := c.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && st.Revision != rev {
			t.Errorf("member %s at revision %d, %s at %d", ep, st.Revision, endpoints[0], rev)
		}
		rev = st.Revision
	}
	return rev
}

// TestScratchRestoreEveryKey restores a snapshot saved from a live etcd into one and
// three scratch members, with and without a revision bump, and proves that every
// member holds every key and value of the source, at the source's revision (or at
// least source + bump), and that --keep serves until SIGINT, then exits 0 and tears
// the cluster down.
func TestScratchRestoreEveryKey(t *testing.T) {
	snap := saveFilledSnapshot(t)
	const bump = 1000000
	for _, members := range []int{1, 3} {
		for _, bumped := range []bool{false, true} {
			name := fmt.Sprintf("members=%d/bump=%v", members, bumped)
			t.Run(name, func(t *testing.T) {
				var extra []string
				if bumped {
					extra = []string{"--param", fmt.Sprintf("bump_revision=%d", bump), "--param", "mark_compacted=true"}
				}
				target := fmt.Sprintf("scratch://etcd?members=%d", members)
				rep, _ := keptRestore(t, snap.path, target, extra, func(eps []string) {
					if len(eps) != members {
						t.Fatalf("ready with %d endpoints %v, want %d", len(eps), eps, members)
					}
					dumpEach(t, eps, snap.keys)
					rev := revisionOf(t, eps)
					t.Logf("source revision %d, restored revision %d", snap.revision, rev)
					if bumped {
						if rev < snap.revision+bump {
							t.Errorf("restored revision %d; want >= source %d + bump %d", rev, snap.revision, bump)
						}
					} else if rev != snap.revision {
						t.Errorf("restored revision %d; want the source's %d", rev, snap.revision)
					}
				})
				if !rep.Snapshot.Bare {
					t.Errorf("report snapshot bare=false for a native file")
				}
				if bumped {
					checkByName(t, rep, "revision bumped")
				} else {
					checkByName(t, rep, "revision equals the snapshot's")
				}
				checkByName(t, rep, "key count equals the snapshot's")
				checkByName(t, rep, "same HashKV on every member")
			})
		}
	}
}

// TestScratchRestoreManifestSnapshot restores the same kind of snapshot packed as a
// restore-run/v1 manifest snapshot (engine etcd, metadata revision and total_key)
// into three members and compares every key and value.
func TestScratchRestoreManifestSnapshot(t *testing.T) {
	snap := saveFilledSnapshot(t)
	ref := packEtcdSnapshot(t, "etcd", snap)
	rep, _ := keptRestore(t, ref, "scratch://etcd?members=3", nil, func(eps []string) {
		dumpEach(t, eps, snap.keys)
		if rev := revisionOf(t, eps); rev != snap.revision {
			t.Errorf("restored revision %d; want the source's %d", rev, snap.revision)
		}
	})
	s := rep.Snapshot
	if s.Bare || s.Engine != "etcd" || s.EngineVersion != snap.version || s.Files != 1 {
		t.Errorf("report snapshot %+v; want a manifest snapshot of engine etcd %s with one file", s, snap.version)
	}
	if fmt.Sprint(s.Metadata["revision"]) != fmt.Sprint(snap.revision) || fmt.Sprint(s.Metadata["total_key"]) != fmt.Sprint(snap.status.TotalKey) {
		t.Errorf("report snapshot metadata %v; want revision %d, total_key %d", s.Metadata, snap.revision, snap.status.TotalKey)
	}
}

// TestQuickstart runs the README's quickstart command (the bundled snapshot into a
// three-member scratch cluster) and checks that it succeeds and that its summary
// lists every check as ok.
func TestQuickstart(t *testing.T) {
	ref := "testdata/etcd/quickstart"
	res := cli(t, 2*time.Minute, "restore", "--driver", "etcd", "--snapshot", ref, "--target", "scratch://etcd?members=3").mustSucceed(t)
	checkSuccessReport(t, res.Report, ref, nil)
	rep := res.Report
	if rep.Snapshot.Engine != "etcd" || rep.Snapshot.Bare {
		t.Errorf("report snapshot %+v; want the bundled manifest snapshot of engine etcd", rep.Snapshot)
	}
	if len(rep.Target.Endpoints) != 3 {
		t.Errorf("report target endpoints %v; want 3", rep.Target.Endpoints)
	}
	mustNotAnswer(t, rep.Target.Endpoints)

	if !strings.HasPrefix(res.Stdout, "restore SUCCESS: etcd@1.0.0") {
		t.Errorf("summary does not start with `restore SUCCESS: etcd@1.0.0`:\n%s", res.Stdout)
	}
	// Every check of the report is in the summary, marked ok, and none failed.
	var checkLines []string
	for _, l := range strings.Split(res.Stdout, "\n") {
		if strings.HasPrefix(l, "    ok   ") || strings.HasPrefix(l, "    FAIL ") {
			checkLines = append(checkLines, l)
		}
	}
	if len(checkLines) != len(rep.Checks) || len(checkLines) < 6 {
		t.Errorf("summary lists %d checks, the report %d (want at least 6):\n%s", len(checkLines), len(rep.Checks), res.Stdout)
	}
	for i, c := range rep.Checks {
		if i < len(checkLines) && !strings.HasPrefix(checkLines[i], "    ok   "+c.Name) {
			t.Errorf("summary check line %q; want `ok   %s`", checkLines[i], c.Name)
		}
	}
	for _, want := range []string{"members", "every member healthy", "exactly one leader", "same HashKV on every member", "key count equals the snapshot's: 197", "revision equals the snapshot's: 284", "RTO "} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("summary does not mention %q:\n%s", want, res.Stdout)
		}
	}
}
