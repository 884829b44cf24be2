package drill

import (
	"context"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/builtins"
)

// The drill runs driver scripts on a host whose builtins are wrapped once more
// (as restore-run test does): each call first looks for the drill restore it
// belongs to (a value of its context, which the engine derives from the one the
// drill gave engine.Runner.Run), and lets that restore's kill faults fire just
// before or just after it. Calls of runs that are not drill restores go straight
// through. The central wrapper (recording, plan mode, classes, retries) is kept.

type restoreKey struct{}

// withRestore returns ctx carrying the drill restore rs.
func withRestore(ctx context.Context, rs *restoreState) context.Context {
	return context.WithValue(ctx, restoreKey{}, rs)
}

func restoreOf(ctx context.Context) *restoreState {
	rs, _ := ctx.Value(restoreKey{}).(*restoreState)
	return rs
}

// wrapModules returns mods with every function wrapped by the drill's hooks.
func wrapModules(mods []builtins.Module) []builtins.Module {
	out := make([]builtins.Module, 0, len(mods))
	for _, m := range mods {
		w := m
		w.Funcs = append([]builtins.Func(nil), m.Funcs...)
		for i := range w.Funcs {
			f := &w.Funcs[i]
			if f.Impl == nil {
				continue
			}
			qualified := m.Name + "." + f.Name
			if m.Name == "" {
				qualified = f.Name
			}
			f.Impl = hooked(qualified, f.Impl)
		}
		out = append(out, w)
	}
	return out
}

func hooked(qualified string, impl builtins.Impl) builtins.Impl {
	return func(ctx context.Context, env *builtins.Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		rs := restoreOf(ctx)
		if rs == nil {
			return impl(ctx, env, args, kwargs)
		}
		phase := builtins.PhaseFrom(ctx)
		rs.hook(ctx, env, "before", phase, qualified)
		v, err := impl(ctx, env, args, kwargs)
		if err == nil {
			rs.hook(ctx, env, "after", phase, qualified)
		}
		return v, err
	}
}
