package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/etcdops"
)

// The test of this file proves that restore-run (etcdutl 3.6 inside) restores a
// snapshot saved by an old etcd: Debian 12's etcd 3.4 (packages etcd-server and
// etcd-client, installed by ./test.sh), run as a subprocess.

const (
	etcd34Server = "/usr/bin/etcd"
	etcd34Ctl    = "/usr/bin/etcdctl"
)

// requireEtcd34 fails the test unless Debian's etcd 3.4 server and client are
// installed.
func requireEtcd34(t *testing.T) {
	t.Helper()
	for _, p := range []string{etcd34Server, etcd34Ctl} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing (%v): install the Debian packages etcd-server and etcd-client (etcd 3.4); ./test.sh installs them", p, err)
		}
	}
	out, err := exec.Command(etcd34Server, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etcd Version: 3.4.") {
		t.Fatalf("%s --version: %v\n%s\nwant etcd 3.4 from Debian 12's etcd-server package; ./test.sh installs it", etcd34Server, err, out)
	}
}

// etcd34Env is the environment of the etcd 3.4 processes: ours without ETCD_* and
// ETCDCTL_* settings that would change their flags, with the v3 API for etcdctl.
func etcd34Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "ETCDCTL_API=3")
}

// etcd34 is an etcd 3.4 server running as a subprocess on a temp dir.
type etcd34 struct {
	cmd       *exec.Cmd
	clientURL string
	logPath   string
	done      chan struct{}
	err       error // the process's exit, set before done is closed
}

// startEtcd34 starts /usr/bin/etcd (3.4) as a one-member cluster on a new temp data
// dir and free loopback ports, and waits until it serves. A port taken between
// picking and binding makes etcd exit; it is then started again on other ports.
func startEtcd34(t *testing.T) *etcd34 {
	t.Helper()
	requireEtcd34(t)
	var lastErr string
	for attempt := 1; attempt <= 3; attempt++ {
		e, err := tryStartEtcd34(t)
		if err == nil {
			return e
		}
		lastErr = err.Error()
		t.Logf("etcd 3.4 start attempt %d: %v", attempt, err)
	}
	t.Fatalf("etcd 3.4 did not start: %s", lastErr)
	return nil
}

