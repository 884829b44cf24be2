package drill

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// module is the `drill` value a drill script sees: callable as the drill's
// declaration, drill(name=..., rto=..., params={...}), with the functions below
// as attributes (drill.restore, drill.parallel, drill.kill, ...).
type module struct {
	d     *Drill
	funcs map[string]*starlark.Builtin
}

func (m *module) String() string        { return "<drill module>" }
func (m *module) Type() string          { return "drill" }
func (m *module) Freeze()               {}
func (m *module) Truth() starlark.Bool  { return true }
func (m *module) Hash() (uint32, error) { return 0, errors.New("unhashable: drill") }
func (m *module) Name() string          { return "drill" }

func (m *module) CallInternal(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return m.d.declare(thread, args, kwargs)
}

func (m *module) AttrNames() []string {
	names := []string{"params"}
	for n := range m.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (m *module) Attr(name string) (starlark.Value, error) {
	if name == "params" {
		return m.d.paramsValue(), nil
	}
	if f, ok := m.funcs[name]; ok {
		return f, nil
	}
	return nil, nil
}

func newModule(d *Drill) *module {
	m := &module{d: d, funcs: map[string]*starlark.Builtin{}}
	add := func(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) {
		m.funcs[name] = starlark.NewBuiltin("drill."+name, fn)
	}
	add("restore", d.builtinRestore)
	add("spec", d.builtinSpec)
	add("parallel", d.builtinParallel)
	add("objective", d.builtinObjective)
	add("check", d.builtinCheck)
	add("slow_store", builtinSlowStore)
	add("store_errors", builtinStoreErrors)
	add("corrupt", builtinCorrupt)
	add("kill", builtinKill)
	add("expect_key", expectBuiltin("key"))
	add("expect_keys", expectBuiltin("keys"))
	add("expect_sql", expectBuiltin("sql"))
	add("expect_cql", expectBuiltin("cql"))
	add("expect_rows", expectBuiltin("rows"))
	add("expect", expectBuiltin("custom"))
	add("expect_failure", builtinExpectFailure)
	return m
}

// ---- the declaration and params ----

// declaration is what drill(...) declared.
type declaration struct {
	called bool
	name   string
	doc    string
	params map[string]any // resolved values
	types  map[string]string
	value  starlark.Value
}

func (d *Drill) declare(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, doc string
		rto       starlark.Value = starlark.None
		params    *starlark.Dict
	)
	if err := starlark.UnpackArgs("drill", args, kwargs, "name?", &name, "doc?", &doc, "rto?", &rto, "params?", &params); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.decl.called {
		return nil, fmt.Errorf("drill(...) declared twice; declare the drill once, at the top of the script")
	}
	if d.groups > 0 {
		return nil, fmt.Errorf("drill(...) must come before the first restore")
	}
	d.decl.called = true
	if name != "" {
		if err := checkName("drill name", name); err != nil {
			return nil, err
		}
		d.report.Drill = name
	}
	if doc != "" {
		d.report.Doc = doc
	}
	if rto != starlark.None {
		v, err := durationValue("drill: rto", rto)
		if err != nil {
			return nil, err
		}
		d.objective = v
	}
	declared := map[string]starlark.Value{}
	var order []string
	if params != nil {
		for _, it := range params.Items() {
			k, ok := starlark.AsString(it[0])
			if !ok || k == "" {
				return nil, fmt.Errorf("drill: params keys must be strings, not %s", it[0])
			}
			declared[k] = it[1]
			order = append(order, k)
		}
	}
	resolved, err := resolveParams(declared, d.opts.Params)
	if err != nil {
		return nil, engine.Usage(err)
	}
	d.decl.params = resolved
	d.report.Params = resolved
	d.decl.value = paramStruct(resolved)
	return d.decl.value, nil
}

