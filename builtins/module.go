// Package builtins holds the Go functions driver scripts call: one Starlark module
// per file (blob, fs, log, etcd, ...), each a plugin that registers its functions
// here. Every function is wrapped centrally: the wrapper finds the run's Env in the
// thread, refuses calls outside a phase, records and times the call, skips WRITE
// calls in plan mode, and gives every error a class.
//
// Builtins stay thin: unpack arguments, call a Go package that knows nothing of
// Starlark with the thread's context, convert the result.
package builtins

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	mrand "math/rand/v2"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/drivers"
)

// Effect says whether a builtin changes anything.
type Effect int

const (
	// Read builtins only look: they run in plan mode too.
	Read Effect = iota
	// Write builtins change files, processes or servers: in plan mode they are
	// recorded, not run.
	Write
)

func (e Effect) String() string {
	if e == Write {
		return "WRITE"
	}
	return "READ"
}

// Impl is the Go body of a builtin. ctx is the phase's context; env is the run.
type Impl func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// Func is one builtin function of a module.
type Func struct {
	Name   string
	Effect Effect
	// Params documents the signature in Starlark form, e.g. "path, name, bump=0".
	Params string
	// Returns documents the result, e.g. "struct(revision, total_key, ...)".
	Returns string
	Doc     string
	// Errors lists the classes the function's errors can carry.
	Errors []drivers.Class
	Impl   Impl
	// Plan runs instead of Impl in plan mode. For a Write builtin it returns the
	// value a planned call gives back (e.g. the path a fetch would write; nil means
	// None). A Read builtin whose input a planned Write would have produced (a
	// downloaded file) uses it to answer without that input.
	Plan Impl
	// NoRecord keeps calls out of the run's call record (log.* would drown it).
	NoRecord bool
	// Idempotent declares the function safe to call again with the same
	// arguments: the central wrapper retries its transient and throttled
	// failures (Env.CallRetry, or the call's retry= argument). Functions that are
	// not idempotent (a move, a restore, a service start) are never retried per
	// call; their phase's retry policy decides.
	Idempotent bool
}

// Backoff is a retry policy: Attempts tries in all (1 or less: no retry), waits of
// exponential backoff from BaseDelay capped at MaxDelay with full jitter, and no
// new attempt once Deadline has passed since the first (0: no deadline).
type Backoff struct {
	Attempts  int           `json:"attempts,omitempty"`
	BaseDelay time.Duration `json:"base_delay_ns,omitempty"`
	MaxDelay  time.Duration `json:"max_delay_ns,omitempty"`
	Deadline  time.Duration `json:"deadline_ns,omitempty"`
}

