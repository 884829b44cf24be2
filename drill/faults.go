package drill

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.starlark.net/starlark"
	"golang.org/x/time/rate"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/transfer"
)

// Store faults: a restore's snapshot reads go through faultObject (selected with
// blobstore.OpenOptions.WrapObject), which can slow them down, fail them as a
// store would (503 SlowDown, 500, a connection reset in the middle of a body) and
// flip a byte of what they deliver. The download pipeline sees exactly what a
// misbehaving store would give it: its per-read retries, Retry-After handling
// and per-part verification are what the drill rehearses.

// storeFaults is what the faults of one restore ask of its blob store.
type storeFaults struct {
	bandwidth int64         // bytes per second for all reads of the restore; 0: no limit
	latency   time.Duration // before each read's first byte
	errKind   string        // "503", "500" or "reset"
	errRate   float64       // share of reads that fail
	errFirst  int           // the first N reads fail
	seed      uint64
	corrupt   []*corruptSpec
}

// corruptSpec flips one byte of file (every file when empty) at offset (the
// middle of the file when negative), in the first times reads that cover it.
type corruptSpec struct {
	file   string
	offset int64
	times  int
	done   int
}

// storeError is an injected store failure, classified by its HTTP status like a
// real store's answer (503 throttled, 500 transient).
type storeError struct {
	status int
	what   string
}

func (e *storeError) Error() string {
	return fmt.Sprintf("%d %s: %s (injected by the drill)", e.status, http.StatusText(e.status), e.what)
}
func (e *storeError) HTTPStatusCode() int { return e.status }

// faultState is the store faults of one restore and what they did.
type faultState struct {
	cfg     storeFaults
	limiter *rate.Limiter
	burst   int

	mu        sync.Mutex
	rng       *rand.Rand
	reads     int64
	failed    map[string]int64
	corrupted int64
	slowed    int64 // bytes delivered through the limiter
	record    func(what string)
}

func newFaultState(cfg storeFaults, record func(string)) *faultState {
	fs := &faultState{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 0x5eed)), failed: map[string]int64{}, record: record}
	if cfg.bandwidth > 0 {
		fs.burst = int(min(max(cfg.bandwidth/8, 4096), 1<<20))
		fs.limiter = rate.NewLimiter(rate.Limit(cfg.bandwidth), fs.burst)
	}
	return fs
}

// active reports whether any store fault is configured.
func (c storeFaults) active() bool {
	return c.bandwidth > 0 || c.latency > 0 || c.errRate > 0 || c.errFirst > 0 || len(c.corrupt) > 0
}

// wrap is the blobstore.OpenOptions.WrapObject of the restore.
func (fs *faultState) wrap(name string, o transfer.Object) transfer.Object {
	return &faultObject{inner: o, name: name, fs: fs}
}

// stats describes what the faults did, for the report.
func (fs *faultState) stats() map[string]int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := map[string]int64{"reads": fs.reads}
	for k, v := range fs.failed {
		out["failed_"+k] = v
	}
	if fs.corrupted > 0 {
		out["corrupted_reads"] = fs.corrupted
	}
	if fs.limiter != nil {
		out["throttled_bytes"] = fs.slowed
	}
	return out
}

// decide counts a read and says whether (and how) it fails.
func (fs *faultState) decide() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.reads++
	if fs.cfg.errKind == "" {
		return ""
	}
	fail := fs.reads <= int64(fs.cfg.errFirst)
	if !fail && fs.cfg.errRate > 0 {
		fail = fs.rng.Float64() < fs.cfg.errRate
	}
	if !fail {
		return ""
	}
	fs.failed[fs.cfg.errKind]++
	return fs.cfg.errKind
}

// corruption returns the offset of the byte to flip in a read of file (size
// bytes) covering [off, off+n), or -1.
func (fs *faultState) corruption(file string, size, off, n int64) int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, c := range fs.cfg.corrupt {
		if c.file != "" && c.file != file || c.done >= c.times {
			continue
		}
		at := c.offset
		if at < 0 {
			at = size / 2
		}
		if at >= off && at < off+n {
			c.done++
			fs.corrupted++
			if fs.record != nil {
				fs.record(fmt.Sprintf("corrupted byte %d of %s in the read at offset %d", at, file, off))
			}
			return at
		}
	}
	return -1
}

// faultObject is one snapshot object read through the restore's faults.
type faultObject struct {
	inner transfer.Object
	name  string
	fs    *faultState
}

func (o *faultObject) Size(ctx context.Context) (int64, error) { return o.inner.Size(ctx) }

// Version passes the inner object's version through (resume of bare files).
func (o *faultObject) Version() string {
	if v, ok := o.inner.(transfer.Versioned); ok {
		return v.Version()
	}
	return ""
}

func (o *faultObject) NewRangeReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	fs := o.fs
	if d := fs.cfg.latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	kind := fs.decide()
	switch kind {
	case "503":
		return nil, &storeError{status: http.StatusServiceUnavailable, what: "SlowDown reading " + o.name}
	case "500":
		return nil, &storeError{status: http.StatusInternalServerError, what: "InternalError reading " + o.name}
	}
	r, err := o.inner.NewRangeReader(ctx, off, n)
	if err != nil {
		return nil, err
	}
	var out io.Reader = r
	if len(fs.cfg.corrupt) > 0 {
		size, err := o.inner.Size(ctx)
		if err == nil {
			if at := fs.corruption(o.name, size, off, n); at >= 0 {
				out = &flipReader{r: out, pos: off, at: at}
			}
		}
	}
	if kind == "reset" {
		out = &resetReader{r: out, left: max(n/2, 1)}
	}
	if fs.limiter != nil {
		out = &slowReader{ctx: ctx, r: out, fs: fs}
	}
	return readCloser{out, r}, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// flipReader inverts the byte at offset at of a read that starts at pos.
