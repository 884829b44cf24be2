package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/restore-run/restore-run/engine"
)

// printSummary prints a human summary of a run: phases, checks, RTO.
func printSummary(w io.Writer, r *engine.Report) {
	verb := map[string]string{"restore": "restore", "validate": "validate", "plan": "plan"}[r.Mode]
	fmt.Fprintf(w, "%s %s: %s\n", verb, strings.ToUpper(r.Result), r.Driver.Name+"@"+r.Driver.Version+" ("+r.Driver.Source+")")
	fmt.Fprintf(w, "  snapshot  %s", r.Snapshot.Ref)
	if r.Snapshot.Engine != "" {
		fmt.Fprintf(w, " (%s %s, %d files, %s)", r.Snapshot.Engine, r.Snapshot.EngineVersion, r.Snapshot.Files, humanBytes(r.Snapshot.Bytes))
	} else if r.Snapshot.Bare {
		fmt.Fprintf(w, " (native file, %s)", humanBytes(r.Snapshot.Bytes))
	}
	fmt.Fprintln(w)
	if r.Target != nil {
		fmt.Fprintf(w, "  target    %s\n", r.Target.Ref)
		if len(r.Target.Endpoints) > 0 {
			fmt.Fprintf(w, "  endpoints %s\n", strings.Join(r.Target.Endpoints, ","))
		}
	}
	if len(r.Phases) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PHASE\tRESULT\tATTEMPTS\tSECONDS\t")
		for _, p := range r.Phases {
			res := p.Result
			if p.ErrorClass != "" {
				res += " (" + p.ErrorClass + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%.2f\t\n", p.Name, res, p.Attempts, p.DurationSeconds)
		}
		tw.Flush()
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "  checks:")
		for _, c := range r.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			line := fmt.Sprintf("    %s %s", mark, c.Name)
			if c.Detail != "" {
				line += ": " + c.Detail
			} else if c.OK && c.Actual != "" {
				line += ": " + c.Actual
			}
			if !c.OK && (c.Expected != "" || c.Actual != "") {
				line += fmt.Sprintf(" (expected %s, got %s)", c.Expected, c.Actual)
			}
			if !c.OK && c.Pos != "" {
				line += "  at " + c.Pos
			}
			fmt.Fprintln(w, line)
		}
	}
	if r.RolledBack {
		fmt.Fprintln(w, "  rolled back: the target's previous data was put back")
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "  note: "+n)
	}
	if r.Mode != "plan" {
		fmt.Fprintf(w, "  RTO %.2fs (run %s)\n", r.RTOSeconds, r.RunID)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
