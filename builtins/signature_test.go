package builtins

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

func TestParseSignature(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "",
		"path":                           "path",
		"path, name, bump=0":             "path, name, bump=0",
		`msg, cls="permanent"`:           `msg, cls="permanent"`,
		"*parts":                         "*parts",
		"msg, **fields":                  "msg, **fields",
		`str, *, prefix="", indent="\t"`: `str, *, prefix="", indent="\t"`,
		`sql, args=[], sep=", "`:         `sql, args=[], sep=", "`,
		"a, *rest, k=1, **kw":            "a, *rest, k=1, **kw",
	} {
		sig, err := ParseSignature(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := sig.String(); got != want {
			t.Errorf("%q: String() = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"a,", "a b", "a=1, b", "**kw, a", "a, a", "*, *", "see the doc"} {
		if _, err := ParseSignature(bad); err == nil {
			t.Errorf("%q parsed; want an error", bad)
		}
	}
}

func TestCheckCall(t *testing.T) {
	sig, _ := ParseSignature("endpoint, revision=0")
	cases := []struct {
		npos int
		kws  []string
		want string
	}{
		{1, nil, ""},
		{2, nil, ""},
		{1, []string{"revision"}, ""},
		{0, []string{"endpoint"}, ""},
		{3, nil, "3 positional arguments given, it takes at most 2"},
		{0, nil, "missing argument endpoint"},
		{1, []string{"endpoint"}, "argument endpoint given twice"},
		{1, []string{"rev"}, "unknown keyword argument rev (did you mean revision?)"},
	}
	for _, c := range cases {
		got := strings.Join(sig.CheckCall(c.npos, c.kws, false), "; ")
		if (c.want == "" && got != "") || !strings.Contains(got, c.want) {
			t.Errorf("CheckCall(%d, %v) = %q, want %q", c.npos, c.kws, got, c.want)
		}
	}
}

func TestBind(t *testing.T) {
	sig, _ := ParseSignature(`path, name, bump=0, flag=False, label="x", **rest`)
	got, _, err := sig.Bind("f", starlark.Tuple{starlark.String("p")}, []starlark.Tuple{
		{starlark.String("name"), starlark.String("m1")}, {starlark.String("other"), starlark.MakeInt(3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"path": `"p"`, "name": `"m1"`, "bump": "0", "flag": "False", "label": `"x"`, "rest": `{"other": 3}`}
	for k, v := range want {
		if got[k] == nil || got[k].String() != v {
			t.Errorf("%s = %v, want %s", k, got[k], v)
		}
	}
	if _, _, err := sig.Bind("f", nil, nil); err == nil || !strings.Contains(err.Error(), "missing argument for path") {
		t.Errorf("Bind without path: %v", err)
	}
}

// Every registered builtin declares a signature that parses, and its
// implementation accepts each parameter the signature names: `restore-run check`
// and the test runner's fakes rely on the declarations being right.
func TestDeclaredSignaturesMatchImplementations(t *testing.T) {
	h := newHarness(t, false)
	for _, m := range append(Modules(), Globals) {
		for _, f := range m.Funcs {
			name := m.Name + "." + f.Name
			if m.Name == "" {
				name = f.Name
			}
			sig, err := f.Signature()
			if err != nil {
				t.Errorf("%s: Params %q does not parse: %v; write it as a Starlark parameter list", name, f.Params, err)
				continue
			}
			if f.Impl == nil {
				t.Errorf("%s has no Impl", name)
				continue
			}
			for _, p := range sig.Params {
				if p.Kind == VarArgs || p.Kind == KwArgs {
					continue
				}
				err := callImpl(f, h.env, []starlark.Tuple{{starlark.String(p.Name), starlark.None}})
				if err != nil && strings.Contains(err.Error(), "unexpected keyword argument") {
					t.Errorf("%s declares parameter %s, but its implementation refuses it: %v", name, p.Name, err)
				}
			}
			if !hasKind(sig, KwArgs) {
				err := callImpl(f, h.env, []starlark.Tuple{{starlark.String("zz_not_a_param"), starlark.None}})
				if err == nil {
					t.Errorf("%s accepts an undeclared keyword argument; declare **kwargs in Params", name)
				}
			}
		}
	}
}

func hasKind(sig Signature, k ParamKind) bool {
	for _, p := range sig.Params {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// callImpl calls f's implementation directly (not through the wrapper), with a
// context that is already cancelled so that nothing long-running starts, and
// turns a panic (an implementation that needs more of the run) into an error.
func callImpl(f Func, env *Env, kwargs []starlark.Tuple) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.Impl(ctx, env, nil, kwargs)
	return err
}