// Delay is the full-jitter wait before attempt+1: uniform in
// [0, min(MaxDelay, BaseDelay*2^(attempt-1))].
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.BaseDelay
	for i := 1; i < attempt && d > 0 && (b.MaxDelay <= 0 || d < b.MaxDelay); i++ {
		d *= 2
	}
	if d <= 0 || (b.MaxDelay > 0 && d > b.MaxDelay) {
		d = b.MaxDelay
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// Module is a named group of builtins, seen by scripts as a module value
// (etcd.status, fs.move).
type Module struct {
	Name  string
	Doc   string
	Funcs []Func
}

// Func returns the function called name.
func (m Module) Func(name string) (Func, bool) {
	for _, f := range m.Funcs {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}

// WithImpl returns a copy of m whose function name runs impl instead; tests use it
// to inject fakes while keeping the central wrapper.
func (m Module) WithImpl(name string, impl Impl) Module {
	out := m
	out.Funcs = append([]Func(nil), m.Funcs...)
	for i := range out.Funcs {
		if out.Funcs[i].Name == name {
			out.Funcs[i].Impl = impl
			out.Funcs[i].Plan = nil
			return out
		}
	}
	panic(fmt.Sprintf("builtins: module %s has no function %s", m.Name, name))
}

var (
	regMu    sync.Mutex
	registry = map[string]Module{}
)

// Register adds a module to the registry; each module file calls it from init.
func Register(m Module) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[m.Name]; dup {
		panic("builtins: module registered twice: " + m.Name)
	}
	registry[m.Name] = m
}

// Modules returns every registered module, sorted by name.
func Modules() []Module {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Module, 0, len(registry))
	for _, m := range registry {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Value builds the module's Starlark value, every function wrapped.
func (m Module) Value() starlark.Value {
	members := starlark.StringDict{}
	for _, f := range m.Funcs {
		members[f.Name] = f.Builtin(m.Name)
	}
	return &starlarkstruct.Module{Name: m.Name, Members: members}
}

// Builtin wraps f as a Starlark builtin named module.name.
func (f Func) Builtin(module string) *starlark.Builtin {
	qualified := module + "." + f.Name
	if module == "" {
		qualified = f.Name
	}
	return starlark.NewBuiltin(qualified, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return f.call(thread, qualified, args, kwargs)
	})
}

func (f Func) call(thread *starlark.Thread, qualified string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	env := EnvOf(thread)
	if env == nil {
		return nil, drivers.Errorf(drivers.Script, "%s can only be called inside a phase function (download, prepare, execute, validate, rollback), not at the top level of a script", qualified)
	}
	ctx := withPhase(ContextOf(thread), PhaseOf(thread))
	call := Call{
		Phase:   PhaseOf(thread),
		Builtin: qualified,
		Effect:  f.Effect.String(),
		Args:    env.Redact(formatArgs(args, kwargs)),
		Start:   time.Now(),
	}
	if thread.CallStackDepth() > 1 {
		if pos := thread.CallFrame(1).Pos; pos.IsValid() {
			call.Pos = pos.String()
		}
	}
	if env.Plan && (f.Effect == Write || f.Plan != nil) {
		call.Planned = f.Effect == Write
		env.record(call)
		if f.Plan == nil {
			return starlark.None, nil
		}
		v, err := f.Plan(ctx, env, args, kwargs)
		if err != nil {
			return nil, classify(qualified, err)
		}
		return v, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, drivers.WithClass(drivers.Cancelled, qualified, err)
	}
	policy, kwargs, err := f.callPolicy(env, qualified, kwargs)
	if err != nil {
		return nil, err
	}
	first := call.Start
	for attempt := 1; ; attempt++ {
		call.Attempt = attempt
		call.Start = time.Now()
		call.Error, call.Class = "", ""
		v, err := f.Impl(ctx, env, args, kwargs)
		call.Duration = time.Since(call.Start)
		if err != nil {
			err = classify(qualified, err)
			if ctx.Err() != nil && drivers.ClassOf(err) != drivers.Cancelled {
				err = drivers.WithClass(drivers.Cancelled, qualified, err)
			}
			call.Error = env.Redact(err.Error())
			call.Class = string(drivers.ClassOf(err))
		}
		var wait time.Duration
		retry := err != nil && drivers.ClassOf(err).Retryable() && attempt < policy.Attempts && ctx.Err() == nil
		if retry {
			wait = policy.Delay(attempt)
			if policy.Deadline > 0 && time.Since(first)+wait >= policy.Deadline {
				retry = false
			}
		}
		if retry {
			call.RetryIn = wait
		}
		if !f.NoRecord {
			env.record(call)
		}
		if err == nil {
			if v == nil {
				v = starlark.None
			}
			return v, nil
		}
		if !retry {
			return nil, err
		}
		env.Log.Warn().Str("builtin", qualified).Str("class", call.Class).Int("attempt", attempt).Int("attempts", policy.Attempts).
			Dur("retry_in", wait).Str("error", call.Error).Msg("builtin call failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, drivers.WithClass(drivers.Cancelled, qualified, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// callPolicy returns the retry policy of one call: none unless the function is
// idempotent; the run's (Env.CallRetry), or the call's own retry= argument
// (attempts, or a dict of attempts, base_delay, max_delay, deadline in seconds),
// which is removed from kwargs.
func (f Func) callPolicy(env *Env, qualified string, kwargs []starlark.Tuple) (Backoff, []starlark.Tuple, error) {
	var override starlark.Value
	for i, kv := range kwargs {
		if k, _ := starlark.AsString(kv[0]); k == "retry" {
			if _, declared := f.declares("retry"); !declared {
				override = kv[1]
				kwargs = append(append([]starlark.Tuple(nil), kwargs[:i]...), kwargs[i+1:]...)
				break
			}
		}
	}
	if !f.Idempotent {
		if override != nil {
			return Backoff{}, nil, drivers.Errorf(drivers.Script, "%s: retry= is refused: %s is not idempotent (it changes something that a second call would not find as the first did), so it is never retried per call; its phase's retry policy decides", qualified, qualified)
		}
		return Backoff{Attempts: 1}, kwargs, nil
	}
	p := env.CallRetry
	if override != nil && override != starlark.None {
		o, err := backoffValue(qualified, override)
		if err != nil {
			return Backoff{}, nil, err
		}
		if o.Attempts > 0 {
			p.Attempts = o.Attempts
		}
		if o.BaseDelay > 0 {
			p.BaseDelay = o.BaseDelay
		}
		if o.MaxDelay > 0 {
			p.MaxDelay = o.MaxDelay
		}
		if o.Deadline > 0 {
			p.Deadline = o.Deadline
		}
	}
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	return p, kwargs, nil
}

// declares reports whether f's own signature has a parameter called name.
func (f Func) declares(name string) (Param, bool) {
	sig, err := f.Signature()
	if err != nil {
		return Param{}, false
	}
	return sig.Param(name)
}

// backoffValue reads a call's retry= argument: an int (attempts) or a dict with
// attempts, base_delay, max_delay, deadline (seconds).
func backoffValue(qualified string, v starlark.Value) (Backoff, error) {
	var b Backoff
	if n, ok := v.(starlark.Int); ok {
		a, ok := n.Int64()
		if !ok || a < 1 {
			return b, drivers.Errorf(drivers.Script, "%s: retry= must be a number of attempts >= 1, not %s", qualified, v)
		}
		b.Attempts = int(a)
		return b, nil
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return b, drivers.Errorf(drivers.Script, "%s: retry= must be a number of attempts or a dict(attempts, base_delay, max_delay, deadline), not %s", qualified, v.Type())
	}
	for _, item := range d.Items() {
		k, _ := starlark.AsString(item[0])
		if k == "attempts" {
			a, err := backoffValue(qualified, item[1])
			if err != nil {
				return b, err
			}
			b.Attempts = a.Attempts
			continue
		}
		secs, ok := starlark.AsFloat(item[1])
		if !ok || secs < 0 {
			return b, drivers.Errorf(drivers.Script, "%s: retry[%q] must be a non-negative number of seconds, not %s", qualified, k, item[1])
		}
		dur := time.Duration(secs * float64(time.Second))
		switch k {
		case "base_delay":
			b.BaseDelay = dur
		case "max_delay":
			b.MaxDelay = dur
		case "deadline":
			b.Deadline = dur
		default:
			return b, drivers.Errorf(drivers.Script, "%s: retry= has an unknown key %q (attempts, base_delay, max_delay, deadline)", qualified, k)
		}
	}
	return b, nil
}

// classify makes sure err carries a class: context errors are Cancelled, and an
// error with no class is Permanent.
func classify(op string, err error) error {
	var de *drivers.Error
	if asDriverError(err, &de) {
		return err
	}
	return drivers.WithClass(drivers.ClassOf(err), "", err)
}

func formatArgs(args starlark.Tuple, kwargs []starlark.Tuple) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s=%s", string(kv[0].(starlark.String)), kv[1].String()))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Unpack is starlark.UnpackArgs with errors of class Script (a script called a
// builtin wrongly).
func Unpack(fn string, args starlark.Tuple, kwargs []starlark.Tuple, pairs ...any) error {
	if err := starlark.UnpackArgs(fn, args, kwargs, pairs...); err != nil {
		return drivers.WithClass(drivers.Script, "", err)
	}
	return nil
}
