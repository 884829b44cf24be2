package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// phaseArity is the number of parameters each phase function takes.
var phaseArity = map[string]int{
	drivers.PhaseDownload: 2, // (ctx, snapshot)
	drivers.PhasePrepare:  3, // (ctx, snapshot, target)
	drivers.PhaseExecute:  3,
	drivers.PhaseValidate: 3,
	drivers.PhaseCommit:   3,
	drivers.PhaseRollback: 3,
}

// requiredPhases must be defined by every driver script.
var requiredPhases = []string{drivers.PhaseExecute, drivers.PhaseValidate}

// defaultDownload is the download phase of scripts that define none: fetch and
// verify every file of the snapshot, and record where they are.
const defaultDownload = `
def download(ctx, snapshot):
    ctx.state["files"] = blob.fetch_all()
`

// ScriptDriver is a .star driver script seen as a drivers.RestoreDriver.
type ScriptDriver struct {
	host     *Host
	filename string
	text     []byte
	globals  starlark.StringDict
	info     drivers.Info
	policy   Policy
}

// DeclaredPolicy is the retry and timeout policy of the script's driver()
// declaration.
func (d *ScriptDriver) DeclaredPolicy() Policy { return d.policy }

var _ drivers.RestoreDriver = (*ScriptDriver)(nil)

// Info describes the driver.
func (d *ScriptDriver) Info() drivers.Info { return d.info }

// Text returns the script's source text.
func (d *ScriptDriver) Text() []byte { return d.text }

// Filename returns the script's display name (embedded:NAME.star or a path).
func (d *ScriptDriver) Filename() string { return d.filename }

func (d *ScriptDriver) checkPhases() error {
	for _, ph := range append(append([]string{}, drivers.Phases...), drivers.PhaseCommit, drivers.PhaseRollback) {
		v, ok := d.globals[ph]
		if !ok {
			continue
		}
		fn, ok := v.(*starlark.Function)
		if !ok {
			return drivers.Errorf(drivers.Script, "%s: %s must be a function, not a %s", d.filename, ph, v.Type())
		}
		if fn.NumParams() != phaseArity[ph] || fn.HasVarargs() || fn.HasKwargs() {
			want := "(ctx, snapshot, target)"
			if phaseArity[ph] == 2 {
				want = "(ctx, snapshot)"
			}
			return drivers.Errorf(drivers.Script, "%s: def %s must take exactly %s, not %d parameters", fn.Position(), ph, want, fn.NumParams())
		}
		d.info.Phases = append(d.info.Phases, ph)
	}
	for _, ph := range requiredPhases {
		if _, ok := d.globals[ph]; !ok {
			return drivers.Errorf(drivers.Script, "%s: driver %s defines no %s(ctx, snapshot, target) function; every driver needs execute and validate", d.filename, d.info.ID(), ph)
		}
	}
	sort.Strings(d.info.Phases)
	return nil
}

// phaseFunc returns the function for phase, the engine's default download, or nil
// for an optional phase the script does not define.
func (d *ScriptDriver) phaseFunc(phase string) (starlark.Callable, error) {
	if v, ok := d.globals[phase]; ok {
		return v.(starlark.Callable), nil
	}
	if phase != drivers.PhaseDownload {
		return nil, nil
	}
	thread := d.host.newLoadThread("default download")
	g, err := starlark.ExecFileOptions(fileOptions, thread, "engine:default_download.star", defaultDownload, d.host.Predeclared())
	if err != nil {
		return nil, fmt.Errorf("engine default download: %w", err)
	}
	return g["download"].(starlark.Callable), nil
}

// Download runs the script's download(ctx, snapshot), or the default one.
func (d *ScriptDriver) Download(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot) error {
	_, err := d.callPhase(ctx, drivers.PhaseDownload, run, snap, nil)
	return err
}

// Prepare runs prepare(ctx, snapshot, target) if the script defines it.
func (d *ScriptDriver) Prepare(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) error {
	_, err := d.callPhase(ctx, drivers.PhasePrepare, run, snap, target)
	return err
}

// Execute runs execute(ctx, snapshot, target). A dict or struct it returns becomes
// the result's details.
func (d *ScriptDriver) Execute(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) (*drivers.RestoreResult, error) {
	v, err := d.callPhase(ctx, drivers.PhaseExecute, run, snap, target)
	if err != nil {
		return nil, err
	}
	res := &drivers.RestoreResult{}
	if v != nil && v != starlark.None {
		g, err := builtins.FromValue(v)
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, drivers.Errorf(drivers.Script, "%s: execute must return None, a dict or a struct, not %s", d.filename, v.Type())
		}
		res.Details = m
	}
	return res, nil
}

