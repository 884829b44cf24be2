package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/targets"
)

// Mode is what a run does.
type Mode string

// Run modes.
const (
	// ModeRestore runs download, prepare, execute and validate.
	ModeRestore Mode = "restore"
	// ModePlan runs the phases with WRITE builtins recorded instead of run, and
	// skips validate: nothing is changed.
	ModePlan Mode = "plan"
	// ModeValidate downloads (verifies) the snapshot and runs only validate
	// against the target.
	ModeValidate Mode = "validate"
)

// Options describe one run.
type Options struct {
	Mode     Mode
	Driver   string            // NAME or NAME@CONSTRAINT
	Snapshot string            // snapshot reference
	Target   string            // scratch://... or a target file
	Params   map[string]string // --param KEY=VALUE
	// WorkDir holds downloads and scratch data. Empty: a temp dir removed at the end.
	WorkDir string
	// Keep holds a successful scratch target running until ctx is done.
	Keep bool
	// Ready is called with the target's endpoints when Keep holds the target.
	Ready func(endpoints []string)
	// AfterRestore, if set, is called once a restore succeeded (validated and
	// committed) and before teardown: a scratch target still runs, a target
	// file is still locked. Its ctx carries the run's builtins.Env
	// (builtins.FromContext; Env.Target has the endpoints), so builtins can be
	// called against the restored target. Drills check their expectations here.
	AfterRestore func(ctx context.Context)
	// ReportPath, if set, receives the JSON report.
	ReportPath string
	// Retry, when its Phases is set, replaces the built-in default retry policy
	// (tests use it for short delays). Policy is the config file's layer, above
	// the defaults and below the script's driver() declaration; Override (the
	// command line) is above all.
	Retry    RetryPolicy
	Policy   Policy
	Override Policy
	Log      zerolog.Logger
	// OnCall sees every builtin call (the audit log).
	OnCall func(builtins.Call)
	// Observer sees the run, its phases and their attempts as they happen (the
	// metrics).
	Observer Observer
	// Redactor receives the target's secrets; give the one the logger's output is
	// masked with. Nil: a private one.
	Redactor *redact.Redactor
	// Blob configures stores and downloads.
	Blob blobstore.OpenOptions
	// Scripts are the --scripts dirs, recorded in the run state for a resume.
	Scripts []string
	// ConfigFile is the config file named for the run, recorded in the run state
	// for a resume.
	ConfigFile string
	// BreakLock takes a target lock left by a run on another host.
	BreakLock bool
	// Resume continues the run recorded in WorkDir's run state: phases that
	// finished are skipped and the first unfinished one is entered again with
	// ctx.resumed set. ForceResume accepts a driver script whose sha256 changed;
	// RollbackOnly rolls the interrupted run back instead of finishing it.
	Resume       *RunState
	ForceResume  bool
	RollbackOnly bool
}

// Observer watches a run (the metrics implement it). Calls come from the run's
// goroutine, in order.
type Observer interface {
	RunStart(runID, driver, target string)
	PhaseAttempt(driver, phase string, attempt int, class drivers.Class, d time.Duration)
	PhaseEnd(driver, phase, result string, d time.Duration)
	RunEnd(rep *Report)
}

type nopObserver struct{}

func (nopObserver) RunStart(string, string, string)                                {}
func (nopObserver) PhaseAttempt(string, string, int, drivers.Class, time.Duration) {}
func (nopObserver) PhaseEnd(string, string, string, time.Duration)                 {}
func (nopObserver) RunEnd(*Report)                                                 {}

// deadlineError is the cause of a context whose deadline (a phase's or the run's)
// passed.
type deadlineError struct {
	what string
	d    time.Duration
}

func (e *deadlineError) Error() string {
	return fmt.Sprintf("%s exceeded its deadline of %s", e.what, e.d)
}

// deadlineOf returns the deadline error that ended ctx, if that is what ended it.
func deadlineOf(ctx context.Context) *deadlineError {
	var de *deadlineError
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &de) {
		return de
	}
	return nil
}

// policyDeclarer is a driver that declares its own retry and timeout policy
// (a script's driver(retry=..., timeouts=...)).
type policyDeclarer interface {
	DeclaredPolicy() Policy
}

