package etcdops

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/restore-run/restore-run/drivers"
)

// DefaultStartTimeout bounds StartMember when MemberConfig.StartTimeout is zero.
const DefaultStartTimeout = 60 * time.Second

// Raft timing of embedded members: a 50 ms heartbeat and a 500 ms election timeout
// elect a leader quickly and stay stable on a loaded 2-core machine (etcd's
// defaults are 100 ms and 1 s).
const (
	memberTickMs     = 50
	memberElectionMs = 500
)

// MemberConfig configures an in-process etcd member.
type MemberConfig struct {
	// Name is the member's name; it must appear in InitialCluster.
	Name string
	// DataDir is the member's data dir: a restored one (see Restore), or a new or
	// empty one for a fresh member.
	DataDir string
	// ClientURL is the URL the member listens on and advertises for clients, e.g.
	// http://127.0.0.1:2379. Only http is supported.
	ClientURL string
	// PeerURL is the URL the member listens on and advertises for peers, e.g.
	// http://127.0.0.1:2380. Only http is supported.
	PeerURL string
	// InitialCluster is "name=peerURL,..." for every member; empty means a one-member
	// cluster of Name at PeerURL. A restored data dir already records its cluster.
	InitialCluster string
	// InitialClusterToken identifies a new cluster; empty means
	// DefaultInitialClusterToken.
	InitialClusterToken string
	// ClusterState is "new" (default) or "existing".
	ClusterState string
	// LogFile, when set, receives the member's error-level logs (appended); empty
	// discards them. The last errors are quoted in StartMember's errors either way.
	LogFile string
	// StartTimeout bounds the wait for the member to be ready; zero means
	// DefaultStartTimeout. ctx's deadline also applies.
	StartTimeout time.Duration
}

// Member is an etcd member running in this process. Stop it when done.
type Member struct {
	cfg     MemberConfig
	etcd    *embed.Etcd
	logFile *os.File
	once    sync.Once
}

// Name returns the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// ClientURL returns the URL clients reach the member at.
func (m *Member) ClientURL() string { return m.cfg.ClientURL }

// PeerURL returns the URL peers reach the member at.
func (m *Member) PeerURL() string { return m.cfg.PeerURL }

// DataDir returns the member's data dir.
func (m *Member) DataDir() string { return m.cfg.DataDir }

// Stop closes the embedded server, waits for it to finish and closes its log file.
// It is safe to call more than once and from several goroutines.
func (m *Member) Stop() error {
	m.once.Do(func() {
		m.etcd.Close()
		if m.logFile != nil {
			_ = m.logFile.Close()
		}
	})
	return nil
}

// StopMembers stops a whole cluster: every member at once, without handing
// leadership over, and waits for all of them (nil entries are skipped). Stopping
// members one by one with Stop takes about a second each while peers still run, and
// hands leadership to the next member to stop.
func StopMembers(members []*Member) error {
	// Stop every raft loop first, without the leadership transfer of a graceful stop
	// (its target is stopping too, so it would wait for the request timeout), and so
	// that no peer keeps a raft stream open to a member that is closing.
	var wg sync.WaitGroup
	for _, m := range members {
		if m != nil {
			wg.Go(m.etcd.Server.HardStop)
		}
	}
	wg.Wait()
	for _, m := range members {
		if m != nil {
			wg.Go(func() { _ = m.Stop() })
		}
	}
	wg.Wait()
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Sync() error { return nil }

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// checkHTTPURL checks that s is an http URL with a host and a port.
func checkHTTPURL(op, field, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return drivers.Errorf(drivers.Permanent, "%s: %s %q is not an http URL with a host and port; use e.g. http://127.0.0.1:2379", op, field, s)
	}
	return nil
}

