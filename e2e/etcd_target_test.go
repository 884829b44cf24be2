package e2e

// Restores into a real etcd 3.6 cluster: three members run as separate OS processes
// (internal/testbin/etcd, etcd's own main built from this module's etcd
// dependency), controlled like a real installation through start/stop commands in
// the target file (testdata/etcd-service.sh standing in for systemd). Each test
// proves that nothing is lost: a good restore replaces the data completely, and a
// failure (service start failing, Ctrl-C, corrupt snapshot, a concurrent run) leaves
// or puts back the previous data on every member.

import (
	"bytes"
	"context"
	"encoding/json"
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

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/etcdops"
)

const (
	// rtOriginalToken is the token the target cluster was bootstrapped with;
	// rtRestoredToken is the target file's initial_cluster_token. etcd derives member
	// IDs from the peer URLs and the token only, so they differ to make the
	// restored cluster's new rtIdentity observable.
	rtOriginalToken = "e2e-original"
	rtRestoredToken = "e2e-restored"
	// rtTimeout bounds one restore-run invocation.
	rtTimeout = 3 * time.Minute
)

// etcdBin is the etcd server binary, built once per test binary on first use.
var etcdBin struct {
	once sync.Once
	path string
	err  error
}

// etcdBinary builds ./internal/testbin/etcd next to the restore-run binary, in the
// directory TestMain removes at the end.
func etcdBinary(t *testing.T) string {
	t.Helper()
	etcdBin.once.Do(func() {
		path := filepath.Join(filepath.Dir(binary), "etcd")
		cmd := exec.Command("go", "build", "-o", path, "./internal/testbin/etcd")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			etcdBin.err = fmt.Errorf("building the etcd test server: %v\n%s", err, out)
			return
		}
		etcdBin.path = path
	})
	if etcdBin.err != nil {
		t.Fatal(etcdBin.err)
	}
	return etcdBin.path
}

// rtServiceScript is the service-control script the target file's commands call.
func rtServiceScript() string { return filepath.Join(repoRoot, "e2e", "testdata", "etcd-service.sh") }

// realMember is one etcd process of a realCluster.
type realMember struct {
	Name, PeerURL, ClientURL string
	DataDir                  string // the member's data dir, as in the target file
	State                    string // the service script's state dir (flags, pid, log, events, markers)
}

// side is DATA_DIR.restore-run, where runs keep staging, previous and failed data.
func (m *realMember) side() string { return m.DataDir + ".restore-run" }

// pid is the pid the service script recorded; 0 when none.
func (m *realMember) pid(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.State, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// events is what the service script did to the member so far.
func (m *realMember) events() string {
	data, _ := os.ReadFile(filepath.Join(m.State, "events"))
	return string(data)
}

// mark creates a fault-hook marker file (fail-next-start, slow-start).
func (m *realMember) mark(t *testing.T, marker string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.State, marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// service runs the service script like the target file does.
func (m *realMember) service(action string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, rtServiceScript(), action, m.Name, m.State).CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcd-service.sh %s %s: %v: %s", action, m.Name, err, out)
	}
	return nil
}

// realCluster is a 3-member etcd cluster of OS processes and its target file.
type realCluster struct {
	Members []*realMember
	Target  string // the target YAML file
	Old     map[string]string
}

func (c *realCluster) endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

func (c *realCluster) pids(t *testing.T) []int {
	t.Helper()
	var out []int
	for _, m := range c.Members {
		out = append(out, m.pid(t))
	}
	return out
}

