package e2e

// The harness of the Cassandra tests (cassandra_test.go): real Cassandra 5.0 nodes
// started from the jars ./test.sh installs (cassops, the launcher restore-run's
// scratch targets use too), described by target files like a real installation,
// filled with data of every kind the driver must carry, and read back row by row.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/targets"
)

// cassandraHome returns the jars the tests run Cassandra from. Missing jars fail
// the test: the Cassandra tests never skip.
func cassandraHome(t testing.TB) *cassops.Home {
	t.Helper()
	dir := os.Getenv(cassops.EnvLib)
	if dir == "" {
		dir = filepath.Join(repoRoot, cassops.DefaultLib)
	}
	h, err := cassops.FindHome(dir)
	if err != nil {
		t.Fatalf("the Cassandra tests need the Cassandra 5.0 jars: %v\nrun ./test.sh (its install_cassandra step fetches them), or set %s", err, cassops.EnvLib)
	}
	return h
}

// The role the tests use on clusters started with PasswordAuthenticator; target
// files give its password by reference through an environment variable. (The
// built-in cassandra/cassandra superuser is read at QUORUM from system_auth, which
// a new cluster keeps at RF 1: one node down would lock everybody out.)
const (
	e2eCassandraPasswordEnv = "E2E_CASSANDRA_PASSWORD"
	e2eCassandraUser        = "e2e_admin"
	e2eCassandraPassword    = "e2e-S3cret-pw"
)

// cassCluster is a cluster of real nodes the test started, and its target file.
type cassCluster struct {
	Name        string
	Nodes       []*cassops.Node
	Cfgs        []cassops.NodeConfig
	CQLPort     int
	StoragePort int
	Auth        bool
	Target      string // the target file
	home        *cassops.Home
}

