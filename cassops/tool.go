package cassops

import (
	"bytes"
	"context"
	"fmt"
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

// DefaultToolTimeout bounds one nodetool call that gives no timeout of its own.
const DefaultToolTimeout = 10 * time.Minute

// Tools runs nodetool and sstableloader from a Home. Each call is a JVM of its own
// in its own process group, killed with its group on timeout or cancellation.
type Tools struct {
	Home *Home
	// Dir holds the tools' support files: a logback configuration, the user.home
	// nodetool writes its history to, and password files (mode 0600).
	Dir string
	// Redact masks secrets in output quoted in errors (nil: none).
	Redact func(string) string

	once    sync.Once
	initErr error
}

// JMX is how nodetool reaches one node.
type JMX struct {
	Host     string
	Port     int
	User     string
	Password string
}

func (j JMX) String() string { return fmt.Sprintf("%s:%d", j.Host, j.Port) }

func (t *Tools) init() error {
	t.once.Do(func() {
		if err := os.MkdirAll(filepath.Join(t.Dir, "home"), 0o700); err != nil {
			t.initErr = drivers.WithClass(drivers.Permanent, "cassandra tools", err)
			return
		}
		if err := os.WriteFile(filepath.Join(t.Dir, "logback-tools.xml"), []byte(toolLogback), 0o600); err != nil {
			t.initErr = drivers.WithClass(drivers.Permanent, "cassandra tools", err)
		}
	})
	return t.initErr
}

func (t *Tools) redact(s string) string {
	if t.Redact == nil {
		return s
	}
	return t.Redact(s)
}

// java runs a tool class with args and returns its stdout.
func (t *Tools) java(ctx context.Context, what, class string, timeout time.Duration, args ...string) (string, error) {
	if err := t.init(); err != nil {
		return "", err
	}
	if timeout <= 0 {
		timeout = DefaultToolTimeout
	}
	jargs := append([]string{}, toolFlags...)
	jargs = append(jargs, jpmsFlags...)
	jargs = append(jargs,
		"-Duser.home="+filepath.Join(t.Dir, "home"),
		"-Dlogback.configurationFile=file://"+filepath.Join(t.Dir, "logback-tools.xml"),
		"-Dcassandra.logdir="+t.Dir,
		"-cp", t.Home.Classpath(), class)
	jargs = append(jargs, args...)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command(t.Home.Java, jargs...)
	cmd.Dir = t.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", drivers.WithClass(drivers.Permanent, what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-rctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if ctx.Err() != nil {
			return "", drivers.WithClass(drivers.Cancelled, what, context.Cause(ctx))
		}
		return "", drivers.Errorf(drivers.Transient, "%s did not finish within %s (killed); output: %s", what, timeout, t.redact(tail(stdout.String()+stderr.String(), 1500)))
	}
	if err != nil {
		out := strings.TrimSpace(stdout.String() + "\n" + stderr.String())
		return stdout.String(), drivers.Errorf(classOfToolOutput(out), "%s failed (%v): %s", what, err, t.redact(toolMessage(out)))
	}
	return stdout.String(), nil
}

// toolMessage keeps the informative lines of a tool's failure: "error:" lines and
// exception messages first, else the end of the output.
func toolMessage(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "error:") || strings.HasPrefix(l, "ERROR") || strings.HasPrefix(l, "Caused by:") ||
			strings.Contains(l, "failed to import") || strings.Contains(l, "Failed to") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 0 {
		if len(keep) > 6 {
			keep = keep[:6]
		}
		return tail(strings.Join(keep, " | "), 2000)
	}
	return tail(out, 1500)
}

// classOfToolOutput: a node that cannot be reached is transient; the rest is
// permanent (refused import, unknown table, bad arguments).
func classOfToolOutput(out string) drivers.Class {
	l := strings.ToLower(out)
	for _, s := range []string{"connection refused", "failed to connect", "connectexception", "no route to host",
		"unavailable", "timed out", "timeout", "nohostavailable", "all host(s) tried"} {
		if strings.Contains(l, s) {
			return drivers.Transient
		}
	}
	return drivers.Permanent
}

// Nodetool runs `nodetool -h HOST -p PORT args...` against one node and returns
// its output.
func (t *Tools) Nodetool(ctx context.Context, j JMX, timeout time.Duration, args ...string) (string, error) {
	nargs := []string{"-h", j.Host, "-p", strconv.Itoa(j.Port)}
	if j.User != "" {
		pwf, err := t.passwordFile(j)
		if err != nil {
			return "", err
		}
		nargs = append(nargs, "-u", j.User, "-pwf", pwf)
	}
	what := fmt.Sprintf("nodetool %s on %s", firstWord(args), j)
	return t.java(ctx, what, "org.apache.cassandra.tools.NodeTool", timeout, append(nargs, args...)...)
}

