package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
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
	// ReportPath, if set, receives the JSON report.
	ReportPath string
	Retry      RetryPolicy
	Log        zerolog.Logger
	// OnCall sees every builtin call (the audit log).
	OnCall func(builtins.Call)
	// Redactor receives the target's secrets; give the one the logger's output is
	// masked with. Nil: a private one.
	Redactor *redact.Redactor
	// Blob configures stores and downloads.
	Blob blobstore.OpenOptions
}

// RetryPolicy says how often a phase is tried when it fails with a retryable
// (transient or throttled) error, and how long to wait between attempts:
// exponential backoff from BaseDelay, capped at MaxDelay, with full jitter.
type RetryPolicy struct {
	Attempts  map[string]int
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// DefaultRetry retries download and validate, which are idempotent; prepare,
// execute and rollback change the target and run once.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{
		Attempts:  map[string]int{drivers.PhaseDownload: 3, drivers.PhaseValidate: 3},
		BaseDelay: time.Second,
		MaxDelay:  30 * time.Second,
	}
}

func (p RetryPolicy) attempts(phase string) int {
	if n := p.Attempts[phase]; n > 0 {
		return n
	}
	return 1
}

func (p RetryPolicy) delay(attempt int) time.Duration {
	d := p.BaseDelay << (attempt - 1)
	if d <= 0 || (p.MaxDelay > 0 && d > p.MaxDelay) {
		d = p.MaxDelay
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
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
	if opts.Retry.Attempts == nil {
		opts.Retry = DefaultRetry()
	}
	start := time.Now()
	runID := NewRunID()
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
		if opts.ReportPath != "" {
			if werr := rep.Write(opts.ReportPath); werr != nil {
				log.Error().Err(werr).Str("path", opts.ReportPath).Msg("could not write the report")
			}
		}
	}()

	params, err := ResolveParams(info, opts.Params)
	if err != nil {
		return rep, err
	}
	rep.Params = params

	// Work dir: given (kept), or a temp dir removed at the end.
	workDir := opts.WorkDir
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
	}
	rep.WorkDir = workDir

	// The snapshot: found, its manifest read and checked, its engine matching.
	blobOpts := opts.Blob
	blobOpts.Redactor = redactor
	src, err := blobstore.OpenWith(ctx, opts.Snapshot, blobOpts)
	if err != nil {
		return rep, err
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
		lock, err := LockTarget(target, runID)
		if err != nil {
			return rep, err
		}
		defer lock.Unlock()
	}

	run := &drivers.Run{ID: runID, WorkDir: workDir, Params: params, Plan: opts.Mode == ModePlan, State: map[string]any{}}
	env := &builtins.Env{
		Run: run, Snapshot: snap, Source: src, Target: target,
		Log: log, Redactor: redactor, Plan: run.Plan, OnCall: opts.OnCall,
	}
	pctx := builtins.NewContext(ctx, env)
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

	log.Info().Str("driver", info.ID()).Str("source", info.Source).Str("snapshot", snap.Ref).Str("target", target.Ref).Str("mode", string(opts.Mode)).Msg("run starts")

	phaseIn := func(c context.Context, name string, fn func(context.Context) error) error {
		rec, err := r.runPhase(c, opts, run, name, fn)
		rep.Phases = append(rep.Phases, rec)
		return err
	}
	phase := func(name string, fn func(context.Context) error) error { return phaseIn(pctx, name, fn) }

	if err := phase(drivers.PhaseDownload, func(c context.Context) error { return d.Download(c, run, snap) }); err != nil {
		return rep, err
	}

	var failed error
	switch opts.Mode {
	case ModeValidate:
		failed = r.validate(pctx, opts, d, run, snap, target, rep, phase)
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
			failed = r.validate(pctx, opts, d, run, snap, target, rep, phase)
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
			// Put the target back as it was; on a scratch target the teardown
			// below removes everything anyway, but the script may need to stop
			// what it started in order.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(pctx), 10*time.Minute)
			rerr := phaseIn(rctx, drivers.PhaseRollback, func(c context.Context) error { return d.Rollback(c, run, snap, target) })
			cancel()
			if rerr != nil {
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

	if opts.Keep && opts.Mode == ModeRestore && target.Scratch {
		if opts.Ready != nil {
			opts.Ready(target.Endpoints)
		}
		if opts.ReportPath != "" {
			rep.End = time.Now().UTC()
			rep.Calls = env.Calls()
			rep.Write(opts.ReportPath)
		}
		<-ctx.Done()
		log.Info().Msg("signal received: tearing down the scratch target")
	}
	return rep, nil
}

// validate runs the validate phase and turns failed checks into a Validation error.
func (r *Runner) validate(ctx context.Context, opts Options, d drivers.RestoreDriver, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target, rep *Report, phase func(string, func(context.Context) error) error) error {
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

// runPhase runs one phase with the retry policy and records it.
func (r *Runner) runPhase(ctx context.Context, opts Options, run *drivers.Run, name string, fn func(context.Context) error) (PhaseRecord, error) {
	env := builtins.FromContext(ctx)
	rec := PhaseRecord{Name: name, Start: time.Now().UTC()}
	log := env.Log.With().Str("phase", name).Logger()
	max := opts.Retry.attempts(name)
	var err error
	for attempt := 1; ; attempt++ {
		run.Attempt = attempt
		rec.Attempts = attempt
		log.Info().Int("attempt", attempt).Msg("phase starts")
		err = fn(ctx)
		if err == nil {
			break
		}
		class := drivers.ClassOf(err)
		if !class.Retryable() || attempt >= max || ctx.Err() != nil {
			break
		}
		wait := opts.Retry.delay(attempt)
		log.Warn().Err(err).Str("class", string(class)).Dur("retry_in", wait).Msg("phase failed; retrying")
		select {
		case <-ctx.Done():
			err = drivers.WithClass(drivers.Cancelled, name, context.Cause(ctx))
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
	case run.Plan:
		rec.Result = "planned"
	default:
		rec.Result = "ok"
		log.Info().Float64("seconds", rec.DurationSeconds).Msg("phase done")
	}
	return rec, err
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