// resolveParams applies --param KEY=VALUE to the declared defaults, parsed by
// the default's type like a driver's params.
func resolveParams(declared map[string]starlark.Value, given map[string]string) (map[string]any, error) {
	out := map[string]any{}
	var info drivers.Info
	info.Name = "drill"
	for k, v := range declared {
		g, err := builtins.FromValue(v)
		if err != nil {
			return nil, fmt.Errorf("param %s: %v", k, err)
		}
		out[k] = g
		info.Params = append(info.Params, drivers.Param{Name: k, Default: g, Type: paramType(g)})
	}
	sort.Slice(info.Params, func(i, j int) bool { return info.Params[i].Name < info.Params[j].Name })
	var names []string
	for _, p := range info.Params {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	for k := range given {
		if _, ok := declared[k]; !ok {
			return nil, fmt.Errorf("unknown --param %s for this drill (declared: %s)", k, strings.Join(names, ", "))
		}
	}
	return engine.ResolveParams(info, given)
}

func paramType(v any) string {
	switch v.(type) {
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return "string"
}

func paramStruct(params map[string]any) starlark.Value {
	s, err := builtins.Struct(params)
	if err != nil {
		return starlarkstruct.FromStringDict(starlarkstruct.Default, nil)
	}
	return s
}

func (d *Drill) paramsValue() starlark.Value {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.decl.value != nil {
		return d.decl.value
	}
	return paramStruct(map[string]any{})
}

// ---- restores ----

func (d *Drill) builtinSpec(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	spec, err := d.unpackRestore(thread, b.Name(), args, kwargs)
	if err != nil {
		return nil, err
	}
	return &specValue{spec: spec}, nil
}

func (d *Drill) builtinRestore(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec *restoreSpec
	if len(args) == 1 && len(kwargs) == 0 {
		sv, ok := args[0].(*specValue)
		if !ok {
			return nil, fmt.Errorf("drill.restore: give the restore's fields by name, or one drill.spec(...), not %s", args[0].Type())
		}
		spec = sv.spec
	} else {
		var err error
		if spec, err = d.unpackRestore(thread, b.Name(), args, kwargs); err != nil {
			return nil, err
		}
	}
	res, err := d.runGroup(thread, []*restoreSpec{spec})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

func (d *Drill) builtinParallel(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var list starlark.Iterable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "specs", &list); err != nil {
		return nil, err
	}
	var specs []*restoreSpec
	it := list.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		sv, ok := x.(*specValue)
		if !ok {
			return nil, fmt.Errorf("drill.parallel: want a list of drill.spec(...), got %s", x.Type())
		}
		specs = append(specs, sv.spec)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("drill.parallel: no restores given")
	}
	res, err := d.runGroup(thread, specs)
	if err != nil {
		return nil, err
	}
	return starlark.NewList(res), nil
}

// specValue is what drill.spec returns.
type specValue struct{ spec *restoreSpec }

func (s *specValue) String() string        { return fmt.Sprintf("<drill.spec %s>", s.spec.name) }
func (s *specValue) Type() string          { return "drill.spec" }
func (s *specValue) Freeze()               {}
func (s *specValue) Truth() starlark.Bool  { return true }
func (s *specValue) Hash() (uint32, error) { return 0, errors.New("unhashable: drill.spec") }

func (d *Drill) unpackRestore(thread *starlark.Thread, fn string, args starlark.Tuple, kwargs []starlark.Tuple) (*restoreSpec, error) {
	var (
		name, driver, snapshot, target string
		params, phaseRTO, retry        *starlark.Dict
		rto, timeout                   starlark.Value = starlark.None, starlark.None
		faults, expect                 *starlark.List
	)
	if err := starlark.UnpackArgs(fn, args, kwargs, "name", &name, "driver", &driver, "snapshot", &snapshot, "target", &target,
		"params?", &params, "rto?", &rto, "phase_rto?", &phaseRTO, "faults?", &faults, "expect?", &expect, "timeout?", &timeout, "retry?", &retry); err != nil {
		return nil, err
	}
	if err := checkName(fn+": name", name); err != nil {
		return nil, err
	}
	for what, v := range map[string]string{"driver": driver, "snapshot": snapshot, "target": target} {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("%s(%s): %s is empty", fn, name, what)
		}
	}
	spec := &restoreSpec{name: name, driver: driver, snapshot: snapshot, target: target, params: map[string]string{}, pos: callerPos(thread)}
	if params != nil {
		for _, it := range params.Items() {
			k, ok := starlark.AsString(it[0])
			if !ok {
				return nil, fmt.Errorf("%s(%s): params keys must be strings", fn, name)
			}
			s, err := paramString(it[1])
			if err != nil {
				return nil, fmt.Errorf("%s(%s): param %s: %v", fn, name, k, err)
			}
			spec.params[k] = s
		}
	}
	var err error
	if rto != starlark.None {
		if spec.rto, err = durationValue(fn+"("+name+"): rto", rto); err != nil {
			return nil, err
		}
	}
	if timeout != starlark.None {
		if spec.timeout, err = durationValue(fn+"("+name+"): timeout", timeout); err != nil {
			return nil, err
		}
	}
	if retry != nil {
		g, err := builtins.FromValue(retry)
		if err != nil {
			return nil, fmt.Errorf("%s(%s): retry: %v", fn, name, err)
		}
		if spec.policy, err = engine.ParsePolicy(fn+"("+name+"):", g.(map[string]any), nil); err != nil {
			return nil, err
		}
	}
	if phaseRTO != nil {
		spec.phaseRTO = map[string]time.Duration{}
		for _, it := range phaseRTO.Items() {
			p, _ := starlark.AsString(it[0])
			if phaseOrder(p) > 5 {
				return nil, fmt.Errorf("%s(%s): phase_rto: unknown phase %q (download, prepare, execute, validate, commit, rollback)", fn, name, p)
			}
			if spec.phaseRTO[p], err = durationValue(fmt.Sprintf("%s(%s): phase_rto[%q]", fn, name, p), it[1]); err != nil {
				return nil, err
			}
		}
	}
	if faults != nil {
		for i := 0; i < faults.Len(); i++ {
			f, ok := faults.Index(i).(*faultValue)
			if !ok {
				return nil, fmt.Errorf("%s(%s): faults[%d] is %s; use drill.slow_store, drill.store_errors, drill.corrupt or drill.kill", fn, name, i, faults.Index(i).Type())
			}
			if err := f.apply(spec); err != nil {
				return nil, fmt.Errorf("%s(%s): %v", fn, name, err)
			}
		}
	}
	if expect != nil {
		for i := 0; i < expect.Len(); i++ {
			switch e := expect.Index(i).(type) {
			case *expectation:
				spec.expect = append(spec.expect, e)
			case *failureValue:
				if spec.failure != nil {
					return nil, fmt.Errorf("%s(%s): drill.expect_failure given twice", fn, name)
				}
				f := e.f
				spec.failure = &f
			default:
				return nil, fmt.Errorf("%s(%s): expect[%d] is %s; use drill.expect_key, expect_keys, expect_sql, expect_cql, expect_rows, expect or expect_failure", fn, name, i, e.Type())
			}
		}
	}
	if spec.failure != nil && len(spec.expect) > 0 {
		return nil, fmt.Errorf("%s(%s): drill.expect_failure cannot go with expectations on the restored data (a failed restore leaves nothing to check)", fn, name)
	}
	return spec, nil
}

