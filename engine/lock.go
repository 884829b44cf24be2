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
// process is released by the kernel.
type TargetLock struct {
	f    *os.File
	path string
}

type lockHolder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	RunID string    `json:"run_id"`
	Start time.Time `json:"start"`
}

// LockTarget takes the lock for t, or fails naming the run that holds it.
func LockTarget(t *drivers.Target, runID string) (*TargetLock, error) {
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
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		var h lockHolder
		data, _ := os.ReadFile(path)
		f.Close()
		if json.Unmarshal(data, &h) == nil && h.PID != 0 {
			return nil, drivers.Errorf(drivers.Permanent, "target %s is being restored by run %s (pid %d on %s since %s; lock %s); wait for it or stop it",
				t.Ref, h.RunID, h.PID, h.Host, h.Start.Format(time.RFC3339), path)
		}
		return nil, drivers.Errorf(drivers.Permanent, "target %s is locked by another restore (lock %s)", t.Ref, path)
	}
	host, _ := os.Hostname()
	data, _ := json.Marshal(lockHolder{PID: os.Getpid(), Host: host, RunID: runID, Start: time.Now().UTC()})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(data, 0)
	}
	return &TargetLock{f: f, path: path}, nil
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