// Runner runs restores with the drivers of a catalog.
type Runner struct {
	Catalog *Catalog
}

// NewRunID returns a sortable, unique run id like 20261125T172455Z-1a2b3c.
func NewRunID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Run performs one run and returns its report. The error, if any, is the run's
// failure (the report says the same); usage and configuration mistakes are
// *UsageError. The report is nil only when the driver could not be resolved.
func (r *Runner) Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if opts.Mode == "" {
		opts.Mode = ModeRestore
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	resume := opts.Resume
	start := time.Now()
	runID := NewRunID()
	if resume != nil {
		runID = resume.RunID
		opts.Mode = Mode(resume.Mode)
	}
	log := opts.Log.With().Str("run_id", runID).Logger()

	d, err := r.Catalog.Resolve(opts.Driver)
	if err != nil {
		return nil, Usage(err)
	}
	info := d.Info()
	rep = &Report{
		RunID: runID, Mode: string(opts.Mode), Start: start.UTC(),
		Driver:   DriverReport{Name: info.Name, Version: info.Version.String(), API: info.API, Source: info.Source, SHA256: info.SHA256},
		Snapshot: SnapshotReport{Ref: opts.Snapshot},
		Result:   "failed",
	}
	for _, s := range r.Catalog.Shadows {
		if s.ID == info.ID() {
			rep.Shadows = append(rep.Shadows, s)
		}
	}
	redactor := opts.Redactor
	if redactor == nil {
		redactor = redact.New()
	}
	var state *RunState // the durable run state, with a kept work dir
	started := false    // whether the run got to its phases (the observer saw it start)
	defer func() {
		rep.End = time.Now().UTC()
		if err != nil {
			rep.Error = &ErrorReport{
				Message:   redactor.String(err.Error()),
				Class:     string(drivers.ClassOf(err)),
				Hint:      redactor.String(drivers.HintOf(err)),
				Backtrace: redactor.String(BacktraceOf(err)),
			}
			if rep.Result != "cancelled" && drivers.ClassOf(err) == drivers.Cancelled {
				rep.Result = "cancelled"
			}
		}
		if state != nil && opts.Mode == ModeRestore {
			state.update(func(s *RunState) {
				switch {
				case err == nil:
					s.Outcome = "success"
				case rep.RolledBack:
					s.Outcome = "rolled_back"
				case rep.Result == "cancelled":
					s.Outcome = "cancelled"
				default:
					s.Outcome = "failed"
				}
				if err != nil {
					s.Error = redactor.String(err.Error())
				}
			})
		}
		if started {
			obs.RunEnd(rep)
		}
		if opts.ReportPath != "" {
			if werr := rep.Write(opts.ReportPath); werr != nil {
				log.Error().Err(werr).Str("path", opts.ReportPath).Msg("could not write the report")
			}
		}
	}()

	if resume != nil {
		if resume.Driver.SHA256 != info.SHA256 {
			msg := fmt.Sprintf("the driver script changed since run %s started: %s@%s (%s) had sha256 %s, now %s (%s)",
				runID, resume.Driver.Name, resume.Driver.Version, resume.Driver.Source, resume.Driver.SHA256, info.SHA256, info.Source)
			if !opts.ForceResume {
				return rep, Usage(drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s; refusing to resume with another script", msg),
					"resume with the script the run started with, or pass --force if the change is known to be safe for the interrupted step"))
			}
			rep.Notes = append(rep.Notes, "resumed with a changed driver script (--force): "+msg)
		}
	}

	resumeWhat := ""
	if resume != nil {
		if resumeWhat, err = resumePlan(resume, opts.RollbackOnly); err != nil {
			return rep, Usage(err)
		}
	}

	// The policy: defaults, the config file, the script's declaration, the command line.
	policy := DefaultPolicy()
	if opts.Retry.Phases != nil || opts.Retry.Attempts != nil {
		policy.Retry = opts.Retry.normalized()
	}
	policy = policy.Merge(opts.Policy)
	if pd, ok := d.(policyDeclarer); ok {
		policy = policy.Merge(pd.DeclaredPolicy())
	}
	policy = policy.Merge(opts.Override)

	params, err := ResolveParams(info, opts.Params)
	if err != nil {
		return rep, err
	}
	rep.Params = params

	// Work dir: given (kept), or a temp dir removed at the end.
	workDir := opts.WorkDir
	kept := workDir != ""
	if workDir == "" {
		workDir, err = os.MkdirTemp("", "restore-run-"+runID+"-")
		if err != nil {
			return rep, drivers.WithClass(drivers.Permanent, "create work dir", err)
		}
		defer os.RemoveAll(workDir)
	} else {
		if workDir, err = filepath.Abs(workDir); err != nil {
			return rep, Usage(err)
		}
		if err := os.MkdirAll(workDir, 0o700); err != nil {
			return rep, drivers.WithClass(drivers.Permanent, "create work dir", err)
		}
		if resume == nil && opts.Mode == ModeRestore {
			if prev, err := ReadRunState(workDir); err == nil && prev.Outcome == "" {
				return rep, Usage(drivers.WithHint(drivers.Errorf(drivers.Permanent,
					"work dir %s holds run %s, which did not finish (it was interrupted in %s)", workDir, prev.RunID, prev.current()),
					"continue it with `restore-run resume "+workDir+"` (or roll it back with `restore-run resume --rollback "+workDir+"`), or use another --workdir"))
			}
		}
	}
	rep.WorkDir = workDir

	// The run's deadline covers the snapshot, the lock wait and every phase up to
	// commit; rollback and teardown get their own time after it.
	rctx := ctx
	if policy.Timeouts.Run > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeoutCause(ctx, policy.Timeouts.Run, &deadlineError{"the run", policy.Timeouts.Run})
		defer cancel()
	}

	// The snapshot: found, its manifest read and checked, its engine matching.
	blobOpts := opts.Blob
	blobOpts.Redactor = redactor
	src, err := blobstore.OpenWith(rctx, opts.Snapshot, blobOpts)
	if err != nil {
		return rep, runDeadline(rctx, err)
	}
	defer src.Close()
	snap := src.Snapshot()
	rep.Snapshot = snapshotReport(snap)
	if !snap.Bare && snap.Manifest.Engine != info.Engine {
		return rep, &drivers.Error{Class: drivers.Permanent,
			Err:  fmt.Errorf("snapshot %s is a %s snapshot, but driver %s restores %s", snap.Ref, snap.Manifest.Engine, info.ID(), info.Engine),
			Hint: "use --driver " + snap.Manifest.Engine}
	}

	// The target: of the driver's engine, parsed, locked.
	if eng, err := targets.EngineOf(opts.Target); err == nil && eng != info.Engine && targets.Known(eng) {
		return rep, Usage(drivers.Errorf(drivers.Permanent, "target %s is a %s target, but driver %s restores %s", opts.Target, eng, info.ID(), info.Engine))
	}
	target, err := targets.Parse(opts.Target, filepath.Join(workDir, "scratch"))
	if err != nil {
		return rep, Usage(err)
	}
	redactor.Add(target.SecretValues()...)
	rep.Target = &TargetReport{Ref: target.Ref, Scratch: target.Scratch, Engine: target.Engine, Spec: target.Spec}
	if target.Engine != info.Engine {
		return rep, Usage(drivers.Errorf(drivers.Permanent, "target %s is a %s target, but driver %s restores %s", target.Ref, target.Engine, info.ID(), info.Engine))
	}
	if !target.Scratch && opts.Mode != ModePlan {
		lockWorkDir := ""
		if kept {
			lockWorkDir = workDir
		}
		lock, err := LockTargetWith(target, runID, LockOptions{WorkDir: lockWorkDir, Break: opts.BreakLock})
		if err != nil {
			return rep, err
		}
		defer lock.Unlock()
		if lock.Stale != nil && lock.Stale.RunID != runID {
			note := fmt.Sprintf("stale lock: %s died without releasing the target (kill -9 or a crash); its restore did not finish", lock.Stale)
			if lock.Stale.WorkDir != "" {
				note += "; see restore-run resume " + lock.Stale.WorkDir
			}
			log.Warn().Str("lock_holder", lock.Stale.String()).Msg(note)
			rep.Notes = append(rep.Notes, note)
		} else if lock.Stale != nil {
			log.Info().Str("lock_holder", lock.Stale.String()).Msg("taking over the lock of the interrupted run")
		}
	}

	run := &drivers.Run{ID: runID, WorkDir: workDir, Params: params, Plan: opts.Mode == ModePlan, State: map[string]any{}}
	if kept && opts.Mode == ModeRestore {
		host, _ := os.Hostname()
		if resume != nil {
			state = resume
			state.path = filepath.Join(workDir, RunStateFile)
			if state.State != nil {
				run.State = state.State
			}
			run.Checkpoints = state.CheckpointNames()
			run.Resumed = true
		} else {
			state = &RunState{Version: 1, RunID: runID, Mode: string(opts.Mode), path: filepath.Join(workDir, RunStateFile),
				Driver:  StateDrv{Name: info.Name, Version: info.Version.String(), Source: info.Source, SHA256: info.SHA256},
				Request: RunRequest{Driver: opts.Driver, Snapshot: opts.Snapshot, Target: opts.Target, Params: opts.Params, Keep: opts.Keep, Scripts: opts.Scripts, Config: opts.ConfigFile},
				Started: start.UTC(), Phases: map[string]string{}}
		}
		state.TargetRef, state.TargetScratch = target.Ref, target.Scratch
		if err := state.update(func(s *RunState) {
			s.PID, s.Host = os.Getpid(), host
			if resume != nil {
				s.Resumes++
				s.Outcome, s.Error, s.FailedPhase = "", "", ""
			}
		}); err != nil {
			return rep, drivers.WithClass(drivers.Permanent, "write the run state", err)
		}
		run.OnCheckpoint = func(name string) error {
			return state.update(func(s *RunState) {
				for _, c := range s.Checkpoints {
					if c.Name == name {
						s.State = run.State
						return
					}
				}
				s.Checkpoints = append(s.Checkpoints, Checkpoint{Name: name, Phase: currentPhase(s), At: time.Now().UTC()})
				s.State = run.State
			})
		}
	} else if resume != nil {
		return rep, Usage(fmt.Errorf("only a restore with a kept --workdir can be resumed"))
	}
	env := &builtins.Env{
		Run: run, Snapshot: snap, Source: src, Target: target,
		Log: log, Redactor: redactor, Plan: run.Plan, OnCall: opts.OnCall, CallRetry: policy.Retry.Call,
	}
	pctx := builtins.NewContext(rctx, env)
	defer func() {
		rep.Calls = env.Calls()
		// Scratch servers stop even when the run was interrupted.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := env.RunCleanups(cctx); cerr != nil {
			log.Error().Err(cerr).Msg("teardown")
			rep.Notes = append(rep.Notes, "teardown: "+redactor.String(cerr.Error()))
		}
	}()

	log.Info().Str("driver", info.ID()).Str("source", info.Source).Str("snapshot", snap.Ref).Str("target", target.Ref).Str("mode", string(opts.Mode)).Bool("resumed", resume != nil).Msg("run starts")
	obs.RunStart(runID, info.Name, target.Ref)
	started = true

	ph := &phaser{r: r, opts: opts, run: run, rep: rep, policy: policy, state: state, obs: obs, driver: info.Name}
	phaseIn := func(c context.Context, name string, fn func(context.Context) error) error {
		return ph.runPhase(c, name, fn)
	}
	// skip reports whether a resumed run finished phase already (a scratch
	// target's phases are run again: its servers died with the interrupted run).
	skip := func(name string) bool {
		if resume == nil || !state.phaseDone(name) {
			return false
		}
		if target.Scratch && name != drivers.PhaseDownload {
			return false
		}
		rep.Phases = append(rep.Phases, PhaseRecord{Name: name, Start: time.Now().UTC(), Attempts: 0, Result: "done before resume"})
		return true
	}
	phase := func(name string, fn func(context.Context) error) error {
		if skip(name) {
			return nil
		}
		return phaseIn(pctx, name, fn)
	}
	rollback := func() error {
		// Put the target back as it was; on a scratch target the teardown
		// removes everything anyway, but the script may need to stop what it
		// started in order.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(pctx), 10*time.Minute)
		defer cancel()
		return phaseIn(rctx, drivers.PhaseRollback, func(c context.Context) error { return d.Rollback(c, run, snap, target) })
	}

	if resume != nil {
		if target.Scratch {
			// The scratch servers died with the interrupted run; start afresh.
			os.RemoveAll(filepath.Join(workDir, "scratch"))
		}
		what := resumeWhat
		log.Info().Str("interrupted_in", resume.current()).Str("resume", what).Strs("checkpoints", run.Checkpoints).Msg("resuming the interrupted run")
		rep.Notes = append(rep.Notes, fmt.Sprintf("resumed run %s (interrupted in %s): %s", runID, resume.current(), what))
		if what == "rollback" {
			if !target.Scratch {
				if rerr := rollback(); rerr != nil {
					return rep, fmt.Errorf("rollback of the interrupted run failed: %w (the previous data may need manual recovery; see the run report)", rerr)
				}
			}
			rep.RolledBack = true
			rep.Result = "rolled_back"
			return rep, drivers.Errorf(drivers.Permanent, "run %s was interrupted in %s and has been rolled back: the target holds its previous data", runID, resume.current())
		}
	}

	if err := phase(drivers.PhaseDownload, func(c context.Context) error { return d.Download(c, run, snap) }); err != nil {
		return rep, err
	}

	var failed error
	switch opts.Mode {
	case ModeValidate:
		failed = r.validate(d, run, snap, target, rep, phase)
	default:
		failed = phase(drivers.PhasePrepare, func(c context.Context) error { return d.Prepare(c, run, snap, target) })
		if failed == nil {
			failed = phase(drivers.PhaseExecute, func(c context.Context) error {
				res, err := d.Execute(c, run, snap, target)
				if res != nil {
					rep.Details = res.Details
					target.Endpoints = endpointsOf(res.Details)
					rep.Target.Endpoints = target.Endpoints
				}
				return err
			})
		}
		if failed == nil && opts.Mode == ModePlan {
			rep.Phases = append(rep.Phases, PhaseRecord{Name: drivers.PhaseValidate, Start: time.Now().UTC(), Result: "skipped"})
			rep.Notes = append(rep.Notes, "validate is not run in plan mode: it checks the restored target, which a plan does not create")
		}
		if failed == nil && opts.Mode == ModeRestore {
			failed = r.validate(d, run, snap, target, rep, phase)
			rep.RTOSeconds = time.Since(start).Seconds()
		}
		if failed == nil && opts.Mode == ModeRestore {
			// The restore is proven: drop what a rollback would have needed. A
			// failure here does not undo a good restore; it is reported.
			if err := phase(drivers.PhaseCommit, func(c context.Context) error { return d.Commit(c, run, snap, target) }); err != nil {
				rep.Notes = append(rep.Notes, "commit failed after a successful validation (the restored data is in place; clean up what the error names): "+redactor.String(err.Error()))
			}
		}
		if failed != nil && opts.Mode == ModeRestore {
			if rerr := rollback(); rerr != nil {
				failed = fmt.Errorf("%w; rollback failed too: %v (the previous data may need manual recovery; see the run report)", failed, rerr)
			} else {
				rep.RolledBack = true
			}
		}
	}
	if rep.RTOSeconds == 0 {
		rep.RTOSeconds = time.Since(start).Seconds()
	}
	if failed != nil {
		return rep, failed
	}
	rep.Result = "success"
	if opts.Mode == ModePlan {
		rep.Result = "planned"
	}
	log.Info().Float64("rto_seconds", rep.RTOSeconds).Str("result", rep.Result).Msg("run ends")
	if opts.AfterRestore != nil && opts.Mode == ModeRestore {
		opts.AfterRestore(pctx) // drills: expectations against the live target
	}

	if opts.Keep && opts.Mode == ModeRestore && target.Scratch {
		if opts.Ready != nil {
			opts.Ready(target.Endpoints)
		}
		rep.End = time.Now().UTC()
		// The run is over (metrics say so) while the kept target serves.
		obs.RunEnd(rep)
		started = false
		if opts.ReportPath != "" {
			rep.Calls = env.Calls()
			rep.Write(opts.ReportPath)
		}
		<-ctx.Done()
		log.Info().Msg("signal received: tearing down the scratch target")
	}
	return rep, nil
}

