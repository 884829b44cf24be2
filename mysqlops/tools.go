package mysqlops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// Programs are the programs the exec and proc builtins may run, by base name.
// MariaDB's names come first; the MySQL/Percona names are accepted where they are
// installed (on MariaDB they are often symlinks to the same programs).
var Programs = []string{
	"mariadb", "mariadbd", "mariadb-install-db", "mariadb-admin", "mariabackup", "mbstream",
	"myloader", "mariadb-check",
	"mysql", "mysqld", "mysql_install_db", "mysqladmin", "mysqlcheck", "xtrabackup", "xbstream",
	"zstd",
}

// Allowed reports whether name (a base name) is one of Programs.
func Allowed(name string) bool {
	for _, p := range Programs {
		if p == name {
			return true
		}
	}
	return false
}

// LookPath resolves an allowed program to an absolute path through PATH (and the
// sbin directories, where Debian installs mariadbd). A path with a slash is refused:
// scripts name programs, the machine decides where they are.
func LookPath(name string) (string, error) {
	if strings.ContainsRune(name, '/') || !Allowed(name) {
		return "", drivers.Errorf(drivers.Script, "program %q is not allowed; allowed programs: %s", name, strings.Join(Programs, ", "))
	}
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", drivers.WithHint(drivers.Errorf(drivers.Permanent, "program %s is not installed (not on PATH)", name),
		"install MariaDB's tools, e.g. apt-get install mariadb-server mariadb-backup mydumper (./test.sh does it for the tests)")
}

// Tail keeps the last Max bytes written to it.
type Tail struct {
	Max   int
	mu    sync.Mutex
	buf   []byte
	total int64
}

// Write implements io.Writer.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	max := t.Max
	if max <= 0 {
		max = 64 << 10
	}
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-max:]...)
	}
	return len(p), nil
}

// String returns the kept bytes, marked with "..." when earlier output was cut.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if t.total > int64(len(t.buf)) {
		s = "..." + s
	}
	return s
}

// Cmd is one run of a program.
type Cmd struct {
	// Argv is the program (a base name from Programs, or an absolute path already
	// resolved by LookPath) and its arguments; no shell is involved.
	Argv []string
	// Env is added to the process's environment (KEY=VALUE).
	Env []string
	// Dir is the working directory ("" inherits).
	Dir string
	// Stdin, if set, is copied to the program's stdin. A read error other than
	// io.EOF (a corrupt snapshot stream) kills the program before its stdin is
	// closed, so it never mistakes a broken stream for a complete one, and Run
	// returns that error.
	Stdin io.Reader
	// Stdout, if set, receives the program's stdout (else only a tail is kept).
	Stdout io.Writer
	// Timeout bounds the run (0: none besides ctx).
	Timeout time.Duration
	// TailBytes is how much of stdout and stderr is kept (default 64 KiB each).
	TailBytes int
	// Redact masks secrets in the output kept for errors.
	Redact func(string) string
}

// Result is what a finished program did.
type Result struct {
	Code     int
	Stdout   string // tail
	Stderr   string // tail
	Duration time.Duration
}

// ExitError is a program that exited non-zero.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = "..." + msg[len(msg)-2000:]
	}
	if msg == "" {
		msg = "(no output on stderr)"
	}
	return fmt.Sprintf("%s exited with code %d: %s", filepath.Base(e.Argv[0]), e.Code, msg)
}

