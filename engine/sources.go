package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/restore-run/restore-run/scripts"
)

// Source is one place scripts are found: the embedded scripts or a directory.
type Source struct {
	// Name identifies the source in listings: "embedded" or a directory path.
	Name string
	FS   fs.FS
	// Dir is the directory on disk, "" for the embedded source.
	Dir string
}

// Embedded is the source of the scripts compiled into the binary.
func Embedded() Source { return Source{Name: "embedded", FS: scripts.FS} }

// DirSource is a script directory on disk.
func DirSource(dir string) Source {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return Source{Name: abs, FS: os.DirFS(abs), Dir: abs}
}

// DefaultSources lists the script sources in discovery order, lowest priority
// first: the embedded scripts, /etc/restore-run/scripts,
// $XDG_CONFIG_HOME/restore-run/scripts (or ~/.config/restore-run/scripts), each dir of
// $RESTORE_RUN_PATH (colon-separated), then each dir given with --scripts. Missing
// default directories are skipped; missing --scripts directories are not (the
// caller checks them).
func DefaultSources(extra []string) []Source {
	srcs := []Source{Embedded()}
	add := func(dir string, mustExist bool) {
		if dir == "" {
			return
		}
		if fi, err := os.Stat(dir); (err != nil || !fi.IsDir()) && !mustExist {
			return
		}
		srcs = append(srcs, DirSource(dir))
	}
	add("/etc/restore-run/scripts", false)
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(home, ".config")
		}
	}
	if cfg != "" {
		add(filepath.Join(cfg, "restore-run", "scripts"), false)
	}
	for _, dir := range strings.Split(os.Getenv("RESTORE_RUN_PATH"), string(os.PathListSeparator)) {
		add(dir, false)
	}
	for _, dir := range extra {
		add(dir, true)
	}
	return srcs
}
