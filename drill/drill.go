// Package drill runs game-day drills: short Starlark scripts that restore
// snapshots into scratch targets (or named target files), in sequence or side by
// side, with recovery-time objectives, injected faults (a slow or failing blob
// store, a corrupted byte, a server killed mid-restore) and expectations on the
// restored data, and write a JSON report, a JUnit XML file and a self-contained
// HTML page with a timeline of every restore against its objective
// (docs/drills.md).
//
// A drill script is hosted like a driver script: the same dialect, the host's
// step limit and load() of lib/ modules, cancellation with the context, Starlark
// backtraces. It sees everything a driver sees plus the drill module. Each
// restore is one engine.Runner.Run, in its own goroutine for drill.parallel, so
// phases, retries, rollback and teardown are exactly those of `restore-run
// restore`. Two small hooks make the rest possible:
//
//   - engine.Options.AfterRestore: called after a successful validation, before
//     teardown, with the run's builtins.Env in its context: expectations call
//     builtins (etcd.get, sql.query, cql.count) against the live target there.
//   - blobstore.OpenOptions.WrapObject: every object the download pipeline reads
//     goes through the restore's store faults.
//
// Servers are killed through the builtins themselves: the drill's host wraps
// every builtin once more, and a kill fault fires before (or after) the call it
// names, in the phase it names.
package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/redact"
)

// Options configure a drill run.
type Options struct {
	// Host loads the drivers and the drill's lib/ modules (its sources, step
	// limit and log). New wraps its builtin modules: give a host nothing else
	// has used yet.
	Host *engine.Host
	// Params are --param KEY=VALUE, applied to the params drill(...) declares.
	Params map[string]string
	// ReportDir receives report.json, junit.xml, report.html and each restore's
	// run report under restores/. Empty: no files.
	ReportDir string
	Log       zerolog.Logger
	Redactor  *redact.Redactor
	// Blob configures stores and downloads for every restore (a target file's
	// store: section is added for restores into it).
	Blob blobstore.OpenOptions
	// Policy is the config file's retry and timeout layer.
	Policy engine.Policy
	// Timeout bounds the whole drill (0: none); restores still roll back and
	// tear down after it.
	Timeout time.Duration
	// Exporter, if set, sees the drill's report when it ends (the metrics).
	Exporter Exporter
}

// Exporter receives the outcome of each drill: the metrics implement it
// (NewMetrics), so alerting can fire when drills stop passing.
type Exporter interface {
	DrillEnd(rep *Report)
}

// Drill is one drill run.
type Drill struct {
	opts        Options
	host        *engine.Host
	runner      *engine.Runner
	predeclared starlark.StringDict
	log         zerolog.Logger
	ctx         context.Context
	start       time.Time

	timedOut bool // the drill's --timeout passed

	mu        sync.Mutex
	report    *Report
	decl      declaration
	objective time.Duration
	checks    []Check
	groups    int
}

// New prepares a drill run: it wraps the host's builtins with the drill's fault
// hooks and discovers the drivers.
func New(opts Options) *Drill {
	if opts.Redactor == nil {
		opts.Redactor = redact.New()
	}
	h := opts.Host
	if h == nil {
		h = engine.NewHost(engine.DefaultSources(nil))
	}
	h.Modules = wrapModules(h.Modules)
	d := &Drill{opts: opts, host: h, log: opts.Log}
	d.runner = &engine.Runner{Catalog: h.Discover()}
	pre := starlark.StringDict{}
	for k, v := range h.Predeclared() {
		pre[k] = v
	}
	pre["drill"] = newModule(d)
	// fail() works at a drill's top level too (a driver may call it only in a
	// phase): it stops the drill with a script error, or fails an expectation.
	if f, ok := builtins.Globals.Func("fail"); ok {
		pre["fail"] = starlark.NewBuiltin("fail", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return f.Impl(context.Background(), nil, args, kwargs)
		})
	}
	pre.Freeze()
	d.predeclared = pre
	return d
}

func (d *Drill) maxSteps() uint64 {
	if d.host.MaxSteps == 0 {
		return engine.DefaultMaxSteps
	}
	return d.host.MaxSteps
}

func (d *Drill) since(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return t.Sub(d.start).Seconds()
}

func (d *Drill) redact(s string) string { return d.opts.Redactor.String(s) }

