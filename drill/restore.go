package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/targets"
)

// restoreSpec is one restore a drill asks for (drill.restore or drill.spec).
type restoreSpec struct {
	name, driver, snapshot, target string
	params                         map[string]string
	rto                            time.Duration
	phaseRTO                       map[string]time.Duration
	store                          storeFaults
	kills                          []*killSpec
	faults                         []Fault
	expect                         []*expectation
	failure                        *FailureExpectation
	timeout                        time.Duration
	policy                         engine.Policy // retry=: above the driver's, like the command line
	pos                            string
}

// restoreState is a restore while it runs: its faults, events and expectations.
type restoreState struct {
	d     *Drill
	spec  *restoreSpec
	start time.Time
	fs    *faultState

	mu          sync.Mutex
	events      []Event
	expectStart time.Time
	expectEnd   time.Time
	expectRan   bool
	checks      []Check
	scriptErr   error
}

// record adds an event at the current time.
func (rs *restoreState) record(what string) { rs.event(what, nil) }

func (rs *restoreState) event(what string, err error) {
	ev := Event{AtSeconds: rs.d.since(time.Now()), What: what}
	if err != nil {
		ev.Error = rs.d.redact(err.Error())
	}
	rs.mu.Lock()
	rs.events = append(rs.events, ev)
	rs.mu.Unlock()
	l := rs.d.log.Warn().Str("restore", rs.spec.name)
	if err != nil {
		l = l.Str("error", ev.Error)
	}
	l.Msg("drill fault: " + what)
}

// hook lets the restore's kill faults fire around a builtin call.
func (rs *restoreState) hook(ctx context.Context, env *builtins.Env, when, phase, builtin string) {
	rs.mu.Lock()
	var due []*killSpec
	for _, k := range rs.spec.kills {
		if k.matches(when, phase, builtin) {
			k.fired = true
			due = append(due, k)
		}
	}
	rs.mu.Unlock()
	for _, k := range due {
		what, err := k.kill(ctx, env)
		if err != nil {
			rs.event(k.text+": "+when+" "+builtin+" in "+phase, err)
			continue
		}
		rs.event(what+" ("+when+" "+builtin+" in "+phase+")", nil)
	}
}

// afterRestore is engine.Options.AfterRestore: the restore was validated and
// its target still runs; check the expectations now.
func (rs *restoreState) afterRestore(ctx context.Context) {
	env := builtins.FromContext(ctx)
	rs.mu.Lock()
	rs.expectStart, rs.expectRan = time.Now(), true
	rs.mu.Unlock()
	var checks []Check
	if len(rs.spec.expect) > 0 && env != nil {
		thread := rs.d.expectThread(ctx, env, rs.spec.name)
		stop := context.AfterFunc(ctx, func() { thread.Cancel(fmt.Sprint(context.Cause(ctx))) })
		for _, e := range rs.spec.expect {
			cs, serr := e.run(ctx, thread, rs, env)
			checks = append(checks, cs...)
			for _, c := range cs {
				l := rs.d.log.Info()
				if !c.OK {
					l = rs.d.log.Warn().Str("detail", c.Detail).Str("expected", c.Expected).Str("actual", c.Actual)
				}
				l.Str("restore", rs.spec.name).Bool("ok", c.OK).Msg("expectation: " + c.Name)
			}
			if serr != nil {
				rs.mu.Lock()
				if rs.scriptErr == nil {
					rs.scriptErr = serr
				}
				rs.mu.Unlock()
				break // a broken script: stop here (the target is torn down next)
			}
			if ctx.Err() != nil {
				break
			}
		}
		stop()
	}
	rs.mu.Lock()
	rs.checks, rs.expectEnd = checks, time.Now()
	rs.mu.Unlock()
}

// blobFor returns the store options of a restore into target: the drill's, and
// the store: section of a target file.
func (d *Drill) blobFor(target string) (blobstore.OpenOptions, error) {
	o := d.opts.Blob
	o.Redactor = d.opts.Redactor
	o.Stores.Layers = append([]blobstore.StoreLayer(nil), o.Stores.Layers...)
	if !strings.Contains(target, "://") {
		if section, err := targets.StoreSection(target); err == nil && len(section) > 0 {
			layer, err := blobstore.ParseStoreSection("target file "+target, section)
			if err != nil {
				return o, engine.Usage(err)
			}
			o.Stores.Layers = append(o.Stores.Layers, layer)
		}
	}
	return o, nil
}