// paramString renders a driver param as --param would give it.
func paramString(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Bool:
		return strconv.FormatBool(bool(x)), nil
	case starlark.Int, starlark.Float:
		return x.String(), nil
	}
	g, err := builtins.FromValue(v)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(g)
	return string(data), err
}

func durationValue(what string, v starlark.Value) (time.Duration, error) {
	var s string
	switch x := v.(type) {
	case starlark.Int:
		s = x.String()
	case starlark.Float:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return 0, fmt.Errorf("%s: %s is not a duration", what, x)
		}
		s = strconv.FormatFloat(float64(x), 'f', -1, 64)
	case starlark.String:
		s = string(x)
	default:
		return 0, fmt.Errorf("%s: want seconds or a duration like \"5m\", not %s", what, v.Type())
	}
	d, err := engine.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", what, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be more than 0", what)
	}
	return d, nil
}

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || s[0] == '.' {
			return fmt.Errorf("%s %q: use letters, digits, '-', '_' and '.' (it names report files)", what, s)
		}
	}
	return nil
}

// callerPos is the script position of the builtin's caller.
func callerPos(thread *starlark.Thread) string {
	if thread.CallStackDepth() > 1 {
		if p := thread.CallFrame(1).Pos; p.IsValid() {
			return p.String()
		}
	}
	return ""
}

