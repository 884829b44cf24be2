package e2e

// The fault suite on Cassandra (see faults_test.go): one real node, started from
// the jars like the other Cassandra tests, is the target of every row, described by
// a target file like an existing installation. Its keyspace is packed once; before
// each row a marker row is written after the snapshot, so the target's rows (the
// "previous data") differ from the snapshot's, and every restore runs with
// replace=true: safety snapshot, TRUNCATE, nodetool import. The rows run in order
// on the one node (about 15 s per restore on 2 cores instead of a node start each).

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/internal/s3test"
)

// cassFaultTarget is the node every row restores into.
type cassFaultTarget struct {
	top  *testing.T // the test the node lives as long as
	c    *cassCluster
	snap string // the packed snapshot of its keyspace
	want map[string][]string
}

// rows dumps the target's tables over a new session (the node may have been
// restarted since the last one).
func (f *cassFaultTarget) rows(t *testing.T) map[string][]string {
	t.Helper()
	return dumpAll(t, f.c.session(t), oneNodeTables)
}

// previous writes marker row n (after the snapshot: the target's rows are no
// longer the snapshot's) and returns every row the target holds.
func (f *cassFaultTarget) previous(t *testing.T, n int) map[string][]string {
	t.Helper()
	execAll(t, f.c.session(t), fmt.Sprintf("INSERT INTO ks_one.items (part, id, payload) VALUES (%d, %d, 'previous data, row %d')", 1000+n, n, n))
	rows := f.rows(t)
	if strings.Join(rows["ks_one.items"], "\n") == strings.Join(f.want["ks_one.items"], "\n") {
		t.Fatal("the target holds the snapshot's rows: the row could not tell the previous data from the restored one")
	}
	return rows
}

// args are the arguments of a restore into the node that replaces its rows.
func (f *cassFaultTarget) args(snap, workDir string, extra ...string) []string {
	return append([]string{"restore", "--driver", "cassandra", "--snapshot", snap, "--target", f.c.Target, "--workdir", workDir,
		"--param", "replace=true", "--progress", "none"}, extra...)
}

// dataDir is the node's data dir.
func (f *cassFaultTarget) dataDir() string { return f.c.Cfgs[0].DataDir() }

// waitStaged waits until the run has staged SSTables for nodetool import
// (DATA_DIR.restore-run/staging-RUN/ks_one/items holds files): the safety
// snapshot is taken, the table truncated, the import about to start.
func (f *cassFaultTarget) waitStaged(t *testing.T, r *rtRun, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		dirs, _ := filepath.Glob(filepath.Join(f.dataDir()+".restore-run", "staging-*", "ks_one", "items"))
		for _, d := range dirs {
			if entries, _ := os.ReadDir(d); len(entries) > 0 {
				return
			}
		}
		if !r.running() {
			res := r.wait(t, time.Second)
			t.Fatalf("restore-run exited (%d) before it staged SSTables:\n%s", res.Code, rtTail(res.Stderr, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore-run staged no SSTables within %s:\n%s", timeout, rtTail(r.stderr.String(), 30))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveSSTables counts ks_one.items's SSTables in the node's data dir (not its
// snapshots): an import run twice would leave twice the snapshot's.
func (f *cassFaultTarget) liveSSTables(t *testing.T) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dataDir(), "ks_one", "items-*", "*-Data.db"))
	return len(m)
}

// snapshotSSTables counts the SSTables of ks_one.items in the packed snapshot.
func (f *cassFaultTarget) snapshotSSTables(t *testing.T) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.snap, "nodes", "*", "ks_one", "items", "*-Data.db"))
	if len(m) == 0 {
		t.Fatalf("the snapshot in %s holds no SSTable of ks_one.items", f.snap)
	}
	return len(m)
}

// restart starts the node again on its data (after it was killed); it runs until
// the whole test ends.
func (f *cassFaultTarget) restart(t *testing.T) {
	t.Helper()
	cfg := f.c.Nodes[0].Config()
	// The node is ready when its log says so: the last start's log says it already.
	if err := os.Rename(cfg.LogFile(), cfg.LogFile()+".before-kill"); err != nil {
		t.Fatal(err)
	}
	nodes, err := cassops.StartNodes(context.Background(), f.c.home, []cassops.NodeConfig{cfg})
	if err != nil {
		t.Fatalf("restart the node: %v", err)
	}
	f.top.Cleanup(func() { cassops.StopNodes(nodes, 5*time.Second) }) // the later rows use it too
	f.c.Nodes[0] = nodes[0]
}

