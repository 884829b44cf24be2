package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/etcdops"
)

// binary is the restore-run binary under test, built by TestMain.
var binary string

// repoRoot is the repository's top directory.
var repoRoot string

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped with -short")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "restore-run-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "restore-run")
	build := exec.Command("go", "build", "-o", binary, "./cmd/restore-run")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building restore-run failed:", err)
		os.Exit(1)
	}
	code := m.Run()
	writeFaultTable()
	stopShop() // the MariaDB source server the mysql tests share
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one restore-run invocation did.
type result struct {
	Stdout, Stderr string
	Code           int
	Report         *engine.Report
}

// cli runs restore-run with args (a --report is added when the command takes one)
// and returns its output, exit code and parsed report. It fails the test if the
// binary does not finish within timeout.
func cli(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	reportPath := ""
	if len(args) > 0 && (args[0] == "restore" || args[0] == "plan" || args[0] == "validate" || args[0] == "resume") {
		reportPath = filepath.Join(t.TempDir(), "report.json")
		args = append(args, "--report", reportPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "RESTORE_RUN_LOCK_DIR="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("restore-run %s: did not finish within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, out.String(), errb.String())
	}
	res := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("restore-run: %v", err)
	}
	if reportPath != "" {
		if rep, err := engine.ReadReport(reportPath); err == nil {
			res.Report = rep
		}
	}
	return res
}

// mustSucceed fails the test unless the run exited 0.
func (r result) mustSucceed(t *testing.T) result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// mustFail fails the test unless the run exited with code and its stderr names
// every one of wants.
func (r result) mustFail(t *testing.T, code int, wants ...string) result {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.Code, code, r.Stdout, r.Stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
		}
	}
	return r
}

// sourceCluster is a live one-member etcd (in-process) to take snapshots from.
type sourceCluster struct {
	member *etcdops.Member
	client *etcdops.Client
}

// startSource starts an in-process etcd member, stopped at the end of the test.
func startSource(t *testing.T) *sourceCluster {
	t.Helper()
	ctx := context.Background()
	ports, err := etcdops.FreeLoopbackPorts(2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := etcdops.StartMember(ctx, etcdops.MemberConfig{
		Name: "source", DataDir: filepath.Join(t.TempDir(), "source.etcd"),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	c, err := etcdops.Dial(ctx, []string{m.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sourceCluster{member: m, client: c}
}

// fill writes n keys under prefix, overwrites a few and deletes some, so the
// revision is ahead of the key count.
func fill(t *testing.T, c *etcdops.Client, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if err := c.Put(ctx, fmt.Sprintf("%s/key-%04d", prefix, i), fmt.Sprintf("value %d of %s: %s", i, prefix, strings.Repeat("x", i%50))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 7 {
		if err := c.Put(ctx, fmt.Sprintf("%s/key-%04d", prefix, i), fmt.Sprintf("overwritten %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 3; i < n; i += 11 {
		if _, err := c.Delete(ctx, fmt.Sprintf("%s/key-%04d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// dump returns every key and value of the cluster at endpoints.
func dump(t *testing.T, endpoints []string) map[string]string {
	t.Helper()
	ctx := context.Background()
	c, err := etcdops.Dial(ctx, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]string{}
	if err := c.Range(ctx, "", func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameKeys fails the test unless got and want hold the same keys and values.
func sameKeys(t *testing.T, want, got map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the source holds no keys: the comparison would prove nothing")
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok {
			t.Errorf("key %q missing from the restored cluster", k)
		} else if gv != v {
			t.Errorf("key %q = %q, want %q", k, gv, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("restored cluster has extra key %q", k)
		}
	}
}

// interrupt sends SIGINT to a running command.
func interrupt(cmd *exec.Cmd) error { return cmd.Process.Signal(syscall.SIGINT) }
