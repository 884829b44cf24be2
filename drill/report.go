package drill

import (
	"bytes"
	"encoding/json"
	"os"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// Drill results.
const (
	Passed      = "passed"
	Failed      = "failed"
	ScriptError = "error"       // the drill script failed (or was called wrongly)
	Interrupted = "interrupted" // SIGINT/SIGTERM
)

// Report is the JSON record of one drill (report.json in the report dir): every
// restore with its phases on one time line (seconds from the drill's start), its
// objectives, expectations and faults, and the verdict.
type Report struct {
	Drill  string         `json:"drill"`
	Doc    string         `json:"doc,omitempty"`
	File   string         `json:"file"`
	SHA256 string         `json:"sha256"`
	Host   string         `json:"host,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	Start  time.Time      `json:"start"`
	End    time.Time      `json:"end"`
	// DurationSeconds is the whole drill, teardown of every target included.
	DurationSeconds float64 `json:"duration_seconds"`
	// Result is passed, failed, error (a script or usage error) or interrupted.
	Result string `json:"result"`
	// Failures says in one line each why the drill did not pass.
	Failures []string `json:"failures,omitempty"`
	// RTOSeconds is the drill's recovery time: from its start until the last
	// restore that had to succeed was validated (0 when none did).
	RTOSeconds   float64  `json:"rto_seconds"`
	RTOObjective *float64 `json:"rto_objective_seconds,omitempty"`
	// Checks are the drill's own: its RTO objective and drill.check() calls.
	Checks   []Check          `json:"checks,omitempty"`
	Restores []*RestoreReport `json:"restores"`
	Error    *ErrorReport     `json:"error,omitempty"`
	// Files names the reports written (relative to the report dir).
	Files []string `json:"files,omitempty"`
}

// RestoreReport is one restore of a drill.
type RestoreReport struct {
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Snapshot string            `json:"snapshot"`
	Target   string            `json:"target"`
	Params   map[string]string `json:"params,omitempty"`
	// Group numbers the drill.restore or drill.parallel call the restore ran in:
	// restores of one group ran at the same time.
	Group int    `json:"group"`
	Pos   string `json:"pos,omitempty"`
	RunID string `json:"run_id,omitempty"`
	// StartSeconds and EndSeconds place the restore on the drill's time line
	// (End: its target torn down).
	StartSeconds float64 `json:"start_seconds"`
	EndSeconds   float64 `json:"end_seconds"`
	// Result is the engine's (success, failed, cancelled); Passed says whether
	// the restore did what the drill expected of it, within its objectives.
	Result        string              `json:"result"`
	Passed        bool                `json:"passed"`
	ExpectFailure *FailureExpectation `json:"expect_failure,omitempty"`
	RTOSeconds    float64             `json:"rto_seconds"`
	RTOObjective  *float64            `json:"rto_objective_seconds,omitempty"`
	Phases        []Phase             `json:"phases"`
	// ExpectStart/End bound the expectations (checked after validation, while
	// the target still runs).
	ExpectStartSeconds float64 `json:"expect_start_seconds,omitempty"`
	ExpectEndSeconds   float64 `json:"expect_end_seconds,omitempty"`
	// Checks: the outcome, the objectives, the expectations and the faults.
	Checks []Check `json:"checks"`
	// Validation are the driver's own validation checks.
	Validation []drivers.Check    `json:"validation,omitempty"`
	Faults     []Fault            `json:"faults,omitempty"`
	Events     []Event            `json:"events,omitempty"`
	Error      string             `json:"error,omitempty"`
	ErrorClass string             `json:"error_class,omitempty"`
	FailedIn   string             `json:"failed_phase,omitempty"`
	RolledBack bool               `json:"rolled_back,omitempty"`
	Endpoints  []string           `json:"endpoints,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	FaultStats map[string]int64   `json:"fault_stats,omitempty"`
	Objectives map[string]float64 `json:"phase_objectives_seconds,omitempty"`
	// RunReport is the engine's full report of the run (relative path).
	RunReport string `json:"run_report,omitempty"`
}

// Phase is one phase of a restore on the drill's time line.
type Phase struct {
	Name            string   `json:"name"`
	StartSeconds    float64  `json:"start_seconds"`
	DurationSeconds float64  `json:"duration_seconds"`
	Result          string   `json:"result"`
	Attempts        int      `json:"attempts"`
	ErrorClass      string   `json:"error_class,omitempty"`
	Objective       *float64 `json:"objective_seconds,omitempty"`
	// Over is true when the phase took longer than its objective, or ran
	// longest in a restore that missed its RTO objective.
	Over bool `json:"over,omitempty"`
}

// Check is one thing the drill checked.
type Check struct {
	// Kind: outcome, objective, expectation, fault or drill.
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail,omitempty"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	Pos      string `json:"pos,omitempty"`
}

// FailureExpectation is drill.expect_failure: the restore must fail (with that
// class, in that phase) and leave the target as it was.
type FailureExpectation struct {
	Class string `json:"class,omitempty"`
	Phase string `json:"phase,omitempty"`
}

// Fault is one injected fault as the script asked for it.
type Fault struct {
	Kind string `json:"kind"`
	Spec string `json:"spec"`
}

// Event is something that happened to a restore at a time of the drill (a
// server killed, a byte corrupted).
type Event struct {
	AtSeconds float64 `json:"at_seconds"`
	What      string  `json:"what"`
	Error     string  `json:"error,omitempty"`
}

// ErrorReport is the drill script's own failure.
type ErrorReport struct {
	Message   string `json:"message"`
	Class     string `json:"class"`
	Backtrace string `json:"backtrace,omitempty"`
}

// writeJSON writes v as indented JSON at path, atomically.
func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<= 30s" reads better than "\u003c= 30s"
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}

func writeFile(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o644, 0o755)
}

// ReadReport loads a drill's report.json.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func fptr(f float64) *float64 { return &f }
