package cassops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// Storage compatibility modes of Cassandra 5.0 (cassandra.yaml
// storage_compatibility_mode). CASSANDRA_4, the 5.0 default, writes SSTables in
// format "nb" that 4.x reads; NONE writes 5.0's "oa" (or "da" for BTI), which a node
// in CASSANDRA_4 mode refuses.
const (
	ModeCassandra4 = "CASSANDRA_4"
	ModeUpgrading  = "UPGRADING"
	ModeNone       = "NONE"
)

// Murmur3 is the partitioner restore-run starts nodes with.
const Murmur3 = "org.apache.cassandra.dht.Murmur3Partitioner"

// ReadyLine is what a node logs once it serves CQL.
const ReadyLine = "Starting listening for CQL clients"

// DefaultStartTimeout bounds StartNodes when NodeConfig.StartTimeout is zero: a
// node takes 10 to 30 s on two cores, three started together somewhat more.
const DefaultStartTimeout = 180 * time.Second

// NodeConfig describes one node to start from the jars.
type NodeConfig struct {
	// Name names the node in logs and errors (n1, n2, ...).
	Name string
	// Address is its listen and rpc address, e.g. 127.0.0.2.
	Address string
	// ClusterName must be the same on every node of a cluster.
	ClusterName string
	// Seeds are "address:storage_port" of the seed nodes (usually every node).
	Seeds []string
	// CQLPort, StoragePort and JMXPort are its ports. JMX listens on 127.0.0.1 only
	// (cassandra.jmx.local.port), so nodes on one machine need distinct JMX ports.
	CQLPort, StoragePort, JMXPort int
	// Tokens are its initial tokens (num_tokens = len(Tokens)).
	Tokens []string
	// DC and Rack place it (GossipingPropertyFileSnitch); default datacenter1/rack1.
	DC, Rack string
	// Dir is the node's own directory: data, commitlog, hints, saved_caches,
	// cdc_raw, logs and its cassandra.yaml live there.
	Dir string
	// Heap is -Xms/-Xmx, e.g. "512M" (default).
	Heap string
	// StorageCompatibilityMode is CASSANDRA_4 (default), UPGRADING or NONE.
	StorageCompatibilityMode string
	// Auth enables PasswordAuthenticator and CassandraAuthorizer (superuser
	// cassandra/cassandra, as a new cluster has it).
	Auth bool
	// StartTimeout bounds the wait for ReadyLine (default DefaultStartTimeout).
	StartTimeout time.Duration
}

func (c *NodeConfig) defaults() {
	if c.DC == "" {
		c.DC = "datacenter1"
	}
	if c.Rack == "" {
		c.Rack = "rack1"
	}
	if c.Heap == "" {
		c.Heap = "512M"
	}
	if c.StorageCompatibilityMode == "" {
		c.StorageCompatibilityMode = ModeCassandra4
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
}

// DataDir is where the node keeps its tables (data_file_directories).
func (c NodeConfig) DataDir() string { return filepath.Join(c.Dir, "data") }

// LogFile is the node's system.log.
func (c NodeConfig) LogFile() string { return filepath.Join(c.Dir, "logs", "system.log") }

func (c NodeConfig) check() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{{"name", c.Name != ""}, {"address", c.Address != ""}, {"cluster name", c.ClusterName != ""},
		{"seeds", len(c.Seeds) > 0}, {"cql port", c.CQLPort > 0}, {"storage port", c.StoragePort > 0},
		{"jmx port", c.JMXPort > 0}, {"tokens", len(c.Tokens) > 0}, {"dir", filepath.IsAbs(c.Dir)}} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return drivers.Errorf(drivers.Permanent, "node %q: missing or invalid %s", c.Name, strings.Join(missing, ", "))
	}
	for _, t := range c.Tokens {
		if _, err := strconv.ParseInt(t, 10, 64); err != nil {
			return drivers.Errorf(drivers.Permanent, "node %s: token %q is not a Murmur3 token (a 64-bit integer)", c.Name, t)
		}
	}
	switch c.StorageCompatibilityMode {
	case ModeCassandra4, ModeUpgrading, ModeNone:
	default:
		return drivers.Errorf(drivers.Permanent, "node %s: storage_compatibility_mode %q is not CASSANDRA_4, UPGRADING or NONE", c.Name, c.StorageCompatibilityMode)
	}
	return nil
}

