package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// expectation is one of a restore's expect=[...]: checked after validation,
// while the target still runs, by calling the same builtins a driver calls
// (etcd.get, sql.query, cql.count, ...) on the restore's own run.
type expectation struct {
	kind  string // key, keys, sql, cql, rows, custom
	name  string
	key   string // key, prefix, query or table
	db    string
	want  starlark.Value
	fn    starlark.Callable
	pos   string
	text  string
	valid map[string]bool // engines it applies to (empty: any)
}

func (e *expectation) String() string        { return e.text }
func (e *expectation) Type() string          { return "drill.expectation" }
func (e *expectation) Freeze()               {}
func (e *expectation) Truth() starlark.Bool  { return true }
func (e *expectation) Hash() (uint32, error) { return 0, errors.New("unhashable: drill.expectation") }

// expectThread returns a thread bound to the restore's run, as a phase thread
// is, in phase "expect": builtins called there act on the restored target.
func (d *Drill) expectThread(ctx context.Context, env *builtins.Env, name string) *starlark.Thread {
	thread := &starlark.Thread{Name: "drill expect " + name, Load: d.host.NewThread("").Load}
	thread.SetMaxExecutionSteps(d.maxSteps())
	thread.Print = func(_ *starlark.Thread, msg string) {
		d.log.Info().Str("restore", name).Msg(d.redact(msg))
	}
	builtins.Bind(ctx, thread, env, "expect")
	return thread
}

// call calls the (wrapped) builtin module.fn on thread.
func (d *Drill) call(thread *starlark.Thread, module, fn string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, ok := d.predeclared[module].(*starlarkstruct.Module)
	if !ok {
		return nil, fmt.Errorf("no builtin module %s", module)
	}
	b, ok := m.Members[fn]
	if !ok {
		return nil, fmt.Errorf("no builtin %s.%s", module, fn)
	}
	return starlark.Call(thread, b, args, kwargs)
}

// run checks the expectation. A second return value is a script error (a
// custom expectation whose code is broken): the drill stops with it.
func (e *expectation) run(ctx context.Context, thread *starlark.Thread, rs *restoreState, env *builtins.Env) ([]Check, error) {
	d := rs.d
	c := Check{Kind: "expectation", Name: e.name, Pos: e.pos}
	engineName := ""
	if env.Target != nil {
		engineName = env.Target.Engine
	}
	if len(e.valid) > 0 && !e.valid[engineName] {
		c.Detail = fmt.Sprintf("%s does not apply to a %s target", e.text, engineName)
		return []Check{c}, nil
	}
	eps := starlark.NewList(nil)
	if env.Target != nil {
		for _, ep := range env.Target.Endpoints {
			eps.Append(starlark.String(ep))
		}
	}
	fail := func(err error) ([]Check, error) {
		c.Detail = d.redact(errorText(err))
		return []Check{c}, nil
	}
	one := func(v starlark.Value) ([]Check, error) {
		c.Expected, c.Actual = show(e.want), show(v)
		c.OK = looseEqual(v, e.want)
		return []Check{c}, nil
	}
	switch e.kind {
	case "key":
		v, err := d.call(thread, "etcd", "get", starlark.Tuple{eps, starlark.String(e.key)}, nil)
		if err != nil {
			return fail(err)
		}
		return one(v)
	case "keys":
		v, err := d.call(thread, "etcd", "count", starlark.Tuple{eps}, []starlark.Tuple{{starlark.String("prefix"), starlark.String(e.key)}})
		if err != nil {
			return fail(err)
		}
		return one(v)
	case "sql", "cql":
		var kw []starlark.Tuple
		if e.db != "" {
			kw = append(kw, starlark.Tuple{starlark.String("db"), starlark.String(e.db)})
		}
		v, err := d.call(thread, e.kind, "query", starlark.Tuple{starlark.String(e.key)}, kw)
		if err != nil {
			return fail(err)
		}
		got, err := firstValue(v)
		if err != nil {
			return fail(err)
		}
		return one(got)
	case "rows":
		ks, table, ok := strings.Cut(e.key, ".")
		if !ok {
			return fail(fmt.Errorf("expect_rows: name the table as SCHEMA.TABLE (mysql) or KEYSPACE.TABLE (cassandra), not %q", e.key))
		}
		var v starlark.Value
		var err error
		switch engineName {
		case "cassandra":
			v, err = d.call(thread, "cql", "count", starlark.Tuple{starlark.String(ks), starlark.String(table)}, nil)
		default:
			stmt := fmt.Sprintf("SELECT COUNT(*) AS n FROM %s.%s", quoteIdent(ks), quoteIdent(table))
			var rows starlark.Value
			if rows, err = d.call(thread, "sql", "query", starlark.Tuple{starlark.String(stmt)}, nil); err == nil {
				v, err = firstValue(rows)
			}
		}
		if err != nil {
			return fail(err)
		}
		return one(v)
	case "custom":
		target, err := engine.TargetValue(env.Target)
		if err != nil {
			return fail(err)
		}
		r := builtins.MustStruct(map[string]any{"name": rs.spec.name, "endpoints": eps, "target": target, "engine": engineName})
		v, err := starlark.Call(thread, e.fn, starlark.Tuple{r}, nil)
		if err != nil {
			if ctx.Err() != nil {
				return fail(fmt.Errorf("interrupted: %v", context.Cause(ctx)))
			}
			if isScriptError(err) {
				c.Detail = d.redact(errorText(err))
				return []Check{c}, &scriptFailure{err: err, where: "expectation " + e.name}
			}
			return fail(err)
		}
		return e.customChecks(v, c)
	}
	return fail(fmt.Errorf("unknown expectation kind %s", e.kind))
}

