package e2e

// The fault suite on MariaDB (see faults_test.go): a physical restore (an xbstream
// of mariabackup) into a mariadbd run as a service (mysql-service.sh), whose
// previous data holds a marker row; and logical restores (mydumper) into a live
// server whose schema is replaced.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/internal/s3test"
	"github.com/restore-run/restore-run/mysqlops"
)

func mysqlPhysicalArgs(snap string, s *serviceServer, workDir string, extra ...string) []string {
	return append([]string{"restore", "--driver", "mysql", "--snapshot", snap, "--target", s.target, "--workdir", workDir,
		"--param", "keep_previous=true", "--progress", "none"}, extra...)
}

// previousKept checks that the physical restore kept the previous data dir, with
// the marker schema, in previous-RUN.
func (s *serviceServer) previousKept(t *testing.T, runID string) {
	t.Helper()
	dir := filepath.Join(s.datadir+".restore-run", "previous-"+runID, "previous_data")
	if _, err := os.Stat(filepath.Join(dir, "marker.frm")); err != nil {
		t.Errorf("the previous data dir with the marker schema is not in previous-%s: %v", runID, err)
	}
}

// waitEvents waits until the service script logged n events containing what.
func (s *serviceServer) waitEvents(t *testing.T, r *rtRun, what string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(s.events(), what) < n {
		if !r.running() {
			res := r.wait(t, time.Second)
			t.Fatalf("restore-run exited (%d) before the service logged %q %d times:\n%s\n%s", res.Code, what, n, s.events(), rtTail(res.Stderr, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not log %q %d times within %s:\n%s", what, n, timeout, s.events())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFaultMysqlBlobStore: resets, 503 bursts and a stall while the xbstream
// streams from S3 into mbstream: the stream's reads are retried and the restore
// succeeds.
func TestFaultMysqlBlobStore(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	st := newS3Setup(t)
	dir := src.snaps["xbstream.zst"]
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st.srv.PutObject(t, st.bucket, "mysql/faults/"+e.Name(), data)
	}
	proxy := s3test.NewFaultProxy(t, st.srv.Addr, func(n int64) s3test.Fault {
		switch n {
		case 1, 5:
			return s3test.Reset
		case 2, 3, 4:
			return s3test.SlowDown
		case 7:
			return s3test.Stall
		}
		return s3test.Pass
	})
	cfg := filepath.Join(t.TempDir(), "stores.yaml")
	writeText(t, cfg, fmt.Sprintf("stores:\n  - match: s3://\n    endpoint: %s\n    region: %s\n    path_style: true\n", proxy.URL, st.srv.Region))
	start := time.Now()
	res := rtStart(t, t.TempDir(), mysqlPhysicalArgs(st.ref("mysql/faults"), s, t.TempDir(), "--store-config", cfg, "--part-size", "256KiB", "--stall-timeout", "1s", "--concurrency", "2")...).
		wait(t, 5*time.Minute).mustSucceed(t)
	took := time.Since(start)
	sameSchema(t, src.want, inventory(t, s.conn(), "shop"))
	s.previousKept(t, res.Report.RunID)
	if proxy.Faults.Load() < 5 {
		t.Errorf("only %d faults injected in %d reads", proxy.Faults.Load(), proxy.Gets.Load())
	}
	st.noSecrets(t, map[string]string{"stdout": res.Stdout, "stderr": res.Stderr, "report": reportText(t, res.Report)})
	recordFault(t, faultRow{Driver: "mysql", Fault: fmt.Sprintf("blob store: 2 resets, 3× 503 SlowDown, 1 stalled read while the xbstream streams into mbstream (%d faults in %d ranged reads)", proxy.Faults.Load(), proxy.Gets.Load()),
		Outcome: "success: each read retried, the stream went on", Previous: "yes: kept in previous-RUN (keep_previous)", Recover: took})
}

// TestFaultMysqlKillDuringDownload: kill -9 while a mydumper snapshot downloads
// (slowly) for a logical restore into a live server: the schema is untouched;
// resume fetches what is missing and replaces it, keeping the old content in the
// holding schema.
func TestFaultMysqlKillDuringDownload(t *testing.T) {
	src := theShop(t)
	live := startLive(t)
	fillShop(t, live.srv, 40)
	conn := mysqlops.ConnConfig{Socket: live.srv.Config.Socket, User: "root"}
	before := inventory(t, conn, "shop")
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, "restore", "--driver", "mysql", "--snapshot", src.snaps["mydumper"], "--target", live.target, "--workdir", wd,
		"--param", "replace=true", "--param", "keep_previous=true", "--progress", "none", "--bandwidth-limit", "64KiB", "--files-at-once", "1")
	waitStderr(t, r, phaseStarted("download"), time.Minute)
	time.Sleep(3 * time.Second)
	if !r.running() {
		t.Fatalf("the download ended before the kill:\n%s", rtTail(r.stderr.String(), 20))
	}
	killed := kill9(t, r)
	sameSchema(t, before, inventory(t, conn, "shop"))
	textfile := filepath.Join(t.TempDir(), "m.prom")
	res := resumeRun(t, lockDir, wd, "--metrics-textfile", textfile).mustSucceed(t)
	took := time.Since(killed)
	sameSchema(t, src.want, inventory(t, conn, "shop"))
	// The holding schema keeps every table of the previous content, with its rows
	// (views, routines, triggers and events are kept there as definitions).
	held := inventory(t, conn, "rr_"+res.Report.RunID[len(res.Report.RunID)-6:]+"_shop")
	for name, w := range before.Tables {
		if g, ok := held.Tables[name]; !ok || g.Rows != w.Rows || g.Checksum != w.Checksum {
			t.Errorf("holding schema: table %s = %+v, the previous content had %+v", name, g, w)
		}
	}
	prom, _ := os.ReadFile(textfile)
	m := regexp.MustCompile(`restore_run_download_resumed_bytes_total\{driver="mysql"\} (\S+)`).FindSubmatch(prom)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("the resume fetched everything again: %q", m)
	}
	noPassword(t, "resume output", res.Stdout, res.Stderr, reportText(t, res.Report), string(prom))
	recordFault(t, faultRow{Driver: "mysql", Fault: "kill -9 of restore-run during download (mydumper, logical into a live server), then `resume`",
		Outcome: "schema untouched by the killed run; resume fetched only the missing files and replaced the schema", Previous: "yes: served until the resume, then kept in the holding schema (keep_previous)", Recover: took})
}

// TestFaultMysqlKillDuringExecute: kill -9 right after the server was stopped for
// the swap: the previous data dir is on disk (in place or in previous-RUN);
// `resume --rollback` puts it back and starts the server.
func TestFaultMysqlKillDuringExecute(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, mysqlPhysicalArgs(src.snaps["xbstream.zst"], s, wd)...)
	s.waitEvents(t, r, "stopped pid", 1, 5*time.Minute)
	killed := kill9(t, r)
	res := resumeRun(t, lockDir, wd, "--rollback").mustFail(t, 1, "rolled back")
	took := time.Since(killed)
	if res.Report == nil || !res.Report.RolledBack {
		t.Fatalf("not rolled back:\n%s", rtTail(res.Stderr, 30))
	}
	s.servesPrevious(t)
	recordFault(t, faultRow{Driver: "mysql", Fault: "kill -9 of restore-run during execute (server just stopped for the swap), then `resume --rollback`",
		Outcome: "the resumed rollback put the previous data dir back and started the server", Previous: "yes: served again", Recover: took})
}

// TestFaultMysqlKillDuringValidate: kill -9 during validate; resume validates
// again and commits.
func TestFaultMysqlKillDuringValidate(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	scripts := scriptsWith(t, "mysql", "time.sleep(4)")
	lockDir, wd := t.TempDir(), t.TempDir()
	r := rtStart(t, lockDir, mysqlPhysicalArgs(src.snaps["xbstream.zst"], s, wd, "--scripts", scripts)...)
	waitStderr(t, r, phaseStarted("validate"), 5*time.Minute)
	runID := rtRunID(t, r.stderr.String())
	time.Sleep(time.Second)
	killed := kill9(t, r)
	resumeRun(t, lockDir, wd).mustSucceed(t)
	took := time.Since(killed)
	sameSchema(t, src.want, inventory(t, s.conn(), "shop"))
	s.previousKept(t, runID)
	recordFault(t, faultRow{Driver: "mysql", Fault: "kill -9 of restore-run during validate, then `resume`",
		Outcome: "resume skipped the finished phases, validated again, committed", Previous: "yes: in previous-RUN", Recover: took})
}

// TestFaultMysqlServerKilledDuringExecute: the restored server is killed
// (SIGKILL) as soon as it starts: it never answers, execute fails, the rollback
// puts the previous data dir back and starts the server on it.
func TestFaultMysqlServerKilledDuringExecute(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	r := rtStart(t, t.TempDir(), mysqlPhysicalArgs(src.snaps["xbstream.zst"], s, t.TempDir(), "--param", "start_timeout=10")...)
	s.waitEvents(t, r, "started pid", 2, 5*time.Minute)
	ev := s.events()
	i := strings.LastIndex(ev, "started pid ")
	pid, err := strconv.Atoi(strings.Fields(ev[i+len("started pid "):])[0])
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	killed := time.Now()
	res := r.wait(t, 5*time.Minute).mustFail(t, 1)
	took := time.Since(killed)
	if res.Report == nil || !res.Report.RolledBack {
		t.Fatalf("not rolled back:\n%s", rtTail(res.Stderr, 30))
	}
	s.servesPrevious(t)
	recordFault(t, faultRow{Driver: "mysql", Fault: "mariadbd killed (SIGKILL) as it starts on the restored data dir",
		Outcome: "execute failed (no answer within start_timeout), rolled back, exit 1", Previous: "yes: served again", Recover: took})
}

// TestFaultMysqlDiskFull: the work dir is a tmpfs smaller than the mydumper
// snapshot: download fails with "no space left", the live schema is untouched.
func TestFaultMysqlDiskFull(t *testing.T) {
	src := theShop(t)
	var size int64
	entries, _ := os.ReadDir(src.snaps["mydumper"])
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	wd := smallFS(t, fmt.Sprintf("%dk", size/2/1024))
	live := startLive(t)
	fillShop(t, live.srv, 40)
	conn := mysqlops.ConnConfig{Socket: live.srv.Config.Socket, User: "root"}
	before := inventory(t, conn, "shop")
	start := time.Now()
	res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["mydumper"], "--target", live.target, "--workdir", wd,
		"--param", "replace=true", "--progress", "none").mustFail(t, 1, "no space left on device")
	took := time.Since(start)
	if p := rtPhase(res.Report, "download"); p == nil || p.Result != "failed" {
		t.Errorf("download %+v, want failed", p)
	}
	sameSchema(t, before, inventory(t, conn, "shop"))
	recordFault(t, faultRow{Driver: "mysql", Fault: fmt.Sprintf("disk full during download (%d KiB tmpfs work dir, %d KiB mydumper snapshot)", size/2/1024, size/1024),
		Outcome: "download failed (no space left on device), exit 1; the live schema untouched", Previous: "yes: never touched", Recover: took})
}