// startRealCluster starts three etcd processes on free loopback ports through the
// service script, fills them with the OLD dataset (keys old/...) and writes the
// target file. Every process, and any service script still running, is stopped
// when the test ends, failed or not.
func startRealCluster(t *testing.T) *realCluster {
	t.Helper()
	bin := etcdBinary(t)
	base := t.TempDir()
	ports, err := etcdops.FreeLoopbackPorts(6)
	if err != nil {
		t.Fatal(err)
	}
	c := &realCluster{}
	var initial []string
	for i := range 3 {
		m := &realMember{
			Name:      fmt.Sprintf("m%d", i+1),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			DataDir:   filepath.Join(base, fmt.Sprintf("m%d.etcd", i+1)),
			State:     filepath.Join(base, fmt.Sprintf("m%d.service", i+1)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	t.Cleanup(func() { c.teardown(t) })
	for _, m := range c.Members {
		flags := []string{
			"--name=" + m.Name,
			"--data-dir=" + m.DataDir,
			"--listen-peer-urls=" + m.PeerURL,
			"--initial-advertise-peer-urls=" + m.PeerURL,
			"--listen-client-urls=" + m.ClientURL,
			"--advertise-client-urls=" + m.ClientURL,
			"--initial-cluster=" + strings.Join(initial, ","),
			"--initial-cluster-token=" + rtOriginalToken,
			"--initial-cluster-state=new",
		}
		if err := os.MkdirAll(m.State, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.State, "bin"), []byte(bin+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.State, "flags"), []byte(strings.Join(flags, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members {
		if err := m.service("start"); err != nil {
			t.Fatal(err)
		}
	}
	c.waitHealthy(t)

	ctx := context.Background()
	cl, err := etcdops.Dial(ctx, c.endpoints())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, cl, "old", 60)
	cl.Close()
	c.Old = dump(t, c.endpoints())

	var y strings.Builder
	fmt.Fprintf(&y, "engine: etcd\ninitial_cluster_token: %s\nmembers:\n", rtRestoredToken)
	for _, m := range c.Members {
		q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
		fmt.Fprintf(&y, "  - name: %s\n    peer_url: %s\n    client_url: %s\n    data_dir: %s\n", m.Name, m.PeerURL, m.ClientURL, q(m.DataDir))
		fmt.Fprintf(&y, "    service:\n      start: [%s, start, %s, %s]\n      stop: [%s, stop, %s, %s]\n      timeout: 60\n",
			q(rtServiceScript()), m.Name, q(m.State), q(rtServiceScript()), m.Name, q(m.State))
	}
	c.Target = filepath.Join(base, "target.yaml")
	if err := os.WriteFile(c.Target, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// teardown kills service scripts still running for the cluster (a slow start would
// launch a member later), stops every member and fails the test if any process of
// the cluster survives.
func (c *realCluster) teardown(t *testing.T) {
	for _, m := range c.Members {
		for _, pid := range rtProcsWith(m.State, "") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, m := range c.Members {
		if err := m.service("stop"); err != nil {
			t.Errorf("teardown: %v", err)
		}
	}
	for _, m := range c.Members {
		if left := rtProcsWith(m.State, "--data-dir="+m.DataDir); len(left) > 0 {
			t.Errorf("teardown: processes of member %s still running after stop: %v (killed)", m.Name, left)
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(m.State, "log")); err == nil {
				t.Logf("member %s service events:\n%s\nlast log lines:\n%s", m.Name, m.events(), rtTail(string(log), 5))
			}
		}
	}
}

// rtProcsWith returns the live (not zombie) processes whose command line has an
// argument containing sub1 or equal to exact (when not empty).
func rtProcsWith(sub1, exact string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if strings.Contains(arg, sub1) || (exact != "" && arg == exact) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// rtTail is the last n lines of s.
func rtTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHealthy waits until every member answers and all agree on one leader.
func (c *realCluster) waitHealthy(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		last = func() error {
			cl, err := etcdops.Dial(ctx, c.endpoints())
			if err != nil {
				return err
			}
			defer cl.Close()
			leaders := map[uint64]bool{}
			for _, ep := range c.endpoints() {
				st, err := cl.Status(ctx, ep)
				if err != nil {
					return err
				}
				if st.Leader == 0 {
					return fmt.Errorf("%s has no leader", ep)
				}
				leaders[st.Leader] = true
			}
			if len(leaders) != 1 {
				return fmt.Errorf("members disagree on the leader")
			}
			return nil
		}()
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("cluster %v not healthy within 60s: %v", c.endpoints(), last)
}

// rtIdentity is the cluster ID and the sorted member IDs, as the member at endpoint sees them.
func rtIdentity(t *testing.T, endpoint string) (uint64, []uint64) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("member list at %s: %v", endpoint, err)
	}
	var ids []uint64
	for _, m := range resp.Members {
		ids = append(ids, m.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return resp.Header.ClusterId, ids
}

// servesExactly waits for a healthy cluster, then checks that every member, asked
// on its own, serves exactly want, and returns the cluster's identity.
func (c *realCluster) servesExactly(t *testing.T, what string, want map[string]string) (uint64, []uint64) {
	t.Helper()
	c.waitHealthy(t)
	var cid uint64
	var mids []uint64
	for i, m := range c.Members {
		got := dump(t, []string{m.ClientURL})
		if len(got) != len(want) {
			t.Errorf("member %s serves %d keys, want the %d keys of the %s dataset", m.Name, len(got), len(want), what)
		}
		sameKeys(t, want, got)
		id, ids := rtIdentity(t, m.ClientURL)
		if i == 0 {
			cid, mids = id, ids
		} else if id != cid || fmt.Sprint(ids) != fmt.Sprint(mids) {
			t.Errorf("member %s sees cluster %x members %x, member m1 sees cluster %x members %x", m.Name, id, ids, cid, mids)
		}
	}
	return cid, mids
}

// rtBoltKeys reads the live keys and values of a stopped member's database
// (DATA_DIR/member/snap/db) by replaying its MVCC revisions.
func rtBoltKeys(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	path := filepath.Join(dataDir, "member", "snap", "db")
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	out := map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return fmt.Errorf("no key bucket")
		}
		return b.ForEach(func(rev, v []byte) error { // revisions in order
			var kv mvccpb.KeyValue
			if err := kv.Unmarshal(v); err != nil {
				return err
			}
			if len(rev) == 18 && rev[17] == 't' { // tombstone
				delete(out, string(kv.Key))
			} else {
				out[string(kv.Key)] = string(kv.Value)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

// rtSideEntries lists DATA_DIR.restore-run (nil when it does not exist).
func rtSideEntries(t *testing.T, m *realMember) []string {
	t.Helper()
	entries, err := os.ReadDir(m.side())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// rtSource is a source member and its latest snapshot.
type rtSource struct {
	src  *sourceCluster
	dir  string
	snap string
	want map[string]string
}

// rtSnapshot starts a source member, fills it with the NEW dataset (keys new/...)
// and saves a snapshot of it.
func rtSnapshot(t *testing.T) *rtSource {
	t.Helper()
	s := &rtSource{src: startSource(t), dir: t.TempDir()}
	fill(t, s.src.client, "new", 80)
	s.save(t, "new.db")
	return s
}

// save snapshots the source into dir/name and records its dataset.
func (s *rtSource) save(t *testing.T, name string) {
	t.Helper()
	s.snap = filepath.Join(s.dir, name)
	if _, err := etcdops.Save(context.Background(), s.src.member.ClientURL(), s.snap); err != nil {
		t.Fatal(err)
	}
	s.want = dump(t, []string{s.src.member.ClientURL()})
}

// rtWatcher reads a key from every member on its own, every 200ms, until stopped, and
// counts the reads that failed or saw another value: proof the cluster kept serving.
type rtWatcher struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	bad  []string
	ok   int
}

func rtWatchServing(t *testing.T, c *realCluster, key string) *rtWatcher {
	t.Helper()
	want := c.Old[key]
	if want == "" {
		t.Fatalf("the OLD dataset has no key %q", key)
	}
	w := &rtWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	ctx := context.Background()
	var clients []*etcdops.Client
	for _, m := range c.Members {
		cl, err := etcdops.Dial(ctx, []string{m.ClientURL})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	go func() {
		defer close(w.done)
		defer func() {
			for _, cl := range clients {
				cl.Close()
			}
		}()
		for {
			for i, cl := range clients {
				v, found, err := cl.Get(ctx, key)
				w.mu.Lock()
				switch {
				case err != nil:
					w.bad = append(w.bad, fmt.Sprintf("%s: %v", c.Members[i].Name, err))
				case !found || v != want:
					w.bad = append(w.bad, fmt.Sprintf("%s: %q = %q (found %v), want %q", c.Members[i].Name, key, v, found, want))
				default:
					w.ok++
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

// finish stops the watcher and fails the test if any read went wrong.
func (w *rtWatcher) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.bad) > 0 {
		t.Errorf("the cluster did not keep serving the OLD data: %d bad reads, e.g. %s", len(w.bad), w.bad[0])
	}
	if w.ok == 0 {
		t.Error("the rtWatcher made no reads")
	}
}

// rtBuffer is a bytes.Buffer safe for a running command and the test.
type rtBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *rtBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *rtBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rtRun is a restore-run running in the background, for tests that signal it or run
// another one meanwhile.
type rtRun struct {
	cmd            *exec.Cmd
	stdout, stderr *rtBuffer
	report         string
	started        time.Time
	done           chan struct{}
	err            error
}

// rtStart starts restore-run with args (and a --report) using lockDir for target
// locks. If the test ends with it still running, it is interrupted (so it rolls
// back) and, if it does not exit within 90s, killed.
func rtStart(t *testing.T, lockDir string, args ...string) *rtRun {
	t.Helper()
	r := &rtRun{stdout: &rtBuffer{}, stderr: &rtBuffer{}, report: filepath.Join(t.TempDir(), "report.json"), done: make(chan struct{})}
	r.cmd = exec.Command(binary, append(args, "--report", r.report)...)
	r.cmd.Dir = repoRoot
	r.cmd.Env = append(os.Environ(), "RESTORE_RUN_LOCK_DIR="+lockDir)
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
			return
		default:
		}
		interrupt(r.cmd)
		select {
		case <-r.done:
		case <-time.After(90 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *rtRun) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// wait waits for the run to end and returns what it did.
func (r *rtRun) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		t.Fatalf("restore-run did not exit within %s\nstdout:\n%s\nstderr:\n%s", timeout, r.stdout.String(), rtTail(r.stderr.String(), 40))
	}
	res := result{Stdout: r.stdout.String(), Stderr: r.stderr.String()}
	if ee, ok := r.err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if r.err != nil {
		t.Fatal(r.err)
	}
	if rep, err := engine.ReadReport(r.report); err == nil {
		res.Report = rep
	}
	return res
}

// rtWaitEvent waits until the service script logged an event containing what for m.
func rtWaitEvent(t *testing.T, r *rtRun, m *realMember, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(m.events(), what) {
		if !r.running() {
			res := r.wait(t, time.Second)
			t.Fatalf("restore-run exited (%d) before member %s logged %q\nstdout:\n%s\nstderr:\n%s", res.Code, m.Name, what, res.Stdout, rtTail(res.Stderr, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s did not log %q within %s; events:\n%s", m.Name, what, timeout, m.events())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var rtRunIDRe = regexp.MustCompile(`"run_id":"([^"]+)"`)

// rtRunID is the run id in a run's JSON log.
func rtRunID(t *testing.T, stderr string) string {
	t.Helper()
	m := rtRunIDRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run_id in the log:\n%s", stderr)
	}
	return m[1]
}

// rtPhase is the report's record of phase name, nil when it did not run.
func rtPhase(rep *engine.Report, name string) *engine.PhaseRecord {
	for i := range rep.Phases {
		if rep.Phases[i].Name == name {
			return &rep.Phases[i]
		}
	}
	return nil
}

// rtCheckRolledBack checks the report of a run that failed after the swap and was
// rolled back, the failed data kept aside and no staging left.
func rtCheckRolledBack(t *testing.T, c *realCluster, res result, wantResult string, failedData map[string]string) {
	t.Helper()
	rep := res.Report
	if rep == nil {
		t.Fatalf("no report\nstderr:\n%s", rtTail(res.Stderr, 40))
	}
	if rep.Result != wantResult || !rep.RolledBack {
		t.Errorf("report: result %q rolled_back %v, want %q and true", rep.Result, rep.RolledBack, wantResult)
	}
	if p := rtPhase(rep, "rollback"); p == nil || p.Result != "ok" {
		t.Errorf("report: rollback phase %+v, want ok", p)
	}
	if !strings.Contains(res.Stdout, "rolled back") {
		t.Errorf("the summary does not say it rolled back:\n%s", res.Stdout)
	}
	for _, m := range c.Members {
		got := rtSideEntries(t, m)
		want := []string{"failed-" + rep.RunID}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("member %s: %s holds %v, want %v (the failed restore's data kept, no staging or previous left)", m.Name, m.side(), got, want)
			continue
		}
		// The failed restore's data, kept for inspection, is the snapshot's.
		if failedData != nil {
			sameKeys(t, failedData, rtBoltKeys(t, filepath.Join(m.side(), want[0])))
		}
	}
}

// TestRealTargetRestore: a restore into a running 3-member cluster replaces its data
// completely (twice, the second time keeping the previous data), every member
// serving exactly the snapshot's keys.
func TestRealTargetRestore(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	oldCID, oldIDs := rtIdentity(t, c.Members[0].ClientURL)
	pidsBefore := c.pids(t)

	started := time.Now()
	res := cli(t, rtTimeout, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target).mustSucceed(t)
	rep := res.Report
	if rep == nil || rep.Result != "success" || rep.RolledBack {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("restore of %d keys into 3 processes: %.1fs (report RTO %.1fs)", len(src.want), time.Since(started).Seconds(), rep.RTOSeconds)
	if len(rep.Checks) < 6 {
		t.Errorf("only %d checks in the report", len(rep.Checks))
	}
	for _, ch := range rep.Checks {
		if !ch.OK {
			t.Errorf("check %q failed: %+v", ch.Name, ch)
		}
	}
	if got := strings.Join(rep.Target.Endpoints, ","); got != strings.Join(c.endpoints(), ",") {
		t.Errorf("report endpoints %s, want the members' client URLs %s", got, strings.Join(c.endpoints(), ","))
	}

	cid, ids := c.servesExactly(t, "NEW", src.want)
	if cid == oldCID {
		t.Errorf("cluster ID %x unchanged: the restored cluster should be a new one", cid)
	}
	for _, id := range ids {
		for _, old := range oldIDs {
			if id == old {
				t.Errorf("member ID %x is the old cluster's", id)
			}
		}
	}
	// Every member was stopped and started again by its service.
	for i, m := range c.Members {
		if p := m.pid(t); p == 0 || p == pidsBefore[i] {
			t.Errorf("member %s pid %d, before %d: not restarted", m.Name, p, pidsBefore[i])
		}
		if ev := m.events(); !strings.Contains(ev, fmt.Sprintf("stopped pid %d", pidsBefore[i])) {
			t.Errorf("member %s was not stopped by its service:\n%s", m.Name, ev)
		}
	}
	// Committed: no previous or staging data left, and the empty side dir removed.
	for _, m := range c.Members {
		if got := rtSideEntries(t, m); len(got) != 0 {
			t.Errorf("member %s: %s still holds %v after the commit", m.Name, m.side(), got)
		}
		if _, err := os.Stat(m.side()); err == nil {
			t.Errorf("member %s: empty %s left after the commit", m.Name, m.side())
		}
	}

	// `validate` checks the restored cluster against the same snapshot without
	// changing it: the same checks pass, no member is restarted.
	pidsRestored := c.pids(t)
	v := cli(t, rtTimeout, "validate", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target).mustSucceed(t)
	var vphases []string
	for _, p := range v.Report.Phases {
		vphases = append(vphases, p.Name+":"+p.Result)
	}
	if got := strings.Join(vphases, " "); got != "download:ok validate:ok" {
		t.Errorf("validate ran phases %s", got)
	}
	if len(v.Report.Checks) != len(rep.Checks) {
		t.Errorf("validate ran %d checks, the restore %d", len(v.Report.Checks), len(rep.Checks))
	}
	for _, ch := range v.Report.Checks {
		if !ch.OK {
			t.Errorf("validate: check %q failed: %+v", ch.Name, ch)
		}
	}
	if got := c.pids(t); fmt.Sprint(got) != fmt.Sprint(pidsRestored) {
		t.Errorf("validate restarted members: pids %v, before %v", got, pidsRestored)
	}
	// Validating against another snapshot (the bundled one: other keys, other
	// revision) fails with class validation.
	other := filepath.Join(repoRoot, "testdata", "etcd", "quickstart")
	cli(t, rtTimeout, "validate", "--driver", "etcd", "--snapshot", other, "--target", c.Target).mustFail(t, 1, "validation checks failed", "key count equals the snapshot's")

	// A second restore with keep_previous=true, of a newer snapshot: the data it
	// replaced (the first restore's) is kept in previous-RUN.
	first := src.want
	cl := src.src.client
	for i := range 10 {
		if err := cl.Put(context.Background(), fmt.Sprintf("newer/key-%d", i), "newer"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Delete(context.Background(), "new/key-0000"); err != nil {
		t.Fatal(err)
	}
	src.save(t, "newer.db")
	started = time.Now()
	res = cli(t, rtTimeout, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target, "--param", "keep_previous=true").mustSucceed(t)
	t.Logf("second restore (keep_previous): %.1fs", time.Since(started).Seconds())
	if res.Report == nil || res.Report.Result != "success" {
		t.Fatalf("report %+v", res.Report)
	}
	c.servesExactly(t, "NEWER", src.want)
	for _, m := range c.Members {
		got := rtSideEntries(t, m)
		want := []string{"previous-" + res.Report.RunID}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("member %s: %s holds %v, want %v", m.Name, m.side(), got, want)
			continue
		}
		sameKeys(t, first, rtBoltKeys(t, filepath.Join(m.side(), want[0])))
	}
}

// TestRealTargetFailedStart: a member's service fails to start after the data was
// swapped: the run fails and the rollback puts the OLD data back on every member.
func TestRealTargetFailedStart(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	oldCID, oldIDs := rtIdentity(t, c.Members[0].ClientURL)
	c.Members[1].mark(t, "fail-next-start")

	started := time.Now()
	res := cli(t, rtTimeout, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target).
		mustFail(t, 1, "service.start", "fail-next-start")
	t.Logf("failed restore with rollback: %.1fs", time.Since(started).Seconds())
	rtCheckRolledBack(t, c, res, "failed", src.want)
	if p := rtPhase(res.Report, "execute"); p == nil || p.Result != "failed" {
		t.Errorf("execute phase %+v, want failed", p)
	}
	if !strings.Contains(c.Members[1].events(), "start failed (fail-next-start)") {
		t.Errorf("the fault was not injected:\n%s", c.Members[1].events())
	}

	cid, ids := c.servesExactly(t, "OLD", c.Old)
	if cid != oldCID || fmt.Sprint(ids) != fmt.Sprint(oldIDs) {
		t.Errorf("after rollback: cluster %x members %x, want the original cluster %x members %x", cid, ids, oldCID, oldIDs)
	}
}

// TestRealTargetInterrupted: Ctrl-C while the services start after the swap (two
// members already running the restored data, the third slow to start): the run
// exits 130 after rolling back, and the OLD data is served again.
func TestRealTargetInterrupted(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	oldCID, oldIDs := rtIdentity(t, c.Members[0].ClientURL)
	slow := c.Members[2]
	slow.mark(t, "slow-start")

	r := rtStart(t, t.TempDir(), "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target)
	rtWaitEvent(t, r, slow, "slow start", 2*time.Minute)
	if !strings.Contains(r.stderr.String(), `"message":"service.start"`) {
		t.Errorf("no service.start in the log before the slow start:\n%s", rtTail(r.stderr.String(), 20))
	}
	time.Sleep(300 * time.Millisecond)
	sig := time.Now()
	if err := interrupt(r.cmd); err != nil {
		t.Fatal(err)
	}
	res := r.wait(t, 60*time.Second)
	t.Logf("exit %d %.1fs after SIGINT (run %.1fs)", res.Code, time.Since(sig).Seconds(), time.Since(r.started).Seconds())
	if res.Code != 130 {
		t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, rtTail(res.Stderr, 40))
	}
	rtCheckRolledBack(t, c, res, "cancelled", src.want)
	if res.Report != nil && (res.Report.Error == nil || res.Report.Error.Class != "cancelled") {
		t.Errorf("report error %+v, want class cancelled", res.Report.Error)
	}
	if p := rtPhase(res.Report, "execute"); p == nil || p.ErrorClass != "cancelled" {
		t.Errorf("execute phase %+v, want failed (cancelled)", p)
	}
	// The interrupted slow start launched nothing; the rollback started the member.
	if n := strings.Count(slow.events(), "started pid"); n != 2 {
		t.Errorf("member %s started %d times, want 2 (bootstrap, rollback):\n%s", slow.Name, n, slow.events())
	}

	cid, ids := c.servesExactly(t, "OLD", c.Old)
	if cid != oldCID || fmt.Sprint(ids) != fmt.Sprint(oldIDs) {
		t.Errorf("after rollback: cluster %x members %x, want the original cluster %x members %x", cid, ids, oldCID, oldIDs)
	}
}

// TestRealTargetCorruptSnapshot: a snapshot with one flipped byte is refused before
// anything is touched: the members are never stopped and keep serving.
func TestRealTargetCorruptSnapshot(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	data, err := os.ReadFile(src.snap)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	bad := filepath.Join(t.TempDir(), "corrupt.db")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pids := c.pids(t)
	events := make([]string, len(c.Members))
	for i, m := range c.Members {
		events[i] = m.events()
	}

	w := rtWatchServing(t, c, "old/key-0001")
	res := cli(t, rtTimeout, "restore", "--driver", "etcd", "--snapshot", bad, "--target", c.Target).mustFail(t, 1)
	w.finish(t)
	if res.Report == nil || res.Report.Error == nil || res.Report.Error.Class != "corruption" {
		t.Fatalf("report error %+v, want class corruption\nstderr:\n%s", res.Report, rtTail(res.Stderr, 20))
	}
	if res.Report.RolledBack || rtPhase(res.Report, "execute") != nil || rtPhase(res.Report, "prepare") != nil {
		t.Errorf("phases %+v: want the run to stop at download", res.Report.Phases)
	}
	if got := c.pids(t); fmt.Sprint(got) != fmt.Sprint(pids) {
		t.Errorf("member pids %v, were %v: members were restarted", got, pids)
	}
	for i, m := range c.Members {
		if ev := m.events(); ev != events[i] {
			t.Errorf("member %s: the service was called:\n%s", m.Name, strings.TrimPrefix(ev, events[i]))
		}
		if got := rtSideEntries(t, m); got != nil {
			t.Errorf("member %s: %s exists (%v)", m.Name, m.side(), got)
		}
	}
	c.servesExactly(t, "OLD", c.Old)
}

// TestRealTargetConcurrentRuns: while one restore runs, a second one on the same
// target is refused, naming the holder; the first, interrupted, rolls back.
func TestRealTargetConcurrentRuns(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	lockDir := t.TempDir()
	c.Members[1].mark(t, "slow-start")

	first := rtStart(t, lockDir, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target)
	rtWaitEvent(t, first, c.Members[1], "slow start", 2*time.Minute)
	runID := rtRunID(t, first.stderr.String())

	second := rtStart(t, lockDir, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target)
	res2 := second.wait(t, rtTimeout)
	host, _ := os.Hostname()
	res2.mustFail(t, 1, "being restored by run "+runID, fmt.Sprintf("pid %d on %s", first.cmd.Process.Pid, host))
	if !first.running() {
		t.Fatal("the first run ended before the second was refused: the test proves nothing")
	}
	if res2.Report != nil && len(res2.Report.Phases) != 0 {
		t.Errorf("the refused run ran phases: %+v", res2.Report.Phases)
	}

	if err := interrupt(first.cmd); err != nil {
		t.Fatal(err)
	}
	res1 := first.wait(t, 60*time.Second)
	if res1.Code != 130 {
		t.Fatalf("first run: exit %d, want 130\nstderr:\n%s", res1.Code, rtTail(res1.Stderr, 40))
	}
	rtCheckRolledBack(t, c, res1, "cancelled", src.want)
	c.servesExactly(t, "OLD", c.Old)

	// The lock was released: a new restore (same lock dir) succeeds over the
	// rolled-back target, next to the failed run's kept data.
	third := rtStart(t, lockDir, "restore", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target)
	res3 := third.wait(t, rtTimeout).mustSucceed(t)
	c.servesExactly(t, "NEW", src.want)
	for _, m := range c.Members {
		if got, want := rtSideEntries(t, m), []string{"failed-" + res1.Report.RunID}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("member %s: %s holds %v after run %s, want %v", m.Name, m.side(), got, res3.Report.RunID, want)
		}
	}
}

// TestRealTargetPlan: plan lists the service and file steps of a real restore and
// changes nothing.
func TestRealTargetPlan(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	pids := c.pids(t)
	events := make([]string, len(c.Members))
	for i, m := range c.Members {
		events[i] = m.events()
	}

	w := rtWatchServing(t, c, "old/key-0002")
	res := cli(t, rtTimeout, "plan", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target).mustSucceed(t)
	w.finish(t)
	for _, want := range []string{"service.stop", "fs.move", "service.start", "etcd.snapshot_restore", "etcd.wait_healthy", "Nothing was changed"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("plan does not list %s:\n%s", want, res.Stdout)
		}
	}
	// In order: stop every member, move, start.
	stop, move, start := strings.Index(res.Stdout, "service.stop"), strings.Index(res.Stdout, "fs.move"), strings.Index(res.Stdout, "service.start")
	if !(stop < move && move < start) {
		t.Errorf("plan order: service.stop at %d, fs.move at %d, service.start at %d", stop, move, start)
	}
	for _, m := range c.Members {
		if !strings.Contains(res.Stdout, m.DataDir+".restore-run/previous-") {
			t.Errorf("plan does not show %s moved aside:\n%s", m.DataDir, res.Stdout)
		}
	}
	if res.Report == nil || res.Report.Result != "planned" {
		t.Errorf("report %+v, want result planned", res.Report)
	}
	if got := c.pids(t); fmt.Sprint(got) != fmt.Sprint(pids) {
		t.Errorf("member pids %v, were %v", got, pids)
	}
	for i, m := range c.Members {
		if ev := m.events(); ev != events[i] {
			t.Errorf("member %s: the service was called:\n%s", m.Name, strings.TrimPrefix(ev, events[i]))
		}
		if got := rtSideEntries(t, m); got != nil {
			t.Errorf("member %s: %s exists (%v): plan created staging", m.Name, m.side(), got)
		}
	}
	c.servesExactly(t, "OLD", c.Old)
}

// TestRealTargetPlanMembersDown: plan works when the cluster is down, the usual
// reason to restore: it lists the steps at once, contacts no member and changes
// nothing.
func TestRealTargetPlanMembersDown(t *testing.T) {
	c := startRealCluster(t)
	src := rtSnapshot(t)
	for _, m := range c.Members {
		if err := m.service("stop"); err != nil {
			t.Fatal(err)
		}
	}
	events := make([]string, len(c.Members))
	for i, m := range c.Members {
		events[i] = m.events()
	}
	// A plan only records: 30s is plenty (a real restore waits up to 120s for health).
	res := cli(t, 30*time.Second, "plan", "--driver", "etcd", "--snapshot", src.snap, "--target", c.Target).mustSucceed(t)
	if !strings.Contains(res.Stdout, "service.start") {
		t.Errorf("plan does not list service.start:\n%s", res.Stdout)
	}
	for i, m := range c.Members {
		if ev := m.events(); ev != events[i] {
			t.Errorf("member %s: the service was called:\n%s", m.Name, strings.TrimPrefix(ev, events[i]))
		}
		if got := rtSideEntries(t, m); got != nil {
			t.Errorf("member %s: %s exists (%v): plan created staging", m.Name, m.side(), got)
		}
		if m.pid(t) != 0 {
			t.Errorf("member %s runs (pid %d)", m.Name, m.pid(t))
		}
	}
}
