package scripttest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// realInTests are the builtins that run for real in tests: they touch only the
// run's temporary work and target dirs, or nothing.
func realInTests(qualified string) bool {
	switch qualified {
	case "fail", "time.now":
		return true
	}
	mod, _, ok := strings.Cut(qualified, ".")
	return ok && (mod == "fs" && qualified != "fs.chown" || mod == "blob" || mod == "log")
}

// ---- fake answers ----

// fakeError is testing.error(cls, msg).
type fakeError struct {
	cls drivers.Class
	msg string
}

func (e *fakeError) String() string        { return fmt.Sprintf("testing.error(%q, %q)", e.cls, e.msg) }
func (e *fakeError) Type() string          { return "testing.error" }
func (e *fakeError) Freeze()               {}
func (e *fakeError) Truth() starlark.Bool  { return true }
func (e *fakeError) Hash() (uint32, error) { return 0, errors.New("unhashable: testing.error") }

// sequence is testing.sequence(*answers).
type sequence struct{ answers starlark.Tuple }

func (s *sequence) String() string        { return "testing.sequence" + s.answers.String() }
func (s *sequence) Type() string          { return "testing.sequence" }
func (s *sequence) Freeze()               { s.answers.Freeze() }
func (s *sequence) Truth() starlark.Bool  { return true }
func (s *sequence) Hash() (uint32, error) { return 0, errors.New("unhashable: testing.sequence") }

// ---- one run's fakes and call record ----

// callRec is one recorded builtin call.
type callRec struct {
	builtin  string
	phase    string
	args     map[string]starlark.Value
	order    []string // parameter names in signature order
	text     string
	pos      string
	err      string
	class    string
	complete bool // the wrapper's record has been seen
}

// runState is what the fake builtins of one testing.run share, found through the
// phase context.
type runState struct {
	mu      sync.Mutex
	fakes   map[string]starlark.Value
	seqPos  map[*sequence]int
	calls   []*callRec
	pending *callRec
	unfaked []*callRec
	counts  map[string]int
	steps   uint64
	// run is the run the builtins were called for (its State is ctx.state after
	// each phase).
	run *drivers.Run
}

type runKey struct{}
type inFakeKey struct{}

func runOf(ctx context.Context) *runState {
	rs, _ := ctx.Value(runKey{}).(*runState)
	return rs
}

// onCall sees the wrapper's record of every call (builtins.Env.OnCall). For a
// call the fake or real implementation ran, it completes the pending record
// with the script position and error; for a planned call, whose implementation
// has not run yet, it starts one.
func (rs *runState) onCall(c builtins.Call) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rec := rs.pending
	if rec != nil && !rec.complete && rec.builtin == c.Builtin {
		rs.pending = nil
	} else {
		// A planned call: its Plan function, if any, runs next and fills in the
		// args.
		rec = &callRec{builtin: c.Builtin, phase: c.Phase}
		rs.calls = append(rs.calls, rec)
		rs.pending = rec
	}
	rec.complete = true
	rec.phase, rec.text, rec.pos, rec.err, rec.class = c.Phase, c.String(), c.Pos, c.Error, c.Class
}

// begin records a call its implementation is about to answer. Calls made by fake
// functions themselves are not recorded.
func (rs *runState) begin(ctx context.Context, f builtins.Func, qualified string, args map[string]starlark.Value, order []string) *callRec {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.counts[qualified]++
	if env := builtins.FromContext(ctx); env != nil && rs.run == nil {
		rs.run = env.Run
	}
	if ctx.Value(inFakeKey{}) != nil || f.NoRecord {
		return &callRec{builtin: qualified, args: args, order: order}
	}
	if p := rs.pending; p != nil && p.builtin == qualified && p.complete && p.args == nil {
		// The wrapper recorded this planned call before its Plan function ran.
		p.args, p.order = args, order
		rs.pending = nil
		return p
	}
	rec := &callRec{builtin: qualified, phase: builtins.PhaseFrom(ctx), args: args, order: order}
	rs.calls = append(rs.calls, rec)
	rs.pending = rec
	return rec
}

// wrapModules returns mods with every function dispatching between its fake, its
// real implementation (realInTests) and a clear "not faked" error. The central
// wrapper stays: calls are still recorded, classified and planned as in a run.
func wrapModules(mods []builtins.Module) []builtins.Module {
	out := make([]builtins.Module, len(mods))
	for i, m := range mods {
		wm := m
		wm.Funcs = append([]builtins.Func(nil), m.Funcs...)
		for j := range wm.Funcs {
			f := wm.Funcs[j]
			qualified := f.Name
			if m.Name != "" {
				qualified = m.Name + "." + f.Name
			}
			sig, sigErr := f.Signature()
			wm.Funcs[j].Impl = dispatch(f, qualified, sig, sigErr, false)
			if f.Plan != nil || f.Effect == builtins.Write {
				// Planned WRITE calls go through dispatch too, so that their
				// arguments are recorded; without a Plan they return None, as the
				// wrapper would.
				wm.Funcs[j].Plan = dispatch(f, qualified, sig, sigErr, true)
			}
		}
		out[i] = wm
	}
	return out
}