// current names the phase a recorded run was in (the last one that started and
// did not finish), or "download" when none started.
func (s *RunState) current() string {
	return currentPhase(s)
}

func currentPhase(s *RunState) string {
	for _, p := range []string{drivers.PhaseRollback, drivers.PhaseCommit, drivers.PhaseValidate, drivers.PhaseExecute, drivers.PhasePrepare, drivers.PhaseDownload} {
		if st := s.Phases[p]; st == PhaseRunning || st == PhaseFailed {
			return p
		}
	}
	for _, p := range []string{drivers.PhaseCommit, drivers.PhaseValidate, drivers.PhaseExecute, drivers.PhasePrepare, drivers.PhaseDownload} {
		if s.Phases[p] == PhaseDone {
			return "after " + p
		}
	}
	return drivers.PhaseDownload
}

// resumePlan decides what a resume does: "continue" (skip the finished phases,
// enter the first unfinished one again) or "rollback" (the interrupted run had
// failed, or was rolling back, or --rollback was asked).
func resumePlan(s *RunState, rollbackOnly bool) (string, error) {
	switch s.Outcome {
	case "success":
		return "", fmt.Errorf("run %s finished successfully: nothing to resume", s.RunID)
	case "rolled_back":
		return "", fmt.Errorf("run %s failed in %s and was rolled back: nothing to resume (start a new restore)", s.RunID, s.FailedPhase)
	}
	touched := false
	for _, p := range []string{drivers.PhasePrepare, drivers.PhaseExecute, drivers.PhaseValidate, drivers.PhaseCommit, drivers.PhaseRollback} {
		if s.Phases[p] != "" {
			touched = true
		}
	}
	switch {
	case s.Phases[drivers.PhaseRollback] != "" && s.Phases[drivers.PhaseRollback] != PhaseDone:
		return "rollback", nil // interrupted while rolling back: finish it
	case rollbackOnly && touched:
		return "rollback", nil
	case rollbackOnly:
		return "", fmt.Errorf("run %s never got past download: the target was not touched, nothing to roll back", s.RunID)
	case s.FailedPhase != "" && s.FailedPhase != drivers.PhaseDownload && s.Phases[drivers.PhaseCommit] == "":
		return "rollback", nil // it had failed after download; its rollback did not finish
	}
	return "continue", nil
}