type flipReader struct {
	r       io.Reader
	pos, at int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// resetReader delivers left bytes, then fails like a connection the store reset.
type resetReader struct {
	r    io.Reader
	left int64
}

func (r *resetReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	return n, err
}

// slowReader delivers bytes no faster than the restore's bandwidth.
type slowReader struct {
	ctx context.Context
	r   io.Reader
	fs  *faultState
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.fs.burst {
		p = p[:s.fs.burst]
	}
	n, err := s.r.Read(p)
	if n > 0 {
		if werr := s.fs.limiter.WaitN(s.ctx, n); werr != nil && err == nil {
			err = werr
		}
		s.fs.mu.Lock()
		s.fs.slowed += int64(n)
		s.fs.mu.Unlock()
	}
	return n, err
}

// ---- servers killed mid-restore ----

// killSpec kills one server of a scratch target during a restore: before the
// first builtin call of phase (or before/after a named builtin).
type killSpec struct {
	phase  string
	node   int
	before string
	after  string
	text   string

	fired bool
}

// matches says whether the kill fires around a call of builtin in phase:
// when="before" or "after".
func (k *killSpec) matches(when, phase, builtin string) bool {
	if k.fired {
		return false
	}
	if k.phase != "" && k.phase != phase {
		return false
	}
	switch {
	case k.after != "":
		return when == "after" && builtin == k.after
	case k.before != "":
		return when == "before" && builtin == k.before
	}
	return when == "before"
}

// kill stops node k.node of env's scratch target the hard way: SIGKILL of its
// process (mariadbd, a Cassandra JVM), or, for etcd's in-process members, an
// immediate stop of the member. It returns what it did.
func (k *killSpec) kill(ctx context.Context, env *builtins.Env) (string, error) {
	t := env.Target
	if t == nil || !t.Scratch {
		return "", fmt.Errorf("drill.kill works on scratch targets only (this target is %s)", targetRef(t))
	}
	switch t.Engine {
	case "etcd":
		name, err := specName(t.Spec, "members", k.node)
		if err != nil {
			return "", err
		}
		etcd, ok := registered("etcd", "stop_member")
		if !ok {
			return "", fmt.Errorf("no etcd.stop_member builtin")
		}
		v, err := etcd.Impl(ctx, env, starlark.Tuple{starlark.String(name)}, nil)
		if err != nil {
			return "", err
		}
		if v != starlark.True {
			return "", fmt.Errorf("etcd member %s was not running", name)
		}
		return "stopped etcd member " + name + " (in process, at once)", nil
	case "mysql":
		if k.node != 0 {
			return "", fmt.Errorf("a scratch mysql target has one server (node 0), not node %d", k.node)
		}
		dir, _ := t.Spec["dir"].(string)
		return killProcesses(dir, "mariadbd")
	case "cassandra":
		nodes, _ := t.Spec["nodes"].([]any)
		if k.node < 0 || k.node >= len(nodes) {
			return "", fmt.Errorf("node %d: the target has %d nodes (0 to %d)", k.node, len(nodes), len(nodes)-1)
		}
		m, _ := nodes[k.node].(map[string]any)
		dir, _ := m["dir"].(string)
		name, _ := m["name"].(string)
		what, err := killProcesses(dir, "Cassandra node "+name)
		return what, err
	}
	return "", fmt.Errorf("drill.kill does not know how to kill a %s server", t.Engine)
}

func targetRef(t *drivers.Target) string {
	if t == nil {
		return "none"
	}
	return t.Ref
}

// specName returns the name of entry i of the target spec's list key.
func specName(spec map[string]any, key string, i int) (string, error) {
	list, _ := spec[key].([]any)
	if i < 0 || i >= len(list) {
		return "", fmt.Errorf("node %d: the target has %d %s (0 to %d)", i, len(list), key, len(list)-1)
	}
	m, _ := list[i].(map[string]any)
	name, _ := m["name"].(string)
	if name == "" {
		return "", fmt.Errorf("%s[%d] has no name", key, i)
	}
	return name, nil
}

// registered returns the original (unwrapped) builtin module.name.
func registered(module, name string) (builtins.Func, bool) {
	for _, m := range builtins.Modules() {
		if m.Name == module {
			return m.Func(name)
		}
	}
	return builtins.Func{}, false
}

// killProcesses SIGKILLs every process descended from this one whose command
// line names dir (a scratch server's directory).
func killProcesses(dir, what string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("the target names no directory for %s", what)
	}
	pids := descendantsNaming(filepath.Clean(dir) + string(os.PathSeparator))
	if len(pids) == 0 {
		return "", fmt.Errorf("no running process of %s (under %s) to kill", what, dir)
	}
	var killed []string
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed = append(killed, strconv.Itoa(pid))
		}
	}
	if len(killed) == 0 {
		return "", fmt.Errorf("could not kill %s (pids %v)", what, pids)
	}
	return fmt.Sprintf("killed %s with SIGKILL (pid %s)", what, strings.Join(killed, ", ")), nil
}

// descendantsNaming returns the pids of this process's descendants whose
// command line contains s, from /proc.
func descendantsNaming(s string) []int {
	self := os.Getpid()
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppidOf(pid); ok {
			parent[pid] = pp
		}
	}
	var out []int
	for pid := range parent {
		desc := false
		for p, n := parent[pid], 0; p > 1 && n < 64; p, n = parent[p], n+1 {
			if p == self {
				desc = true
				break
			}
		}
		if !desc {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if strings.Contains(string(cmd), s) {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// ppidOf reads a process's parent pid from /proc/PID/stat.
func ppidOf(pid int) (int, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}