// StartMember starts an in-process etcd member and waits until it is ready to serve
// clients (it has joined a cluster with a leader), for at most StartTimeout or
// until ctx is done. The server is quiet: only error-level logs, to LogFile or
// nowhere. On failure it closes the server and returns a Transient error (port
// already in use: pick new ports and retry; not ready in time) or a Permanent one
// (bad configuration, unusable data dir), quoting the server's last errors.
//
// A member of a multi-member cluster only becomes ready once a quorum of its peers
// runs: start them together with StartMembers.
func StartMember(ctx context.Context, cfg MemberConfig) (*Member, error) {
	op := "start etcd member " + cfg.Name
	if cfg.Name == "" {
		return nil, drivers.Errorf(drivers.Permanent, "start etcd member: Name is empty; give the member's name")
	}
	if cfg.DataDir == "" {
		return nil, drivers.Errorf(drivers.Permanent, "%s: DataDir is empty; give the member's data dir", op)
	}
	if err := checkHTTPURL(op, "ClientURL", cfg.ClientURL); err != nil {
		return nil, err
	}
	if err := checkHTTPURL(op, "PeerURL", cfg.PeerURL); err != nil {
		return nil, err
	}
	switch cfg.ClusterState {
	case "":
		cfg.ClusterState = embed.ClusterStateFlagNew
	case embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting:
	default:
		return nil, drivers.Errorf(drivers.Permanent, "%s: ClusterState %q is neither %q nor %q", op, cfg.ClusterState, embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting)
	}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.Name + "=" + cfg.PeerURL
	}
	if cfg.InitialClusterToken == "" {
		cfg.InitialClusterToken = DefaultInitialClusterToken
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	if err := cancelled(ctx, op); err != nil {
		return nil, err
	}
	cu, _ := url.Parse(cfg.ClientURL)
	pu, _ := url.Parse(cfg.PeerURL)

	// Logging: error level, to LogFile (if any) and to a small tail quoted in errors.
	tail := &tailBuffer{max: 2048}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	cores := []zapcore.Core{zapcore.NewCore(zapcore.NewConsoleEncoder(enc), tail, zapcore.ErrorLevel)}
	var logFile *os.File
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, drivers.WithClass(drivers.Permanent, op, fmt.Errorf("opening log file: %w", err))
		}
		logFile = f
		cores = append(cores, zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(f), zapcore.ErrorLevel))
	}
	lg := zap.New(zapcore.NewTee(cores...)).With(zap.String("member", cfg.Name))
	closeLog := func() {
		if logFile != nil {
			_ = logFile.Close()
		}
	}
	withTail := func(msg string) string {
		if t := tail.String(); t != "" {
			return msg + "; last server errors: " + t
		}
		return msg
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*cu}
	ec.AdvertiseClientUrls = []url.URL{*cu}
	ec.ListenPeerUrls = []url.URL{*pu}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = cfg.InitialCluster
	ec.InitialClusterToken = cfg.InitialClusterToken
	ec.ClusterState = cfg.ClusterState
	ec.TickMs = memberTickMs
	ec.ElectionMs = memberElectionMs
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.EnableGRPCGateway = false
	ec.EnablePprof = false

	e, err := embed.StartEtcd(ec)
	if err != nil {
		closeLog()
		if isAddrInUse(err) {
			return nil, drivers.Errorf(drivers.Transient, "%s: %w; another process took the port: pick new ports (FreeLoopbackPorts) and retry", op, err)
		}
		return nil, drivers.Errorf(drivers.Permanent, "%s: %s", op, withTail(err.Error()+"; check the URLs, InitialCluster and data dir"))
	}
	fail := func(c drivers.Class, msg string) (*Member, error) {
		closeUnready(e)
		closeLog()
		return nil, drivers.Errorf(c, "%s: %s", op, withTail(msg))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return &Member{cfg: cfg, etcd: e, logFile: logFile}, nil
	case err := <-e.Err():
		if isAddrInUse(err) {
			return fail(drivers.Transient, err.Error()+"; another process took the port: pick new ports (FreeLoopbackPorts) and retry")
		}
		return fail(drivers.Permanent, "server failed while starting: "+err.Error())
	case <-e.Server.StopNotify():
		return fail(drivers.Permanent, "server stopped before it was ready (bad or foreign data dir?)")
	case <-ctx.Done():
		closeUnready(e)
		closeLog()
		return nil, cancelled(ctx, op)
	case <-timer.C:
		return fail(drivers.Transient, fmt.Sprintf("not ready after %s: no leader was elected; a member of a multi-member cluster needs a quorum of its peers running (start them together with StartMembers) and reachable at their peer URLs", timeout))
	}
}

// closeUnready closes a server that may never have become ready. embed's Close
// first waits for the client servers, which only start (or give up) once the
// server is ready or stopping, so Close alone blocks forever on a member that
// never got a leader (etcd 3.6.16): stop the server first.
func closeUnready(e *embed.Etcd) {
	e.Server.HardStop()
	e.Close()
}

// StartMembers starts every member concurrently (a multi-member cluster elects a
// leader, and so becomes ready, only once a quorum runs) and waits for all of them.
// If any fails, it stops the others, which it also stops waiting for, and returns
// the first failure that was not caused by that cancellation.
func StartMembers(ctx context.Context, cfgs []MemberConfig) ([]*Member, error) {
	if len(cfgs) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "start etcd members: no members given")
	}
	seen := map[string]string{}
	for _, c := range cfgs {
		for _, v := range []struct{ what, val string }{{"name", c.Name}, {"data dir", c.DataDir}, {"URL", c.ClientURL}, {"URL", c.PeerURL}} {
			if v.val == "" {
				continue
			}
			key := v.what + "\x00" + v.val
			if other, ok := seen[key]; ok {
				return nil, drivers.Errorf(drivers.Permanent, "start etcd members: members %s and %s share the %s %s; give each member its own", other, c.Name, v.what, v.val)
			}
			seen[key] = c.Name
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := make([]*Member, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = StartMember(sctx, c)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil || (drivers.ClassOf(first) == drivers.Cancelled && drivers.ClassOf(err) != drivers.Cancelled) {
			first = err
		}
	}
	if first == nil {
		return members, nil
	}
	_ = StopMembers(members)
	if ctx.Err() != nil {
		return nil, cancelled(ctx, "start etcd members")
	}
	return nil, fmt.Errorf("start etcd members: %w", first)
}

// FreeLoopbackPorts returns n distinct TCP ports that were free on 127.0.0.1: it
// binds n listeners on port 0, notes their ports and closes them. Another process
// may take a port between this call and its use (a small race); StartMember then
// fails with a Transient "address already in use" error, and the caller can retry
// with new ports.
func FreeLoopbackPorts(n int) ([]int, error) {
	if n <= 0 {
		return nil, drivers.Errorf(drivers.Permanent, "free loopback ports: asked for %d ports; ask for at least one", n)
	}
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, drivers.WithClass(drivers.Transient, "free loopback ports", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
