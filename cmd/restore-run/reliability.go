package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/metrics"
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/transfer"
)

// runFlags are the reliability flags of restore, plan, validate and resume:
// deadlines, the audit log, metrics and the lock (docs/reliability.md,
// docs/metrics.md).
type runFlags struct {
	timeout         string
	phaseTimeouts   []string
	auditLog        string
	metricsAddr     string
	metricsTextfile string
	metricsPush     string
	breakLock       bool
}

func addRunFlags(fl *pflag.FlagSet) *runFlags {
	f := &runFlags{}
	fl.StringVar(&f.timeout, "timeout", "", "deadline of the whole run, e.g. 6h (overrides timeouts.run of the config file and the driver); rollback still runs after it")
	fl.StringArrayVar(&f.phaseTimeouts, "phase-timeout", nil, "deadline of one phase, PHASE=DURATION, e.g. execute=2h (repeatable; overrides the config file and the driver)")
	fl.StringVar(&f.auditLog, "audit-log", "", "append one JSON line per WRITE builtin call (what, on which target, result, class, duration, run id; secrets masked) to this file, fsync'd")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT/metrics while the run goes on (docs/metrics.md)")
	fl.StringVar(&f.metricsTextfile, "metrics-textfile", "", "write the metrics to this file when the run ends, in the node exporter textfile collector format (atomic; counters continue the file's earlier values)")
	fl.StringVar(&f.metricsPush, "metrics-push", "", "push the metrics to this Pushgateway URL when the run ends (POST: job restore_run, grouped by instance, driver and target)")
	fl.BoolVar(&f.breakLock, "break-lock", false, "take a target lock that names a run on another host (which this host cannot check); only when that run is known to be gone")
	return f
}

// override returns the command line's policy layer.
func (f *runFlags) override() (engine.Policy, error) {
	p := engine.Policy{Timeouts: engine.Timeouts{Phases: map[string]time.Duration{}}}
	if f.timeout != "" {
		d, err := engine.ParseDuration(f.timeout)
		if err != nil || d == 0 {
			return p, &flagError{errorf("--timeout %q: want a duration like 30m or 6h", f.timeout)}
		}
		p.Timeouts.Run = d
	}
	for _, kv := range f.phaseTimeouts {
		ph, v, ok := strings.Cut(kv, "=")
		d, err := engine.ParseDuration(v)
		if !ok || err != nil || d == 0 {
			return p, &flagError{errorf("--phase-timeout %q: want PHASE=DURATION, e.g. execute=2h", kv)}
		}
		if _, err := engine.ParsePolicy("--phase-timeout", nil, map[string]any{ph: v}); err != nil {
			return p, &flagError{err}
		}
		p.Timeouts.Phases[ph] = d
	}
	return p, nil
}