// customChecks reads what a custom expectation returned: a bool, a check(...)
// or a list of them.
func (e *expectation) customChecks(v starlark.Value, base Check) ([]Check, error) {
	switch x := v.(type) {
	case starlark.Bool:
		base.OK = bool(x)
		return []Check{base}, nil
	case *starlarkstruct.Struct:
		return []Check{structCheck(x, base)}, nil
	case *starlark.List:
		var out []Check
		for i := 0; i < x.Len(); i++ {
			s, ok := x.Index(i).(*starlarkstruct.Struct)
			if !ok {
				base.Detail = fmt.Sprintf("the function returned a list holding %s; return True/False, check(...) or a list of check(...)", x.Index(i).Type())
				return []Check{base}, &scriptFailure{err: errors.New(base.Detail), where: "expectation " + e.name}
			}
			out = append(out, structCheck(s, base))
		}
		return out, nil
	}
	base.Detail = fmt.Sprintf("the function returned %s; return True/False, check(...) or a list of check(...)", v.Type())
	return []Check{base}, &scriptFailure{err: errors.New(base.Detail), where: "expectation " + e.name}
}

func structCheck(s *starlarkstruct.Struct, base Check) Check {
	c := base
	g, _ := builtins.FromValue(s)
	m, _ := g.(map[string]any)
	if n, _ := m["name"].(string); n != "" {
		c.Name = base.Name + ": " + n
	}
	c.OK, _ = m["ok"].(bool)
	c.Detail, _ = m["detail"].(string)
	c.Expected, _ = m["expected"].(string)
	c.Actual, _ = m["actual"].(string)
	if p, _ := m["pos"].(string); p != "" {
		c.Pos = p
	}
	return c
}

// firstValue returns the only column of the first row of a query's result.
func firstValue(v starlark.Value) (starlark.Value, error) {
	rows, ok := v.(*starlark.List)
	if !ok {
		return nil, fmt.Errorf("the query returned %s, not rows", v.Type())
	}
	if rows.Len() == 0 {
		return starlark.None, nil
	}
	row, ok := rows.Index(0).(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("the query returned rows of %s", rows.Index(0).Type())
	}
	if row.Len() != 1 {
		var cols []string
		for _, k := range row.Keys() {
			cols = append(cols, show(k))
		}
		return nil, fmt.Errorf("the query returns %d columns (%s): an expectation compares one value; select one column", row.Len(), strings.Join(cols, ", "))
	}
	return row.Items()[0][1], nil
}

// looseEqual compares a value read from a server with the expected one: equal
// as Starlark values, or equal as text (servers return numbers as strings).
func looseEqual(got, want starlark.Value) bool {
	if got == nil || want == nil {
		return got == want
	}
	if eq, err := starlark.Equal(got, want); err == nil && eq {
		return true
	}
	if got == starlark.None || want == starlark.None {
		return false
	}
	return show(got) == show(want)
}

// show renders a value without quotes around strings.
func show(v starlark.Value) string {
	if v == nil {
		return ""
	}
	if s, ok := starlark.AsString(v); ok {
		return s
	}
	return v.String()
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// scriptFailure is a drill script error found while a restore ran (in a custom
// expectation): the drill stops with it once the target is torn down.
type scriptFailure struct {
	err   error
	where string
}

func (e *scriptFailure) Error() string { return e.where + ": " + errorText(e.err) }
func (e *scriptFailure) Unwrap() error {
	return &drivers.Error{Class: drivers.Script, Err: e.err}
}

// isScriptError reports whether err from Starlark code is a mistake of the
// script (a type error, a missing key, fail()) rather than a builtin's failure
// with a class (a server that does not answer).
func isScriptError(err error) bool {
	var ev *starlark.EvalError
	cause := err
	if errors.As(err, &ev) && ev.Unwrap() != nil {
		cause = ev.Unwrap()
	}
	var de *drivers.Error
	if errors.As(cause, &de) {
		return de.Class == drivers.Script || de.Class == ""
	}
	return true
}

// errorText is the message of an error from Starlark code, with its position.
func errorText(err error) string {
	var ev *starlark.EvalError
	if errors.As(err, &ev) {
		msg := ev.Msg
		if c := ev.Unwrap(); c != nil {
			msg = c.Error()
		}
		for i := len(ev.CallStack) - 1; i >= 0; i-- {
			if p := ev.CallStack[i].Pos; p.IsValid() && p.Filename() != "<builtin>" {
				return p.String() + ": " + msg
			}
		}
		return msg
	}
	return err.Error()
}
