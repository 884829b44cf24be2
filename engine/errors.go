package engine

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/drivers"
)

// ScriptError is an error raised while running Starlark code: a failed phase or a
// script that does not load. It keeps the Starlark backtrace (file:line:col of every
// frame) and the class of the underlying error.
type ScriptError struct {
	// Where names the script or phase, e.g. "etcd@1.0.0 execute".
	Where string
	// Pos is the innermost script position, file:line:col.
	Pos string
	// Backtrace is the Starlark call stack, innermost last.
	Backtrace string
	Class     drivers.Class
	Err       error
}

func (e *ScriptError) Error() string {
	msg := e.Err.Error()
	if e.Pos != "" && !strings.Contains(msg, e.Pos) {
		msg += " (at " + e.Pos + ")"
	}
	if e.Where != "" {
		return e.Where + ": " + msg
	}
	return msg
}

// Unwrap exposes the class as a *drivers.Error so drivers.ClassOf works.
func (e *ScriptError) Unwrap() error {
	return &drivers.Error{Class: e.Class, Err: e.Err}
}

// scriptError converts an error from compiling or running a script's top level.
func scriptError(filename string, err error) error {
	se := &ScriptError{Where: "script " + filename, Class: drivers.Script, Err: err}
	var syn syntax.Error
	var res resolve.ErrorList
	var ev *starlark.EvalError
	switch {
	case errors.As(err, &syn):
		se.Pos = syn.Pos.String()
		se.Err = fmt.Errorf("syntax error at %s: %s", syn.Pos, syn.Msg)
	case errors.As(err, &res):
		var lines []string
		for _, r := range res {
			lines = append(lines, fmt.Sprintf("%s: %s", r.Pos, r.Msg))
		}
		se.Pos = res[0].Pos.String()
		se.Err = fmt.Errorf("%s", strings.Join(lines, "; "))
	case errors.As(err, &ev):
		se.Backtrace = ev.Backtrace()
		se.Pos = innermost(ev)
		se.Err = errors.New(ev.Msg)
		if c := drivers.ClassOf(ev.Unwrap()); ev.Unwrap() != nil && hasClass(ev.Unwrap()) {
			se.Class = c
		}
		se.Err = causeOr(ev)
	}
	return se
}

// causeOr returns the error a Starlark evaluation error wraps (keeping its class
// and hint), or the message itself.
func causeOr(ev *starlark.EvalError) error {
	if c := ev.Unwrap(); c != nil {
		return c
	}
	return errors.New(ev.Msg)
}

func hasClass(err error) bool {
	var de *drivers.Error
	return errors.As(err, &de)
}

// innermost returns the position of the innermost Starlark (not builtin) frame.
func innermost(ev *starlark.EvalError) string {
	for i := len(ev.CallStack) - 1; i >= 0; i-- {
		if pos := ev.CallStack[i].Pos; pos.IsValid() && pos.Filename() != "<builtin>" {
			return pos.String()
		}
	}
	return ""
}

// BacktraceOf returns the Starlark backtrace carried by err, or "".
func BacktraceOf(err error) string {
	var se *ScriptError
	if errors.As(err, &se) {
		return se.Backtrace
	}
	return ""
}