// configPolicy reads the retry: and timeouts: sections of the config file (the
// file --store-config or $RESTORE_RUN_CONFIG names, else
// $XDG_CONFIG_HOME/restore-run/config.yaml when it exists).
func configPolicy(s *storeFlags) (engine.Policy, error) {
	path, _ := s.configFile()
	if path == "" {
		return engine.Policy{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return engine.Policy{}, nil // a missing default file is fine; an explicit one failed in config()
	}
	var f struct {
		Retry    map[string]any `json:"retry"`
		Timeouts map[string]any `json:"timeouts"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return engine.Policy{}, engine.Usage(fmt.Errorf("config %s is not valid YAML: %v", path, err))
	}
	p, err := engine.ParsePolicy("config "+path, f.Retry, f.Timeouts)
	if err != nil {
		return engine.Policy{}, engine.Usage(err)
	}
	return p, nil
}

// wiring is what the reliability flags add to a run, and what must happen when
// it ends.
type wiring struct {
	metrics *metrics.Metrics
	audit   *auditLog
	f       *runFlags
	log     zerolog.Logger
	stop    context.CancelFunc
}

// wire prepares metrics and the audit log for opts and returns the wiring whose
// finish runs after the run.
func (f *runFlags) wire(ctx context.Context, opts *engine.Options, log zerolog.Logger, red *redact.Redactor) (*wiring, error) {
	w := &wiring{f: f, log: log}
	var err error
	if opts.Override, err = f.override(); err != nil {
		return nil, err
	}
	opts.BreakLock = f.breakLock
	var hooks []func(builtins.Call)
	if opts.OnCall != nil {
		hooks = append(hooks, opts.OnCall)
	}
	if f.auditLog != "" {
		if w.audit, err = openAudit(f.auditLog, red, opts.Target); err != nil {
			return nil, &flagError{errorf("--audit-log %s: %v", f.auditLog, err)}
		}
		hooks = append(hooks, w.audit.call)
	}
	if f.metricsAddr != "" || f.metricsTextfile != "" || f.metricsPush != "" {
		w.metrics = metrics.New()
		if f.metricsTextfile != "" {
			if err := w.metrics.SeedFromTextfile(f.metricsTextfile); err != nil {
				log.Warn().Err(err).Msg("metrics textfile")
			}
		}
		hooks = append(hooks, w.metrics.Call)
		prev := opts.Blob.Transfer.OnStats
		m := w.metrics
		opts.Blob.Transfer.OnStats = func(st transferStats) {
			m.Transfer(st)
			if prev != nil {
				prev(st)
			}
		}
		if f.metricsAddr != "" {
			sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			w.stop = stop
			addr, err := w.metrics.Serve(sctx, f.metricsAddr)
			if err != nil {
				stop()
				return nil, &flagError{err}
			}
			log.Debug().Str("addr", addr).Msg("serving metrics on /metrics")
		}
	}
	observers := []engine.Observer{}
	if w.metrics != nil {
		observers = append(observers, w.metrics)
	}
	if w.audit != nil {
		observers = append(observers, w.audit)
	}
	if len(observers) > 0 {
		opts.Observer = multiObserver(observers)
	}
	if len(hooks) > 0 {
		opts.OnCall = func(c builtins.Call) {
			for _, h := range hooks {
				h(c)
			}
		}
	}
	return w, nil
}

// finish writes and pushes the metrics and closes the audit log.
func (w *wiring) finish(ctx context.Context) error {
	var errs []string
	if w.metrics != nil && w.f.metricsTextfile != "" {
		if err := w.metrics.WriteTextfile(w.f.metricsTextfile); err != nil {
			errs = append(errs, "--metrics-textfile: "+err.Error())
		}
	}
	if w.metrics != nil && w.f.metricsPush != "" {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := w.metrics.Push(pctx, w.f.metricsPush); err != nil {
			errs = append(errs, err.Error())
		}
		cancel()
	}
	if w.stop != nil {
		w.stop()
	}
	if w.audit != nil {
		if err := w.audit.close(); err != nil {
			errs = append(errs, "--audit-log: "+err.Error())
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			w.log.Error().Msg(e)
		}
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

type multiObserver []engine.Observer

func (m multiObserver) RunStart(runID, driver, target string) {
	for _, o := range m {
		o.RunStart(runID, driver, target)
	}
}

func (m multiObserver) PhaseAttempt(driver, phase string, attempt int, class driversClass, d time.Duration) {
	for _, o := range m {
		o.PhaseAttempt(driver, phase, attempt, class, d)
	}
}

func (m multiObserver) PhaseEnd(driver, phase, result string, d time.Duration) {
	for _, o := range m {
		o.PhaseEnd(driver, phase, result, d)
	}
}

func (m multiObserver) RunEnd(rep *engine.Report) {
	for _, o := range m {
		o.RunEnd(rep)
	}
}

// auditLog appends one JSON line per WRITE builtin call, fsync'd, to a file.
type auditLog struct {
	mu     sync.Mutex
	f      *os.File
	red    *redact.Redactor
	runID  string
	driver string
	target string
	err    error
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	RunID    string    `json:"run_id"`
	Driver   string    `json:"driver,omitempty"`
	Target   string    `json:"target"`
	Phase    string    `json:"phase,omitempty"`
	Builtin  string    `json:"builtin"`
	Args     string    `json:"args"`
	Pos      string    `json:"pos,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	Result   string    `json:"result"` // ok, error, planned
	Class    string    `json:"class,omitempty"`
	Error    string    `json:"error,omitempty"`
	Duration float64   `json:"duration_seconds"`
}

func openAudit(path string, red *redact.Redactor, target string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &auditLog{f: f, red: red, target: target}, nil
}

func (a *auditLog) RunStart(runID, driver, target string) {
	a.mu.Lock()
	a.runID, a.driver, a.target = runID, driver, target
	a.mu.Unlock()
}
func (a *auditLog) PhaseAttempt(string, string, int, driversClass, time.Duration) {}
func (a *auditLog) PhaseEnd(string, string, string, time.Duration)                {}
func (a *auditLog) RunEnd(*engine.Report)                                         {}

func (a *auditLog) call(c builtins.Call) {
	if c.Effect != builtins.Write.String() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := AuditRecord{Time: c.Start.UTC(), RunID: a.runID, Driver: a.driver, Target: a.red.String(a.target), Phase: c.Phase,
		Builtin: c.Builtin, Args: a.red.String(c.Args), Pos: c.Pos, Attempt: c.Attempt, Result: "ok",
		Class: c.Class, Error: a.red.String(c.Error), Duration: c.Duration.Seconds()}
	switch {
	case c.Planned:
		rec.Result = "planned"
	case c.Error != "":
		rec.Result = "error"
	}
	data, err := json.Marshal(rec)
	if err == nil {
		_, err = a.f.Write(append(data, '\n'))
	}
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil && a.err == nil {
		a.err = err
	}
}

func (a *auditLog) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.f.Close(); err != nil && a.err == nil {
		a.err = err
	}
	return a.err
}

type (
	driversClass  = drivers.Class
	transferStats = transfer.Stats
)