// TestFaultMysqlCorruptPart: a part of the xbstream fails its digest while it
// streams into mbstream, before the server is stopped.
func TestFaultMysqlCorruptPart(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	md := src.md
	md.Format = "xbstream"
	dest := filepath.Join(t.TempDir(), "snapshot")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "mysql", EngineVersion: md.ServerVersion, Source: "e2e fault suite",
		Files: []blobstore.PackFile{{Path: src.bare["xbstream.zst"]}}, Dest: dest, Metadata: md.Map(), PartSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(dest, filepath.Base(src.bare["xbstream.zst"])))
	start := time.Now()
	res := cli(t, 5*time.Minute, mysqlPhysicalArgs(dest, s, t.TempDir())...).mustFail(t, 1)
	took := time.Since(start)
	if res.Report == nil || res.Report.Error == nil || res.Report.Error.Class != "corruption" {
		t.Errorf("error %+v, want class corruption", res.Report.Error)
	}
	if strings.Contains(s.events(), "stopped") {
		t.Errorf("the server was stopped for a corrupt backup:\n%s", s.events())
	}
	s.servesPrevious(t)
	recordFault(t, faultRow{Driver: "mysql", Fault: "a corrupt part of the xbstream (one flipped byte)",
		Outcome: "the stream into mbstream failed, class corruption (the part is verified before its bytes reach mbstream); staging removed; exit 1", Previous: "yes: the server was never stopped", Recover: took})
}