func tryStartEtcd34(t *testing.T) (*etcd34, error) {
	ports, err := etcdops.FreeLoopbackPorts(2)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	e := &etcd34{clientURL: client, logPath: filepath.Join(dir, "etcd.log"), done: make(chan struct{})}
	logFile, err := os.Create(e.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	e.cmd = exec.Command(etcd34Server,
		"--name", "old34",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "old34="+peer,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "old34-token",
		"--logger", "zap", "--log-outputs", "stderr",
	)
	e.cmd.Env = etcd34Env()
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { e.err = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		select {
		case <-e.done:
		default:
			e.cmd.Process.Kill()
			<-e.done
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.done:
			return nil, fmt.Errorf("etcd exited (%v) before serving; log:\n%s", e.err, e.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := etcdops.Dial(ctx, []string{client})
		if err == nil {
			_, err = c.Status(ctx, client)
			c.Close()
		}
		cancel()
		if err == nil {
			return e, nil
		}
		if time.Now().After(deadline) {
			e.cmd.Process.Kill()
			<-e.done
			return nil, fmt.Errorf("etcd did not serve within 30s (%v); log:\n%s", err, e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail returns the end of the server's log.
func (e *etcd34) logTail() string {
	data, _ := os.ReadFile(e.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// ctl runs etcdctl 3.4 against the server and returns its stdout.
func (e *etcd34) ctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(etcd34Ctl, append([]string{"--endpoints=" + e.clientURL, "--command-timeout=20s"}, args...)...)
	cmd.Env = etcd34Env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// stop stops the server with SIGTERM, as its service manager would, and waits.
func (e *etcd34) stop(t *testing.T) {
	t.Helper()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("etcd 3.4 did not stop within 15s of SIGTERM; log:\n%s", e.logTail())
	}
	if answers(e.clientURL) {
		t.Fatalf("etcd 3.4 still answers at %s after it stopped", e.clientURL)
	}
}

// snapshotStatus34 is `etcdctl snapshot status -w json` of etcd 3.4.
type snapshotStatus34 struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
}

// TestEtcd34Snapshot saves a snapshot with Debian's etcd 3.4 (`etcdctl snapshot
// save` from a running etcd 3.4 holding a few hundred keys, overwrites, deletes, a
// compaction and a key attached to a lease), then restores it with restore-run into
// three scratch members, plain, with a revision bump, and packed as a manifest
// snapshot, and compares every key and value of every member with the 3.4 server's.
func TestEtcd34Snapshot(t *testing.T) {
	ctx := context.Background()
	old := startEtcd34(t)
	c, err := etcdops.Dial(ctx, []string{old.clientURL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fill(t, c, "/v34/apps", 300)
	fill(t, c, "/v34/config", 40)
	if err := c.Put(ctx, "/v34/large", strings.Repeat("etcd 3.4 ", 50000)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "/v34/empty", ""); err != nil {
		t.Fatal(err)
	}
	// Some writes through etcdctl 3.4 itself, one of them bound to a lease.
	for i := 0; i < 10; i++ {
		old.ctl(t, "put", fmt.Sprintf("/v34/ctl/key-%02d", i), fmt.Sprintf("written by etcdctl 3.4, number %d", i))
	}
	grant := old.ctl(t, "lease", "grant", "3600")
	m := regexp.MustCompile(`lease ([0-9a-f]+) granted`).FindStringSubmatch(grant)
	if m == nil {
		t.Fatalf("etcdctl lease grant printed %q", grant)
	}
	old.ctl(t, "put", "--lease="+m[1], "/v34/leased", "alive while lease "+m[1]+" lives")
	// Compact away part of the history, as a long-running cluster would have.
	st, err := c.Status(ctx, old.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	old.ctl(t, "compact", fmt.Sprint(st.Revision-100))

	want := dump(t, []string{old.clientURL})
	st, err = c.Status(ctx, old.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Version, "3.4.") {
		t.Fatalf("the source server is etcd %s, want 3.4", st.Version)
	}
	path := filepath.Join(t.TempDir(), "etcd34.db")
	old.ctl(t, "snapshot", "save", path)
	c.Close()
	old.stop(t)

	// What the 3.4 tools and etcdutl 3.6 (etcdops.Status) say about the file.
	var st34 snapshotStatus34
	if err := json.Unmarshal([]byte(exec34Status(t, path)), &st34); err != nil {
		t.Fatal(err)
	}
	st36, err := etcdops.Status(ctx, path)
	if err != nil {
		t.Fatalf("etcdutl 3.6 cannot read the etcd 3.4 snapshot: %v", err)
	}
	t.Logf("source: etcd %s at revision %d with %d live keys", st.Version, st.Revision, len(want))
	t.Logf("etcdctl 3.4 snapshot status: %+v", st34)
	t.Logf("etcdutl 3.6 snapshot status: %+v", st36)
	if !st36.HasChecksum {
		t.Error("etcdutl 3.6 finds no sha256 trailer on a file from `etcdctl snapshot save`")
	}
	if st36.Revision != st.Revision || st34.Revision != st.Revision {
		t.Errorf("snapshot revision: etcdutl 3.6 %d, etcdctl 3.4 %d; the source was at %d", st36.Revision, st34.Revision, st.Revision)
	}
	// The driver compares the restored key count with this: it must count live keys.
	if st36.TotalKey != len(want) {
		t.Errorf("etcdutl 3.6 total_key %d; want the %d live keys of the source", st36.TotalKey, len(want))
	}
	if st36.Version != "" {
		t.Errorf("etcdutl 3.6 reports storage version %q for an etcd 3.4 file; etcdops documents it empty before 3.6", st36.Version)
	}

	t.Run("bare", func(t *testing.T) {
		keptRestore(t, path, "scratch://etcd?members=3", nil, func(eps []string) {
			dumpEach(t, eps, want)
			if rev := revisionOf(t, eps); rev != st.Revision {
				t.Errorf("restored revision %d; want the 3.4 source's %d", rev, st.Revision)
			}
		})
	})
	t.Run("bump", func(t *testing.T) {
		const bump = 1000000
		keptRestore(t, path, "scratch://etcd?members=3", []string{"--param", fmt.Sprintf("bump_revision=%d", bump), "--param", "mark_compacted=true"}, func(eps []string) {
			dumpEach(t, eps, want)
			if rev := revisionOf(t, eps); rev < st.Revision+bump {
				t.Errorf("restored revision %d; want >= the 3.4 source's %d + %d", rev, st.Revision, bump)
			}
		})
	})
	t.Run("manifest", func(t *testing.T) {
		ref := packEtcdSnapshot(t, "etcd", savedSnapshot{path: path, version: st.Version, revision: st36.Revision, keys: want, status: st36})
		rep, _ := keptRestore(t, ref, "scratch://etcd?members=3", nil, func(eps []string) {
			dumpEach(t, eps, want)
		})
		if rep.Snapshot.EngineVersion != st.Version {
			t.Errorf("report snapshot engine_version %q; want %q", rep.Snapshot.EngineVersion, st.Version)
		}
	})
}

// exec34Status runs `etcdctl snapshot status -w json` of etcd 3.4 on path.
func exec34Status(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(etcd34Ctl, "snapshot", "status", path, "-w", "json")
	cmd.Env = etcd34Env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("etcdctl 3.4 snapshot status: %v\n%s", err, out)
	}
	return string(out)
}