// ---- drill-level objective and checks ----

func (d *Drill) builtinObjective(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var rto starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "rto", &rto); err != nil {
		return nil, err
	}
	v, err := durationValue(b.Name()+": rto", rto)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.objective = v
	d.mu.Unlock()
	return starlark.None, nil
}

func (d *Drill) builtinCheck(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, detail string
		ok           bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "ok", &ok, "detail?", &detail); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.checks = append(d.checks, Check{Kind: "drill", Name: name, OK: ok, Detail: detail, Pos: callerPos(thread)})
	d.mu.Unlock()
	return starlark.Bool(ok), nil
}

// ---- faults ----

// faultValue is one fault of drill.slow_store, store_errors, corrupt or kill.
type faultValue struct {
	kind  string
	text  string
	apply func(*restoreSpec) error
}

func (f *faultValue) String() string        { return f.text }
func (f *faultValue) Type() string          { return "drill.fault" }
func (f *faultValue) Freeze()               {}
func (f *faultValue) Truth() starlark.Bool  { return true }
func (f *faultValue) Hash() (uint32, error) { return 0, errors.New("unhashable: drill.fault") }

func argText(fn string, kwargs []starlark.Tuple, args starlark.Tuple) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s=%s", kv[0].(starlark.String), kv[1]))
	}
	return fn + "(" + strings.Join(parts, ", ") + ")"
}

func builtinSlowStore(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var bandwidth, latency starlark.Value = starlark.None, starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "bandwidth?", &bandwidth, "latency?", &latency); err != nil {
		return nil, err
	}
	var bw int64
	if bandwidth != starlark.None {
		var err error
		if bw, err = sizeValue(bandwidth); err != nil || bw < 1024 {
			return nil, fmt.Errorf("%s: bandwidth %s: want bytes per second, at least 1KiB, e.g. \"2MiB\"", b.Name(), bandwidth)
		}
	}
	var lat time.Duration
	if latency != starlark.None {
		var err error
		if lat, err = durationValue(b.Name()+": latency", latency); err != nil {
			return nil, err
		}
	}
	if bw == 0 && lat == 0 {
		return nil, fmt.Errorf("%s: give bandwidth= or latency=", b.Name())
	}
	text := argText(b.Name(), kwargs, args)
	return &faultValue{kind: "slow_store", text: text, apply: func(s *restoreSpec) error {
		if bw > 0 {
			s.store.bandwidth = bw
		}
		if lat > 0 {
			s.store.latency = lat
		}
		s.faults = append(s.faults, Fault{Kind: "slow_store", Spec: text})
		return nil
	}}, nil
}

func builtinStoreErrors(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kind := "503"
	var (
		rateV float64
		first int
		seed  int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "kind?", &kind, "rate?", &rateV, "first?", &first, "seed?", &seed); err != nil {
		return nil, err
	}
	switch kind {
	case "503", "500", "reset":
	default:
		return nil, fmt.Errorf("%s: kind %q: want \"503\" (SlowDown: throttled), \"500\" (transient) or \"reset\" (the connection reset in the middle of a body)", b.Name(), kind)
	}
	if rateV < 0 || rateV >= 1 || first < 0 {
		return nil, fmt.Errorf("%s: rate must be in [0, 1) and first >= 0", b.Name())
	}
	if rateV == 0 && first == 0 {
		return nil, fmt.Errorf("%s: give rate= (a share of the reads) or first= (the first N reads)", b.Name())
	}
	text := argText(b.Name(), kwargs, args)
	return &faultValue{kind: "store_errors", text: text, apply: func(s *restoreSpec) error {
		if s.store.errKind != "" {
			return fmt.Errorf("one drill.store_errors per restore")
		}
		s.store.errKind, s.store.errRate, s.store.errFirst, s.store.seed = kind, rateV, first, uint64(seed)
		s.faults = append(s.faults, Fault{Kind: "store_errors", Spec: text})
		return nil
	}}, nil
}

