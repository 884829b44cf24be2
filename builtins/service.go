package builtins

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

func init() {
	Register(Module{
		Name: "service",
		Doc: "Stops and starts the database service of a real target, as its target file says: " +
			"`systemd: UNIT` (systemctl) or explicit `start:`/`stop:` commands. Only service " +
			"descriptions from the target file are accepted, so a script cannot run arbitrary commands.",
		Funcs: []Func{
			{Name: "start", Effect: Write, Params: "service", Returns: "None",
				Doc:    "Starts the service described by a `service` entry of the target file (e.g. member.service): `systemctl start UNIT` or its `start:` command, within its timeout (default 120 s). A failure reports the command and the tail of its output.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Transient, drivers.Cancelled},
				Impl: func(ctx context.Context, env *Env, a starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
					return serviceDo(ctx, env, "start", a, kw)
				}},
			{Name: "stop", Effect: Write, Params: "service", Returns: "None",
				Doc:    "Stops the service described by a `service` entry of the target file: `systemctl stop UNIT` or its `stop:` command, within its timeout (default 120 s). A failure reports the command and the tail of its output.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Transient, drivers.Cancelled},
				Impl: func(ctx context.Context, env *Env, a starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
					return serviceDo(ctx, env, "stop", a, kw)
				}},
		},
	})
}

func serviceDo(ctx context.Context, env *Env, action string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	fn := "service." + action
	var v starlark.Value
	if err := Unpack(fn, args, kwargs, "service", &v); err != nil {
		return nil, err
	}
	g, err := FromValue(v)
	svc, ok := g.(map[string]any)
	if err != nil || !ok {
		return nil, drivers.Errorf(drivers.Script, "%s: want a service entry of the target (e.g. member.service), not %s", fn, v.Type())
	}
	svc = normalize(svc).(map[string]any)
	if env.Target == nil || !inSpec(env.Target.Spec, svc) {
		return nil, drivers.Errorf(drivers.Script, "%s: this service description is not one of the target file's; scripts may only control services the target declares", fn)
	}
	var argv []string
	if unit, ok := svc["systemd"].(string); ok {
		argv = []string{"systemctl", action, unit}
	} else {
		l, _ := svc[action].([]any)
		for _, e := range l {
			argv = append(argv, fmt.Sprint(e))
		}
	}
	if len(argv) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "%s: the service has no %s command", fn, action)
	}
	timeout := 120 * time.Second
	if t, ok := svc["timeout"].(float64); ok && t > 0 {
		timeout = time.Duration(t * float64(time.Second))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, drivers.WithClass(drivers.Cancelled, fn, ctx.Err())
	case cctx.Err() != nil:
		return nil, drivers.Errorf(drivers.Transient, "%s: %s did not finish within %s; output: %s", fn, strings.Join(argv, " "), timeout, tail(out.String(), 2000))
	case err != nil:
		return nil, drivers.Errorf(drivers.Permanent, "%s: %s failed: %v; output: %s", fn, strings.Join(argv, " "), err, tail(out.String(), 2000))
	}
	env.Log.Info().Str("command", strings.Join(argv, " ")).Msg(fn)
	return starlark.None, nil
}

// inSpec reports whether svc equals some map found anywhere in spec.
func inSpec(spec any, svc map[string]any) bool {
	switch x := spec.(type) {
	case map[string]any:
		if reflect.DeepEqual(normalize(x), normalize(svc)) {
			return true
		}
		for _, v := range x {
			if inSpec(v, svc) {
				return true
			}
		}
	case []any:
		for _, v := range x {
			if inSpec(v, svc) {
				return true
			}
		}
	}
	return false
}

// normalize makes numbers comparable between YAML (float64) and Starlark (int64).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int64:
		return float64(x)
	case int:
		return float64(x)
	}
	return v
}

// tail returns the last n bytes of s, marked when cut.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
