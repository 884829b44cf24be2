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
	v, err := f.Impl(ctx, env, args, kwargs)
	call.Duration = time.Since(call.Start)
	if err != nil {
		err = classify(qualified, err)
		call.Error = env.Redact(err.Error())
		call.Class = string(drivers.ClassOf(err))
	}
	if !f.NoRecord {
		env.record(call)
	}
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = starlark.None
	}
	return v, nil
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