func builtinCorrupt(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		file  string
		off   starlark.Value = starlark.None
		times                = 1
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "file?", &file, "offset?", &off, "times?", &times); err != nil {
		return nil, err
	}
	offset := int64(-1)
	if off != starlark.None {
		n, ok := off.(starlark.Int)
		o, ok2 := n.Int64()
		if !ok || !ok2 || o < 0 {
			return nil, fmt.Errorf("%s: offset must be a byte offset >= 0", b.Name())
		}
		offset = o
	}
	if times < 1 {
		return nil, fmt.Errorf("%s: times must be >= 1", b.Name())
	}
	text := argText(b.Name(), kwargs, args)
	return &faultValue{kind: "corrupt", text: text, apply: func(s *restoreSpec) error {
		s.store.corrupt = append(s.store.corrupt, &corruptSpec{file: file, offset: offset, times: times})
		s.faults = append(s.faults, Fault{Kind: "corrupt", Spec: text})
		return nil
	}}, nil
}

func builtinKill(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		phase, before, after string
		node                 int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "phase?", &phase, "node?", &node, "before?", &before, "after?", &after); err != nil {
		return nil, err
	}
	if before != "" && after != "" {
		return nil, fmt.Errorf("%s: give before= or after=, not both", b.Name())
	}
	if phase == "" && before == "" && after == "" {
		phase = drivers.PhaseValidate
	}
	if phase != "" && phaseOrder(phase) > 5 && phase != "expect" {
		return nil, fmt.Errorf("%s: unknown phase %q (download, prepare, execute, validate, commit, rollback, expect)", b.Name(), phase)
	}
	for _, n := range []string{before, after} {
		if n != "" && !strings.Contains(n, ".") {
			return nil, fmt.Errorf("%s: name a builtin as module.function, e.g. \"etcd.start_members\", not %q", b.Name(), n)
		}
	}
	if node < 0 {
		return nil, fmt.Errorf("%s: node must be >= 0", b.Name())
	}
	text := argText(b.Name(), kwargs, args)
	return &faultValue{kind: "kill", text: text, apply: func(s *restoreSpec) error {
		s.kills = append(s.kills, &killSpec{phase: phase, node: node, before: before, after: after, text: text})
		s.faults = append(s.faults, Fault{Kind: "kill", Spec: text})
		return nil
	}}, nil
}

// sizeValue reads a byte count: a number, or a string with a unit (KiB, MiB,
// GiB powers of 1024; KB, MB, GB powers of 1000).
func sizeValue(v starlark.Value) (int64, error) {
	if n, ok := v.(starlark.Int); ok {
		x, ok := n.Int64()
		if !ok {
			return 0, fmt.Errorf("too large")
		}
		return x, nil
	}
	s, ok := starlark.AsString(v)
	if !ok {
		return 0, fmt.Errorf("not a size")
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, err
	}
	mult, ok := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1e3, "m": 1 << 20, "mib": 1 << 20, "mb": 1e6, "g": 1 << 30, "gib": 1 << 30, "gb": 1e9}[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit")
	}
	return int64(f * mult), nil
}

// ---- expectations ----

