// Package metrics holds restore-run's Prometheus metrics (docs/metrics.md): one
// registry per process, fed by the engine (engine.Observer), the builtin calls and
// the download pipeline, and exposed three ways: served on --metrics-addr while the
// run goes on, written to a node exporter textfile (--metrics-textfile) and pushed
// to a Pushgateway (--metrics-push) when it ends.
//
// Labels stay few and bounded: driver (a script name), phase (six), class (the
// error taxonomy, or "ok"), result (success, failed, cancelled, planned,
// rolled_back), builtin (the registered builtins) and, on the last-success gauge only,
// target (the --target reference, never a secret).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/transfer"
)

// Namespace prefixes every metric name.
const Namespace = "restore_run"

// PhaseBuckets are the phase duration histogram's buckets, in seconds: 0.1 s to
// about 7 hours, each 4 times the one before.
var PhaseBuckets = prometheus.ExponentialBuckets(0.1, 4, 10)

// Metrics are the metrics of one restore-run process.
type Metrics struct {
	Registry *prometheus.Registry

	runs            *prometheus.CounterVec
	phaseDuration   *prometheus.HistogramVec
	phaseAttempts   *prometheus.CounterVec
	builtinAttempts *prometheus.CounterVec
	downloadBytes   *prometheus.CounterVec
	downloadRetries *prometheus.CounterVec
	downloadResumed *prometheus.CounterVec
	inProgress      *prometheus.GaugeVec
	lastSuccess     *prometheus.GaugeVec
	lastRun         *prometheus.GaugeVec
	rto             *prometheus.GaugeVec

	mu     sync.Mutex
	driver string
	target string
}

// New returns the metrics, registered in a new registry.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "runs_total",
		Help: "Runs that ended, by driver and result (success, failed, cancelled, planned, rolled_back)."}, []string{"driver", "result"})
	m.phaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "phase_duration_seconds",
		Help: "How long each phase took, all its attempts included.", Buckets: PhaseBuckets}, []string{"driver", "phase"})
	m.phaseAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "phase_attempts_total",
		Help: "Phase attempts by outcome: class ok, or the error class of the failed attempt."}, []string{"driver", "phase", "class"})
	m.builtinAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "builtin_attempts_total",
		Help: "Builtin call attempts (per-call retries included) by builtin and outcome: class ok, or the error class."}, []string{"driver", "builtin", "class"})
	m.downloadBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "download_bytes_total",
		Help: "Bytes read from the blob store, bytes read again after a retry included."}, []string{"driver"})
	m.downloadRetries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "download_retries_total",
		Help: "Ranged reads of the download pipeline that were retried (resets, 5xx, throttling, stalls, checksum mismatches)."}, []string{"driver"})
	m.downloadResumed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "download_resumed_bytes_total",
		Help: "Bytes a download did not fetch again because an earlier, interrupted run had verified them."}, []string{"driver"})
	m.inProgress = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "in_progress",
		Help: "1 while a restore, plan or validate runs, 0 when it ended."}, []string{"driver"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "last_success_timestamp_seconds",
		Help: "Unix time when the last successful restore of this target by this driver ended."}, []string{"driver", "target"})
	m.lastRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "last_run_timestamp_seconds",
		Help: "Unix time when the last run of this driver ended, whatever its result."}, []string{"driver"})
	m.rto = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "rto_seconds",
		Help: "Recovery time of the last successful restore: from the start of the run to the end of validation."}, []string{"driver"})
	m.Registry.MustRegister(m.runs, m.phaseDuration, m.phaseAttempts, m.builtinAttempts, m.downloadBytes,
		m.downloadRetries, m.downloadResumed, m.inProgress, m.lastSuccess, m.lastRun, m.rto)
	return m
}

var _ engine.Observer = (*Metrics)(nil)

func (m *Metrics) currentDriver() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.driver == "" {
		return "unknown"
	}
	return m.driver
}

// RunStart implements engine.Observer.
func (m *Metrics) RunStart(runID, driver, target string) {
	m.mu.Lock()
	m.driver, m.target = driver, target
	m.mu.Unlock()
	m.inProgress.WithLabelValues(driver).Set(1)
	// Make the counters of this driver visible (at 0) from the start.
	m.downloadBytes.WithLabelValues(driver)
	m.downloadRetries.WithLabelValues(driver)
	m.downloadResumed.WithLabelValues(driver)
}

// PhaseAttempt implements engine.Observer.
func (m *Metrics) PhaseAttempt(driver, phase string, attempt int, class drivers.Class, d time.Duration) {
	m.phaseAttempts.WithLabelValues(driver, phase, classLabel(string(class))).Inc()
}

// PhaseEnd implements engine.Observer.
func (m *Metrics) PhaseEnd(driver, phase, result string, d time.Duration) {
	m.phaseDuration.WithLabelValues(driver, phase).Observe(d.Seconds())
}

