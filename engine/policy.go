package engine

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// Backoff is how often one thing (a phase, a builtin call) is tried when it fails
// with a retryable class (transient or throttled), and how long to wait between
// attempts: exponential backoff from BaseDelay, capped at MaxDelay, with full
// jitter (a uniformly random wait in [0, min(MaxDelay, BaseDelay*2^(n-1))]). No
// attempt starts once Deadline has passed since the first one. Permanent,
// corruption, validation, script and cancelled errors are never retried.
//
// It is the same type as builtins.Backoff: the engine hands the call policy to
// the builtins' central wrapper.
type Backoff = builtins.Backoff

// RetryPolicy is the retry policy of a run: one Backoff per phase and one for
// every idempotent builtin call.
type RetryPolicy struct {
	// Phases by name (download, prepare, execute, validate, commit, rollback).
	// A phase without an entry is tried once.
	Phases map[string]Backoff
	// Call applies to each call of a builtin that declares itself idempotent
	// (safe to retry); a script can override it per call with retry=.
	Call Backoff

	// Attempts, BaseDelay and MaxDelay are the older, flat form: attempts per
	// phase, one backoff for every phase and call. Used when Phases is nil.
	Attempts  map[string]int
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// normalized returns p in the Phases/Call form (converting the flat form).
func (p RetryPolicy) normalized() RetryPolicy {
	if p.Phases != nil || p.Attempts == nil {
		return p
	}
	out := RetryPolicy{Phases: map[string]Backoff{}, Call: DefaultRetry().Call}
	for name, n := range p.Attempts {
		out.Phases[name] = Backoff{Attempts: n, BaseDelay: p.BaseDelay, MaxDelay: p.MaxDelay}
	}
	out.Call.BaseDelay, out.Call.MaxDelay = p.BaseDelay, p.MaxDelay
	return out
}

// Timeouts are the deadlines of a run. Zero is no deadline.
type Timeouts struct {
	// Run bounds the whole run, from start to the end of validation and commit
	// (rollback and teardown get their own time after it).
	Run time.Duration
	// Phases bounds each phase, all its attempts included.
	Phases map[string]time.Duration
}

// Policy is one layer of retry and timeout settings: the built-in defaults, the
// config file, the script's driver() declaration, the command line. A zero field
// is "not set here": the layer below decides.
type Policy struct {
	Retry    RetryPolicy
	Timeouts Timeouts
}

// DefaultRetry retries download and validate, which are idempotent; prepare,
// execute, commit and rollback change the target and run once (their idempotent
// builtin calls are still retried one by one).
func DefaultRetry() RetryPolicy {
	phase := Backoff{Attempts: 3, BaseDelay: time.Second, MaxDelay: 30 * time.Second, Deadline: 30 * time.Minute}
	return RetryPolicy{
		Phases: map[string]Backoff{drivers.PhaseDownload: phase, drivers.PhaseValidate: phase},
		Call:   Backoff{Attempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second, Deadline: 2 * time.Minute},
	}
}

// DefaultPolicy is the bottom layer: DefaultRetry and no deadlines.
func DefaultPolicy() Policy { return Policy{Retry: DefaultRetry()} }

// mergeBackoff returns base with the fields set in over replacing its own.
func mergeBackoff(base, over Backoff) Backoff {
	if over.Attempts != 0 {
		base.Attempts = over.Attempts
	}
	if over.BaseDelay != 0 {
		base.BaseDelay = over.BaseDelay
	}
	if over.MaxDelay != 0 {
		base.MaxDelay = over.MaxDelay
	}
	if over.Deadline != 0 {
		base.Deadline = over.Deadline
	}
	return base
}

// Merge returns p with every field set in over replacing p's.
func (p Policy) Merge(over Policy) Policy {
	out := Policy{
		Retry:    RetryPolicy{Phases: map[string]Backoff{}, Call: mergeBackoff(p.Retry.Call, over.Retry.Call)},
		Timeouts: Timeouts{Run: p.Timeouts.Run, Phases: map[string]time.Duration{}},
	}
	for k, v := range p.Retry.Phases {
		out.Retry.Phases[k] = v
	}
	for k, v := range over.Retry.Phases {
		out.Retry.Phases[k] = mergeBackoff(out.Retry.Phases[k], v)
	}
	if over.Timeouts.Run != 0 {
		out.Timeouts.Run = over.Timeouts.Run
	}
	for k, v := range p.Timeouts.Phases {
		out.Timeouts.Phases[k] = v
	}
	for k, v := range over.Timeouts.Phases {
		out.Timeouts.Phases[k] = v
	}
	return out
}

// phase returns the backoff of a phase (one attempt when none is set).
func (p RetryPolicy) phase(name string) Backoff {
	b := p.Phases[name]
	if b.Attempts <= 0 {
		b.Attempts = 1
	}
	return b
}

// timeout returns the deadline of a phase; negative or zero is none.
func (t Timeouts) phase(name string) time.Duration { return t.Phases[name] }

// allPhases are the names a policy may set.
var allPhases = []string{drivers.PhaseDownload, drivers.PhasePrepare, drivers.PhaseExecute, drivers.PhaseValidate, drivers.PhaseCommit, drivers.PhaseRollback}

func knownPhase(name string) bool {
	for _, p := range allPhases {
		if p == name {
			return true
		}
	}
	return false
}

// ParseDuration reads a duration: a Go duration ("90s", "1h30m") or a plain
// number of seconds ("90", "0.5"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 30s, 10m, 2h or a number of seconds", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// durationOf converts a YAML/JSON/Starlark value (seconds as a number, or a
// duration string) to a duration.
func durationOf(v any) (time.Duration, error) {
	switch x := v.(type) {
	case float64:
		return ParseDuration(strconv.FormatFloat(x, 'f', -1, 64))
	case int64:
		return ParseDuration(strconv.FormatInt(x, 10))
	case int:
		return ParseDuration(strconv.Itoa(x))
	case string:
		return ParseDuration(x)
	}
	return 0, fmt.Errorf("want a number of seconds or a duration like \"10m\", not %v", v)
}

// backoffOf reads a backoff: an int (attempts) or a map of attempts, base_delay,
// max_delay, deadline.
func backoffOf(where string, v any) (Backoff, error) {
	var b Backoff
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) || x < 1 {
			return b, fmt.Errorf("%s: attempts must be a whole number >= 1, not %v", where, x)
		}
		b.Attempts = int(x)
		return b, nil
	case int64:
		if x < 1 {
			return b, fmt.Errorf("%s: attempts must be >= 1, not %d", where, x)
		}
		b.Attempts = int(x)
		return b, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val := x[k]
			var err error
			switch k {
			case "attempts":
				var a Backoff
				a, err = backoffOf(where+".attempts", val)
				b.Attempts = a.Attempts
			case "base_delay":
				b.BaseDelay, err = durationOf(val)
			case "max_delay":
				b.MaxDelay, err = durationOf(val)
			case "deadline":
				b.Deadline, err = durationOf(val)
			default:
				err = fmt.Errorf("unknown key %q (attempts, base_delay, max_delay, deadline)", k)
			}
			if err != nil {
				return b, fmt.Errorf("%s: %v", where, err)
			}
		}
		return b, nil
	}
	return b, fmt.Errorf("%s: want a number of attempts or {attempts, base_delay, max_delay, deadline}, not %v", where, v)
}

