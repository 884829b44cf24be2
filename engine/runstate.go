package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// RunStateFile is where a run with a kept work dir records how far it got, for
// `restore-run resume WORKDIR`: WORKDIR/.restore-run/run.json.
const RunStateFile = ".restore-run/run.json"

// Phase states in the run state file.
const (
	PhaseRunning = "running"
	PhaseDone    = "done"
	PhaseFailed  = "failed"
)

// RunState is the durable record of a run in its work dir: what was asked (so a
// resume can ask it again), which driver script ran (its sha256, so a changed
// script is refused), how far each phase got, the checkpoints the script recorded
// and ctx.state as of the last phase end or checkpoint. It is rewritten
// atomically (temp file, fsync, rename, fsync of the directory) at each change.
type RunState struct {
	Version int        `json:"version"`
	RunID   string     `json:"run_id"`
	Mode    string     `json:"mode"`
	Driver  StateDrv   `json:"driver"`
	Request RunRequest `json:"request"`
	// Target is the target's reference and whether it is a scratch target (whose
	// servers die with the run: a resume starts them again).
	TargetRef     string    `json:"target_ref"`
	TargetScratch bool      `json:"target_scratch"`
	Started       time.Time `json:"started"`
	Updated       time.Time `json:"updated"`
	PID           int       `json:"pid"`
	Host          string    `json:"host"`
	// Phases maps a phase to running, done or failed.
	Phases      map[string]string `json:"phases"`
	Checkpoints []Checkpoint      `json:"checkpoints,omitempty"`
	State       map[string]any    `json:"state,omitempty"`
	// Outcome is empty while the run goes on; then success, failed, rolled_back or
	// cancelled. FailedPhase names the phase that failed.
	Outcome     string `json:"outcome,omitempty"`
	FailedPhase string `json:"failed_phase,omitempty"`
	Error       string `json:"error,omitempty"`
	// Resumes counts the times `restore-run resume` continued the run.
	Resumes int `json:"resumes,omitempty"`

	mu   sync.Mutex
	path string
}

// StateDrv identifies the driver script of a run.
type StateDrv struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
}

// RunRequest is what the command line asked for, as a resume repeats it.
type RunRequest struct {
	Driver   string            `json:"driver"`
	Snapshot string            `json:"snapshot"`
	Target   string            `json:"target"`
	Params   map[string]string `json:"params,omitempty"`
	Keep     bool              `json:"keep,omitempty"`
	// Scripts are the --scripts dirs of the run: the resume loads the same.
	Scripts []string `json:"scripts,omitempty"`
	// Config is the config file the run read (--config, --store-config or
	// $RESTORE_RUN_CONFIG; its path, never its content): the resume reads the same
	// stores, retries and timeouts.
	Config string `json:"config,omitempty"`
}

// Checkpoint is one ctx.checkpoint(name) of a script.
type Checkpoint struct {
	Name  string    `json:"name"`
	Phase string    `json:"phase"`
	At    time.Time `json:"at"`
}

// ReadRunState loads WORKDIR/.restore-run/run.json.
func ReadRunState(workDir string) (*RunState, error) {
	path := filepath.Join(workDir, RunStateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s has no run state (%s): only a run given --workdir can be resumed, and only once it started its phases", workDir, RunStateFile)
		}
		return nil, err
	}
	var st RunState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("%s: version %d, this restore-run reads version 1", path, st.Version)
	}
	st.path = path
	return &st, nil
}

// CheckpointNames returns the names recorded so far.
func (s *RunState) CheckpointNames() []string {
	var out []string
	for _, c := range s.Checkpoints {
		out = append(out, c.Name)
	}
	return out
}

// update changes the state under its lock and saves it. A nil state (no kept work
// dir) does nothing.
func (s *RunState) update(fn func(*RunState)) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
	s.Updated = time.Now().UTC()
	return s.saveLocked()
}

func (s *RunState) saveLocked() error {
	if s.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(data, '\n'), 0o600, 0o700)
}

// phaseDone reports whether phase finished in the recorded run.
func (s *RunState) phaseDone(phase string) bool {
	return s != nil && s.Phases[phase] == PhaseDone
}

// setPhase records a phase's state.
func (s *RunState) setPhase(phase, state string, run *drivers.Run) error {
	return s.update(func(s *RunState) {
		s.Phases[phase] = state
		if run != nil && state != PhaseRunning {
			s.State = run.State
		}
	})
}
