package builtins

import (
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/drivers"
)

// ParamKind says how a parameter of a builtin's signature takes its argument.
type ParamKind int

const (
	// Positional parameters may be given by position or by keyword.
	Positional ParamKind = iota
	// KeywordOnly parameters (after a bare * or *args) are given by keyword only.
	KeywordOnly
	// VarArgs (*args) collects the remaining positional arguments.
	VarArgs
	// KwArgs (**kwargs) collects the remaining keyword arguments.
	KwArgs
)

// Param is one parameter of a builtin's signature.
type Param struct {
	Name string
	// Default is the Starlark text of the default value, "" when the parameter is
	// required (or variadic).
	Default string
	Kind    ParamKind
}

// Optional reports whether a call may leave the parameter out.
func (p Param) Optional() bool { return p.Default != "" || p.Kind == VarArgs || p.Kind == KwArgs }

// Signature is a builtin's parameter list in machine-readable form, parsed from
// Func.Params ("path, name, bump_revision=0", "*parts", "msg, **fields",
// "str, *, prefix=\"\"").
type Signature struct {
	Params []Param
}

// ParseSignature parses a parameter list written as in a Starlark def: names,
// name=DEFAULT, *args, a bare *, **kwargs. An empty string is a function of no
// parameters.
func ParseSignature(s string) (Signature, error) {
	var sig Signature
	seen := map[string]bool{}
	kwOnly := false
	for _, part := range splitTopLevel(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			return sig, fmt.Errorf("empty parameter in %q", s)
		}
		p := Param{Kind: Positional}
		switch {
		case strings.HasPrefix(part, "**"):
			p.Kind, p.Name = KwArgs, strings.TrimSpace(part[2:])
		case part == "*":
			if kwOnly {
				return sig, fmt.Errorf("two * markers in %q", s)
			}
			kwOnly = true
			continue
		case strings.HasPrefix(part, "*"):
			if kwOnly {
				return sig, fmt.Errorf("*%s after * in %q", part[1:], s)
			}
			p.Kind, p.Name = VarArgs, strings.TrimSpace(part[1:])
			kwOnly = true
		default:
			name, def, hasDef := strings.Cut(part, "=")
			p.Name = strings.TrimSpace(name)
			if hasDef {
				p.Default = strings.TrimSpace(def)
				if p.Default == "" {
					return sig, fmt.Errorf("parameter %s has an empty default in %q", p.Name, s)
				}
			}
			if kwOnly {
				p.Kind = KeywordOnly
			}
		}
		if !isIdent(p.Name) {
			return sig, fmt.Errorf("%q is not a parameter name (in %q)", p.Name, s)
		}
		if seen[p.Name] {
			return sig, fmt.Errorf("parameter %s appears twice in %q", p.Name, s)
		}
		seen[p.Name] = true
		if n := len(sig.Params); n > 0 && sig.Params[n-1].Kind == KwArgs {
			return sig, fmt.Errorf("**%s must be the last parameter in %q", sig.Params[n-1].Name, s)
		}
		if p.Kind == Positional && p.Default == "" {
			for _, q := range sig.Params {
				if q.Kind == Positional && q.Default != "" {
					return sig, fmt.Errorf("required parameter %s follows optional %s in %q", p.Name, q.Name, s)
				}
			}
		}
		sig.Params = append(sig.Params, p)
	}
	return sig, nil
}

// splitTopLevel splits s at commas outside brackets and string quotes.
func splitTopLevel(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Signature returns f's parsed Params.
func (f Func) Signature() (Signature, error) { return ParseSignature(f.Params) }

// Param returns the parameter called name.
func (s Signature) Param(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name && p.Kind != VarArgs && p.Kind != KwArgs {
			return p, true
		}
	}
	return Param{}, false
}