// Validate runs validate(ctx, snapshot, target), which returns a list of check(...)
// values.
func (d *ScriptDriver) Validate(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) (*drivers.ValidationResult, error) {
	v, err := d.callPhase(ctx, drivers.PhaseValidate, run, snap, target)
	if err != nil {
		return nil, err
	}
	res := &drivers.ValidationResult{}
	if run.Plan && (v == nil || v == starlark.None) {
		return res, nil
	}
	list, ok := v.(*starlark.List)
	if !ok {
		return nil, drivers.Errorf(drivers.Script, "%s: validate must return a list of check(...) values, not %s", d.filename, typeOf(v))
	}
	for i := 0; i < list.Len(); i++ {
		s, ok := list.Index(i).(*starlarkstruct.Struct)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "%s: validate returned %s at index %d; use check(name, ok, ...)", d.filename, list.Index(i).Type(), i)
		}
		g, err := builtins.FromValue(s)
		if err != nil {
			return nil, drivers.Errorf(drivers.Script, "%s: check %d: %v", d.filename, i, err)
		}
		m := g.(map[string]any)
		c := drivers.Check{}
		c.Name, _ = m["name"].(string)
		c.OK, _ = m["ok"].(bool)
		c.Detail, _ = m["detail"].(string)
		c.Expected, _ = m["expected"].(string)
		c.Actual, _ = m["actual"].(string)
		c.Pos, _ = m["pos"].(string)
		if c.Name == "" {
			return nil, drivers.Errorf(drivers.Script, "%s: check %d has no name; use check(name, ok, ...)", d.filename, i)
		}
		res.Checks = append(res.Checks, c)
	}
	return res, nil
}

// Commit runs commit(ctx, snapshot, target) if the script defines it.
func (d *ScriptDriver) Commit(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) error {
	_, err := d.callPhase(ctx, drivers.PhaseCommit, run, snap, target)
	return err
}

// Rollback runs rollback(ctx, snapshot, target) if the script defines it.
func (d *ScriptDriver) Rollback(ctx context.Context, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) error {
	_, err := d.callPhase(ctx, drivers.PhaseRollback, run, snap, target)
	return err
}

func typeOf(v starlark.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Type()
}

// callPhase runs one phase function on a fresh thread: step limit set before any
// code runs, the run bound in thread locals, cancellation wired to ctx.
func (d *ScriptDriver) callPhase(ctx context.Context, phase string, run *drivers.Run, snap *drivers.Snapshot, target *drivers.Target) (starlark.Value, error) {
	env := builtins.FromContext(ctx)
	if env == nil {
		return nil, errors.New("engine: no run environment in context (use builtins.NewContext)")
	}
	fn, err := d.phaseFunc(phase)
	if err != nil || fn == nil {
		return nil, err
	}
	thread := &starlark.Thread{Name: d.info.ID() + " " + phase}
	thread.SetMaxExecutionSteps(d.host.maxSteps())
	thread.Print = func(_ *starlark.Thread, msg string) {
		env.Log.Info().Str("phase", phase).Msg(env.Redact(msg))
	}
	builtins.Bind(ctx, thread, env, phase)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(fmt.Sprint(context.Cause(ctx))) })
	defer stop()

	ctxVal, state, err := makeCtx(run, phase)
	if err != nil {
		return nil, err
	}
	args := starlark.Tuple{ctxVal, SnapshotValue(snap)}
	if phaseArity[phase] == 3 {
		tv, err := TargetValue(target)
		if err != nil {
			return nil, err
		}
		args = append(args, tv)
	}
	v, callErr := starlark.Call(thread, fn, args, nil)
	// Keep what the phase recorded even when it failed: rollback needs it.
	if err := saveState(run, state); err != nil && callErr == nil {
		callErr = drivers.Errorf(drivers.Script, "%s: ctx.state: %v", phase, err)
	}
	if callErr != nil {
		return nil, d.phaseError(ctx, thread, phase, callErr)
	}
	return v, nil
}

// phaseError classifies a phase failure and keeps its backtrace: cancellation wins,
// then the step limit, then the class a builtin attached, else Script.
func (d *ScriptDriver) phaseError(ctx context.Context, thread *starlark.Thread, phase string, err error) error {
	se := &ScriptError{Where: fmt.Sprintf("%s %s", d.info.ID(), phase), Class: drivers.Script, Err: err}
	var ev *starlark.EvalError
	if errors.As(err, &ev) {
		se.Backtrace = ev.Backtrace()
		se.Pos = innermost(ev)
		se.Err = causeOr(ev)
	}
	switch {
	case ctx.Err() != nil:
		se.Class = drivers.Cancelled
		se.Err = fmt.Errorf("cancelled: %v", context.Cause(ctx))
	case thread.ExecutionSteps() >= d.host.maxSteps():
		se.Err = fmt.Errorf("stopped after %d Starlark steps, the step limit: an endless loop? (raise the limit with --max-steps if the script is right)", d.host.maxSteps())
	case hasClass(se.Err):
		se.Class = drivers.ClassOf(se.Err)
	}
	return se
}
