package mysqlops

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// ServerConfig describes a throwaway mariadbd: everything in Dir unless set.
type ServerConfig struct {
	// Dir holds the data dir, socket, pid file and logs by default.
	Dir     string
	DataDir string // default Dir/data
	Socket  string // default Dir/mysqld.sock
	Port    int    // 0: no TCP (skip-networking)
	// Extra are more mariadbd options (e.g. --log-bin=mysql-bin, --server-id=1).
	Extra []string
	// ReadyTimeout bounds the start (default 120 s).
	ReadyTimeout time.Duration
}

func (c *ServerConfig) defaults() {
	if c.DataDir == "" {
		c.DataDir = filepath.Join(c.Dir, "data")
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.Dir, "mysqld.sock")
	}
}

// InstallDBArgs is the mariadb-install-db command line for a new, empty data dir
// with a root that logs in from the OS root or with a password.
func InstallDBArgs(datadir string) []string {
	args := []string{"mariadb-install-db", "--no-defaults", "--datadir=" + datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// ServerArgs is the mariadbd command line of a throwaway server: no option files,
// its own socket, pid file and error log, loopback only.
func ServerArgs(c ServerConfig) []string {
	c.defaults()
	args := []string{"mariadbd", "--no-defaults", "--datadir=" + c.DataDir, "--socket=" + c.Socket,
		"--pid-file=" + filepath.Join(c.Dir, "mysqld.pid"), "--log-error=" + filepath.Join(c.Dir, "mysqld.err")}
	if c.Port > 0 {
		args = append(args, fmt.Sprintf("--port=%d", c.Port), "--bind-address=127.0.0.1")
	} else {
		args = append(args, "--skip-networking")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return append(args, c.Extra...)
}

// Server is a throwaway mariadbd started by StartServer.
type Server struct {
	Config ServerConfig
	proc   *Process
}

// InstallDB creates a new data dir with mariadb-install-db.
func InstallDB(ctx context.Context, datadir string) error {
	if err := os.MkdirAll(filepath.Dir(datadir), 0o700); err != nil {
		return drivers.WithClass(drivers.Permanent, "install db", err)
	}
	_, err := Run(ctx, Cmd{Argv: InstallDBArgs(datadir), Timeout: 5 * time.Minute})
	return err
}

// StartServer starts mariadbd on an existing data dir and waits until it answers.
func StartServer(ctx context.Context, c ServerConfig) (*Server, error) {
	c.defaults()
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "server dir", err)
	}
	p, err := StartProcess(ctx, ProcessConfig{
		Argv: ServerArgs(c), LogFile: filepath.Join(c.Dir, "mysqld.out"), ErrorLog: filepath.Join(c.Dir, "mysqld.err"),
		ReadySocket: c.Socket, ReadyTimeout: c.ReadyTimeout,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{Config: c, proc: p}
	if _, err := WaitReady(ctx, s.Conn(""), 60*time.Second); err != nil {
		s.proc.Kill()
		return nil, err
	}
	return s, nil
}

// Conn is how to reach the server as root over its socket.
func (s *Server) Conn(db string) ConnConfig {
	return ConnConfig{Socket: s.Config.Socket, User: "root", DB: db}
}

// Open opens a pool to the server as root.
func (s *Server) Open(db string) (*sql.DB, error) { return Open(s.Conn(db)) }

// Pid is mariadbd's pid.
func (s *Server) Pid() int { return s.proc.Pid() }

// Running reports whether mariadbd has not exited.
func (s *Server) Running() bool { return s.proc.Running() }

// Stop shuts the server down cleanly (SIGTERM), killing it after timeout.
func (s *Server) Stop(timeout time.Duration) error {
	_, err := s.proc.Stop(timeout)
	return err
}

// LogTail is the end of the server's error log.
func (s *Server) LogTail(n int) string { return s.proc.LogTail(n) }
