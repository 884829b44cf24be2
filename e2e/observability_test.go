package e2e

// Metrics scraped from a live run, pushed to a Pushgateway and written as a
// textfile; the audit log; and secrets (a MySQL password, an S3 secret key) proven
// absent from logs, reports, the audit log, errors, plans, metrics and the run
// state.

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restore-run/restore-run/targets"
)

// metricValue returns the value of the sample name{labels...} in a text
// exposition, or -1.
func metricValue(text, sample string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, sample+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, sample)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// fakePushgateway records what restore-run pushes: the Pushgateway's
// PUT/POST /metrics/job/JOB{/LABEL/VALUE} API.
type fakePushgateway struct {
	mu     sync.Mutex
	method string
	path   string
	body   string
}

func (p *fakePushgateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/metrics/job/") || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
		http.Error(w, "not a push", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.method, p.path, p.body = r.Method, r.URL.EscapedPath(), string(body)
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// TestMetricsLiveRun scrapes /metrics while validate runs (made slow), then after
// the restore while --keep holds the scratch cluster, and checks the pushed and
// textfile metrics and the audit log.
func TestMetricsLiveRun(t *testing.T) {
	ports, err := targets.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	pg := &fakePushgateway{}
	pgSrv := httptest.NewServer(pg)
	defer pgSrv.Close()
	dir := t.TempDir()
	textfile, audit := filepath.Join(dir, "restore.prom"), filepath.Join(dir, "audit.log")
	scripts := scriptsWith(t, "etcd", "time.sleep(3)")
	r := startCLI(t, "restore", "--driver", "etcd", "--snapshot", filepath.Join(repoRoot, "testdata", "etcd", "quickstart"), "--target", "scratch://etcd?members=1",
		"--scripts", scripts, "--keep", "--metrics-addr", addr, "--metrics-textfile", textfile, "--metrics-push", pgSrv.URL, "--audit-log", audit)
	r.waitLine(t, r.errLines, time.Minute, "validate starts", func(l string) bool {
		return strings.Contains(l, `"phase":"validate"`) && strings.Contains(l, "phase starts")
	})
	live := scrape(t, addr)
	for sample, want := range map[string]float64{
		`restore_run_in_progress{driver="etcd"}`:                                            1,
		`restore_run_phase_duration_seconds_count{driver="etcd",phase="execute"}`:           1,
		`restore_run_phase_attempts_total{class="ok",driver="etcd",phase="download"}`:       1,
		`restore_run_builtin_attempts_total{builtin="blob.fetch",class="ok",driver="etcd"}`: 1,
	} {
		if got := metricValue(live, sample); got != want {
			t.Errorf("live: %s = %v, want %v", sample, got, want)
		}
	}
	if v := metricValue(live, `restore_run_download_bytes_total{driver="etcd"}`); v < 100_000 {
		t.Errorf("live: download bytes %v, want the snapshot's size", v)
	}
	if strings.Contains(live, "restore_run_runs_total{") {
		t.Errorf("live: a run counted before it ended:\n%s", live)
	}
	r.waitReady(t, time.Minute)
	after := scrape(t, addr)
	if got := metricValue(after, `restore_run_runs_total{driver="etcd",result="success"}`); got != 1 {
		t.Errorf("after: runs_total = %v", got)
	}
	if got := metricValue(after, `restore_run_in_progress{driver="etcd"}`); got != 0 {
		t.Errorf("after: in_progress = %v", got)
	}
	if rto := metricValue(after, `restore_run_rto_seconds{driver="etcd"}`); rto < 3 || rto > 60 {
		t.Errorf("after: rto_seconds = %v (validate alone slept 3 s)", rto)
	}
	if ts := metricValue(after, `restore_run_last_success_timestamp_seconds{driver="etcd",target="scratch://etcd?members=1"}`); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("after: last success %v", ts)
	}
	if code, _ := r.interruptAndWait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.output())
	}
	// Pushed with POST to the job's group, labelled by instance, driver and target.
	pg.mu.Lock()
	method, path, body := pg.method, pg.path, pg.body
	pg.mu.Unlock()
	host, _ := os.Hostname()
	if method != http.MethodPost || !strings.Contains(path, "/metrics/job/restore_run/") || !strings.Contains(path, "/instance/"+host) || !strings.Contains(path, "/restore_driver/etcd") ||
		!strings.Contains(path, "/restore_target@base64/"+base64.RawURLEncoding.EncodeToString([]byte("scratch://etcd?members=1"))) {
		t.Errorf("push: %s %s", method, path)
	}
	if !strings.Contains(body, "restore_run_runs_total") {
		t.Errorf("push body has no runs_total (%d bytes)", len(body))
	}
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(string(prom), `restore_run_runs_total{driver="etcd",result="success"}`); got != 1 {
		t.Errorf("textfile runs_total = %v", got)
	}
	// The audit log: one line per WRITE call, with the run id and target.
	lines := auditLines(t, audit)
	var builtins []string
	for _, l := range lines {
		builtins = append(builtins, fmt.Sprint(l["builtin"]))
		if l["run_id"] == "" || l["target"] != "scratch://etcd?members=1" || l["result"] != "ok" {
			t.Errorf("audit line %v", l)
		}
	}
	if got := strings.Join(builtins, " "); got != "blob.fetch etcd.snapshot_restore etcd.start_members" {
		t.Errorf("audit builtins: %s", got)
	}
	// A second run with the same textfile continues its counters.
	cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", filepath.Join(repoRoot, "testdata", "etcd", "quickstart"), "--target", "scratch://etcd",
		"--metrics-textfile", textfile).mustSucceed(t)
	prom, _ = os.ReadFile(textfile)
	if got := metricValue(string(prom), `restore_run_runs_total{driver="etcd",result="success"}`); got != 2 {
		t.Errorf("textfile runs_total after a second run = %v, want 2", got)
	}
}

