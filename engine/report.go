package engine

import (
	"encoding/json"
	"os"
	"time"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// Report is the JSON record of one run: what was restored, where, how each phase
// went, the validation checks and the recovery time. Secrets are never in it.
type Report struct {
	RunID    string         `json:"run_id"`
	Mode     string         `json:"mode"` // restore, plan or validate
	Driver   DriverReport   `json:"driver"`
	Snapshot SnapshotReport `json:"snapshot"`
	Target   *TargetReport  `json:"target,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
	WorkDir  string         `json:"work_dir"`
	Start    time.Time      `json:"start"`
	End      time.Time      `json:"end"`
	// RTOSeconds is the recovery time: from the start of the run to the end of
	// validation (teardown and --keep serving time excluded).
	RTOSeconds float64           `json:"rto_seconds"`
	Result     string            `json:"result"` // success, failed, cancelled, planned, rolled_back (a resumed run rolled back)
	Error      *ErrorReport      `json:"error,omitempty"`
	RolledBack bool              `json:"rolled_back,omitempty"`
	Phases     []PhaseRecord     `json:"phases"`
	Checks     []drivers.Check   `json:"checks,omitempty"`
	Details    map[string]any    `json:"details,omitempty"`
	Calls      []builtins.Call   `json:"calls,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
	Shadows    []Shadow          `json:"shadows,omitempty"`
	Extra      map[string]string `json:"-"`
}

// DriverReport identifies the driver script that ran.
type DriverReport struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	API     int    `json:"api"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
}

// SnapshotReport describes the snapshot.
type SnapshotReport struct {
	Ref           string         `json:"ref"`
	Bare          bool           `json:"bare"`
	Engine        string         `json:"engine,omitempty"`
	EngineVersion string         `json:"engine_version,omitempty"`
	Created       *time.Time     `json:"created,omitempty"`
	Files         int            `json:"files"`
	Bytes         int64          `json:"bytes"`
	Metadata      map[string]any `json:"metadata,omitempty"`
}

// TargetReport is the target with secrets replaced by their references.
type TargetReport struct {
	Ref       string         `json:"ref"`
	Scratch   bool           `json:"scratch"`
	Engine    string         `json:"engine"`
	Spec      map[string]any `json:"spec,omitempty"`
	Endpoints []string       `json:"endpoints,omitempty"`
}

// PhaseRecord is how one phase went.
type PhaseRecord struct {
	Name            string    `json:"name"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
	Attempts        int       `json:"attempts"`
	Result          string    `json:"result"` // ok, failed, planned, skipped
	ErrorClass      string    `json:"error_class,omitempty"`
	Error           string    `json:"error,omitempty"`
	// AttemptLog has one entry per attempt: its result, error class and the
	// wait before the next one.
	AttemptLog []AttemptRecord `json:"attempt_log,omitempty"`
}

// AttemptRecord is one attempt of a phase.
type AttemptRecord struct {
	Attempt         int       `json:"attempt"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
	Result          string    `json:"result"` // ok or failed
	ErrorClass      string    `json:"error_class,omitempty"`
	Error           string    `json:"error,omitempty"`
	RetryInSeconds  float64   `json:"retry_in_seconds,omitempty"`
}

// ErrorReport is the run's failure.
type ErrorReport struct {
	Message   string `json:"message"`
	Class     string `json:"class"`
	Hint      string `json:"hint,omitempty"`
	Backtrace string `json:"backtrace,omitempty"`
}

// Write saves the report as indented JSON at path (atomically).
func (r *Report) Write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644, 0o755)
}

// ReadReport loads a report written by Write.
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