// throughS3 puts the packed snapshot into a real S3 server and returns a fault
// proxy in front of it (decide says what the n-th ranged read suffers), the
// snapshot's reference and a store config that reaches it through the proxy.
func (f *cassFaultTarget) throughS3(t *testing.T, decide func(n int64) s3test.Fault) (*s3test.FaultProxy, string, string) {
	t.Helper()
	st := newS3Setup(t)
	err := filepath.WalkDir(f.snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.snap, p)
		st.srv.PutObject(t, st.bucket, "cassandra/faults/"+filepath.ToSlash(rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	proxy := s3test.NewFaultProxy(t, st.srv.Addr, decide)
	cfg := filepath.Join(t.TempDir(), "stores.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("stores:\n  - match: s3://\n    endpoint: %s\n    region: %s\n    path_style: true\n", proxy.URL, st.srv.Region)), 0o600); err != nil {
		t.Fatal(err)
	}
	return proxy, st.ref("cassandra/faults"), cfg
}

// snapshotBytes is the packed snapshot's size on disk.
func (f *cassFaultTarget) snapshotBytes(t *testing.T) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(f.snap, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func TestFaultCassandra(t *testing.T) {
	start := time.Now()
	c := startCassandras(t, clusterSpec{name: "flt", nodes: 1, mode: cassops.ModeCassandra4})[0]
	fillOneNode(t, c.session(t))
	f := &cassFaultTarget{top: t, c: c, snap: filepath.Join(t.TempDir(), "snap")}
	f.want = f.rows(t)
	cli(t, 5*time.Minute, "snapshot", "pack", "--engine", "cassandra", "--from-cluster", c.Target, "--to", f.snap).mustSucceed(t)
	t.Logf("node started, filled and packed in %s", time.Since(start).Round(time.Second))

	t.Run("blob store faults", func(t *testing.T) {
		f.previous(t, 1)
		proxy, ref, cfg := f.throughS3(t, func(n int64) s3test.Fault {
			switch n {
			case 2, 6:
				return s3test.Reset
			case 3, 4, 5:
				return s3test.SlowDown
			case 8:
				return s3test.Stall
			}
			return s3test.Pass
		})
		begin := time.Now()
		res := rtStart(t, t.TempDir(), f.args(ref, t.TempDir(), "--param", "keep_previous=true",
			"--store-config", cfg, "--stall-timeout", "1s", "--concurrency", "2")...).wait(t, 5*time.Minute).mustSucceed(t)
		took := time.Since(begin)
		sameRows(t, f.want, f.rows(t))
		kept, _ := filepath.Glob(filepath.Join(f.dataDir(), "ks_one", "items-*", "snapshots", "restore-run-before-"+res.Report.RunID, "*-Data.db"))
		if len(kept) == 0 {
			t.Errorf("the replaced rows are not kept in snapshot restore-run-before-%s (keep_previous)", res.Report.RunID)
		}
		if proxy.Faults.Load() < 5 {
			t.Errorf("only %d faults injected in %d reads", proxy.Faults.Load(), proxy.Gets.Load())
		}
		recordFault(t, faultRow{Driver: "cassandra", Fault: fmt.Sprintf("blob store: 2 resets, 3× 503 SlowDown, 1 stalled read while the SSTables download (%d faults in %d reads)", proxy.Faults.Load(), proxy.Gets.Load()),
			Outcome: "success: each read retried (backoff, Retry-After, 1 s stall timeout)", Previous: "yes: kept in the nodetool snapshot restore-run-before-RUN (keep_previous)", Recover: took})
	})

	t.Run("kill -9 during execute, then resume", func(t *testing.T) {
		f.previous(t, 2)
		lockDir, wd := t.TempDir(), t.TempDir()
		r := rtStart(t, lockDir, f.args(f.snap, wd)...)
		f.waitStaged(t, r, 3*time.Minute)
		killed := kill9(t, r)
		st, err := engine.ReadRunState(wd)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phases["execute"] != engine.PhaseRunning || !slices.Contains(st.CheckpointNames(), "cassandra:truncated") || slices.Contains(st.CheckpointNames(), "cassandra:loaded") {
			t.Fatalf("the kill did not land in the load: phases %v, checkpoints %v", st.Phases, st.CheckpointNames())
		}
		// The target's rows were truncated; the killed run left them in its safety snapshot.
		if kept, _ := filepath.Glob(filepath.Join(f.dataDir(), "ks_one", "items-*", "snapshots", "restore-run-before-"+st.RunID, "*-Data.db")); len(kept) == 0 {
			t.Errorf("no safety snapshot restore-run-before-%s holds the truncated rows after the kill", st.RunID)
		}
		res := resumeRun(t, lockDir, wd).mustSucceed(t)
		took := time.Since(killed)
		if !strings.Contains(res.Stderr, "an interrupted load is started over") || !strings.Contains(res.Stderr, "taking over the lock of the interrupted run") {
			t.Errorf("the resume did not say it took over the lock and started the load over:\n%s", rtTail(res.Stderr, 30))
		}
		if got := phaseResults(res); got != "download:done before resume prepare:done before resume execute:ok validate:ok commit:ok" {
			t.Errorf("phases of the resume: %s", got)
		}
		sameRows(t, f.want, f.rows(t))
		if got, want := f.liveSSTables(t), f.snapshotSSTables(t); got != want {
			t.Errorf("ks_one.items holds %d SSTables after the resume, the snapshot %d: an import ran twice", got, want)
		}
		recordFault(t, faultRow{Driver: "cassandra", Fault: "kill -9 of restore-run during execute (table truncated, SSTables staged for nodetool import), then `resume`",
			Outcome:  "resume took over the lock, kept the schema, safety snapshot and truncation (checkpoints), removed the staging, truncated and imported again (SSTables once), validated",
			Previous: "yes: in the safety snapshot until the resume validated (then cleared)", Recover: took})
	})

	t.Run("the node killed during execute", func(t *testing.T) {
		prev := f.previous(t, 3)
		lockDir, wd := t.TempDir(), t.TempDir()
		r := rtStart(t, lockDir, f.args(f.snap, wd)...)
		f.waitStaged(t, r, 3*time.Minute)
		killed := time.Now()
		f.c.Nodes[0].Kill()
		res := r.wait(t, 3*time.Minute)
		res.mustFail(t, 1, "rollback failed too")
		if got := phaseResults(res); got != "download:ok prepare:ok execute:failed rollback:failed" {
			t.Errorf("phases %s", got)
		}
		f.restart(t)
		res = resumeRun(t, lockDir, wd)
		res.mustFail(t, 1, "has been rolled back")
		took := time.Since(killed)
		sameRows(t, prev, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: "the Cassandra node killed (SIGKILL) during execute (table truncated, import starting)",
			Outcome:  "execute failed, its rollback failed too (the node is down; the safety snapshot stays), exit 1; the node restarted (within the time to recover), `resume` finished the rollback",
			Previous: "yes: imported back from the safety snapshot and served", Recover: took})
	})

	t.Run("a corrupt SSTable", func(t *testing.T) {
		prev := f.previous(t, 4)
		bad := copySnapshot(t, f.snap)
		data := firstFile(t, bad, "-Data.db")
		flipByte(t, data)
		begin := time.Now()
		res := rtStart(t, t.TempDir(), f.args(bad, t.TempDir())...).wait(t, 2*time.Minute)
		took := time.Since(begin)
		res.mustFail(t, 1, strings.TrimPrefix(data, bad+"/"))
		if got := phaseResults(res); got != "download:failed" || res.Report.Error.Class != "corruption" {
			t.Errorf("phases %s, error %+v", got, res.Report.Error)
		}
		sameRows(t, prev, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: "a corrupt SSTable (one flipped byte in a Data.db)",
			Outcome: "download failed, class corruption, naming the file; exit 1; the node untouched", Previous: "yes: never touched", Recover: took})
	})

	t.Run("Ctrl-C during execute", func(t *testing.T) {
		prev := f.previous(t, 5)
		r := rtStart(t, t.TempDir(), f.args(f.snap, t.TempDir())...)
		f.waitStaged(t, r, 3*time.Minute)
		sig := time.Now()
		interrupt(r.cmd)
		res := r.wait(t, 2*time.Minute)
		took := time.Since(sig)
		if res.Code != 130 {
			t.Fatalf("exit %d, want 130\n%s", res.Code, rtTail(res.Stderr, 30))
		}
		if !res.Report.RolledBack {
			t.Errorf("not rolled back: %s", phaseResults(res))
		}
		sameRows(t, prev, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: "Ctrl-C (SIGINT) during execute (table truncated, import starting)",
			Outcome: "in-flight nodetool killed, rolled back, exit 130", Previous: "yes: imported back from the safety snapshot and served", Recover: took})
	})
	t.Run("kill -9 during download, then resume", func(t *testing.T) {
		prev := f.previous(t, 6)
		// The fourth read stalls (for a minute): the kill lands while the
		// download is under way, deterministically.
		proxy, ref, cfg := f.throughS3(t, func(n int64) s3test.Fault {
			if n == 3 {
				return s3test.Stall
			}
			return s3test.Pass
		})
		lockDir, wd := t.TempDir(), t.TempDir()
		r := rtStart(t, lockDir, f.args(ref, wd, "--store-config", cfg, "--stall-timeout", "60s", "--concurrency", "1")...)
		deadline := time.Now().Add(2 * time.Minute)
		for proxy.Faults.Load() == 0 {
			if !r.running() || time.Now().After(deadline) {
				t.Fatalf("the download never reached the stalled read:\n%s", rtTail(r.stderr.String(), 30))
			}
			time.Sleep(10 * time.Millisecond)
		}
		readsBefore := proxy.Gets.Load()
		killed := kill9(t, r)
		sameRows(t, prev, f.rows(t)) // the killed run never reached the node
		res := resumeRun(t, lockDir, wd).mustSucceed(t)
		took := time.Since(killed)
		if p := rtPhase(res.Report, "download"); p == nil || p.Result != "ok" {
			t.Errorf("download on resume: %+v", p)
		}
		sameRows(t, f.want, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: "kill -9 of restore-run during download (a read stalled), then `resume`",
			Outcome:  fmt.Sprintf("node untouched by the killed run; resume downloaded what was missing (%d reads before the kill, %d after) and restored", readsBefore, proxy.Gets.Load()-readsBefore),
			Previous: "yes: served until the resume, then kept in its safety snapshot until validation", Recover: took})
	})

	t.Run("kill -9 during validate, then resume", func(t *testing.T) {
		f.previous(t, 7)
		scripts := scriptsWith(t, "cassandra", "time.sleep(4)")
		lockDir, wd := t.TempDir(), t.TempDir()
		r := rtStart(t, lockDir, f.args(f.snap, wd, "--scripts", scripts)...)
		waitStderr(t, r, phaseStarted("validate"), 3*time.Minute)
		runID := rtRunID(t, r.stderr.String())
		time.Sleep(time.Second)
		killed := kill9(t, r)
		if kept, _ := filepath.Glob(filepath.Join(f.dataDir(), "ks_one", "items-*", "snapshots", "restore-run-before-"+runID, "*-Data.db")); len(kept) == 0 {
			t.Errorf("no safety snapshot restore-run-before-%s holds the replaced rows after the kill", runID)
		}
		res := resumeRun(t, lockDir, wd).mustSucceed(t)
		took := time.Since(killed)
		if got := phaseResults(res); got != "download:done before resume prepare:done before resume execute:done before resume validate:ok commit:ok" {
			t.Errorf("phases of the resume: %s", got)
		}
		sameRows(t, f.want, f.rows(t))
		if got, want := f.liveSSTables(t), f.snapshotSSTables(t); got != want {
			t.Errorf("ks_one.items holds %d SSTables after the resume, the snapshot %d", got, want)
		}
		recordFault(t, faultRow{Driver: "cassandra", Fault: "kill -9 of restore-run during validate, then `resume`",
			Outcome: "resume skipped the finished phases, validated again, committed", Previous: "yes: in the safety snapshot until the resume validated", Recover: took})
	})

	t.Run("disk full during download", func(t *testing.T) {
		prev := f.previous(t, 8)
		size := f.snapshotBytes(t)
		fsSize := size / 2 / 4096 * 4096
		if fsSize < 8192 {
			t.Fatalf("the snapshot holds only %d bytes: too small to fill a file system with", size)
		}
		wd := smallFS(t, fmt.Sprint(fsSize))
		begin := time.Now()
		res := cli(t, rtTimeout, f.args(f.snap, wd)...).mustFail(t, 1, "no space left on device")
		took := time.Since(begin)
		failedPhase(t, res.Report, "download", "permanent")
		sameRows(t, prev, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: fmt.Sprintf("disk full during download (%d KiB tmpfs work dir, %d KiB snapshot)", fsSize>>10, size>>10),
			Outcome: "download failed (no space left on device), class permanent, exit 1; the node untouched", Previous: "yes: never touched", Recover: took})
	})

	t.Run("a script error in validate", func(t *testing.T) {
		prev := f.previous(t, 9)
		scripts := scriptsWith(t, "cassandra", `{}["no such key"]`)
		begin := time.Now()
		res := cli(t, rtTimeout, f.args(f.snap, t.TempDir(), "--scripts", scripts)...).mustFail(t, 2, "no such key")
		took := time.Since(begin)
		if p := rtPhase(res.Report, "validate"); p == nil || p.ErrorClass != "script" || p.Attempts != 1 {
			t.Errorf("validate %+v, want failed once with class script", p)
		}
		if !res.Report.RolledBack {
			t.Errorf("not rolled back: %s", phaseResults(res))
		}
		sameRows(t, prev, f.rows(t))
		recordFault(t, faultRow{Driver: "cassandra", Fault: "a script error in validate (after the import)",
			Outcome: "validate failed, class script, not retried; rolled back; exit 2", Previous: "yes: imported back from the safety snapshot and served", Recover: took})
	})
	t.Logf("TestFaultCassandra took %s", time.Since(start).Round(time.Second))
}