func (s Signature) has(kind ParamKind) bool {
	for _, p := range s.Params {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

// positional returns the parameters that can take a positional argument.
func (s Signature) positional() []Param {
	var out []Param
	for _, p := range s.Params {
		if p.Kind == Positional {
			out = append(out, p)
		}
	}
	return out
}

// String renders the signature as it was written, normalized.
func (s Signature) String() string {
	var parts []string
	star := false
	for _, p := range s.Params {
		switch p.Kind {
		case VarArgs:
			parts = append(parts, "*"+p.Name)
			star = true
		case KwArgs:
			parts = append(parts, "**"+p.Name)
		case KeywordOnly:
			if !star {
				parts = append(parts, "*")
				star = true
			}
			parts = append(parts, p.Name+"="+p.Default)
			if p.Default == "" {
				parts[len(parts)-1] = p.Name
			}
		default:
			if p.Default != "" {
				parts = append(parts, p.Name+"="+p.Default)
			} else {
				parts = append(parts, p.Name)
			}
		}
	}
	return strings.Join(parts, ", ")
}

// CheckCall checks a call with npos positional arguments and the given keyword
// argument names against the signature, the way the builtin's argument unpacking
// would at run time. It returns one message per problem (none when the call fits).
// Calls that spread *args or **kwargs should pass only what is known and set
// spread, which skips the checks that need the full list.
func (s Signature) CheckCall(npos int, keywords []string, spread bool) []string {
	var problems []string
	pos := s.positional()
	if npos > len(pos) && !s.has(VarArgs) {
		want := fmt.Sprintf("at most %d", len(pos))
		if len(pos) == 0 {
			want = "none"
		}
		problems = append(problems, fmt.Sprintf("%d positional arguments given, it takes %s", npos, want))
	}
	given := map[string]bool{}
	for i := 0; i < npos && i < len(pos); i++ {
		given[pos[i].Name] = true
	}
	for _, kw := range keywords {
		p, ok := s.Param(kw)
		switch {
		case !ok && s.has(KwArgs):
		case !ok:
			msg := fmt.Sprintf("unknown keyword argument %s", kw)
			if near := s.nearest(kw); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			problems = append(problems, msg)
		case given[kw]:
			problems = append(problems, fmt.Sprintf("argument %s given twice (by position and by keyword)", p.Name))
		default:
			given[kw] = true
		}
	}
	if !spread {
		var missing []string
		for _, p := range s.Params {
			if !p.Optional() && !given[p.Name] {
				missing = append(missing, p.Name)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, "missing argument "+strings.Join(missing, ", "))
		}
	}
	return problems
}

// nearest returns the parameter name closest to name, if it is close.
func (s Signature) nearest(name string) string {
	var names []string
	for _, p := range s.Params {
		if p.Kind != VarArgs && p.Kind != KwArgs {
			names = append(names, p.Name)
		}
	}
	return Nearest(name, names)
}

// Nearest returns the candidate that name likely misspells: one that starts with
// name (or that name starts with), else the closest by edit distance when it is
// close enough to be a typo; "" when none is.
func Nearest(name string, candidates []string) string {
	best, bestD := "", len(name)/2+1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if len(name) >= 3 && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c)) && best == "" {
			best = c
		}
	}
	if best != "" {
		return best
	}
	for _, c := range sorted {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Bind matches a call's arguments to the signature's parameter names, as the
// builtin would: positional ones in order, then keywords. Parameters the call
// leaves out get their declared default (evaluated as a Starlark literal; None if
// it is not one); *args become a tuple and **kwargs a dict. It fails, with class
// Script, where the builtin would.
func (s Signature) Bind(fn string, args starlark.Tuple, kwargs []starlark.Tuple) (map[string]starlark.Value, []string, error) {
	var names []string
	for _, p := range s.Params {
		names = append(names, p.Name)
	}
	out := map[string]starlark.Value{}
	pos := s.positional()
	var extra starlark.Tuple
	for i, a := range args {
		if i < len(pos) {
			out[pos[i].Name] = a
			continue
		}
		if !s.has(VarArgs) {
			return nil, names, drivers.Errorf(drivers.Script, "%s: got %d positional arguments, want at most %d", fn, len(args), len(pos))
		}
		extra = append(extra, a)
	}
	extraKw := starlark.NewDict(0)
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if _, ok := s.Param(k); !ok {
			if !s.has(KwArgs) {
				return nil, names, drivers.Errorf(drivers.Script, "%s: unexpected keyword argument %s", fn, k)
			}
			extraKw.SetKey(kv[0], kv[1])
			continue
		}
		if _, dup := out[k]; dup {
			return nil, names, drivers.Errorf(drivers.Script, "%s: got multiple values for parameter %s", fn, k)
		}
		out[k] = kv[1]
	}
	for _, p := range s.Params {
		switch p.Kind {
		case VarArgs:
			out[p.Name] = extra
			continue
		case KwArgs:
			out[p.Name] = extraKw
			continue
		}
		if _, ok := out[p.Name]; ok {
			continue
		}
		if p.Default == "" {
			return nil, names, drivers.Errorf(drivers.Script, "%s: missing argument for %s", fn, p.Name)
		}
		v, err := starlark.EvalOptions(&syntax.FileOptions{}, &starlark.Thread{Name: "default"}, "default", p.Default, nil)
		if err != nil {
			v = starlark.None
		}
		out[p.Name] = v
	}
	return out, names, nil
}
