package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// classMeaning says, for people, what an error class means for the run.
var classMeaning = map[string]string{
	"transient":  "a temporary failure (timeout, reset connection); download and validate retry it, and it still failed",
	"throttled":  "the service asked to slow down; download and validate retry it, and it still failed",
	"permanent":  "retrying cannot help (refused, not found, bad input, a command that failed)",
	"corruption": "the data does not match its checksum or is not what it claims",
	"validation": "the restore ran, but the restored database failed a check",
	"script":     "the driver script is wrong (a mistake in the script, a wrong builtin argument, the step limit)",
	"cancelled":  "the run was interrupted",
}

// explainFailure prints what a DBA needs to act on a failed run, on top of the
// summary: which driver, phase, script line and builtin failed, the error (with
// the program's output or the server's message, as the builtin reported it), its
// class and what it means, what happened to the target, and the Starlark
// backtrace.
func explainFailure(w io.Writer, r *engine.Report, err error) {
	class := string(drivers.ClassOf(err))
	verb := r.Mode
	if verb == "" {
		verb = "run"
	}
	fmt.Fprintf(w, "restore-run: %s failed", verb)
	if r.Driver.Name != "" {
		fmt.Fprintf(w, ": driver %s@%s (%s)", r.Driver.Name, r.Driver.Version, r.Driver.Source)
	}
	fmt.Fprintln(w)

	var failed *engine.PhaseRecord
	for i := range r.Phases {
		if r.Phases[i].Result == "failed" && r.Phases[i].Name != "rollback" {
			failed = &r.Phases[i]
			break
		}
	}
	if failed != nil {
		fmt.Fprintf(w, "  phase   %s (attempt %d)\n", failed.Name, failed.Attempts)
		if c := failedCall(r, failed.Name); c != nil {
			call := c.String()
			if r.WorkDir != "" {
				call = strings.ReplaceAll(call, r.WorkDir, "$WORKDIR")
			}
			fmt.Fprintf(w, "  step    %s\n", call)
			if c.Pos != "" {
				fmt.Fprintf(w, "          at %s\n", c.Pos)
			}
		} else if pos := scriptPos(err); pos != "" {
			fmt.Fprintf(w, "  at      %s\n", pos)
		}
	}
	var bad []drivers.Check
	for _, c := range r.Checks {
		if !c.OK {
			bad = append(bad, c)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "  checks  %d of %d failed:\n", len(bad), len(r.Checks))
		for _, c := range bad {
			line := "          " + c.Name
			if c.Expected != "" || c.Actual != "" {
				line += fmt.Sprintf(": expected %s, got %s", c.Expected, c.Actual)
			}
			if c.Detail != "" {
				line += " (" + c.Detail + ")"
			}
			if c.Pos != "" {
				line += "  at " + c.Pos
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "  error   %s\n", indentLines(err.Error(), "          "))
	if hint := drivers.HintOf(err); hint != "" && !strings.Contains(err.Error(), hint) {
		fmt.Fprintf(w, "  fix     %s\n", hint)
	}
	if m := classMeaning[class]; m != "" {
		fmt.Fprintf(w, "  class   %s: %s\n", class, m)
	}
	if t := targetOutcome(r); t != "" {
		fmt.Fprintf(w, "  target  %s\n", t)
	}
	if bt := engine.BacktraceOf(err); bt != "" {
		fmt.Fprintln(w, strings.TrimRight(bt, "\n"))
	}
}

// failedCall returns the last builtin call of phase that failed.
func failedCall(r *engine.Report, phase string) *builtins.Call {
	for i := len(r.Calls) - 1; i >= 0; i-- {
		if c := r.Calls[i]; c.Phase == phase && c.Error != "" {
			return &c
		}
	}
	return nil
}

func scriptPos(err error) string {
	var se *engine.ScriptError
	if errors.As(err, &se) {
		return se.Pos
	}
	return ""
}

// targetOutcome says what the failed run left on the target.
func targetOutcome(r *engine.Report) string {
	touched := false
	for _, p := range r.Phases {
		if p.Name == "prepare" || p.Name == "execute" {
			touched = true
		}
	}
	var rollback *engine.PhaseRecord
	for i := range r.Phases {
		if r.Phases[i].Name == "rollback" {
			rollback = &r.Phases[i]
		}
	}
	switch {
	case r.Mode == "plan":
		return "unchanged (plan)"
	case rollback != nil && rollback.Result == "failed":
		return "ROLLBACK FAILED: the previous data may need manual recovery (see the error above and the run report)"
	case r.RolledBack && r.Target != nil && r.Target.Scratch:
		return "scratch target torn down"
	case r.RolledBack:
		return "rolled back: the previous data is back in place"
	case !touched:
		return "not touched: the run stopped before prepare"
	}
	return ""
}

func indentLines(s, prefix string) string { return strings.ReplaceAll(s, "\n", "\n"+prefix) }
