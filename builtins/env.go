package builtins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
)

// SnapshotSource is where the run's snapshot files come from (a *blobstore.Source,
// or a fake in tests).
type SnapshotSource interface {
	Fetch(ctx context.Context, name, dst string) (blobstore.FetchResult, error)
	OpenFile(ctx context.Context, name string) (io.ReadCloser, error)
}

// Env is the per-run state builtins work with. The engine creates one per run and
// binds it to every phase thread with Bind.
type Env struct {
	Run      *drivers.Run
	Snapshot *drivers.Snapshot
	Source   SnapshotSource
	Target   *drivers.Target
	Log      zerolog.Logger
	Redactor *redact.Redactor
	// Plan is true when WRITE builtins must be recorded, not run.
	Plan bool
	// OnCall, if set, sees every recorded call (the audit log).
	OnCall func(Call)
	// CallRetry is how idempotent builtins are retried, per call, on a transient
	// or throttled error (the zero value: no retry).
	CallRetry Backoff

	mu       sync.Mutex
	calls    []Call
	cleanups []cleanup
	values   map[string]any
}

// Call is the record of one builtin call.
type Call struct {
	Phase    string        `json:"phase,omitempty"`
	Builtin  string        `json:"builtin"`
	Effect   string        `json:"effect"`
	Args     string        `json:"args"`
	Pos      string        `json:"pos,omitempty"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Planned  bool          `json:"planned,omitempty"`
	Error    string        `json:"error,omitempty"`
	Class    string        `json:"class,omitempty"`
	// Attempt is 1 for the first try of the call, 2... for per-call retries of an
	// idempotent builtin (each attempt is recorded); RetryIn is the wait before the
	// next attempt when this one is retried.
	Attempt int           `json:"attempt,omitempty"`
	RetryIn time.Duration `json:"retry_in_ns,omitempty"`
}

// String renders the call as a script line, e.g. `etcd.stop_member("m1")`.
func (c Call) String() string { return c.Builtin + c.Args }

type cleanup struct {
	name string
	fn   func(context.Context) error
}

// WorkDir is the run's private directory.
func (e *Env) WorkDir() string { return e.Run.WorkDir }

// Redact masks the run's secrets in s.
func (e *Env) Redact(s string) string { return e.Redactor.String(s) }

func (e *Env) record(c Call) {
	e.mu.Lock()
	e.calls = append(e.calls, c)
	hook := e.OnCall
	e.mu.Unlock()
	if hook != nil {
		hook(c)
	}
}

// Calls returns the calls recorded so far, in order.
func (e *Env) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls...)
}

// Defer registers fn to run when the run ends (after validation, or after a
// failure), in reverse order of registration: scratch servers are stopped this way.
func (e *Env) Defer(name string, fn func(context.Context) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, cleanup{name, fn})
}

// RunCleanups runs every deferred function, newest first, and returns their errors
// joined. Each runs once even if RunCleanups is called again.
func (e *Env) RunCleanups(ctx context.Context) error {
	e.mu.Lock()
	list := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		if err := list[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", list[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// Value returns the module state stored under key, creating it with create on first
// use. Modules keep per-run state here (e.g. the etcd members they started).
func (e *Env) Value(key string, create func() any) any {
	e.mu.Lock()
	v, ok := e.values[key]
	e.mu.Unlock()
	if ok {
		return v
	}
	// create may call back into Env (e.g. Defer), so it runs without the lock.
	nv := create()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.values == nil {
		e.values = map[string]any{}
	}
	if v, ok := e.values[key]; ok {
		return v
	}
	e.values[key] = nv
	return nv
}

// Roots are the directories the run may write: its work dir and the target's
// declared dirs.
func (e *Env) Roots() []string {
	roots := []string{e.Run.WorkDir}
	if e.Target != nil {
		roots = append(roots, e.Target.Dirs...)
	}
	return roots
}

// CheckPath resolves p (relative paths are relative to the work dir) and refuses it
// unless it lies inside one of Roots, following symlinks of the part that exists.
func (e *Env) CheckPath(p string) (string, error) {
	if p == "" {
		return "", drivers.Errorf(drivers.Script, "empty path")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(e.Run.WorkDir, p)
	}
	p = filepath.Clean(p)
	real, err := resolveExisting(p)
	if err != nil {
		return "", drivers.WithClass(drivers.Permanent, "resolve "+p, err)
	}
	for _, root := range e.Roots() {
		if root == "" {
			continue
		}
		rroot, err := resolveExisting(filepath.Clean(root))
		if err != nil {
			continue
		}
		if within(real, rroot) {
			return p, nil
		}
	}
	return "", drivers.Errorf(drivers.Script, "path %s is outside the run's work dir and the target's declared dirs (%s); scripts may only touch those", p, strings.Join(e.Roots(), ", "))
}

// IsRoot reports whether p is one of Roots itself (which may not be removed or
// moved away).
func (e *Env) IsRoot(p string) bool {
	for _, root := range e.Roots() {
		if filepath.Clean(root) == filepath.Clean(p) {
			return true
		}
	}
	return false
}

func within(p, root string) bool {
	if p == root {
		return true
	}
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// resolveExisting evaluates symlinks in the longest existing prefix of p and joins
// the rest, so a path that does not exist yet cannot escape through a symlinked
// parent.
func resolveExisting(p string) (string, error) {
	rest := ""
	cur := p
	for {
		if _, err := os.Lstat(cur); err == nil {
			real, err := filepath.EvalSymlinks(cur)
			if err != nil {
				return "", err
			}
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// Thread-local keys.
const (
	localEnv   = "restore-run.env"
	localCtx   = "restore-run.ctx"
	localPhase = "restore-run.phase"
)

// Bind attaches the run to a phase thread. It must be called before the thread runs.
func Bind(ctx context.Context, thread *starlark.Thread, env *Env, phase string) {
	thread.SetLocal(localEnv, env)
	thread.SetLocal(localCtx, ctx)
	thread.SetLocal(localPhase, phase)
}

// EnvOf returns the run bound to thread, or nil outside a phase.
func EnvOf(thread *starlark.Thread) *Env {
	env, _ := thread.Local(localEnv).(*Env)
	return env
}

// ContextOf returns the phase context bound to thread (Background if none).
func ContextOf(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(localCtx).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// PhaseOf returns the phase the thread runs, or "".
func PhaseOf(thread *starlark.Thread) string {
	p, _ := thread.Local(localPhase).(string)
	return p
}

func asDriverError(err error, target **drivers.Error) bool { return errors.As(err, target) }

type phaseKey struct{}

func withPhase(ctx context.Context, phase string) context.Context {
	return context.WithValue(ctx, phaseKey{}, phase)
}

// PhaseFrom returns the phase a builtin was called from ("" outside a phase).
func PhaseFrom(ctx context.Context) string {
	p, _ := ctx.Value(phaseKey{}).(string)
	return p
}

type envKey struct{}

// NewContext returns ctx carrying env, so a driver's phase methods find their run.
func NewContext(ctx context.Context, env *Env) context.Context {
	return context.WithValue(ctx, envKey{}, env)
}

// FromContext returns the Env carried by ctx, or nil.
func FromContext(ctx context.Context) *Env {
	env, _ := ctx.Value(envKey{}).(*Env)
	return env
}
