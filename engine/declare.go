package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

const localDecl = "restore-run.declaration"

// declaration is what a script's driver() call recorded.
type declaration struct {
	called  bool
	pos     syntax.Position
	name    string
	version *semver.Version
	api     int
	engine  string
	doc     string
	params  []drivers.Param
	policy  Policy
}

// builtinDriver implements driver(name, version, api, params={}, engine=name, doc="").
func builtinDriver(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	decl, _ := thread.Local(localDecl).(*declaration)
	if decl == nil || thread.CallStackDepth() != 2 {
		return nil, drivers.Errorf(drivers.Script, "driver() may only be called once, at the top level of a driver script (not in lib modules or functions)")
	}
	if decl.called {
		return nil, drivers.Errorf(drivers.Script, "driver() called twice; a script declares exactly one driver (first at %s)", decl.pos)
	}
	var (
		name, version, engine, doc string
		api                        int
		params, retry, timeouts    *starlark.Dict
	)
	if err := starlark.UnpackArgs("driver", args, kwargs, "name", &name, "version", &version, "api", &api,
		"params?", &params, "engine?", &engine, "doc?", &doc, "retry?", &retry, "timeouts?", &timeouts); err != nil {
		return nil, drivers.WithClass(drivers.Script, "", err)
	}
	policy, err := declaredPolicy(retry, timeouts)
	if err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, drivers.Errorf(drivers.Script, "driver name %q must be lowercase letters, digits, '-' or '_' and start with a letter", name)
	}
	v, err := semver.StrictNewVersion(version)
	if err != nil {
		return nil, drivers.Errorf(drivers.Script, "driver version %q is not a semantic version like 1.2.0: %v", version, err)
	}
	decl.called, decl.pos = true, thread.CallFrame(1).Pos
	decl.name, decl.version, decl.api, decl.engine, decl.doc = name, v, api, engine, doc
	decl.policy = policy
	if params != nil {
		for _, item := range params.Items() {
			k, ok := item[0].(starlark.String)
			if !ok || !validName(string(k)) || strings.Contains(string(k), "-") {
				return nil, drivers.Errorf(drivers.Script, "param name %s must be a lowercase identifier", item[0])
			}
			p, err := makeParam(string(k), item[1])
			if err != nil {
				return nil, err
			}
			decl.params = append(decl.params, p)
		}
		sort.Slice(decl.params, func(i, j int) bool { return decl.params[i].Name < decl.params[j].Name })
	}
	return starlark.None, nil
}

func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// paramValue is what param(default, doc) returns.
type paramValue struct {
	def starlark.Value
	doc string
}

func (p *paramValue) String() string        { return fmt.Sprintf("param(%s)", p.def) }
func (p *paramValue) Type() string          { return "param" }
func (p *paramValue) Freeze()               { p.def.Freeze() }
func (p *paramValue) Truth() starlark.Bool  { return true }
func (p *paramValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: param") }

// builtinParam implements param(default, doc="").
func builtinParam(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var def starlark.Value
	var doc string
	if err := starlark.UnpackArgs("param", args, kwargs, "default", &def, "doc?", &doc); err != nil {
		return nil, drivers.WithClass(drivers.Script, "", err)
	}
	return &paramValue{def: def, doc: doc}, nil
}

func makeParam(name string, v starlark.Value) (drivers.Param, error) {
	p := drivers.Param{Name: name}
	if pv, ok := v.(*paramValue); ok {
		v, p.Doc = pv.def, pv.doc
	}
	switch v.(type) {
	case starlark.Bool:
		p.Type = "bool"
	case starlark.Int:
		p.Type = "int"
	case starlark.Float:
		p.Type = "float"
	case starlark.String, starlark.NoneType:
		p.Type = "string"
	case *starlark.List:
		p.Type = "list"
	case *starlark.Dict:
		p.Type = "dict"
	default:
		return p, drivers.Errorf(drivers.Script, "param %s: default of type %s is not allowed (bool, int, float, string, None, list, dict)", name, v.Type())
	}
	def, err := builtins.FromValue(v)
	if err != nil {
		return p, drivers.Errorf(drivers.Script, "param %s: %v", name, err)
	}
	p.Default = def
	return p, nil
}

// builtinCheck implements check(name, ok, detail="", expected=None, actual=None),
// the value validate() returns a list of.
func builtinCheck(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name             string
		ok               bool
		detail           string
		expected, actual starlark.Value = starlark.None, starlark.None
	)
	if err := starlark.UnpackArgs("check", args, kwargs, "name", &name, "ok", &ok, "detail?", &detail,
		"expected?", &expected, "actual?", &actual); err != nil {
		return nil, drivers.WithClass(drivers.Script, "", err)
	}
	return builtins.Struct(map[string]any{
		"name": name, "ok": ok, "detail": detail,
		"expected": show(expected), "actual": show(actual),
		"pos": checkPos(thread),
	})
}

// checkPos is where a check was made: the innermost calling frame outside lib/
// helpers (expect_equal in lib/checks.star reports the driver line that called it).
func checkPos(thread *starlark.Thread) string {
	first := ""
	for i := 1; i < thread.CallStackDepth(); i++ {
		pos := thread.CallFrame(i).Pos
		if !pos.IsValid() {
			continue
		}
		if first == "" {
			first = pos.String()
		}
		if f := pos.Filename(); !strings.Contains(f, "lib/") {
			return pos.String()
		}
	}
	return first
}

// show renders a value for a check: strings bare, None empty, others in Starlark
// syntax.
func show(v starlark.Value) string {
	switch x := v.(type) {
	case starlark.NoneType:
		return ""
	case starlark.String:
		return string(x)
	}
	return v.String()
}

// declaredPolicy reads driver(retry=..., timeouts=...).
func declaredPolicy(retry, timeouts *starlark.Dict) (Policy, error) {
	toMap := func(d *starlark.Dict) (map[string]any, error) {
		if d == nil {
			return nil, nil
		}
		g, err := builtins.FromValue(d)
		if err != nil {
			return nil, err
		}
		m, _ := g.(map[string]any)
		return m, nil
	}
	r, err := toMap(retry)
	if err != nil {
		return Policy{}, drivers.Errorf(drivers.Script, "driver(retry=...): %v", err)
	}
	t, err := toMap(timeouts)
	if err != nil {
		return Policy{}, drivers.Errorf(drivers.Script, "driver(timeouts=...): %v", err)
	}
	p, err := ParsePolicy("driver()", r, t)
	if err != nil {
		return Policy{}, drivers.Errorf(drivers.Script, "%v", err)
	}
	return p, nil
}