func firstWord(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// passwordFile writes the JMX credentials in nodetool's password-file format
// (mode 0600, in Dir) and returns its path.
func (t *Tools) passwordFile(j JMX) (string, error) {
	p := filepath.Join(t.Dir, fmt.Sprintf("jmx-%s-%d.password", strings.ReplaceAll(j.Host, ":", "_"), j.Port))
	if err := os.WriteFile(p, []byte(j.User+" "+j.Password+"\n"), 0o600); err != nil {
		return "", drivers.WithClass(drivers.Permanent, "write the JMX password file", err)
	}
	return p, nil
}

// StatusLine is one node of `nodetool status` as one node sees it.
type StatusLine struct {
	DC      string `json:"dc"`
	Status  string `json:"status"` // U (up) or D (down)
	State   string `json:"state"`  // N (normal), L (leaving), J (joining), M (moving)
	Address string `json:"address"`
	HostID  string `json:"host_id"`
	Rack    string `json:"rack"`
}

var statusRow = regexp.MustCompile(`^([UD])([NLJM])\s+(\S+)\s+(.*)$`)
var uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// ParseStatus reads the output of `nodetool status`.
func ParseStatus(out string) []StatusLine {
	var res []StatusLine
	dc := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, " \r")
		if strings.HasPrefix(l, "Datacenter: ") {
			dc = strings.TrimSpace(strings.TrimPrefix(l, "Datacenter: "))
			continue
		}
		m := statusRow.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		s := StatusLine{DC: dc, Status: m[1], State: m[2], Address: m[3]}
		if i := strings.LastIndex(s.Address, ":"); i > 0 && strings.Count(s.Address, ":") == 1 {
			s.Address = s.Address[:i] // printed with --print-port
		}
		s.HostID = uuidRe.FindString(m[4])
		if f := strings.Fields(m[4]); len(f) > 0 {
			s.Rack = f[len(f)-1]
		}
		res = append(res, s)
	}
	return res
}

// Status runs `nodetool status` on one node and parses it.
func (t *Tools) Status(ctx context.Context, j JMX) ([]StatusLine, error) {
	out, err := t.Nodetool(ctx, j, 2*time.Minute, "status")
	if err != nil {
		return nil, err
	}
	st := ParseStatus(out)
	if len(st) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "nodetool status on %s printed no node: %s", j, tail(out, 500))
	}
	return st, nil
}

// Snapshot runs `nodetool snapshot -t TAG [ks | -kt ks.table,...]` on one node.
// tables are "ks.table" names; keyspaces whole keyspaces; with neither, every
// keyspace.
func (t *Tools) Snapshot(ctx context.Context, j JMX, tag string, keyspaces, tables []string) error {
	args := []string{"snapshot", "-t", tag}
	if len(tables) > 0 {
		args = append(args, "-kt", strings.Join(tables, ","))
	} else {
		args = append(args, keyspaces...)
	}
	_, err := t.Nodetool(ctx, j, 0, args...)
	return err
}

// ClearSnapshot runs `nodetool clearsnapshot -t TAG` on one node.
func (t *Tools) ClearSnapshot(ctx context.Context, j JMX, tag string) error {
	_, err := t.Nodetool(ctx, j, 0, "clearsnapshot", "-t", tag)
	return err
}

// Import runs `nodetool import KEYSPACE TABLE DIR...` on one node. Cassandra
// checks the SSTables (and, by default, that the node owns their tokens), moves
// them into the table (copies them with copyData), and builds the table's
// secondary indexes for them.
func (t *Tools) Import(ctx context.Context, j JMX, keyspace, table string, dirs []string, copyData bool) error {
	args := []string{"import"}
	if copyData {
		args = append(args, "--copy-data")
	}
	args = append(args, keyspace, table)
	args = append(args, dirs...)
	out, err := t.Nodetool(ctx, j, 0, args...)
	if err != nil {
		return err
	}
	if strings.Contains(out, "failed to import") {
		return drivers.Errorf(drivers.Permanent, "nodetool import %s.%s on %s: %s", keyspace, table, j, tail(out, 1500))
	}
	return nil
}

// LoadTarget is where sstableloader streams to.
type LoadTarget struct {
	Hosts       []string // initial contact points
	CQLPort     int
	StoragePort int
	User        string
	Password    string
}

// Load runs sstableloader (BulkLoader) on dir, whose last two elements must be
// KEYSPACE/TABLE: every row is streamed to the nodes that own it.
func (t *Tools) Load(ctx context.Context, lt LoadTarget, dir string, timeout time.Duration) error {
	args := []string{"-d", strings.Join(lt.Hosts, ","), "-p", strconv.Itoa(lt.CQLPort), "-sp", strconv.Itoa(lt.StoragePort), "--no-progress"}
	if lt.User != "" {
		// sstableloader takes the password only on its command line; it shows in
		// this machine's process list while the loader runs.
		args = append(args, "-u", lt.User, "-pw", lt.Password)
	}
	args = append(args, dir)
	what := fmt.Sprintf("sstableloader %s/%s to %s", filepath.Base(filepath.Dir(dir)), filepath.Base(dir), strings.Join(lt.Hosts, ","))
	_, err := t.java(ctx, what, "org.apache.cassandra.tools.BulkLoader", timeout, args...)
	return err
}