func dispatch(f builtins.Func, qualified string, sig builtins.Signature, sigErr error, plan bool) builtins.Impl {
	return func(ctx context.Context, env *builtins.Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		rs := runOf(ctx)
		if rs == nil {
			return nil, drivers.Errorf(drivers.Script, "%s: called outside testing.run", qualified)
		}
		var bound map[string]starlark.Value
		var order []string
		if sigErr == nil {
			var err error
			bound, order, err = sig.Bind(qualified, args, kwargs)
			if err != nil && !realInTests(qualified) {
				return nil, err
			}
		}
		rec := rs.begin(ctx, f, qualified, bound, order)
		rs.mu.Lock()
		ans, faked := rs.fakes[qualified]
		rs.mu.Unlock()
		switch {
		case plan && f.Effect == builtins.Write:
			// A plan records WRITE calls and runs their planning code, which only
			// checks arguments and paths.
			if f.Plan == nil {
				return starlark.None, nil
			}
			return f.Plan(ctx, env, args, kwargs)
		case faked:
			return rs.answer(ctx, env, qualified, ans, rec, args, kwargs)
		case realInTests(qualified):
			if plan {
				return f.Plan(ctx, env, args, kwargs)
			}
			return f.Impl(ctx, env, args, kwargs)
		case qualified == "time.sleep":
			return starlark.None, nil
		case qualified == "fs.chown":
			// Changing owners needs the database's OS user: tests only record it.
			return starlark.MakeInt(0), nil
		}
		rs.mu.Lock()
		rs.unfaked = append(rs.unfaked, rec)
		rs.mu.Unlock()
		return nil, drivers.Errorf(drivers.Script, "%s is not faked in this test: add it to the fakes of testing.run, e.g. fakes = {%q: ...}", qualified, qualified)
	}
}

// answer gives the fake's answer to one call.
func (rs *runState) answer(ctx context.Context, env *builtins.Env, qualified string, ans starlark.Value, rec *callRec, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	for {
		switch a := ans.(type) {
		case *fakeError:
			return nil, drivers.Errorf(a.cls, "%s", a.msg)
		case *sequence:
			rs.mu.Lock()
			i := rs.seqPos[a]
			rs.seqPos[a] = i + 1
			rs.mu.Unlock()
			if len(a.answers) == 0 {
				return starlark.None, nil
			}
			if i >= len(a.answers) {
				i = len(a.answers) - 1
			}
			ans = a.answers[i]
			continue
		case starlark.Callable:
			v, err := rs.callFake(ctx, env, qualified, a, rec, args, kwargs)
			if err != nil {
				return nil, err
			}
			if fe, ok := v.(*fakeError); ok {
				return nil, drivers.Errorf(fe.cls, "%s", fe.msg)
			}
			return v, nil
		}
		return ans, nil
	}
}

// callFake calls a fake function with the arguments it names, on a thread of its
// own bound to a private copy of the run (its own builtin calls are not recorded).
func (rs *runState) callFake(ctx context.Context, env *builtins.Env, qualified string, fn starlark.Callable, rec *callRec, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var callArgs starlark.Tuple
	var callKw []starlark.Tuple
	if sf, ok := fn.(*starlark.Function); ok && rec.args != nil {
		if sf.HasVarargs() {
			return nil, drivers.Errorf(drivers.Script, "fake %s for %s: a fake function takes the builtin's arguments by name, not *args", sf.Name(), qualified)
		}
		if sf.HasKwargs() {
			for _, name := range rec.order {
				callKw = append(callKw, starlark.Tuple{starlark.String(name), rec.args[name]})
			}
		} else {
			for i := 0; i < sf.NumParams(); i++ {
				name, _ := sf.Param(i)
				v, ok := rec.args[name]
				if !ok {
					if sf.ParamDefault(i) != nil {
						continue
					}
					sort.Strings(rec.order)
					return nil, drivers.Errorf(drivers.Script, "fake %s for %s: parameter %s is not a parameter of %s (it has %s)", sf.Name(), qualified, name, qualified, strings.Join(rec.order, ", "))
				}
				callKw = append(callKw, starlark.Tuple{starlark.String(name), v})
			}
		}
	} else {
		callArgs, callKw = args, kwargs
	}
	thread := &starlark.Thread{Name: "fake " + qualified}
	thread.SetMaxExecutionSteps(rs.steps)
	fctx := context.WithValue(ctx, inFakeKey{}, true)
	fenv := &builtins.Env{Run: env.Run, Snapshot: env.Snapshot, Source: env.Source, Target: env.Target,
		Log: env.Log, Redactor: env.Redactor, Plan: env.Plan}
	builtins.Bind(fctx, thread, fenv, builtins.PhaseFrom(ctx))
	stop := context.AfterFunc(ctx, func() { thread.Cancel("cancelled") })
	defer stop()
	v, err := starlark.Call(thread, fn, callArgs, callKw)
	if err != nil {
		var de *drivers.Error
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, drivers.Errorf(drivers.Script, "the fake for %s failed: %v", qualified, err)
	}
	return v, nil
}
