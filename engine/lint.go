package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// Diagnostic is one problem `restore-run check` finds in a script, at a position.
type Diagnostic struct {
	Pos syntax.Position
	Msg string
}

func (d Diagnostic) String() string {
	if d.Pos.IsValid() {
		return d.Pos.String() + ": " + d.Msg
	}
	return d.Msg
}

// LintKind says what kind of file is checked.
type LintKind int

const (
	// LintDriver: a driver script; it must declare driver() and its phases.
	LintDriver LintKind = iota
	// LintLib: a helper module under lib/.
	LintLib
	// LintTest: a *_test.star file (see restore-run test).
	LintTest
)

// LintOptions tune Lint.
type LintOptions struct {
	Kind LintKind
	// Extra are modules predeclared besides the host's (the assert and testing
	// modules of test files); a module with Name "" adds global functions.
	Extra []builtins.Module
}

// Lint checks a script without running it and returns every problem it finds,
// sorted by position: syntax errors; undefined names; calls of builtins (and of
// the script's own top-level functions) whose arguments do not fit the declared
// signature; members a module does not have (etcd.stauts); and, for a driver
// script, the phase functions (required ones present, right parameters) and the
// api a literal driver(api=N) asks for.
func (h *Host) Lint(filename string, data []byte, opts LintOptions) []Diagnostic {
	f, err := fileOptions.Parse(filename, data, 0)
	if err != nil {
		var se syntax.Error
		if errors.As(err, &se) {
			return []Diagnostic{{Pos: se.Pos, Msg: "syntax error: " + se.Msg}}
		}
		return []Diagnostic{{Msg: err.Error()}}
	}
	l := &linter{
		modules: map[string]builtins.Module{},
		globals: map[string]builtins.Func{},
		defs:    map[string]*syntax.DefStmt{},
	}
	mods := append(append([]builtins.Module{}, h.Modules...), JSONModule, builtins.Module{Funcs: EngineFuncs})
	mods = append(mods, opts.Extra...)
	for _, m := range mods {
		if m.Name == "" {
			for _, fn := range m.Funcs {
				l.globals[fn.Name] = fn
			}
			continue
		}
		l.modules[m.Name] = m
	}
	pre := h.Predeclared()
	isPredeclared := func(name string) bool {
		if pre.Has(name) {
			return true
		}
		_, isMod := l.modules[name]
		_, isGlobal := l.globals[name]
		return isMod || isGlobal
	}
	if err := resolve.File(f, isPredeclared, starlark.Universe.Has); err != nil {
		var list resolve.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				l.add(e.Pos, "%s", e.Msg)
			}
		} else {
			l.add(syntax.Position{}, "%v", err)
		}
	}
	for _, st := range f.Stmts {
		if def, ok := st.(*syntax.DefStmt); ok {
			l.defs[def.Name.Name] = def
		}
	}
	syntax.Walk(f, l.visit)
	if opts.Kind == LintDriver {
		l.driverChecks(f)
	}
	sort.SliceStable(l.diags, func(i, j int) bool {
		a, b := l.diags[i].Pos, l.diags[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return l.diags
}

type linter struct {
	modules map[string]builtins.Module
	globals map[string]builtins.Func
	defs    map[string]*syntax.DefStmt
	diags   []Diagnostic
	// driverCall is the top-level driver(...) call, if any.
	driverCall *syntax.CallExpr
}

func (l *linter) add(pos syntax.Position, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func scopeOf(id *syntax.Ident) resolve.Scope {
	if b, ok := id.Binding.(*resolve.Binding); ok && b != nil {
		return b.Scope
	}
	return resolve.Undefined
}

func (l *linter) visit(n syntax.Node) bool {
	switch x := n.(type) {
	case *syntax.DotExpr:
		if id, ok := x.X.(*syntax.Ident); ok && scopeOf(id) == resolve.Predeclared {
			if m, ok := l.modules[id.Name]; ok {
				if _, ok := m.Func(x.Name.Name); !ok {
					l.add(x.Name.NamePos, "%s.%s: module %s has no function %s%s", id.Name, x.Name.Name, id.Name, x.Name.Name, suggest(x.Name.Name, funcNames(m)))
				}
			}
		}
	case *syntax.CallExpr:
		l.call(x)
	}
	return true
}

func funcNames(m builtins.Module) []string {
	var out []string
	for _, f := range m.Funcs {
		out = append(out, f.Name)
	}
	return out
}

func suggest(name string, candidates []string) string {
	if near := builtins.Nearest(name, candidates); near != "" {
		return " (did you mean " + near + "?)"
	}
	return " (it has " + strings.Join(candidates, ", ") + ")"
}

// call checks one call against the signature of what it calls, when that is known.
func (l *linter) call(c *syntax.CallExpr) {
	var (
		name string
		sig  builtins.Signature
		err  error
	)
	switch fn := c.Fn.(type) {
	case *syntax.DotExpr:
		id, ok := fn.X.(*syntax.Ident)
		if !ok || scopeOf(id) != resolve.Predeclared {
			return
		}
		m, ok := l.modules[id.Name]
		if !ok {
			return
		}
		f, ok := m.Func(fn.Name.Name)
		if !ok {
			return // reported by visit
		}
		name = id.Name + "." + f.Name
		if sig, err = f.Signature(); err != nil {
			return // an informal signature: nothing to check against
		}
		if _, own := sig.Param("retry"); f.Idempotent && !own {
			// The central wrapper takes retry= on every idempotent builtin.
			sig.Params = append(append([]builtins.Param(nil), sig.Params...), builtins.Param{Name: "retry", Default: "None", Kind: builtins.KeywordOnly})
		}
	case *syntax.Ident:
		switch scopeOf(fn) {
		case resolve.Predeclared:
			f, ok := l.globals[fn.Name]
			if !ok {
				return
			}
			if fn.Name == "driver" {
				l.driverCall = c
			}
			name = f.Name
			if sig, err = f.Signature(); err != nil {
				return
			}
		case resolve.Global:
			def, ok := l.defs[fn.Name]
			if !ok {
				return
			}
			name = fn.Name
			sig = defSignature(def)
		default:
			return
		}
	default:
		return
	}
	npos, keywords, spread := 0, []string(nil), false
	for _, a := range c.Args {
		switch x := a.(type) {
		case *syntax.BinaryExpr:
			if id, ok := x.X.(*syntax.Ident); ok && x.Op == syntax.EQ {
				keywords = append(keywords, id.Name)
				continue
			}
			npos++
		case *syntax.UnaryExpr:
			if x.Op == syntax.STAR || x.Op == syntax.STARSTAR {
				spread = true
				continue
			}
			npos++
		default:
			npos++
		}
	}
	if spread {
		// f(*args) may fill any positional parameter: only keyword names are checked.
		var bad []string
		for _, p := range sig.CheckCall(0, keywords, true) {
			if strings.HasPrefix(p, "unknown keyword") {
				bad = append(bad, p)
			}
		}
		l.report(c, name, sig, bad)
		return
	}
	l.report(c, name, sig, sig.CheckCall(npos, keywords, false))
}

func (l *linter) report(c *syntax.CallExpr, name string, sig builtins.Signature, problems []string) {
	if len(problems) == 0 {
		return
	}
	start, _ := c.Span()
	l.add(start, "%s: %s; its signature is %s(%s)", name, strings.Join(problems, "; "), name, sig)
}

// defSignature turns a def's parameters into a Signature.
func defSignature(def *syntax.DefStmt) builtins.Signature {
	var sig builtins.Signature
	kwOnly := false
	for _, p := range def.Params {
		switch x := p.(type) {
		case *syntax.Ident:
			k := builtins.Positional
			if kwOnly {
				k = builtins.KeywordOnly
			}
			sig.Params = append(sig.Params, builtins.Param{Name: x.Name, Kind: k})
		case *syntax.BinaryExpr:
			id, _ := x.X.(*syntax.Ident)
			if id == nil {
				continue
			}
			k := builtins.Positional
			if kwOnly {
				k = builtins.KeywordOnly
			}
			sig.Params = append(sig.Params, builtins.Param{Name: id.Name, Default: "...", Kind: k})
		case *syntax.UnaryExpr:
			id, _ := x.X.(*syntax.Ident)
			switch {
			case x.Op == syntax.STARSTAR && id != nil:
				sig.Params = append(sig.Params, builtins.Param{Name: id.Name, Kind: builtins.KwArgs})
			case x.Op == syntax.STAR && id != nil:
				sig.Params = append(sig.Params, builtins.Param{Name: id.Name, Kind: builtins.VarArgs})
				kwOnly = true
			case x.Op == syntax.STAR:
				kwOnly = true
			}
		}
	}
	return sig
}

// driverChecks checks what a driver script must declare: one driver() call with a
// supported api, execute and validate, and phase functions with the right
// parameters.
func (l *linter) driverChecks(f *syntax.File) {
	declPos := syntax.MakePosition(&f.Path, 1, 1)
	if l.driverCall == nil {
		l.add(declPos, "no driver(name=..., version=..., api=...) declaration at the top level")
	} else {
		declPos, _ = l.driverCall.Span()
		for _, a := range l.driverCall.Args {
			b, ok := a.(*syntax.BinaryExpr)
			if !ok || b.Op != syntax.EQ {
				continue
			}
			if id, ok := b.X.(*syntax.Ident); ok && id.Name == "api" {
				lit, ok := b.Y.(*syntax.Literal)
				if !ok || lit.Token != syntax.INT {
					continue
				}
				if n, ok := lit.Value.(int64); ok && !supportedAPI(int(n)) {
					l.add(lit.TokenPos, "driver asks for api %d, but this restore-run supports api %s; use a restore-run release that supports it or port the script", n, apiList())
				}
			}
		}
	}
	var names []string
	for ph := range phaseArity {
		names = append(names, ph)
	}
	sort.Strings(names)
	for _, ph := range names {
		def, ok := l.defs[ph]
		if !ok {
			for _, req := range requiredPhases {
				if req == ph {
					l.add(declPos, "the driver defines no %s(ctx, snapshot, target) function; every driver needs execute and validate", ph)
				}
			}
			continue
		}
		sig := defSignature(def)
		want := "(ctx, snapshot, target)"
		if phaseArity[ph] == 2 {
			want = "(ctx, snapshot)"
		}
		simple := len(sig.Params) == phaseArity[ph]
		for _, p := range sig.Params {
			if p.Kind != builtins.Positional {
				simple = false
			}
		}
		if !simple {
			l.add(def.Def, "def %s must take exactly %s, not (%s)", ph, want, sig)
		}
	}
	for name := range l.defs {
		if near := builtins.Nearest(name, names); near != "" && near != name && editClose(name, near) {
			if _, defined := l.defs[near]; !defined {
				l.add(l.defs[name].Def, "def %s is not a phase the engine calls; did you mean %s?", name, near)
			}
		}
	}
}

// editClose is true for names that differ by at most two letters and share their
// first letter: "valdate" for validate, not "prepare_dir" for prepare.
func editClose(a, b string) bool {
	return len(a) > 0 && len(b) > 0 && a[0] == b[0] && absDiff(len(a), len(b)) <= 2 && builtins.Nearest(a, []string{b}) == b && !strings.HasPrefix(a, b)
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}

// LintError joins diagnostics into one error of class Script.
func LintError(diags []Diagnostic) error {
	if len(diags) == 0 {
		return nil
	}
	var lines []string
	for _, d := range diags {
		lines = append(lines, d.String())
	}
	return drivers.Errorf(drivers.Script, "%s", strings.Join(lines, "\n"))
}