// Run runs c and waits. A non-zero exit is an *ExitError classified by its stderr
// (ClassOfText); a timeout is transient; a cancelled ctx is cancelled; a failing
// stdin stream keeps its own class (corruption for a bad checksum). The program
// runs in its own process group, killed whole on timeout or cancellation.
func Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, drivers.Errorf(drivers.Script, "no program given")
	}
	prog := c.Argv[0]
	if !filepath.IsAbs(prog) {
		p, err := LookPath(prog)
		if err != nil {
			return Result{}, err
		}
		prog = p
	}
	redact := c.Redact
	if redact == nil {
		redact = func(s string) string { return s }
	}
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()
	cmd := exec.Command(prog, c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	// The tool dies with restore-run, even a kill -9 of it: a resumed run must not
	// find an orphaned mariabackup still writing where it starts again.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, stderr := &Tail{Max: c.TailBytes}, &Tail{Max: c.TailBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if c.Stdout != nil {
		cmd.Stdout = io.MultiWriter(c.Stdout, stdout)
	}
	var stdin io.WriteCloser
	if c.Stdin != nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return Result{}, drivers.WithClass(drivers.Permanent, "stdin pipe", err)
		}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, drivers.WithClass(drivers.Permanent, "start "+filepath.Base(prog), err)
	}
	pgid := cmd.Process.Pid
	killGroup := func() { syscall.Kill(-pgid, syscall.SIGKILL) }
	var streamErr error
	copyDone := make(chan struct{})
	if stdin != nil {
		go func() {
			defer close(copyDone)
			_, err := io.Copy(stdin, c.Stdin)
			if err != nil && !errors.Is(err, syscall.EPIPE) && !isClosedPipe(err) {
				// Kill before closing stdin: the program must not see a clean EOF.
				streamErr = err
				killGroup()
			}
			stdin.Close()
		}()
	} else {
		close(copyDone)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-waitDone:
	case <-rctx.Done():
		killGroup()
		waitErr = <-waitDone
	}
	// The program may have exited while the copy still blocks on a full pipe.
	if stdin != nil {
		stdin.Close()
	}
	<-copyDone
	// Stray children of the group (a shell's) do not outlive the run.
	syscall.Kill(-pgid, syscall.SIGKILL)
	res := Result{Stdout: redact(stdout.String()), Stderr: redact(stderr.String()), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.Code = cmd.ProcessState.ExitCode()
	}
	name := filepath.Base(prog)
	switch {
	case ctx.Err() != nil:
		return res, drivers.WithClass(drivers.Cancelled, name, context.Cause(ctx))
	case streamErr != nil:
		if drivers.ClassOf(streamErr) == drivers.Permanent {
			var de *drivers.Error
			if !errors.As(streamErr, &de) {
				streamErr = drivers.WithClass(drivers.Transient, "read stdin stream", streamErr)
			}
		}
		return res, drivers.WithClass(drivers.ClassOf(streamErr), name+": its input stream failed, the program was killed", streamErr)
	case rctx.Err() != nil:
		return res, drivers.Errorf(drivers.Transient, "%s did not finish within %s; stderr: %s", name, c.Timeout, tailText(res.Stderr, 2000))
	case waitErr != nil:
		argv := append([]string{name}, c.Argv[1:]...)
		ee := &ExitError{Argv: argv, Code: res.Code, Stderr: res.Stderr}
		if res.Code < 0 {
			ee.Stderr = waitErr.Error() + "; " + res.Stderr
		}
		return res, drivers.WithClass(ClassOfText(res.Stderr), "", ee)
	}
	return res, nil
}

func isClosedPipe(err error) bool {
	return errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "file already closed") || strings.Contains(err.Error(), "broken pipe")
}

func tailText(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// Version is a server or tool version.
type Version struct {
	Major, Minor, Patch int
	// MariaDB is true for a MariaDB version string (…-MariaDB).
	MariaDB bool
	// Full is the string it was parsed from, trimmed.
	Full string
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)(-MariaDB)?`)

// ParseVersion reads a version from a server version string
// ("10.11.19-MariaDB-0+deb12u1-log") or a tool's --version output ("mariadb  Ver
// 15.1 Distrib 10.11.19-MariaDB", "mariabackup based on MariaDB server
// 10.11.19-MariaDB"). A MariaDB version wins over other numbers in the text.
func ParseVersion(s string) (Version, bool) {
	ms := versionRE.FindAllStringSubmatch(s, -1)
	if len(ms) == 0 {
		return Version{}, false
	}
	m := ms[0]
	for _, c := range ms {
		if c[4] != "" {
			m = c
			break
		}
	}
	v := Version{MariaDB: m[4] != "", Full: strings.TrimSpace(s)}
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	return v, true
}

// Series is "MAJOR.MINOR", the unit backups and servers must agree on.
func (v Version) Series() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// String is "MAJOR.MINOR.PATCH" with "-MariaDB" for MariaDB.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.MariaDB {
		s += "-MariaDB"
	}
	return s
}

// ToolVersion runs `PROGRAM --version` and parses it.
func ToolVersion(ctx context.Context, program string) (Version, string, error) {
	res, err := Run(ctx, Cmd{Argv: []string{program, "--version"}, Timeout: 30 * time.Second})
	if err != nil {
		return Version{}, "", err
	}
	out := strings.TrimSpace(res.Stdout + "\n" + res.Stderr)
	v, ok := ParseVersion(out)
	if !ok {
		return Version{}, out, drivers.Errorf(drivers.Permanent, "%s --version printed no version: %q", program, tailText(out, 200))
	}
	return v, out, nil
}
