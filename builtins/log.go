package builtins

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"
)

func init() {
	Register(Module{
		Name: "log",
		Doc:  "Structured log lines from scripts, on the run's logger (secrets masked).",
		Funcs: []Func{
			logFunc("debug", zerolog.DebugLevel),
			logFunc("info", zerolog.InfoLevel),
			logFunc("warn", zerolog.WarnLevel),
			logFunc("error", zerolog.ErrorLevel),
		},
	})
}

func logFunc(name string, level zerolog.Level) Func {
	return Func{
		Name:     name,
		Effect:   Read,
		Params:   "msg, **fields",
		Returns:  "None",
		Doc:      fmt.Sprintf("Logs msg at %s level with the given fields as structured values, e.g. log.%s(\"member restored\", member = m.name, keys = n). Secrets are masked.", name, name),
		NoRecord: true,
		Impl: func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := Unpack("log."+name, args, nil, "msg", &msg); err != nil {
				return nil, err
			}
			ev := env.Log.WithLevel(level).Str("phase", PhaseFrom(ctx))
			for _, kv := range kwargs {
				k := string(kv[0].(starlark.String))
				v, err := FromValue(kv[1])
				switch x := v.(type) {
				case string:
					ev = ev.Str(k, env.Redact(x))
				case nil, bool, int64, float64:
					if err == nil {
						ev = ev.Interface(k, x)
						continue
					}
					ev = ev.Str(k, env.Redact(kv[1].String()))
				default:
					// Lists and dicts stay structured in JSON logs.
					data, err := json.Marshal(x)
					if err != nil {
						ev = ev.Str(k, env.Redact(fmt.Sprint(x)))
						continue
					}
					ev = ev.RawJSON(k, []byte(env.Redact(string(data))))
				}
			}
			ev.Msg(env.Redact(msg))
			return starlark.None, nil
		},
	}
}