// runRestore runs one restore with the engine and judges it.
func (d *Drill) runRestore(ctx context.Context, spec *restoreSpec, group int) (*RestoreReport, error) {
	rs := &restoreState{d: d, spec: spec, start: time.Now()}
	rep := &RestoreReport{
		Name: spec.name, Driver: spec.driver, Snapshot: spec.snapshot, Target: spec.target, Params: spec.params,
		Group: group, Pos: spec.pos, StartSeconds: d.since(rs.start), Faults: spec.faults, ExpectFailure: spec.failure,
	}
	if spec.rto > 0 {
		rep.RTOObjective = fptr(spec.rto.Seconds())
	}
	if len(spec.phaseRTO) > 0 {
		rep.Objectives = map[string]float64{}
		for p, v := range spec.phaseRTO {
			rep.Objectives[p] = v.Seconds()
		}
	}
	blob, err := d.blobFor(spec.target)
	if err != nil {
		rep.Result, rep.Error, rep.EndSeconds = "failed", d.redact(err.Error()), d.since(time.Now())
		return rep, err
	}
	if spec.store.active() {
		rs.fs = newFaultState(spec.store, rs.record)
		blob.WrapObject = rs.fs.wrap
	}
	opts := engine.Options{
		Mode: engine.ModeRestore, Driver: spec.driver, Snapshot: spec.snapshot, Target: spec.target, Params: spec.params,
		Log:      d.log.With().Str("restore", spec.name).Logger(),
		Redactor: d.opts.Redactor, Blob: blob, Policy: d.opts.Policy,
		AfterRestore: rs.afterRestore,
	}
	if d.opts.ReportDir != "" {
		rep.RunReport = filepath.Join("restores", spec.name+".json")
		opts.ReportPath = filepath.Join(d.opts.ReportDir, rep.RunReport)
	}
	opts.Override = spec.policy
	if spec.timeout > 0 {
		opts.Override.Timeouts.Run = spec.timeout
	}
	d.log.Info().Str("restore", spec.name).Str("driver", spec.driver).Str("snapshot", spec.snapshot).Str("target", spec.target).Msg("drill restore starts")
	erep, runErr := d.runner.Run(withRestore(ctx, rs), opts)
	socketNote := removeStaleSocket(erep)
	rep.EndSeconds = d.since(time.Now())
	if erep == nil {
		rep.RunReport = ""
	}
	d.fill(rep, rs, erep, runErr)
	if socketNote != "" {
		rep.Notes = append(rep.Notes, socketNote)
	}
	d.judge(rep, rs, runErr)
	d.log.Info().Str("restore", spec.name).Bool("passed", rep.Passed).Str("result", rep.Result).Float64("rto_seconds", rep.RTOSeconds).Msg("drill restore ends")
	var usage *engine.UsageError
	switch {
	case rs.scriptErr != nil:
		return rep, rs.scriptErr
	case errors.As(runErr, &usage):
		return rep, runErr
	}
	return rep, nil
}

// fill copies what the engine reported into the restore's report.
func (d *Drill) fill(rep *RestoreReport, rs *restoreState, erep *engine.Report, runErr error) {
	rep.Result = "failed"
	if erep != nil {
		rep.Result = erep.Result
		rep.RunID = erep.RunID
		rep.RTOSeconds = erep.RTOSeconds
		rep.Driver = erep.Driver.Name + "@" + erep.Driver.Version
		if erep.Snapshot.Ref != "" {
			rep.Snapshot = erep.Snapshot.Ref
		}
		if erep.Target != nil {
			rep.Endpoints = erep.Target.Endpoints
		}
		rep.Validation = erep.Checks
		rep.RolledBack = erep.RolledBack
		rep.Notes = erep.Notes
		for _, p := range erep.Phases {
			if p.Attempts == 0 && p.Result != "ok" && p.Result != "failed" {
				continue // skipped
			}
			rep.Phases = append(rep.Phases, Phase{
				Name: p.Name, StartSeconds: d.since(p.Start), DurationSeconds: p.DurationSeconds,
				Result: p.Result, Attempts: p.Attempts, ErrorClass: p.ErrorClass,
			})
			if p.Result == "failed" && rep.FailedIn == "" && p.Name != drivers.PhaseRollback && p.Name != drivers.PhaseCommit {
				rep.FailedIn = p.Name
			}
		}
	} else {
		rep.RTOSeconds = rep.EndSeconds - rep.StartSeconds
	}
	if runErr != nil {
		rep.Error = d.redact(runErr.Error())
		rep.ErrorClass = string(drivers.ClassOf(runErr))
		var usage *engine.UsageError
		if errors.As(runErr, &usage) {
			rep.ErrorClass = "usage"
		}
		if rep.Result == "success" {
			rep.Result = "failed"
		}
	}
	rs.mu.Lock()
	rep.Events = append(rep.Events, rs.events...)
	if rs.expectRan {
		rep.ExpectStartSeconds = d.since(rs.expectStart)
		rep.ExpectEndSeconds = d.since(rs.expectEnd)
	}
	rs.mu.Unlock()
	if rs.fs != nil {
		rep.FaultStats = rs.fs.stats()
	}
}

