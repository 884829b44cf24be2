package drivers

import (
	"context"

	"github.com/Masterminds/semver/v3"
)

// Phase names, in the order the engine runs them. Commit runs only after a
// successful validation; Rollback only when Prepare, Execute or Validate failed.
const (
	PhaseDownload = "download"
	PhasePrepare  = "prepare"
	PhaseExecute  = "execute"
	PhaseValidate = "validate"
	PhaseCommit   = "commit"
	PhaseRollback = "rollback"
)

// Phases lists the four restore phases in run order.
var Phases = []string{PhaseDownload, PhasePrepare, PhaseExecute, PhaseValidate}

// RestoreDriver restores one kind of database. The engine calls Download, Prepare,
// Execute and Validate in order, then Commit once validation passed, or Rollback if
// Prepare, Execute or Validate failed.
// Every method honours ctx: it returns promptly with a Cancelled error once ctx is
// done.
type RestoreDriver interface {
	// Info describes the driver: name, version, api, params and where it came from.
	Info() Info
	// Download fetches and verifies the snapshot into run.WorkDir. It must not touch
	// the target: a corrupt or wrong snapshot fails here, before anything changes.
	Download(ctx context.Context, run *Run, snap *Snapshot) error
	// Prepare makes the target ready (checks, staging areas). Nothing may be
	// destroyed: data that will be replaced is moved aside, never deleted.
	Prepare(ctx context.Context, run *Run, snap *Snapshot, target *Target) error
	// Execute restores the snapshot into the target.
	Execute(ctx context.Context, run *Run, snap *Snapshot, target *Target) (*RestoreResult, error)
	// Validate checks the restored target; any failed check fails the run.
	Validate(ctx context.Context, run *Run, snap *Snapshot, target *Target) (*ValidationResult, error)
	// Commit runs after validation passed: it drops what Rollback would have needed
	// (the previous data kept aside), as the driver's retention params say.
	Commit(ctx context.Context, run *Run, snap *Snapshot, target *Target) error
	// Rollback puts the target back as it was before Prepare, using what earlier
	// phases recorded in run.State. It must be safe to call when nothing was changed.
	Rollback(ctx context.Context, run *Run, snap *Snapshot, target *Target) error
}

// Info describes a driver.
type Info struct {
	Name    string          `json:"name"`
	Version *semver.Version `json:"version"`
	// API is the engine API the driver was written for.
	API int `json:"api"`
	// Engine is the database engine the driver restores; a snapshot whose manifest
	// names another engine is refused. Defaults to Name.
	Engine string  `json:"engine"`
	Doc    string  `json:"doc,omitempty"`
	Params []Param `json:"params,omitempty"`
	// Source says where the driver was found, e.g. "embedded:etcd.star" or a path.
	Source string `json:"source"`
	// SHA256 is the hex digest of the script text (or empty for a Go driver).
	SHA256 string `json:"sha256,omitempty"`
	// Phases lists the phase functions the driver defines itself; the others use the
	// engine's defaults.
	Phases []string `json:"phases,omitempty"`
}

// ID returns name@version.
func (i Info) ID() string { return i.Name + "@" + i.Version.String() }

// Param is one documented, typed driver parameter.
type Param struct {
	Name string `json:"name"`
	// Type is one of "string", "int", "float", "bool", "list", "dict".
	Type    string `json:"type"`
	Default any    `json:"default"`
	Doc     string `json:"doc,omitempty"`
}

// Run is the per-run state a driver's phases share.
type Run struct {
	// ID identifies the run in logs, reports and lock files.
	ID string
	// WorkDir is private to the run: downloads and staging live here.
	WorkDir string
	// Params are the driver's params with defaults applied and user values parsed.
	Params map[string]any
	// Plan is true when the run only records what it would do.
	Plan bool
	// Attempt is 1 for the first attempt of a phase and grows with each retry.
	Attempt int
	// State carries JSON-compatible values from one phase to the next (what was
	// downloaded, what was moved aside); Rollback reads it.
	State map[string]any
	// Resumed is true when `restore-run resume` continues a run that was
	// interrupted (a crash, a kill -9): phases that finished are skipped and the
	// first unfinished one is entered again.
	Resumed bool
	// Checkpoints are the names ctx.checkpoint recorded so far, across attempts
	// and, for a resumed run, before the interruption.
	Checkpoints []string
	// OnCheckpoint, if set, makes a checkpoint durable (the engine writes the
	// run's state file); it is called after the name was appended.
	OnCheckpoint func(name string) error
}

// Reached reports whether ctx.checkpoint(name) was recorded in this run.
func (r *Run) Reached(name string) bool {
	for _, c := range r.Checkpoints {
		if c == name {
			return true
		}
	}
	return false
}