// runDeadline turns an error caused by the run's deadline into a clear one.
func runDeadline(ctx context.Context, err error) error {
	if de := deadlineOf(ctx); de != nil && err != nil {
		return drivers.WithHint(drivers.Errorf(drivers.Permanent, "%v: %v", de, err), "raise timeouts.run in the config file or the driver, or --timeout")
	}
	return err
}

// validate runs the validate phase and turns failed checks into a Validation error.
func (r *Runner) validate(d drivers.RestoreDriver, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target, rep *Report, phase func(string, func(context.Context) error) error) error {
	return phase(drivers.PhaseValidate, func(c context.Context) error {
		res, err := d.Validate(c, run, snap, target)
		if err != nil {
			return err
		}
		rep.Checks = res.Checks
		if failed := res.Failed(); len(failed) > 0 {
			msg := ""
			for i, f := range failed {
				if i > 0 {
					msg += "; "
				}
				msg += f.Name
				if f.Expected != "" || f.Actual != "" {
					msg += fmt.Sprintf(" (expected %s, got %s)", f.Expected, f.Actual)
				}
				if f.Detail != "" {
					msg += ": " + f.Detail
				}
			}
			return drivers.Errorf(drivers.Validation, "%d of %d validation checks failed: %s", len(failed), len(res.Checks), msg)
		}
		return nil
	})
}