// freePortsOn returns k distinct ports free on every address.
func freePortsOn(t testing.TB, addrs []string, k int) []int {
	t.Helper()
	ports, err := targets.PortsFreeOn(addrs, k)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// startCassandras starts clusters together (their nodes all at once) and stops
// them when the test ends. Each spec is name, node count, storage compatibility
// mode and whether PasswordAuthenticator is on.
type clusterSpec struct {
	name  string
	nodes int
	mode  string
	auth  bool
	heap  string // default 512M
}

func startCassandras(t testing.TB, specs ...clusterSpec) []*cassCluster {
	t.Helper()
	home := cassandraHome(t)
	base, err := os.MkdirTemp("", "restore-run-e2e-cassandra-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	var clusters []*cassCluster
	var all []cassops.NodeConfig
	for _, s := range specs {
		var addrs []string
		for i := 1; i <= s.nodes; i++ {
			addrs = append(addrs, fmt.Sprintf("127.0.0.%d", i))
		}
		shared := freePortsOn(t, addrs, 2)
		jmx := freePortsOn(t, []string{"127.0.0.1"}, s.nodes)
		c := &cassCluster{Name: s.name, CQLPort: shared[0], StoragePort: shared[1], Auth: s.auth, home: home}
		tokens := cassops.BalancedTokens(s.nodes)
		var seeds []string
		for _, a := range addrs {
			seeds = append(seeds, fmt.Sprintf("%s:%d", a, c.StoragePort))
		}
		for i, a := range addrs {
			c.Cfgs = append(c.Cfgs, cassops.NodeConfig{
				Name: fmt.Sprintf("%s-n%d", s.name, i+1), Address: a, ClusterName: s.name, Seeds: seeds,
				CQLPort: c.CQLPort, StoragePort: c.StoragePort, JMXPort: jmx[i], Tokens: []string{tokens[i]},
				Dir: filepath.Join(base, s.name, fmt.Sprintf("n%d", i+1)), StorageCompatibilityMode: s.mode, Auth: s.auth, Heap: s.heap,
			})
		}
		all = append(all, c.Cfgs...)
		clusters = append(clusters, c)
	}
	start := time.Now()
	nodes, err := cassops.StartNodes(context.Background(), home, all)
	if err != nil {
		t.Fatalf("starting Cassandra: %v", err)
	}
	t.Cleanup(func() { cassops.StopNodes(nodes, 5*time.Second) })
	t.Logf("%d Cassandra nodes of %d clusters serve CQL after %s", len(nodes), len(specs), time.Since(start).Round(time.Second))
	i := 0
	for _, c := range clusters {
		c.Nodes = nodes[i : i+len(c.Cfgs)]
		i += len(c.Cfgs)
		c.Target = c.writeTarget(t, base)
	}
	for _, c := range clusters {
		if c.Auth {
			c.setUpAuth(t)
		}
	}
	t.Setenv(e2eCassandraPasswordEnv, e2eCassandraPassword)
	return clusters
}

// setUpAuth replicates system_auth to every node and creates the tests' role,
// logged in as the default superuser.
func (c *cassCluster) setUpAuth(t testing.TB) {
	t.Helper()
	var hosts []string
	for _, cfg := range c.Cfgs {
		hosts = append(hosts, cfg.Address)
	}
	s, err := cassops.Connect(context.Background(), cassops.CQLConfig{Hosts: hosts, Port: c.CQLPort, User: "cassandra", Password: "cassandra"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	execAll(t, s,
		fmt.Sprintf("ALTER KEYSPACE system_auth WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}", len(c.Cfgs)),
		fmt.Sprintf("CREATE ROLE %s WITH PASSWORD = '%s' AND LOGIN = true AND SUPERUSER = true", e2eCassandraUser, e2eCassandraPassword))
}

// writeTarget writes the cluster's target file: nodes with their JMX and data
// dirs, the CQL password by reference.
func (c *cassCluster) writeTarget(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "engine: cassandra\ncluster_name: %s\ncassandra_lib: %s\ncql_port: %d\nstorage_port: %d\n", c.Name, c.home.Lib, c.CQLPort, c.StoragePort)
	if c.Auth {
		fmt.Fprintf(&b, "cql:\n  username: %s\n  password: {env: %s}\n", e2eCassandraUser, e2eCassandraPasswordEnv)
	}
	b.WriteString("nodes:\n")
	for _, cfg := range c.Cfgs {
		fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    jmx_host: 127.0.0.1\n    jmx_port: %d\n    data_dirs: [%s]\n", cfg.Name, cfg.Address, cfg.JMXPort, cfg.DataDir())
	}
	p := filepath.Join(dir, c.Name+".yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// session connects to every node of the cluster.
func (c *cassCluster) session(t testing.TB) *cassops.Session {
	t.Helper()
	var hosts []string
	for _, cfg := range c.Cfgs {
		hosts = append(hosts, cfg.Address)
	}
	return cqlSession(t, hosts, c.CQLPort, c.Auth)
}

func cqlSession(t testing.TB, hosts []string, port int, auth bool) *cassops.Session {
	t.Helper()
	cfg := cassops.CQLConfig{Hosts: hosts, Port: port}
	if auth {
		cfg.User, cfg.Password = e2eCassandraUser, e2eCassandraPassword
	}
	s, err := cassops.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// sessionAt connects to a kept scratch cluster from its `ready:` endpoints
// (host:port).
func sessionAt(t *testing.T, endpoints []string) *cassops.Session {
	t.Helper()
	var hosts []string
	port := 0
	for _, ep := range endpoints {
		h, p, err := net.SplitHostPort(ep)
		if err != nil {
			t.Fatalf("endpoint %q: %v", ep, err)
		}
		hosts = append(hosts, h)
		port, _ = strconv.Atoi(p)
	}
	return cqlSession(t, hosts, port, false)
}

// exec runs statements, failing the test on an error.
func execAll(t testing.TB, s *cassops.Session, stmts ...string) {
	t.Helper()
	for _, st := range stmts {
		if err := s.Exec(context.Background(), st, nil, gocql.All); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
}

// execArgs runs one statement with bind values at QUORUM.
func execArgs(t testing.TB, s *cassops.Session, stmt string, args ...any) {
	t.Helper()
	if err := s.Exec(context.Background(), stmt, args, gocql.Quorum); err != nil {
		t.Fatalf("%s %v: %v", stmt, args, err)
	}
}

// fillThreeNode writes the data of the 3-node source: an RF=3 keyspace with a
// UDT, collections, clustering columns, a secondary index, TTL'd rows (live ones,
// and expired ones whose tombstones reach the SSTables), deleted rows, cells and
// partitions; and an RF=1 keyspace whose rows live on one node each.
func fillThreeNode(t *testing.T, s *cassops.Session) {
	t.Helper()
	execAll(t, s,
		"CREATE KEYSPACE ks_rf3 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
		"CREATE KEYSPACE ks_rf1 WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1}",
		"CREATE TYPE ks_rf3.address (street text, city text, zip int)",
		`CREATE TABLE ks_rf3.events (sensor text, day date, seq int, value double, tags set<text>, attrs map<text, int>,
		   readings list<int>, loc frozen<address>, note text, PRIMARY KEY ((sensor, day), seq)) WITH CLUSTERING ORDER BY (seq DESC)`,
		"CREATE INDEX events_note ON ks_rf3.events (note)",
		"CREATE TABLE ks_rf3.users (id int PRIMARY KEY, name text, home address, phones list<text>, last_seen timestamp)",
		"CREATE TABLE ks_rf1.kv (k text PRIMARY KEY, v blob, n varint, d decimal, u uuid)",
		"CREATE TABLE ks_rf1.empty (k int PRIMARY KEY, v text)",
	)
	for p := 0; p < 30; p++ {
		for seq := 0; seq < 8; seq++ {
			ttl := 0
			if seq == 7 {
				ttl = 86400 // still alive when validated
			}
			execArgs(t, s, `INSERT INTO ks_rf3.events (sensor, day, seq, value, tags, attrs, readings, loc, note) VALUES (?, '2026-11-25', ?, ?, ?, ?, ?, {street: 'Main St', city: ?, zip: ?}, ?) USING TTL ?`,
				fmt.Sprintf("sensor-%02d", p), seq, float64(p)*1.5+float64(seq)/8, []string{"a", fmt.Sprint("t", seq%3)},
				map[string]int{"x": p, "y": seq}, []int{p, seq, p * seq}, fmt.Sprint("city-", p%4), 10000+p, fmt.Sprint("note-", (p+seq)%5), ttl)
		}
	}
	for i := 0; i < 60; i++ {
		execArgs(t, s, "INSERT INTO ks_rf3.users (id, name, home, phones, last_seen) VALUES (?, ?, {street: ?, city: 'Paris', zip: 75001}, ?, '2026-11-25T10:00:00Z')",
			i, fmt.Sprint("user ", i), fmt.Sprint(i, " rue X"), []string{fmt.Sprint("+33-", i), "+1-555"})
	}
	for i := 0; i < 150; i++ {
		execArgs(t, s, "INSERT INTO ks_rf1.kv (k, v, n, d, u) VALUES (?, ?, 123456789012345678901234567890, 3.14159, 5b6962dd-3f90-4c93-8f61-eabfb4a4a2d1)",
			fmt.Sprintf("key-%03d", i), []byte{byte(i), 0, 255})
	}
	// Rows that die: expired TTLs, deleted rows, a deleted partition, a deleted cell.
	for i := 0; i < 10; i++ {
		execArgs(t, s, "INSERT INTO ks_rf1.kv (k, v) VALUES (?, 0x00) USING TTL 1", fmt.Sprintf("ephemeral-%d", i))
	}
	execAll(t, s,
		"DELETE FROM ks_rf3.events WHERE sensor = 'sensor-03' AND day = '2026-11-25'",
		"DELETE FROM ks_rf3.events WHERE sensor = 'sensor-04' AND day = '2026-11-25' AND seq = 2",
		"DELETE note FROM ks_rf3.events WHERE sensor = 'sensor-05' AND day = '2026-11-25' AND seq = 1",
		"DELETE FROM ks_rf3.users WHERE id IN (7, 8, 9)",
		"DELETE FROM ks_rf1.kv WHERE k = 'key-010'",
	)
	time.Sleep(2 * time.Second) // the TTL 1 rows expire before the snapshot
}

// fillOneNode writes the data of the 1-node source.
func fillOneNode(t *testing.T, s *cassops.Session) {
	t.Helper()
	execAll(t, s,
		"CREATE KEYSPACE ks_one WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
		"CREATE TYPE ks_one.dims (w int, h int)",
		"CREATE TABLE ks_one.items (part int, id int, payload text, tags list<text>, size frozen<dims>, extra map<int, text>, PRIMARY KEY (part, id))",
		"CREATE INDEX items_payload ON ks_one.items (payload)",
	)
	for i := 0; i < 200; i++ {
		ttl := 0
		if i%50 == 0 {
			ttl = 86400
		}
		execArgs(t, s, "INSERT INTO ks_one.items (part, id, payload, tags, size, extra) VALUES (?, ?, ?, ?, {w: ?, h: 2}, ?) USING TTL ?",
			i%10, i, fmt.Sprint("payload-", i%13), []string{"x", fmt.Sprint(i)}, i, map[int]string{i: "v"}, ttl)
	}
	execAll(t, s, "DELETE FROM ks_one.items WHERE part = 9", "DELETE FROM ks_one.items WHERE part = 1 AND id = 11")
}

// dumpTable returns every row of a table as Cassandra renders it with SELECT
// JSON, read at consistency ALL, sorted.
func dumpTable(t *testing.T, s *cassops.Session, kt string) []string {
	t.Helper()
	ks, table, _ := strings.Cut(kt, ".")
	rows, err := s.Query(context.Background(), fmt.Sprintf("SELECT JSON * FROM %s.%s", cassops.Ident(ks), cassops.Ident(table)), nil, gocql.All, 1000, 0)
	if err != nil {
		t.Fatalf("dump %s: %v", kt, err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprint(r["[json]"]))
	}
	sort.Strings(out)
	return out
}

// dumpAll dumps the given tables.
func dumpAll(t *testing.T, s *cassops.Session, tables []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, kt := range tables {
		out[kt] = dumpTable(t, s, kt)
	}
	return out
}

// sameRows fails the test unless got holds exactly want's rows, table by table.
func sameRows(t *testing.T, want, got map[string][]string) {
	t.Helper()
	total := 0
	for kt, w := range want {
		total += len(w)
		g := got[kt]
		if strings.Join(w, "\n") == strings.Join(g, "\n") {
			continue
		}
		wm, gm := map[string]bool{}, map[string]bool{}
		for _, r := range w {
			wm[r] = true
		}
		for _, r := range g {
			gm[r] = true
		}
		var missing, extra []string
		for r := range wm {
			if !gm[r] {
				missing = append(missing, r)
			}
		}
		for r := range gm {
			if !wm[r] {
				extra = append(extra, r)
			}
		}
		t.Errorf("%s: %d rows, want %d; %d missing (e.g. %.200s), %d extra (e.g. %.200s)", kt, len(g), len(w), len(missing), first(missing), len(extra), first(extra))
	}
	if total == 0 {
		t.Fatal("the source holds no rows: the comparison would prove nothing")
	}
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	sort.Strings(l)
	return l[0]
}

// waitReadyCQL waits for the `ready: HOST:PORT,...` line of --keep.
func (r *running) waitReadyCQL(t *testing.T, timeout time.Duration) []string {
	t.Helper()
	line := r.waitLine(t, r.lines, timeout, "`ready: ENDPOINTS` line on stdout", func(l string) bool { return strings.HasPrefix(l, "ready: ") })
	return strings.Split(strings.TrimPrefix(line, "ready: "), ",")
}

// keptCassandraRestore restores into a scratch target with --keep, runs inspect
// on the live restored cluster, then stops restore-run with SIGINT (exit 0) and
// checks that no node of the run is left.
func keptCassandraRestore(t *testing.T, snap, target string, extra []string, inspect func(endpoints []string)) *running {
	t.Helper()
	args := append([]string{"restore", "--driver", "cassandra", "--snapshot", snap, "--target", target, "--keep"}, extra...)
	r := startCLI(t, args...)
	eps := r.waitReadyCQL(t, 6*time.Minute)
	inspect(eps)
	code, _ := r.interruptAndWait(t, 60*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGINT on a kept target, want 0\n%s", code, r.output())
	}
	noCassandraLeft(t, r.report(t).WorkDir)
	return r
}

// noCassandraLeft fails the test if a Cassandra node whose command line names
// workMarker (a run's work dir) still runs: teardown must stop every node.
func noCassandraLeft(t *testing.T, workMarker string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "CassandraDaemon") && strings.Contains(string(cmdline), workMarker) {
			t.Errorf("a Cassandra node of %s still runs (pid %s)", workMarker, e.Name())
		}
	}
}