// yamlQuote quotes s as a YAML single-quoted scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Yaml renders the node's cassandra.yaml (Cassandra 5.0 key names; 5.0 refuses
// unknown keys). Settings are sized for a small machine: one token range per node
// unless several tokens are given, four concurrent reads and writes, one
// compactor, 128 MiB memtables.
func (c NodeConfig) Yaml() string {
	c.defaults()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by restore-run for node %s", c.Name)
	w("cluster_name: %s", yamlQuote(c.ClusterName))
	w("num_tokens: %d", len(c.Tokens))
	w("initial_token: %s", yamlQuote(strings.Join(c.Tokens, ",")))
	w("partitioner: %s", Murmur3)
	w("endpoint_snitch: GossipingPropertyFileSnitch")
	w("auto_bootstrap: false")
	w("storage_compatibility_mode: %s", c.StorageCompatibilityMode)
	w("data_file_directories: [%s]", yamlQuote(c.DataDir()))
	for _, d := range []string{"commitlog", "hints", "saved_caches", "cdc_raw"} {
		key := d + "_directory"
		w("%s: %s", key, yamlQuote(filepath.Join(c.Dir, d)))
	}
	w("commitlog_sync: periodic")
	w("commitlog_sync_period: 10000ms")
	w("commitlog_segment_size: 8MiB")
	w("seed_provider:")
	w("  - class_name: org.apache.cassandra.locator.SimpleSeedProvider")
	w("    parameters:")
	w("      - seeds: %s", yamlQuote(strings.Join(c.Seeds, ",")))
	w("listen_address: %s", c.Address)
	w("rpc_address: %s", c.Address)
	w("storage_port: %d", c.StoragePort)
	w("native_transport_port: %d", c.CQLPort)
	w("start_native_transport: true")
	w("concurrent_reads: 4")
	w("concurrent_writes: 4")
	w("concurrent_counter_writes: 4")
	w("concurrent_materialized_view_writes: 4")
	w("concurrent_compactors: 1")
	w("memtable_heap_space: 128MiB")
	w("memtable_offheap_space: 128MiB")
	if c.Auth {
		w("authenticator: PasswordAuthenticator")
		w("authorizer: CassandraAuthorizer")
	} else {
		w("authenticator: AllowAllAuthenticator")
		w("authorizer: AllowAllAuthorizer")
	}
	w("role_manager: CassandraRoleManager")
	return b.String()
}

// Node is a Cassandra node started from the jars. Stop it when done.
type Node struct {
	cfg  NodeConfig
	home *Home
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error // the process's exit, once done
}

// Config returns the node's configuration.
func (n *Node) Config() NodeConfig { return n.cfg }

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Pid returns the JVM's process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Running reports whether the JVM has not exited.
func (n *Node) Running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// jvmArgs returns the JVM command line of the node.
func (n *Node) jvmArgs() []string {
	c := n.cfg
	args := append([]string{}, serverFlags...)
	args = append(args, jpmsFlags...)
	args = append(args,
		"-Xms"+c.Heap, "-Xmx"+c.Heap,
		"-javaagent:"+n.home.Jamm,
		"-Dcassandra.config=file://"+filepath.Join(c.Dir, "cassandra.yaml"),
		"-Dcassandra-rackdc.properties=file://"+filepath.Join(c.Dir, "cassandra-rackdc.properties"),
		"-Dcassandra.storagedir="+c.Dir,
		"-Dcassandra.logdir="+filepath.Join(c.Dir, "logs"),
		"-Dlogback.configurationFile=file://"+filepath.Join(c.Dir, "logback.xml"),
		"-Dcassandra-foreground=yes",
		// JMX on 127.0.0.1 only, without authentication (cassandra-env.sh's
		// LOCAL_JMX=yes); nodetool reaches it there.
		"-Dcassandra.jmx.local.port="+strconv.Itoa(c.JMXPort),
		"-Dcom.sun.management.jmxremote.authenticate=false",
		"-Djava.rmi.server.hostname=127.0.0.1",
		// A new cluster: no 5 s wait for gossip to settle, and with
		// PasswordAuthenticator the default superuser at once.
		"-Dcassandra.skip_wait_for_gossip_to_settle=0",
		"-Dcassandra.superuser_setup_delay_ms=0",
		// Measure the memtable row overhead in 100 steps, not 100000 (seconds of
		// CPU at every start; the in-JVM dtests do the same).
		"-Dcassandra.memtable_row_overhead_computation_step=100",
		"-cp", n.home.Classpath(),
		"org.apache.cassandra.service.CassandraDaemon",
	)
	return args
}

// writeFiles creates the node's directories and configuration files.
func (n *Node) writeFiles() error {
	c := n.cfg
	for _, d := range []string{"data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return drivers.WithClass(drivers.Permanent, "node "+c.Name, err)
		}
	}
	files := map[string]string{
		"cassandra.yaml":              c.Yaml(),
		"cassandra-rackdc.properties": fmt.Sprintf("dc=%s\nrack=%s\n", c.DC, c.Rack),
		"logback.xml":                 serverLogback,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(content), 0o644); err != nil {
			return drivers.WithClass(drivers.Permanent, "node "+c.Name, err)
		}
	}
	return nil
}

