package drivers

import (
	"context"
	"errors"
	"fmt"
)

// Class says what kind of failure an error is, and so whether retrying can help.
type Class string

// The error taxonomy. Builtins attach a class to every error they return; the engine
// retries only Transient and Throttled errors.
const (
	// Transient: a reset connection, a timeout, a 5xx; the same call may succeed.
	Transient Class = "transient"
	// Throttled: the service asked us to slow down (503 SlowDown, 429).
	Throttled Class = "throttled"
	// Permanent: retrying cannot help (not found, refused, bad input, wrong engine).
	Permanent Class = "permanent"
	// Corruption: bytes do not match their checksum or a file is not what it claims.
	Corruption Class = "corruption"
	// Validation: the restore ran but the restored database failed a check.
	Validation Class = "validation"
	// Script: a driver script is wrong (syntax, type error, step limit, bad call).
	Script Class = "script"
	// Cancelled: the run was interrupted or its deadline passed.
	Cancelled Class = "cancelled"
)

// Classes lists every class, in documentation order.
var Classes = []Class{Transient, Throttled, Permanent, Corruption, Validation, Script, Cancelled}

// ParseClass returns the class named s, or an error listing the valid names.
func ParseClass(s string) (Class, error) {
	for _, c := range Classes {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown error class %q (valid: transient, throttled, permanent, corruption, validation, script, cancelled)", s)
}

// Retryable reports whether an error of class c may succeed if tried again.
func (c Class) Retryable() bool { return c == Transient || c == Throttled }

// Error is an error with a class, the operation that failed and, optionally, a hint
// that tells the user how to fix it.
type Error struct {
	Class Class
	Op    string // what was being done, e.g. "blob.fetch member.db"
	Err   error
	Hint  string // the fix, e.g. "use --driver mysql"
}

func (e *Error) Error() string {
	msg := ""
	switch {
	case e.Op != "" && e.Err != nil:
		msg = e.Op + ": " + e.Err.Error()
	case e.Err != nil:
		msg = e.Err.Error()
	default:
		msg = e.Op
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of class c whose message is formatted like fmt.Errorf
// (so %w wraps).
func Errorf(c Class, format string, args ...any) error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// WithClass wraps err with class c, unless err is nil. An error that already has a
// class keeps the inner class when classified with ClassOf only if c is empty.
func WithClass(c Class, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Op: op, Err: err}
}

// WithHint wraps err so that its message ends with the given fix, keeping its class.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Class: ClassOf(err), Err: err, Hint: hint}
}

// ClassOf returns the class of err: the outermost class attached with *Error,
// Cancelled for context cancellation and deadlines, and Permanent for an error that
// carries no class (an unknown failure must not be retried blindly).
func ClassOf(err error) Class {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Class != "" {
		return e.Class
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Cancelled
	}
	return Permanent
}

// HintOf returns the first fix hint attached to err, or "".
func HintOf(err error) string {
	for err != nil {
		if e, ok := err.(*Error); ok && e.Hint != "" {
			return e.Hint
		}
		err = errors.Unwrap(err)
	}
	return ""
}