// phaser runs phases with the run's policy and records them.
type phaser struct {
	r      *Runner
	opts   Options
	run    *drivers.Run
	rep    *Report
	policy Policy
	state  *RunState
	obs    Observer
	driver string
}

// runPhase runs one phase with its retry policy and deadline, and records it in
// the report, the run state and the observer.
func (p *phaser) runPhase(ctx context.Context, name string, fn func(context.Context) error) error {
	env := builtins.FromContext(ctx)
	rec := PhaseRecord{Name: name, Start: time.Now().UTC()}
	log := env.Log.With().Str("phase", name).Logger()
	bo := p.policy.Retry.phase(name)
	if d := p.policy.Timeouts.phase(name); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, &deadlineError{"phase " + name, d})
		defer cancel()
	}
	if !p.run.Plan {
		p.state.setPhase(name, PhaseRunning, nil)
	}
	var err error
	for attempt := 1; ; attempt++ {
		p.run.Attempt = attempt
		rec.Attempts = attempt
		log.Info().Int("attempt", attempt).Msg("phase starts")
		astart := time.Now()
		err = fn(ctx)
		if de := deadlineOf(ctx); de != nil && err != nil {
			err = drivers.WithHint(drivers.Errorf(drivers.Permanent, "%v: %v", de, err),
				"raise the deadline (timeouts."+name+" / timeouts.run in the config file or the driver, or --phase-timeout / --timeout)")
		}
		class := drivers.ClassOf(err)
		a := AttemptRecord{Attempt: attempt, Start: astart.UTC(), DurationSeconds: time.Since(astart).Seconds(), Result: "ok"}
		if err != nil {
			a.Result, a.ErrorClass, a.Error = "failed", string(class), env.Redact(err.Error())
		}
		p.obs.PhaseAttempt(p.driver, name, attempt, class, time.Since(astart))
		retry := err != nil && class.Retryable() && attempt < bo.Attempts && ctx.Err() == nil
		var wait time.Duration
		if retry {
			wait = bo.Delay(attempt)
			if bo.Deadline > 0 && time.Since(rec.Start)+wait >= bo.Deadline {
				retry = false
				log.Warn().Dur("deadline", bo.Deadline).Msg("phase retry deadline reached: no more attempts")
			}
		}
		if retry {
			a.RetryInSeconds = wait.Seconds()
		}
		rec.AttemptLog = append(rec.AttemptLog, a)
		if !retry {
			break
		}
		log.Warn().Err(errors.New(env.Redact(err.Error()))).Str("class", string(class)).Dur("retry_in", wait).Int("attempt", attempt).Int("attempts", bo.Attempts).Msg("phase failed; retrying")
		select {
		case <-ctx.Done():
			err = drivers.WithClass(drivers.Cancelled, name, context.Cause(ctx))
			if de := deadlineOf(ctx); de != nil {
				err = drivers.Errorf(drivers.Permanent, "%v while waiting to retry", de)
			}
		case <-time.After(wait):
			continue
		}
		break
	}
	rec.DurationSeconds = time.Since(rec.Start).Seconds()
	switch {
	case err != nil:
		rec.Result, rec.ErrorClass, rec.Error = "failed", string(drivers.ClassOf(err)), env.Redact(err.Error())
		log.Error().Err(errors.New(env.Redact(err.Error()))).Str("class", rec.ErrorClass).Msg("phase failed")
	case p.run.Plan:
		rec.Result = "planned"
	default:
		rec.Result = "ok"
		log.Info().Float64("seconds", rec.DurationSeconds).Msg("phase done")
	}
	if !p.run.Plan {
		st := PhaseDone
		if err != nil {
			st = PhaseFailed
		}
		p.state.setPhase(name, st, p.run)
		if err != nil && name != drivers.PhaseRollback && name != drivers.PhaseCommit {
			p.state.update(func(s *RunState) { s.FailedPhase = name })
		}
	}
	p.obs.PhaseEnd(p.driver, name, rec.Result, time.Since(rec.Start))
	p.rep.Phases = append(p.rep.Phases, rec)
	return err
}

func snapshotReport(s *drivers.Snapshot) SnapshotReport {
	m := s.Manifest
	sr := SnapshotReport{Ref: s.Ref, Bare: s.Bare, Engine: m.Engine, EngineVersion: m.EngineVersion,
		Files: len(m.Files), Bytes: m.TotalSize(), Metadata: m.Metadata}
	if !m.Created.IsZero() {
		c := m.Created.UTC()
		sr.Created = &c
	}
	return sr
}

func endpointsOf(details map[string]any) []string {
	l, _ := details["endpoints"].([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
