package builtins

import (
	"context"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

func init() {
	Register(Module{
		Name: "time",
		Doc:  "Clock and waiting. time.sleep honours cancellation (Ctrl-C, deadlines).",
		Funcs: []Func{
			{Name: "now", Idempotent: true, Effect: Read, Params: "", Returns: "float (seconds since the Unix epoch)",
				Doc: "The current time, for measuring how long a step takes: start = time.now() ... time.now() - start.", NoRecord: true,
				Impl: func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
					if err := Unpack("time.now", args, kwargs); err != nil {
						return nil, err
					}
					return starlark.Float(float64(time.Now().UnixNano()) / 1e9), nil
				}},
			{Name: "sleep", Effect: Read, Params: "seconds", Returns: "None",
				Doc: "Waits seconds (a number, fractions allowed), or fails with class cancelled when the run is interrupted. Prefer a builtin that waits for a condition, such as etcd.wait_healthy.", Errors: []drivers.Class{drivers.Cancelled},
				Impl: func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
					var v starlark.Value
					if err := Unpack("time.sleep", args, kwargs, "seconds", &v); err != nil {
						return nil, err
					}
					secs, ok := starlark.AsFloat(v)
					if !ok || secs < 0 {
						return nil, drivers.Errorf(drivers.Script, "time.sleep: seconds must be a non-negative number, not %s", v)
					}
					t := time.NewTimer(time.Duration(secs * float64(time.Second)))
					defer t.Stop()
					select {
					case <-ctx.Done():
						return nil, drivers.WithClass(drivers.Cancelled, "time.sleep", context.Cause(ctx))
					case <-t.C:
						return starlark.None, nil
					}
				}},
		},
	})
}