// judge decides whether the restore passed: the outcome the drill expected,
// its objectives, its expectations and its faults.
func (d *Drill) judge(rep *RestoreReport, rs *restoreState, runErr error) {
	spec := rs.spec
	var checks []Check
	succeeded := runErr == nil && rep.Result == "success"
	if f := spec.failure; f == nil {
		c := Check{Kind: "outcome", Name: "restore succeeds", OK: succeeded}
		if succeeded {
			c.Detail = fmt.Sprintf("restored and validated (%d validation checks passed)", len(rep.Validation))
		} else {
			c.Detail = rep.Error
			if rep.FailedIn != "" {
				c.Detail = "failed in " + rep.FailedIn + ": " + rep.Error
			}
		}
		checks = append(checks, c)
	} else {
		name := "restore fails cleanly"
		var want []string
		if f.Class != "" {
			want = append(want, "class "+f.Class)
		}
		if f.Phase != "" {
			want = append(want, "in "+f.Phase)
		}
		if len(want) > 0 {
			name += " (" + strings.Join(want, ", ") + ")"
		}
		c := Check{Kind: "outcome", Name: name, Expected: strings.Join(append([]string{"failed"}, want...), ", ")}
		got := []string{rep.Result}
		if rep.ErrorClass != "" {
			got = append(got, "class "+rep.ErrorClass)
		}
		if rep.FailedIn != "" {
			got = append(got, "in "+rep.FailedIn)
		}
		c.Actual = strings.Join(got, ", ")
		switch {
		case succeeded:
			c.Detail = "the restore succeeded: the fault did not make it fail"
		case rep.Result == "cancelled" || rep.ErrorClass == string(drivers.Cancelled):
			c.Detail = "the drill was interrupted"
		case f.Class != "" && f.Class != rep.ErrorClass:
			c.Detail = "it failed with another class: " + rep.Error
		case f.Phase != "" && f.Phase != rep.FailedIn:
			c.Detail = "it failed in another phase: " + rep.Error
		case strings.Contains(rep.Error, "rollback failed too"):
			c.Detail = "its rollback failed: " + rep.Error
		default:
			c.OK = true
			c.Detail = rep.Error
			if rep.RolledBack {
				c.Detail = "rolled back: " + rep.Error
			} else if rep.FailedIn == drivers.PhaseDownload {
				c.Detail = "the target was not touched: " + rep.Error
			}
		}
		checks = append(checks, c)
	}

	// Objectives: the RTO, and each phase's.
	phaseOver := false
	phases := map[string]float64{}
	for _, p := range rep.Phases {
		phases[p.Name] += p.DurationSeconds
	}
	names := make([]string, 0, len(spec.phaseRTO))
	for p := range spec.phaseRTO {
		names = append(names, p)
	}
	sort.Slice(names, func(i, j int) bool { return phaseOrder(names[i]) < phaseOrder(names[j]) })
	for _, p := range names {
		obj := spec.phaseRTO[p].Seconds()
		took, ran := phases[p]
		c := Check{Kind: "objective", Name: "phase " + p + " within " + secs(obj), Expected: "<= " + secs(obj)}
		switch {
		case !ran:
			c.OK, c.Detail = true, "the phase did not run"
		default:
			c.OK = took <= obj
			c.Actual = secs(took)
			if !c.OK {
				phaseOver = true
				c.Detail = fmt.Sprintf("%s ran long: %s, %s over its objective", p, secs(took), secs(took-obj))
			}
		}
		for i := range rep.Phases {
			if rep.Phases[i].Name == p {
				rep.Phases[i].Objective = fptr(obj)
				if ran && took > obj {
					rep.Phases[i].Over = true
				}
			}
		}
		checks = append(checks, c)
	}
	if spec.rto > 0 {
		obj := spec.rto.Seconds()
		name := "RTO within " + secs(obj)
		if spec.failure != nil {
			name = "fails within " + secs(obj)
		}
		c := Check{Kind: "objective", Name: name, Expected: "<= " + secs(obj), Actual: secs(rep.RTOSeconds), OK: rep.RTOSeconds <= obj}
		if !c.OK {
			c.Detail = fmt.Sprintf("RTO %s missed its objective %s by %s", secs(rep.RTOSeconds), secs(obj), secs(rep.RTOSeconds-obj))
			if long := longestPhase(rep.Phases); long >= 0 {
				p := &rep.Phases[long]
				share := 0.0
				if rep.RTOSeconds > 0 {
					share = 100 * p.DurationSeconds / rep.RTOSeconds
				}
				c.Detail += fmt.Sprintf("; %s ran long: %s (%.0f%% of the RTO)", p.Name, secs(p.DurationSeconds), share)
				if !phaseOver {
					p.Over = true
				}
			}
		}
		checks = append(checks, c)
	}

	// Expectations, checked while the target still ran.
	rs.mu.Lock()
	ran, got := rs.expectRan, rs.checks
	rs.mu.Unlock()
	if ran {
		checks = append(checks, got...)
	} else if spec.failure == nil {
		for _, e := range spec.expect {
			checks = append(checks, Check{Kind: "expectation", Name: e.name, Pos: e.pos, Detail: "not checked: the restore did not succeed"})
		}
	}

	// Faults: each kill must have fired.
	for _, k := range spec.kills {
		c := Check{Kind: "fault", Name: k.text + " fired", OK: k.fired}
		if !k.fired {
			c.Detail = "its trigger never came: the restore did not reach it"
			if k.after != "" || k.before != "" {
				c.Detail = "no call of " + k.after + k.before + " happened"
				if k.phase != "" {
					c.Detail += " in " + k.phase
				}
			} else if k.phase != "" {
				c.Detail = "the restore made no builtin call in " + k.phase
			}
		}
		for _, ev := range rep.Events {
			if ev.Error != "" && strings.HasPrefix(ev.What, k.text) {
				c.OK = false
				c.Detail = "it did not work: " + ev.Error
			}
		}
		checks = append(checks, c)
	}
	rep.Checks = checks
	rep.Passed = true
	for _, c := range checks {
		if !c.OK {
			rep.Passed = false
		}
	}
}