// launch starts the JVM in its own process group, its stdout and stderr appended
// to DIR/logs/stdout.log. It does not wait.
func launch(home *Home, cfg NodeConfig) (*Node, error) {
	cfg.defaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, home: home, done: make(chan struct{})}
	if err := n.writeFiles(); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(cfg.Dir, "logs", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "node "+cfg.Name, err)
	}
	defer out.Close()
	// Cassandra mlockall()s its memory when it may, which faults in the whole heap
	// before it goes on (10 s and more for three nodes on two cores). A locked-memory
	// limit of 0 makes it log "Unable to lock JVM memory" and start at once.
	argv := append([]string{"-c", `ulimit -l 0 2>/dev/null; exec "$0" "$@"`, home.Java}, n.jvmArgs()...)
	n.cmd = exec.Command("/bin/sh", argv...)
	n.cmd.Dir = cfg.Dir
	n.cmd.Stdout, n.cmd.Stderr = out, out
	// Its own process group, so a Ctrl-C at the terminal does not reach it (the run
	// stops it in order); killed if restore-run itself dies.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "start node "+cfg.Name, err)
	}
	go func() {
		err := n.cmd.Wait()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(n.done)
	}()
	return n, nil
}

// waitReady waits until the node's log says ReadyLine, the node exits, the
// timeout passes or ctx is done.
func (n *Node) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.StartTimeout)
	for {
		if logHas(n.cfg.LogFile(), ReadyLine) {
			return nil
		}
		select {
		case <-n.done:
			return drivers.Errorf(drivers.Permanent, "node %s (%s) exited before it served CQL (%s); %s", n.cfg.Name, n.cfg.Address, n.exitText(), n.logExcerpt())
		case <-ctx.Done():
			return drivers.WithClass(drivers.Cancelled, "start node "+n.cfg.Name, context.Cause(ctx))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return drivers.Errorf(drivers.Transient, "node %s (%s) did not serve CQL within %s; %s", n.cfg.Name, n.cfg.Address, n.cfg.StartTimeout, n.logExcerpt())
		}
	}
}

func (n *Node) exitText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err == nil {
		return "exit status 0"
	}
	return n.err.Error()
}

// logExcerpt quotes the errors of the node's system.log, or the end of its
// stdout, for a failed start.
func (n *Node) logExcerpt() string {
	if data, err := os.ReadFile(n.cfg.LogFile()); err == nil {
		var errs []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "ERROR") || strings.Contains(l, "Exception") {
				errs = append(errs, l)
			}
		}
		if len(errs) > 0 {
			if len(errs) > 5 {
				errs = errs[len(errs)-5:]
			}
			return "its system.log (" + n.cfg.LogFile() + ") says: " + strings.Join(errs, " | ")
		}
	}
	out := filepath.Join(n.cfg.Dir, "logs", "stdout.log")
	data, _ := os.ReadFile(out)
	return "its output (" + out + ") ends: " + tail(string(data), 1500)
}

// logHas reports whether the file at path contains s.
func logHas(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	return err == nil && bytes.Contains(data, []byte(s))
}

// Stop asks the node to shut down (SIGTERM) and waits; after timeout it kills the
// node's process group. It returns whether the node had to be killed. Stopping a
// stopped node does nothing.
func (n *Node) Stop(timeout time.Duration) (killed bool) {
	if !n.Running() {
		return false
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-n.done:
		return false
	case <-time.After(timeout):
	}
	n.Kill()
	return true
}

// Kill kills the node's process group at once and waits for the JVM to exit.
func (n *Node) Kill() {
	if !n.Running() {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// StartNodes starts the nodes of one cluster together and waits until each
// serves CQL. If any fails, every node it started is killed and the first failure
// is returned, naming the node and quoting its log.
func StartNodes(ctx context.Context, home *Home, cfgs []NodeConfig) ([]*Node, error) {
	if len(cfgs) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "no nodes to start")
	}
	var nodes []*Node
	killAll := func() {
		for _, n := range nodes {
			n.Kill()
		}
	}
	for _, c := range cfgs {
		n, err := launch(home, c)
		if err != nil {
			killAll()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.waitReady(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		killAll()
		for _, e := range errs {
			if e != nil {
				return nil, e
			}
		}
	}
	return nodes, nil
}

// StopNodes stops nodes together (SIGTERM, then SIGKILL after timeout).
func StopNodes(nodes []*Node, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop(timeout) }()
	}
	wg.Wait()
}

// BalancedTokens returns n Murmur3 tokens spread evenly over the ring, the first
// at the ring's minimum (-2^63 + i*2^64/n): for 3 nodes -9223372036854775808,
// -3074457345618258603, 3074457345618258602.
func BalancedTokens(n int) []string {
	out := make([]string, n)
	ring := new(big.Int).Lsh(big.NewInt(1), 64)
	min := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 63))
	for i := 0; i < n; i++ {
		v := new(big.Int).Mul(ring, big.NewInt(int64(i)))
		v.Div(v, big.NewInt(int64(n)))
		v.Add(v, min)
		out[i] = v.String()
	}
	return out
}

// tail returns the last n bytes of s, marked when cut.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
