package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/transfer"
)

func run(m *Metrics, result string) {
	m.RunStart("r", "etcd", "prod.yaml")
	m.PhaseAttempt("etcd", "download", 1, drivers.Transient, time.Second)
	m.PhaseAttempt("etcd", "download", 2, "", time.Second)
	m.PhaseEnd("etcd", "download", "ok", 2*time.Second)
	m.Call(builtins.Call{Builtin: "etcd.status", Class: "transient"})
	m.Call(builtins.Call{Builtin: "fs.move", Planned: true})
	m.Transfer(transfer.Stats{BytesFetched: 100, Retries: 2, BytesResumed: 10})
	m.RunEnd(&engine.Report{Mode: "restore", Result: result, RTOSeconds: 12, Driver: engine.DriverReport{Name: "etcd"}, Target: &engine.TargetReport{Ref: "prod.yaml"}})
}

// TestTextfileCarriesCountersAndLastSuccess: a second process writing the same
// textfile continues its counters, and a failed run keeps the last success time.
func TestTextfileCarriesCountersAndLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restore.prom")
	m := New()
	run(m, "success")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	m2 := New()
	if err := m2.SeedFromTextfile(path); err != nil {
		t.Fatal(err)
	}
	run(m2, "failed")
	if err := m2.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(path)
	for _, want := range []string{
		`restore_run_runs_total{driver="etcd",result="success"} 1`,
		`restore_run_runs_total{driver="etcd",result="failed"} 1`,
		`restore_run_phase_attempts_total{class="transient",driver="etcd",phase="download"} 2`,
		`restore_run_phase_attempts_total{class="ok",driver="etcd",phase="download"} 2`,
		`restore_run_builtin_attempts_total{builtin="etcd.status",class="transient",driver="etcd"} 2`,
		`restore_run_download_bytes_total{driver="etcd"} 200`,
		`restore_run_download_retries_total{driver="etcd"} 4`,
		`restore_run_in_progress{driver="etcd"} 0`,
		`restore_run_rto_seconds{driver="etcd"} 12`,
	} {
		if !strings.Contains(string(text), want+"\n") {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "fs.move") {
		t.Error("a planned call was counted")
	}
	lastSuccess := func(s string) string {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "restore_run_last_success_timestamp_seconds{") {
				return l
			}
		}
		return ""
	}
	if a, b := lastSuccess(string(first)), lastSuccess(string(text)); a == "" || a != b {
		t.Errorf("last success %q after a failed run, was %q", b, a)
	}
}
