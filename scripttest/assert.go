package scripttest

import (
	"fmt"
	"regexp"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// assertModule builds the assert module.
func assertModule() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "assert", Members: starlark.StringDict{
		"eq":       starlark.NewBuiltin("assert.eq", assertEq),
		"ne":       starlark.NewBuiltin("assert.ne", assertNe),
		"true":     starlark.NewBuiltin("assert.true", assertTruth(true)),
		"false":    starlark.NewBuiltin("assert.false", assertTruth(false)),
		"contains": starlark.NewBuiltin("assert.contains", assertContains),
		"fails":    starlark.NewBuiltin("assert.fails", assertFails),
	}}
}

// failure is a failed check: the test stops, and the runner prints where.
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func failf(b *starlark.Builtin, msg string, format string, args ...any) error {
	s := b.Name() + ": " + fmt.Sprintf(format, args...)
	if msg != "" {
		s += " (" + msg + ")"
	}
	return &failure{s}
}

// show renders a value the way a test author wrote it.
func show(v starlark.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.String()
}

func assertEq(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, want starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &got, "want", &want, "msg?", &msg); err != nil {
		return nil, err
	}
	eq, err := starlark.Equal(got, want)
	if err != nil {
		return nil, err
	}
	if !eq {
		return nil, failf(b, msg, "expected %s, got %s", show(want), show(got))
	}
	return starlark.None, nil
}

func assertNe(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, unwanted starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &got, "unwanted", &unwanted, "msg?", &msg); err != nil {
		return nil, err
	}
	eq, err := starlark.Equal(got, unwanted)
	if err != nil {
		return nil, err
	}
	if eq {
		return nil, failf(b, msg, "got %s, want anything else", show(got))
	}
	return starlark.None, nil
}

func assertTruth(want bool) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var cond starlark.Value
		var msg string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cond", &cond, "msg?", &msg); err != nil {
			return nil, err
		}
		if bool(cond.Truth()) != want {
			return nil, failf(b, msg, "got %s", show(cond))
		}
		return starlark.None, nil
	}
}

func assertContains(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var container, item starlark.Value
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "container", &container, "item", &item, "msg?", &msg); err != nil {
		return nil, err
	}
	in, err := starlark.Binary(syntax.IN, item, container)
	if err != nil {
		return nil, err
	}
	if !in.Truth() {
		return nil, failf(b, msg, "%s not in %s", show(item), show(container))
	}
	return starlark.None, nil
}

func assertFails(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var pattern string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "pattern?", &pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: pattern: %v", b.Name(), err)
	}
	_, callErr := starlark.Call(thread, fn, nil, nil)
	if callErr == nil {
		return nil, failf(b, "", "the call succeeded; want an error matching %q", pattern)
	}
	msg := callErr.Error()
	if ev, ok := callErr.(*starlark.EvalError); ok {
		msg = ev.Msg
	}
	if !re.MatchString(msg) {
		return nil, failf(b, "", "error %q does not match %q", msg, pattern)
	}
	return starlark.String(msg), nil
}