// ParsePolicy reads a policy layer from generic values (a config file's retry:
// and timeouts: sections, or a driver() declaration):
//
//	retry:
//	  download: {attempts: 5, base_delay: 2s, max_delay: 1m, deadline: 1h}
//	  validate: 4                # attempts
//	  calls: {attempts: 3, base_delay: 200ms, max_delay: 5s, deadline: 2m}
//	timeouts:
//	  run: 6h
//	  execute: 2h
//
// where names the layer in errors.
func ParsePolicy(where string, retry, timeouts map[string]any) (Policy, error) {
	var p Policy
	p.Retry.Phases = map[string]Backoff{}
	p.Timeouts.Phases = map[string]time.Duration{}
	for _, k := range sortedKeys(retry) {
		b, err := backoffOf(where+" retry."+k, retry[k])
		if err != nil {
			return p, err
		}
		switch {
		case k == "calls":
			p.Retry.Call = b
		case knownPhase(k):
			p.Retry.Phases[k] = b
		default:
			return p, fmt.Errorf("%s retry: unknown key %q (calls or a phase: %s)", where, k, strings.Join(allPhases, ", "))
		}
	}
	for _, k := range sortedKeys(timeouts) {
		d, err := durationOf(timeouts[k])
		if err != nil {
			return p, fmt.Errorf("%s timeouts.%s: %v", where, k, err)
		}
		switch {
		case k == "run":
			p.Timeouts.Run = d
		case knownPhase(k):
			p.Timeouts.Phases[k] = d
		default:
			return p, fmt.Errorf("%s timeouts: unknown key %q (run or a phase: %s)", where, k, strings.Join(allPhases, ", "))
		}
	}
	return p, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