// longestPhase returns the index of the longest phase, or -1.
func longestPhase(ps []Phase) int {
	best := -1
	for i, p := range ps {
		if best < 0 || p.DurationSeconds > ps[best].DurationSeconds {
			best = i
		}
	}
	return best
}

func phaseOrder(p string) int {
	for i, n := range []string{drivers.PhaseDownload, drivers.PhasePrepare, drivers.PhaseExecute, drivers.PhaseValidate, drivers.PhaseCommit, drivers.PhaseRollback} {
		if n == p {
			return i
		}
	}
	return 99
}

// secs renders seconds for people: 0.42s, 12.3s, 4m05s.
func secs(s float64) string {
	switch {
	case s < 0:
		return "-" + secs(-s)
	case s < 10:
		return fmt.Sprintf("%.2fs", s)
	case s < 120:
		return fmt.Sprintf("%.1fs", s)
	}
	m := int(s) / 60
	return fmt.Sprintf("%dm%02ds", m, int(s)%60)
}

// resultValue is what drill.restore returns to the script.
func resultValue(rep *RestoreReport) starlark.Value {
	phases := map[string]any{}
	for _, p := range rep.Phases {
		v, _ := phases[p.Name].(float64)
		phases[p.Name] = v + p.DurationSeconds
	}
	var checks []any
	for _, c := range rep.Checks {
		checks = append(checks, builtins.MustStruct(map[string]any{"kind": c.Kind, "name": c.Name, "ok": c.OK, "detail": c.Detail, "expected": c.Expected, "actual": c.Actual}))
	}
	var obj any
	if rep.RTOObjective != nil {
		obj = *rep.RTOObjective
	}
	eps := make([]any, 0, len(rep.Endpoints))
	for _, e := range rep.Endpoints {
		eps = append(eps, e)
	}
	return builtins.MustStruct(map[string]any{
		"name": rep.Name, "passed": rep.Passed, "ok": rep.Result == "success", "result": rep.Result,
		"error": rep.Error, "error_class": rep.ErrorClass, "failed_phase": rep.FailedIn, "rolled_back": rep.RolledBack,
		"rto": rep.RTOSeconds, "rto_objective": obj, "phases": phases, "checks": checks, "endpoints": eps,
		"snapshot": rep.Snapshot, "driver": rep.Driver, "run_id": rep.RunID,
	})
}

// removeStaleSocket removes the unix socket of a scratch mysql target that lies
// outside the run's work dir (a deep work dir puts it in $TMPDIR) when its
// server is gone without removing it (killed by the drill): the teardown removed
// the work dir, not this file. It returns what it did, or "".
func removeStaleSocket(rep *engine.Report) string {
	if rep == nil || rep.Target == nil || !rep.Target.Scratch || rep.Target.Engine != "mysql" {
		return ""
	}
	sock, _ := rep.Target.Spec["socket"].(string)
	if sock == "" || rep.WorkDir == "" || strings.HasPrefix(sock, rep.WorkDir+string(os.PathSeparator)) {
		return ""
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return ""
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return "" // someone serves it
	}
	if os.Remove(sock) != nil {
		return ""
	}
	return "removed the socket " + sock + " its killed server left behind"
}
