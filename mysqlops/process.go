package mysqlops

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// ProcessConfig describes a supervised long-running process (a scratch mariadbd).
type ProcessConfig struct {
	// Argv is an allowed program and its arguments.
	Argv []string
	Env  []string
	Dir  string
	// LogFile receives stdout and stderr (appended); "" discards them.
	LogFile string
	// ReadySocket and ReadyTCP ("127.0.0.1:3306") are polled until a connection
	// succeeds; with neither, the process is ready once started.
	ReadySocket, ReadyTCP string
	// ReadyTimeout bounds the wait (default 120 s).
	ReadyTimeout time.Duration
	// ErrorLog is a file whose tail explains a failed start (mariadbd --log-error).
	ErrorLog string
}

// Process is a supervised process started by StartProcess.
type Process struct {
	cfg  ProcessConfig
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error // Wait's result once done
}

// StartProcess starts cfg.Argv in its own process group and waits until it is
// ready. A process that exits before it is ready, or is not ready in time, is
// killed and reported with the tail of its log.
func StartProcess(ctx context.Context, cfg ProcessConfig) (*Process, error) {
	if len(cfg.Argv) == 0 {
		return nil, drivers.Errorf(drivers.Script, "no program given")
	}
	prog, err := LookPath(cfg.Argv[0])
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(prog, cfg.Argv[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = append(os.Environ(), cfg.Env...)
	// Its own process group (a Ctrl-C at the terminal does not reach it: the run
	// stops it in order), killed if restore-run itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, drivers.WithClass(drivers.Permanent, "open log", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "start "+filepath.Base(prog), err)
	}
	p := &Process{cfg: cfg, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context) error {
	network, addr := "", ""
	switch {
	case p.cfg.ReadySocket != "":
		network, addr = "unix", p.cfg.ReadySocket
	case p.cfg.ReadyTCP != "":
		network, addr = "tcp", p.cfg.ReadyTCP
	default:
		return nil
	}
	timeout := p.cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 120 * time.Second
	}
	deadline := time.Now().Add(timeout)
	name := filepath.Base(p.cfg.Argv[0])
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return drivers.Errorf(drivers.Permanent, "%s exited before it was ready (%s); its log ends: %s", name, p.exitText(), p.LogTail(3000))
		case <-ctx.Done():
			return drivers.WithClass(drivers.Cancelled, "wait for "+name, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return drivers.Errorf(drivers.Transient, "%s not ready after %s (nothing accepts connections at %s); its log ends: %s", name, timeout, addr, p.LogTail(3000))
		}
	}
}

func (p *Process) exitText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd.ProcessState != nil {
		return p.cmd.ProcessState.String()
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "exited"
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitCode is the exit code once the process exited, -1 before (or when killed).
func (p *Process) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// LogTail returns the last n bytes of the error log (or the output log).
func (p *Process) LogTail(n int) string {
	for _, f := range []string{p.cfg.ErrorLog, p.cfg.LogFile} {
		if f == "" {
			continue
		}
		if s, err := fileTail(f, n); err == nil && s != "" {
			return s
		}
	}
	return "(no log)"
}

func fileTail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := fi.Size() - int64(n)
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && len(buf) > 0 {
		return "", err
	}
	return tailText(string(buf), n), nil
}

// Stop sends SIGTERM (a clean shutdown for mariadbd) and waits up to timeout,
// then kills the process group. It returns whether the process had to be killed.
func (p *Process) Stop(timeout time.Duration) (killed bool, err error) {
	if !p.Running() {
		return false, nil
	}
	syscall.Kill(p.Pid(), syscall.SIGTERM)
	if timeout <= 0 {
		timeout = 120 * time.Second
	}
	select {
	case <-p.done:
		return false, nil
	case <-time.After(timeout):
	}
	p.Kill()
	return true, fmt.Errorf("%s did not stop within %s after SIGTERM and was killed", filepath.Base(p.cfg.Argv[0]), timeout)
}

// Kill kills the process group and waits for the process.
func (p *Process) Kill() {
	syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}