// Find returns the drill script named by arg: a .star file on disk, or NAME,
// found as drills/NAME.star in the script sources (the last source first, the
// embedded drills last).
func Find(sources []engine.Source, arg string) (engine.Source, string, error) {
	if strings.HasSuffix(arg, ".star") || strings.ContainsRune(arg, os.PathSeparator) {
		fi, err := os.Stat(arg)
		if err != nil {
			return engine.Source{}, "", engine.Usage(fmt.Errorf("drill %s: %v", arg, err))
		}
		if fi.IsDir() {
			return engine.Source{}, "", engine.Usage(fmt.Errorf("drill %s is a directory; name a .star file", arg))
		}
		return engine.DirSource(filepath.Dir(arg)), filepath.Base(arg), nil
	}
	p := path.Join("drills", arg+".star")
	for i := len(sources) - 1; i >= 0; i-- {
		if _, err := fs.Stat(sources[i].FS, p); err == nil {
			return sources[i], p, nil
		}
	}
	names, _ := List(sources)
	return engine.Source{}, "", engine.Usage(fmt.Errorf("no drill %q: not a file, and no drills/%s.star in the script sources (drills: %s)", arg, arg, strings.Join(names, ", ")))
}

// List returns the names of the drills in the script sources' drills/ dirs.
func List(sources []engine.Source) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, s := range sources {
		entries, err := fs.ReadDir(s.FS, "drills")
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".star") || strings.HasSuffix(n, "_test.star") {
				continue
			}
			n = strings.TrimSuffix(n, ".star")
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// Run runs the drill script p of src and writes its reports. The error is nil
// when the drill passed; otherwise it says why, with a class: a script or usage
// error (exit 2), an interruption (cancelled, exit 130), or a failed drill
// (validation, exit 1). The report is never nil.
func (d *Drill) Run(ctx context.Context, src engine.Source, p string) (*Report, error) {
	d.start = time.Now()
	parent := ctx
	filename := p
	if src.Dir == "" {
		filename = src.Name + ":" + p
	} else {
		filename = filepath.Join(src.Dir, p)
	}
	host, _ := os.Hostname()
	name := strings.TrimSuffix(path.Base(p), ".star")
	d.report = &Report{Drill: name, File: filename, Host: host, Start: d.start.UTC(), Result: Failed}
	if d.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d.opts.Timeout, fmt.Errorf("the drill exceeded its --timeout of %s", d.opts.Timeout))
		defer cancel()
	}
	d.ctx = ctx

	runErr := d.exec(parent, ctx, src, p, filename)
	rep := d.finish(ctx, runErr)
	if d.opts.ReportDir != "" {
		if err := d.writeReports(rep); err != nil {
			d.log.Error().Err(err).Str("dir", d.opts.ReportDir).Msg("could not write the drill reports")
			if runErr == nil {
				runErr = drivers.WithClass(drivers.Permanent, "write the drill reports", err)
			}
		}
	}
	if d.opts.Exporter != nil {
		d.opts.Exporter.DrillEnd(rep)
	}
	switch {
	case runErr != nil:
		return rep, runErr
	case rep.Result != Passed:
		return rep, drivers.Errorf(drivers.Validation, "drill %s failed: %s", rep.Drill, strings.Join(rep.Failures, "; "))
	}
	return rep, nil
}

// exec runs the script's top level.
func (d *Drill) exec(parent, ctx context.Context, src engine.Source, p, filename string) error {
	data, err := fs.ReadFile(src.FS, p)
	if err != nil {
		return engine.Usage(fmt.Errorf("read drill %s: %v", filename, err))
	}
	sum := sha256.Sum256(data)
	d.report.SHA256 = hex.EncodeToString(sum[:])
	thread := d.host.NewThread(filename)
	thread.Print = func(_ *starlark.Thread, msg string) { d.log.Info().Str("drill", d.report.Drill).Msg(d.redact(msg)) }
	stop := context.AfterFunc(ctx, func() { thread.Cancel(fmt.Sprint(context.Cause(ctx))) })
	defer stop()
	d.log.Info().Str("drill", filename).Msg("drill starts")
	_, err = starlark.ExecFileOptions(engine.FileOptions(), thread, filename, data, d.predeclared)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if parent.Err() == nil {
			d.timedOut = true // the drill's own deadline, not a signal
			return drivers.Errorf(drivers.Permanent, "%v", context.Cause(ctx))
		}
		return drivers.WithClass(drivers.Cancelled, "drill", fmt.Errorf("interrupted: %v", context.Cause(ctx)))
	}
	if thread.ExecutionSteps() >= d.maxSteps() {
		return &engine.ScriptError{Where: "drill " + filename, Class: drivers.Script,
			Err: fmt.Errorf("stopped after %d Starlark steps, the step limit: an endless loop? (raise it with --max-steps)", d.maxSteps())}
	}
	var usage *engine.UsageError
	if errors.As(err, &usage) {
		return usage
	}
	se := &engine.ScriptError{Where: "drill " + filename, Class: drivers.Script, Err: err}
	var ev *starlark.EvalError
	if errors.As(err, &ev) {
		se.Backtrace = ev.Backtrace()
		se.Err = errors.New(errorText(err))
		if sf := (*scriptFailure)(nil); errors.As(err, &sf) {
			se.Err = sf
		}
	}
	return se
}