// RunEnd implements engine.Observer.
func (m *Metrics) RunEnd(rep *engine.Report) {
	driver := rep.Driver.Name
	m.runs.WithLabelValues(driver, rep.Result).Inc()
	m.inProgress.WithLabelValues(driver).Set(0)
	now := float64(time.Now().UnixNano()) / 1e9
	m.lastRun.WithLabelValues(driver).Set(now)
	if rep.Result == "success" && rep.Mode == "restore" {
		target := ""
		if rep.Target != nil {
			target = rep.Target.Ref
		}
		m.lastSuccess.WithLabelValues(driver, target).Set(now)
		m.rto.WithLabelValues(driver).Set(rep.RTOSeconds)
	}
}

// Call records a builtin call attempt (an Env.OnCall hook). Planned calls are
// not counted.
func (m *Metrics) Call(c builtins.Call) {
	if c.Planned {
		return
	}
	m.builtinAttempts.WithLabelValues(m.currentDriver(), c.Builtin, classLabel(c.Class)).Inc()
}

// Transfer adds the counters of one download call (a TransferOptions.OnStats
// hook).
func (m *Metrics) Transfer(st transfer.Stats) {
	d := m.currentDriver()
	m.downloadBytes.WithLabelValues(d).Add(float64(st.BytesFetched))
	m.downloadRetries.WithLabelValues(d).Add(float64(st.Retries))
	m.downloadResumed.WithLabelValues(d).Add(float64(st.BytesResumed))
}

func classLabel(c string) string {
	if c == "" {
		return "ok"
	}
	return c
}

// Serve serves /metrics on addr until ctx is done. It returns the address it
// listens on (addr may end in :0) once it listens.
func (m *Metrics) Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return ln.Addr().String(), nil
}

// carried are the families a textfile carries over from the previous run's file:
// counters add up across runs, and the last success of a target is kept when this
// run did not succeed.
var carried = map[string]bool{
	Namespace + "_runs_total":                     true,
	Namespace + "_phase_attempts_total":           true,
	Namespace + "_builtin_attempts_total":         true,
	Namespace + "_download_bytes_total":           true,
	Namespace + "_download_retries_total":         true,
	Namespace + "_download_resumed_bytes_total":   true,
	Namespace + "_last_success_timestamp_seconds": true,
	Namespace + "_rto_seconds":                    true,
}

// SeedFromTextfile loads the counters and the last-success gauges of an earlier
// textfile at path (a missing file is no error), so that the file this run writes
// continues them.
func (m *Metrics) SeedFromTextfile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return fmt.Errorf("%s: %v (it is rewritten from this run's metrics)", path, err)
	}
	vecs := map[string]any{
		Namespace + "_runs_total": m.runs, Namespace + "_phase_attempts_total": m.phaseAttempts,
		Namespace + "_builtin_attempts_total": m.builtinAttempts, Namespace + "_download_bytes_total": m.downloadBytes,
		Namespace + "_download_retries_total": m.downloadRetries, Namespace + "_download_resumed_bytes_total": m.downloadResumed,
		Namespace + "_last_success_timestamp_seconds": m.lastSuccess, Namespace + "_rto_seconds": m.rto,
	}
	for name, fam := range fams {
		if !carried[name] {
			continue
		}
		for _, mt := range fam.Metric {
			labels := prometheus.Labels{}
			for _, lp := range mt.Label {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch v := vecs[name].(type) {
			case *prometheus.CounterVec:
				if c, err := v.GetMetricWith(labels); err == nil && mt.Counter != nil {
					c.Add(mt.Counter.GetValue())
				}
			case *prometheus.GaugeVec:
				if g, err := v.GetMetricWith(labels); err == nil && mt.Gauge != nil {
					g.Set(mt.Gauge.GetValue())
				}
			}
		}
	}
	return nil
}

// WriteTextfile writes every metric in the node exporter textfile format to path,
// atomically (a temp file renamed over it), so the collector never reads half a
// file.
func (m *Metrics) WriteTextfile(path string) error {
	return prometheus.WriteToTextfile(path, m.Registry)
}

// Push sends the metrics to a Pushgateway at url with POST (metrics of other names
// already in the group are kept, so a failed run leaves the last success time in
// place), grouped by job restore_run, instance (the host name), restore_driver and
// restore_target.
func (m *Metrics) Push(ctx context.Context, url string) error {
	host, _ := os.Hostname()
	m.mu.Lock()
	driver, target := m.driver, m.target
	m.mu.Unlock()
	// Grouping labels may not repeat a metric's own labels (driver, target).
	p := push.New(url, "restore_run").Gatherer(m.Registry).Grouping("instance", host)
	if driver != "" {
		p = p.Grouping("restore_driver", driver)
	}
	if target != "" {
		p = p.Grouping("restore_target", target)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if err := p.Client(client).AddContext(ctx); err != nil {
		return fmt.Errorf("push metrics to %s: %w", redactURL(url), err)
	}
	return nil
}

// redactURL drops the user info of a URL for messages.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.Index(u[i+3:], "@"); j >= 0 {
			return u[:i+3] + "***@" + u[i+3+j+1:]
		}
	}
	return u
}

// Gather returns the current metric families (tests).
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.Registry.Gather() }