// TestFaultMysqlScriptErrorInValidate: validate raises a Starlark error after the
// swap: exit 2, rolled back.
func TestFaultMysqlScriptErrorInValidate(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	scripts := scriptsWith(t, "mysql", `{}["no such key"]`)
	start := time.Now()
	res := cli(t, 5*time.Minute, mysqlPhysicalArgs(src.snaps["xbstream.zst"], s, t.TempDir(), "--scripts", scripts)...).mustFail(t, 2, "no such key")
	took := time.Since(start)
	if res.Report == nil || !res.Report.RolledBack {
		t.Fatalf("not rolled back:\n%s", rtTail(res.Stderr, 30))
	}
	s.servesPrevious(t)
	recordFault(t, faultRow{Driver: "mysql", Fault: "a script error in validate (after the swap)",
		Outcome: "validate failed, class script, not retried; rolled back; exit 2", Previous: "yes: served again", Recover: took})
}

// TestFaultMysqlCtrlC: SIGINT right after the server was stopped for the swap.
func TestFaultMysqlCtrlC(t *testing.T) {
	src := theShop(t)
	s := startService(t)
	s.marker(t)
	r := rtStart(t, t.TempDir(), mysqlPhysicalArgs(src.snaps["xbstream.zst"], s, t.TempDir())...)
	s.waitEvents(t, r, "stopped pid", 1, 5*time.Minute)
	sig := time.Now()
	interrupt(r.cmd)
	res := r.wait(t, 2*time.Minute)
	if res.Code != 130 || res.Report == nil || !res.Report.RolledBack {
		t.Fatalf("exit %d, want 130 and rolled back\n%s", res.Code, rtTail(res.Stderr, 30))
	}
	s.servesPrevious(t)
	recordFault(t, faultRow{Driver: "mysql", Fault: "Ctrl-C (SIGINT) during execute (server stopped for the swap)",
		Outcome: "rolled back, exit 130", Previous: "yes: served again", Recover: time.Since(sig)})
}