// finish computes the drill's verdict: every restore passed, the drill's RTO
// within its objective, every drill.check() ok, and no script error.
func (d *Drill) finish(ctx context.Context, runErr error) *Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := d.report
	end := time.Now()
	rep.End = end.UTC()
	rep.DurationSeconds = end.Sub(d.start).Seconds()
	var failures []string
	recovered := true
	for _, r := range rep.Restores {
		if r.ExpectFailure == nil {
			if r.Result == "success" {
				rep.RTOSeconds = max(rep.RTOSeconds, r.StartSeconds+r.RTOSeconds)
			} else {
				recovered = false
			}
		}
		if !r.Passed {
			for _, c := range r.Checks {
				if !c.OK {
					msg := r.Name + ": " + c.Name
					if c.Detail != "" {
						msg += ": " + c.Detail
					} else if c.Expected != "" || c.Actual != "" {
						msg += fmt.Sprintf(": expected %s, got %s", c.Expected, c.Actual)
					}
					failures = append(failures, msg)
				}
			}
		}
	}
	rep.Checks = nil
	if d.objective > 0 {
		obj := d.objective.Seconds()
		rep.RTOObjective = fptr(obj)
		c := Check{Kind: "objective", Name: "drill RTO within " + secs(obj), Expected: "<= " + secs(obj), Actual: secs(rep.RTOSeconds)}
		switch {
		case !recovered:
			var failed []string
			for _, r := range rep.Restores {
				if r.ExpectFailure == nil && r.Result != "success" {
					failed = append(failed, r.Name)
				}
			}
			c.Detail = "the drill did not recover: " + strings.Join(failed, ", ") + " did not restore"
		case len(rep.Restores) == 0:
			c.Detail = "the drill ran no restore"
		default:
			c.OK = rep.RTOSeconds <= obj
			if !c.OK {
				c.Detail = fmt.Sprintf("the last restore was validated %s after the drill started, %s over the objective", secs(rep.RTOSeconds), secs(rep.RTOSeconds-obj))
				if last := lastRecovered(rep.Restores); last != nil {
					c.Detail += "; the last to recover was " + last.Name
				}
			}
		}
		rep.Checks = append(rep.Checks, c)
	}
	rep.Checks = append(rep.Checks, d.checks...)
	for _, c := range rep.Checks {
		if !c.OK {
			msg := c.Name
			if c.Detail != "" {
				msg += ": " + c.Detail
			}
			failures = append(failures, msg)
		}
	}
	if len(rep.Restores) == 0 && runErr == nil {
		failures = append(failures, "the drill ran no restore")
	}
	rep.Failures = failures
	if d.timedOut {
		failures = append(failures, runErr.Error()+": the restores that ran then were rolled back and torn down")
		runErr = nil
	}
	switch {
	case runErr != nil && drivers.ClassOf(runErr) == drivers.Cancelled:
		rep.Result = Interrupted
	case runErr != nil:
		rep.Result = ScriptError
	case len(failures) > 0:
		rep.Result = Failed
	default:
		rep.Result = Passed
	}
	if runErr != nil {
		rep.Error = &ErrorReport{Message: d.redact(runErr.Error()), Class: string(drivers.ClassOf(runErr)), Backtrace: d.redact(engine.BacktraceOf(runErr))}
		var usage *engine.UsageError
		if errors.As(runErr, &usage) {
			rep.Error.Class = "usage"
		}
	}
	return rep
}

func lastRecovered(rs []*RestoreReport) *RestoreReport {
	var last *RestoreReport
	for _, r := range rs {
		if r.ExpectFailure == nil && r.Result == "success" && (last == nil || r.StartSeconds+r.RTOSeconds > last.StartSeconds+last.RTOSeconds) {
			last = r
		}
	}
	return last
}

// writeReports writes report.json, junit.xml and report.html.
func (d *Drill) writeReports(rep *Report) error {
	dir := d.opts.ReportDir
	rep.Files = []string{"report.json", "junit.xml", "report.html"}
	for _, r := range rep.Restores {
		if r.RunReport != "" {
			if _, err := os.Stat(filepath.Join(dir, r.RunReport)); err != nil {
				r.RunReport = ""
			}
		}
	}
	if err := writeJSON(filepath.Join(dir, "report.json"), rep); err != nil {
		return err
	}
	junit, err := JUnit(rep)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "junit.xml"), junit); err != nil {
		return err
	}
	html, err := HTML(rep)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "report.html"), html)
}