// TestSecretsNeverShown restores a dump from S3 (secret key in the environment)
// into a live MySQL server (password by reference), succeeds, fails, plans and
// resumes, and greps every output for both secrets.
func TestSecretsNeverShown(t *testing.T) {
	src := theShop(t)
	live := startLive(t)
	fillShop(t, live.srv, 40)
	st := newS3Setup(t)
	snapDir := src.snaps["dump.zst"]
	entries, _ := os.ReadDir(snapDir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(snapDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st.srv.PutObject(t, st.bucket, "mysql/dump/"+e.Name(), data)
	}
	dir := t.TempDir()
	audit, textfile, wd := filepath.Join(dir, "audit.log"), filepath.Join(dir, "m.prom"), filepath.Join(dir, "work")
	args := func(cmd string, extra ...string) []string {
		return append([]string{cmd, "--driver", "mysql", "--snapshot", st.ref("mysql/dump"), "--target", live.target, "--store-config", st.config,
			"--audit-log", audit, "--metrics-textfile", textfile, "--param", "replace=true", "--log-level", "debug"}, extra...)
	}
	texts := map[string]string{}
	add := func(what string, res result) {
		texts[what+" stdout"], texts[what+" stderr"] = res.Stdout, res.Stderr
		if res.Report != nil {
			texts[what+" report"] = reportText(t, res.Report)
		}
	}
	add("plan", cli(t, 3*time.Minute, args("plan")...).mustSucceed(t))
	add("restore", cli(t, 3*time.Minute, args("restore", "--workdir", wd)...).mustSucceed(t))
	// A failing run: the schema check is broken by a script override, so the error
	// path (explanation, backtrace, report error) is printed too.
	scripts := scriptsWith(t, "mysql", `fail("broken on purpose, target " + target.ref)`)
	add("failed restore", cli(t, 3*time.Minute, args("restore", "--scripts", scripts)...).mustFail(t, 1, "broken on purpose"))
	// A wrong password: the server's error reaches the output, not the password.
	bad := filepath.Join(dir, "bad.yaml")
	writeText(t, bad, strings.Replace(string(mustRead(t, live.target)), "E2E_MYSQL_PASSWORD", "E2E_MYSQL_WRONG", 1))
	t.Setenv("E2E_MYSQL_WRONG", mysqlPassword+"-wrong")
	res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", st.ref("mysql/dump"), "--target", bad, "--store-config", st.config, "--audit-log", audit, "--param", "replace=true")
	if res.Code == 0 {
		t.Fatal("a wrong password worked")
	}
	add("wrong password", res)
	texts["audit log"] = string(mustRead(t, audit))
	texts["metrics"] = string(mustRead(t, textfile))
	texts["run state"] = string(mustRead(t, filepath.Join(wd, ".restore-run", "run.json")))
	if len(auditLines(t, audit)) < 3 {
		t.Errorf("the audit log has too few lines:\n%s", texts["audit log"])
	}
	for what, text := range texts {
		for name, secret := range map[string]string{"MySQL password": mysqlPassword, "S3 secret key": st.srv.SecretKey, "S3 access key": st.srv.AccessKey} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in the %s", name, what)
			}
		}
	}
	if !regexp.MustCompile(`sql\.move_aside`).MatchString(texts["audit log"]) {
		t.Errorf("the audit log does not record sql.move_aside:\n%s", texts["audit log"])
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
