package builtins

import (
	"context"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

// Globals are builtins called without a module prefix.
var Globals = Module{
	Name: "",
	Doc:  "Functions available without a module prefix.",
	Funcs: []Func{{
		Name:    "fail",
		Effect:  Read,
		Params:  `msg, cls="permanent"`,
		Returns: "nothing: it stops the phase",
		Doc: "Stops the phase with an error of class cls: transient or throttled errors " +
			"are retried by the engine, the others fail the run (and roll back).",
		Errors: drivers.Classes,
		Impl: func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg, cls string = "", string(drivers.Permanent)
			if err := Unpack("fail", args, kwargs, "msg", &msg, "cls?", &cls); err != nil {
				return nil, err
			}
			c, err := drivers.ParseClass(cls)
			if err != nil {
				return nil, drivers.WithClass(drivers.Script, "fail", err)
			}
			return nil, drivers.Errorf(c, "%s", msg)
		},
	}},
}