func expectBuiltin(kind string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		e := &expectation{kind: kind, pos: callerPos(thread), text: argText(b.Name(), kwargs, args)}
		var err error
		switch kind {
		case "key":
			err = starlark.UnpackArgs(b.Name(), args, kwargs, "key", &e.key, "value", &e.want)
			e.name = fmt.Sprintf("key %s = %s", e.key, show(e.want))
			if e.want == starlark.None {
				e.name = "key " + e.key + " absent"
			}
			e.valid = map[string]bool{"etcd": true}
		case "keys":
			var n int
			err = starlark.UnpackArgs(b.Name(), args, kwargs, "prefix", &e.key, "count", &n)
			e.want = starlark.MakeInt(n)
			e.name = fmt.Sprintf("%d keys under %s", n, e.key)
			e.valid = map[string]bool{"etcd": true}
		case "sql", "cql":
			err = starlark.UnpackArgs(b.Name(), args, kwargs, "query", &e.key, "want", &e.want, "db?", &e.db)
			e.name = fmt.Sprintf("%s = %s", e.key, show(e.want))
			if kind == "sql" {
				e.valid = map[string]bool{"mysql": true}
			} else {
				e.valid = map[string]bool{"cassandra": true}
				if e.db != "" {
					err = fmt.Errorf("%s: db= is for drill.expect_sql", b.Name())
				}
			}
		case "rows":
			var n int
			err = starlark.UnpackArgs(b.Name(), args, kwargs, "table", &e.key, "count", &n)
			e.want = starlark.MakeInt(n)
			e.name = fmt.Sprintf("%d rows in %s", n, e.key)
			e.valid = map[string]bool{"mysql": true, "cassandra": true}
		case "custom":
			err = starlark.UnpackArgs(b.Name(), args, kwargs, "name", &e.name, "fn", &e.fn)
		}
		if err != nil {
			return nil, err
		}
		if e.want != nil {
			e.want.Freeze()
		}
		return e, nil
	}
}

// failureValue is drill.expect_failure(...).
type failureValue struct{ f FailureExpectation }

func (f *failureValue) String() string {
	return fmt.Sprintf("drill.expect_failure(cls=%q, phase=%q)", f.f.Class, f.f.Phase)
}
func (f *failureValue) Type() string          { return "drill.expectation" }
func (f *failureValue) Freeze()               {}
func (f *failureValue) Truth() starlark.Bool  { return true }
func (f *failureValue) Hash() (uint32, error) { return 0, errors.New("unhashable: drill.expectation") }

func builtinExpectFailure(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cls, phase string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cls?", &cls, "phase?", &phase); err != nil {
		return nil, err
	}
	if cls != "" {
		if _, err := drivers.ParseClass(cls); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
	}
	if phase != "" && phaseOrder(phase) > 3 {
		return nil, fmt.Errorf("%s: phase %q: a restore fails in download, prepare, execute or validate", b.Name(), phase)
	}
	return &failureValue{FailureExpectation{Class: cls, Phase: phase}}, nil
}

// ---- running restores ----

// runGroup runs specs at the same time (one goroutine and one engine run each)
// and returns their results in order. A script error of one (a broken custom
// expectation) or a usage error (an unknown driver) is returned after all ended.
func (d *Drill) runGroup(thread *starlark.Thread, specs []*restoreSpec) ([]starlark.Value, error) {
	d.mu.Lock()
	if !d.decl.called && len(d.opts.Params) > 0 {
		d.mu.Unlock()
		_, err := resolveParams(nil, d.opts.Params)
		return nil, engine.Usage(err)
	}
	seen := map[string]bool{}
	for _, r := range d.report.Restores {
		seen[r.Name] = true
	}
	for _, s := range specs {
		if seen[s.name] {
			d.mu.Unlock()
			return nil, fmt.Errorf("restore name %q is used twice in this drill: each restore needs its own name", s.name)
		}
		seen[s.name] = true
	}
	d.groups++
	group := d.groups
	d.mu.Unlock()

	ctx := d.ctx
	reps := make([]*RestoreReport, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		// Each restore gets its own copy of the kill faults (they record whether
		// they fired).
		c := *s
		c.kills = nil
		for _, k := range s.kills {
			kc := *k
			kc.fired = false
			c.kills = append(c.kills, &kc)
		}
		c.store.corrupt = nil
		for _, cs := range s.store.corrupt {
			cc := *cs
			cc.done = 0
			c.store.corrupt = append(c.store.corrupt, &cc)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = d.runRestore(ctx, &c, group)
		}()
	}
	wg.Wait()
	d.mu.Lock()
	d.report.Restores = append(d.report.Restores, reps...)
	d.mu.Unlock()
	out := make([]starlark.Value, len(reps))
	for i, r := range reps {
		out[i] = resultValue(r)
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
