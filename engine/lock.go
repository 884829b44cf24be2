package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/restore-run/restore-run/drivers"
)

// LockDir is where target locks live; RESTORE_RUN_LOCK_DIR overrides it.
func LockDir() string {
	if d := os.Getenv("RESTORE_RUN_LOCK_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "restore-run-locks")
}

// TargetLock is an exclusive lock on a target, held for a whole run. It is an
// flock on a file named for the target's directories, so a lock left by a dead
// process is released by the kernel. The file names its holder (pid, host, run,
// start time and the process's start tick), so that a refusal names who holds
// it, and a record left by a process that died without unlocking (kill -9, a
// crash, a filesystem where flock is not enforced) is recognised as stale.
type TargetLock struct {
	f    *os.File
	path string
	// Stale is the holder a dead run left in the lock file, when there was one:
	// the run that was interrupted (resume it with restore-run resume WORKDIR).
	Stale *LockHolder
}

// LockHolder is the run that holds (or held) a target lock.
type LockHolder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	RunID string    `json:"run_id"`
	Start time.Time `json:"start"`
	// ProcStart is the holder process's start time in clock ticks since boot
	// (/proc/PID/stat field 22): a live process with the same pid but another
	// start tick is a reused pid, not the holder.
	ProcStart uint64 `json:"proc_start,omitempty"`
	// WorkDir is the holder's work dir, when it kept one (where resume reads).
	WorkDir string `json:"work_dir,omitempty"`
}

func (h LockHolder) String() string {
	s := fmt.Sprintf("run %s (pid %d on %s since %s", h.RunID, h.PID, h.Host, h.Start.Format(time.RFC3339))
	if h.WorkDir != "" {
		s += ", work dir " + h.WorkDir
	}
	return s + ")"
}

// LockOptions tune LockTarget.
type LockOptions struct {
	// WorkDir is recorded in the lock file.
	WorkDir string
	// Break takes a lock whose file names a holder on another host (which this
	// host cannot check) instead of refusing.
	Break bool
}

// procStart returns a process's start tick, 0 if it does not exist.
func procStart(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0
	}
	var v uint64
	fmt.Sscan(fields[19], &v)
	return v
}

// alive reports whether the process h names still runs (same pid and, when
// recorded, the same start tick).
func (h LockHolder) alive() bool {
	st := procStart(h.PID)
	if st == 0 {
		return false
	}
	return h.ProcStart == 0 || h.ProcStart == st
}

// LockTarget takes the lock for t, or fails naming the run that holds it.
func LockTarget(t *drivers.Target, runID string) (*TargetLock, error) {
	return LockTargetWith(t, runID, LockOptions{})
}

// LockTargetWith is LockTarget with options.
func LockTargetWith(t *drivers.Target, runID string, opts LockOptions) (*TargetLock, error) {
	key := t.Ref
	if len(t.Dirs) > 0 {
		dirs := append([]string(nil), t.Dirs...)
		sort.Strings(dirs)
		key = strings.Join(dirs, "\n")
	}
	sum := sha256.Sum256([]byte(key))
	dir := LockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "create lock dir", err)
	}
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "open lock", err)
	}
	var prev LockHolder
	data, _ := os.ReadFile(path)
	hasPrev := json.Unmarshal(data, &prev) == nil && prev.PID != 0
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if hasPrev {
			return nil, drivers.Errorf(drivers.Permanent, "target %s is being restored by %s; lock %s; wait for it or stop it",
				t.Ref, prev, path)
		}
		return nil, drivers.Errorf(drivers.Permanent, "target %s is locked by another restore (lock %s)", t.Ref, path)
	}
	host, _ := os.Hostname()
	lock := &TargetLock{f: f, path: path}
	if hasPrev {
		// The flock was free, but the file still names a holder: it did not
		// unlock. Decide whether it is dead.
		switch {
		case prev.Host != host && !opts.Break:
			f.Close()
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent,
				"target %s: lock %s names %s on another host, which this host cannot check; the flock was free, so that run is most likely gone, but on a filesystem that does not share flocks between hosts it may still run",
				t.Ref, path, prev), "make sure that run is gone, then pass --break-lock (or remove the lock file)")
		case prev.Host == host && prev.PID != os.Getpid() && prev.alive():
			f.Close()
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent,
				"target %s is being restored by %s: the process is alive although the flock on %s was free (a filesystem that does not enforce flock?)",
				t.Ref, prev, path), "wait for that run or stop it; keep RESTORE_RUN_LOCK_DIR on a local filesystem")
		default:
			stale := prev
			lock.Stale = &stale
		}
	}
	rec, _ := json.Marshal(LockHolder{PID: os.Getpid(), Host: host, RunID: runID, Start: time.Now().UTC(), ProcStart: procStart(os.Getpid()), WorkDir: opts.WorkDir})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(rec, 0)
		f.Sync()
	}
	return lock, nil
}

// Unlock releases the lock.
func (l *TargetLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	return nil
}
