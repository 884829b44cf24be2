package cassops

// Unit tests that need no Cassandra: tokens, the node's yaml, nodetool output,
// CQL splitting and error classes, the snapshot layout checks, staging, metadata,
// clusters from target specs and the jar folder. Real nodes are exercised by the
// end-to-end tests (e2e/cassandra_test.go).

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/drivers"
)

func TestBalancedTokens(t *testing.T) {
	for n, want := range map[int]string{
		1: "-9223372036854775808",
		2: "-9223372036854775808,0",
		3: "-9223372036854775808,-3074457345618258603,3074457345618258602",
	} {
		if got := strings.Join(BalancedTokens(n), ","); got != want {
			t.Errorf("BalancedTokens(%d) = %s, want %s", n, got, want)
		}
	}
	toks := BalancedTokens(32)
	if len(toks) != 32 || toks[31] != "8646911284551352320" {
		t.Errorf("32 tokens end with %s", toks[31])
	}
}

func TestSortTokens(t *testing.T) {
	toks := []string{"10", "-5", "9", "-9223372036854775808"}
	SortTokens(toks)
	if strings.Join(toks, ",") != "-9223372036854775808,-5,9,10" {
		t.Errorf("sorted %v", toks)
	}
}

func TestNodeYaml(t *testing.T) {
	c := NodeConfig{Name: "n2", Address: "127.0.0.2", ClusterName: "it's", Seeds: []string{"127.0.0.1:7000", "127.0.0.2:7000"},
		CQLPort: 9042, StoragePort: 7000, JMXPort: 7200, Tokens: []string{"-3074457345618258603"}, Dir: "/tmp/n2", Auth: true}
	y := c.Yaml()
	for _, want := range []string{
		"cluster_name: 'it''s'", "num_tokens: 1", "initial_token: '-3074457345618258603'",
		"endpoint_snitch: GossipingPropertyFileSnitch", "auto_bootstrap: false", "storage_compatibility_mode: CASSANDRA_4",
		"data_file_directories: ['/tmp/n2/data']", "commitlog_directory: '/tmp/n2/commitlog'", "cdc_raw_directory: '/tmp/n2/cdc_raw'",
		"- seeds: '127.0.0.1:7000,127.0.0.2:7000'", "listen_address: 127.0.0.2", "native_transport_port: 9042",
		"concurrent_compactors: 1", "memtable_heap_space: 128MiB", "authenticator: PasswordAuthenticator",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("yaml lacks %q:\n%s", want, y)
		}
	}
	// 4.x key names are refused by 5.0: none may appear.
	for _, old := range []string{"_in_ms", "_in_kb", "_in_mb"} {
		if strings.Contains(y, old) {
			t.Errorf("yaml uses a pre-5.0 key (%s):\n%s", old, y)
		}
	}
	c.StorageCompatibilityMode = "NONSENSE"
	if err := c.check(); err == nil || !strings.Contains(err.Error(), "storage_compatibility_mode") {
		t.Errorf("check: %v", err)
	}
	c.StorageCompatibilityMode, c.Tokens = ModeNone, []string{"x"}
	if err := c.check(); err == nil || !strings.Contains(err.Error(), "not a Murmur3 token") {
		t.Errorf("check: %v", err)
	}
	if err := (NodeConfig{Name: "n"}).check(); err == nil || !strings.Contains(err.Error(), "missing or invalid address, cluster name") {
		t.Errorf("check: %v", err)
	}
}

const statusOut = `Datacenter: dc1
===============
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load        Tokens  Owns (effective)  Host ID                               Rack
UN  127.0.0.1  114.39 KiB  16      66.7%             a8770e66-1618-46b0-9c95-26f08a10d066  r1
DN  127.0.0.2  ?           16      66.7%             7436df5f-1fec-4aa3-bc26-c80540fd0b56  r2
Datacenter: dc2
===============
--  Address         Load   Tokens  Owns  Host ID                               Rack
UJ  127.0.0.3:7000  1 KiB  16      ?     0e42fdcf-176d-43e9-bc4e-4ae6e5af9b42  r1
`

func TestParseStatus(t *testing.T) {
	st := ParseStatus(statusOut)
	var got []string
	for _, s := range st {
		got = append(got, fmt.Sprintf("%s %s%s %s %s %s", s.DC, s.Status, s.State, s.Address, s.HostID[:8], s.Rack))
	}
	want := []string{"dc1 UN 127.0.0.1 a8770e66 r1", "dc1 DN 127.0.0.2 7436df5f r2", "dc2 UJ 127.0.0.3 0e42fdcf r1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestSplitStatements(t *testing.T) {
	text := `CREATE TYPE IF NOT EXISTS ks.t1 (a text); -- a comment; with a semicolon
CREATE TABLE IF NOT EXISTS ks.x (
    k text PRIMARY KEY, "we;ird" int
) WITH comment = 'it''s; fine'
    AND compaction = {'class': 'SizeTieredCompactionStrategy'};
/* block; comment */
CREATE FUNCTION ks.f (a int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return a; $$;

CREATE INDEX IF NOT EXISTS x_i ON ks.x ("we;ird");`
	got := SplitStatements(text)
	if len(got) != 4 {
		t.Fatalf("%d statements: %q", len(got), got)
	}
	if !strings.Contains(got[1], `'it''s; fine'`) || !strings.Contains(got[1], `"we;ird" int`) || strings.HasSuffix(got[1], ";") {
		t.Errorf("statement 2: %q", got[1])
	}
	if !strings.Contains(got[2], "$$ return a; $$") {
		t.Errorf("statement 3: %q", got[2])
	}
	if strings.Contains(strings.Join(got, ""), "comment;") {
		t.Errorf("comments kept: %q", got)
	}
}

// reqErr is a gocql.RequestError with a code.
type reqErr struct{ code int }

func (e reqErr) Code() int       { return e.code }
func (e reqErr) Message() string { return "msg" }
func (e reqErr) Error() string   { return fmt.Sprintf("code %x", e.code) }

func TestClassifyCQL(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want drivers.Class
	}{
		{reqErr{gocql.ErrCodeUnavailable}, drivers.Transient},
		{reqErr{gocql.ErrCodeReadTimeout}, drivers.Transient},
		{reqErr{gocql.ErrCodeWriteTimeout}, drivers.Transient},
		{reqErr{gocql.ErrCodeOverloaded}, drivers.Throttled},
		{reqErr{gocql.ErrCodeSyntax}, drivers.Permanent},
		{reqErr{gocql.ErrCodeInvalid}, drivers.Permanent},
		{reqErr{gocql.ErrCodeUnauthorized}, drivers.Permanent},
		{gocql.ErrNoConnections, drivers.Transient},
		{gocql.ErrTimeoutNoResponse, drivers.Transient},
		{fmt.Errorf("wrapped: %w", gocql.ErrConnectionClosed), drivers.Transient},
		{errors.New("something else"), drivers.Permanent},
	} {
		if got := drivers.ClassOf(ClassifyCQL(ctx, "op", c.err)); got != c.want {
			t.Errorf("%v: class %s, want %s", c.err, got, c.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got := drivers.ClassOf(ClassifyCQL(cctx, "op", reqErr{gocql.ErrCodeSyntax})); got != drivers.Cancelled {
		t.Errorf("cancelled context: class %s", got)
	}
	if _, err := ParseConsistency("most"); err == nil {
		t.Error("consistency most accepted")
	}
	if c, err := ParseConsistency("local_quorum"); err != nil || c != gocql.LocalQuorum {
		t.Errorf("local_quorum: %v %v", c, err)
	}
}

func TestToolErrors(t *testing.T) {
	out := "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'."
	if classOfToolOutput(out) != drivers.Transient {
		t.Error("a refused JMX connection is not transient")
	}
	if classOfToolOutput("error: Unknown keyspace ks") != drivers.Permanent {
		t.Error("an unknown keyspace is not permanent")
	}
	msg := toolMessage("INFO noise\nerror: Keyspace ks does not exist\n-- StackTrace --\nat x.y\n")
	if msg != "error: Keyspace ks does not exist" {
		t.Errorf("toolMessage = %q", msg)
	}
}

func TestPlain(t *testing.T) {
	u, _ := gocql.ParseUUID("5b6962dd-3f90-4c93-8f61-eabfb4a4a2d1")
	got := Plain(map[string]any{"u": u, "b": []byte{1, 255}, "l": []int{1, 2}, "m": map[int]string{3: "x"}, "n": nil})
	m := got.(map[string]any)
	if m["u"] != "5b6962dd-3f90-4c93-8f61-eabfb4a4a2d1" || m["b"] != "0x01ff" || fmt.Sprint(m["l"]) != "[1 2]" || fmt.Sprint(m["m"]) != "map[3:x]" || m["n"] != nil {
		t.Errorf("Plain = %v", got)
	}
}

// ---- snapshot layout ----

// writeTable writes one node's snapshot dir of a table with n SSTables whose
// Digest.crc32 match, Cassandra's manifest.json and a schema.cql.
func writeTable(t *testing.T, dir, version string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for g := 1; g <= n; g++ {
		d := fmt.Sprintf("%s-%d-big-", version, g)
		data := []byte(fmt.Sprintf("data of %s in %s", d, dir))
		files := map[string]string{
			"Data.db":         string(data),
			"Digest.crc32":    fmt.Sprint(crc32.ChecksumIEEE(data)),
			"Index.db":        "index",
			"Statistics.db":   "stats",
			"TOC.txt":         "Data.db\nDigest.crc32\nIndex.db\nStatistics.db\nTOC.txt\n",
			"CompressionInfo": "", // not in the TOC: extra files are fine
		}
		for comp, content := range files {
			if comp == "CompressionInfo" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, d+comp), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		listed = append(listed, `"`+d+`Data.db"`)
	}
	listed = append(listed, `".idx/nb-1-big-Data.db"`) // an index SSTable: not packed
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"files": [`+strings.Join(listed, ",")+`]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "schema.cql"), []byte("CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY);"), 0o644)
}

func testMeta(mode string) *Metadata {
	return &Metadata{ClusterName: "c", Partitioner: Murmur3, StorageCompatibilityMode: mode,
		Nodes: []NodeMeta{{Name: "n1", Tokens: []string{"0"}}, {Name: "n2", Tokens: []string{"1"}}},
		Keyspaces: map[string]KeyspaceMeta{"ks": {Create: "CREATE KEYSPACE ks ...", Tables: map[string]TableMeta{
			"t": {Columns: []Column{{Name: "k", Type: "int", Kind: "partition_key"}}},
			"u": {Columns: []Column{{Name: "k", Type: "int", Kind: "partition_key"}}},
		}}}}
}

func goodSnapshot(t *testing.T, version string) string {
	root := t.TempDir()
	for _, n := range []string{"n1", "n2"} {
		writeTable(t, filepath.Join(root, "nodes", n, "ks", "t"), version, 2)
		writeTable(t, filepath.Join(root, "nodes", n, "ks", "u"), version, 0)
	}
	return root
}

func TestInspect(t *testing.T) {
	root := goodSnapshot(t, "nb")
	lay, err := Inspect(root, testMeta(ModeCassandra4))
	if err != nil {
		t.Fatal(err)
	}
	if len(lay.Tables) != 4 || strings.Join(lay.Formats, ",") != "nb" || lay.Tables[0].SSTables != 2 || lay.Tables[1].SSTables != 0 {
		t.Errorf("layout %+v", lay)
	}

	corrupt := func(name string, breakIt func(root string), want ...string) {
		t.Run(name, func(t *testing.T) {
			root := goodSnapshot(t, "nb")
			breakIt(root)
			_, err := Inspect(root, testMeta(ModeCassandra4))
			if err == nil {
				t.Fatal("inspect passed")
			}
			if drivers.ClassOf(err) != drivers.Corruption {
				t.Errorf("class %s: %v", drivers.ClassOf(err), err)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	tdir := func(root string) string { return filepath.Join(root, "nodes", "n2", "ks", "t") }
	corrupt("damaged Data.db", func(root string) {
		os.WriteFile(filepath.Join(tdir(root), "nb-2-big-Data.db"), []byte("flipped"), 0o644)
	}, "nb-2-big-Data.db has CRC32", "the SSTable is damaged", "n2/ks/t")
	corrupt("missing component", func(root string) {
		os.Remove(filepath.Join(tdir(root), "nb-1-big-Index.db"))
	}, "SSTable nb-1-big lacks Index.db, which its TOC.txt lists")
	corrupt("missing Data.db", func(root string) {
		os.Remove(filepath.Join(tdir(root), "nb-1-big-Data.db"))
	}, "manifest.json lists nb-1-big-Data.db, which the snapshot lacks")
	corrupt("missing table", func(root string) {
		os.RemoveAll(filepath.Join(root, "nodes", "n2", "ks", "u"))
	}, "n2/ks/u: missing")
	corrupt("no schema.cql", func(root string) {
		os.Remove(filepath.Join(tdir(root), "schema.cql"))
	}, "no schema.cql")
	corrupt("bad manifest.json", func(root string) {
		os.WriteFile(filepath.Join(tdir(root), "manifest.json"), []byte("{"), 0o644)
	}, "manifest.json is not valid JSON")

	// Cassandra 5.0's own format in a CASSANDRA_4 snapshot cannot be read by it.
	oa := goodSnapshot(t, "oa")
	if _, err := Inspect(oa, testMeta(ModeCassandra4)); err == nil || !strings.Contains(err.Error(), `version "oa"`) {
		t.Errorf("oa in CASSANDRA_4: %v", err)
	}
	if _, err := Inspect(oa, testMeta(ModeNone)); err != nil {
		t.Errorf("oa in NONE: %v", err)
	}
}

func TestMerge(t *testing.T) {
	root := goodSnapshot(t, "nb")
	dst := filepath.Join(t.TempDir(), "ks", "t")
	n, err := Merge(dst, []string{filepath.Join(root, "nodes", "n1", "ks", "t"), filepath.Join(root, "nodes", "n2", "ks", "t")})
	if err != nil || n != 4 {
		t.Fatalf("Merge = %d, %v", n, err)
	}
	entries, _ := os.ReadDir(dst)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644 (readable by Cassandra)", e.Name(), fi.Mode().Perm())
		}
	}
	sort.Strings(names)
	if len(names) != 20 || names[0] != "nb-1-big-Data.db" || names[19] != "nb-4-big-TOC.txt" {
		t.Errorf("merged: %v", names)
	}
	// nb-3 is n2's first SSTable.
	data, _ := os.ReadFile(filepath.Join(dst, "nb-3-big-Data.db"))
	if !strings.Contains(string(data), "nb-1-big- in "+filepath.Join(root, "nodes", "n2")) {
		t.Errorf("nb-3 holds %q", data)
	}
	if _, err := Merge(dst, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("merge into a non-empty dir: %v", err)
	}
}

func TestMetadata(t *testing.T) {
	m := testMeta(ModeCassandra4)
	mm, err := m.Map()
	if err != nil {
		t.Fatal(err)
	}
	back, err := MetadataFromMap(mm)
	if err != nil || back.Nodes[1].Name != "n2" || strings.Join(back.Tables(), ",") != "ks.t,ks.u" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for name, edit := range map[string]func(map[string]any){
		"no nodes":     func(m map[string]any) { delete(m, "nodes") },
		"no keyspaces": func(m map[string]any) { m["keyspaces"] = map[string]any{} },
		"no mode":      func(m map[string]any) { delete(m, "storage_compatibility_mode") },
		"no tokens":    func(m map[string]any) { m["nodes"].([]any)[0].(map[string]any)["tokens"] = []any{} },
		"etcd's":       func(m map[string]any) { clear(m); m["revision"] = 4; m["total_key"] = 2 },
	} {
		mm, _ := m.Map()
		edit(mm)
		if _, err := MetadataFromMap(mm); err == nil || drivers.ClassOf(err) != drivers.Corruption {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestClusterFromSpec(t *testing.T) {
	spec := map[string]any{
		"cluster_name": "prod", "cql_port": float64(19042),
		"cql": map[string]any{"username": "restore", "password": "(secret from env X)"},
		"nodes": []any{
			map[string]any{"name": "a", "host": "10.0.0.1", "data_dirs": []any{"/var/lib/cassandra/data"}},
			map[string]any{"name": "b", "host": "10.0.0.2", "jmx_host": "127.0.0.1", "jmx_port": float64(7299)},
		},
	}
	c, err := ClusterFromSpec(spec, func(name string) (string, bool) {
		if name == SecretCQLPassword {
			return "s3cret", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.CQLPort != 19042 || c.StoragePort != 7000 || c.CQLUser != "restore" || c.CQLPassword != "s3cret" {
		t.Errorf("cluster %+v", c)
	}
	a, _ := c.Node("a")
	b, _ := c.Node("b")
	if c.JMX(a).String() != "10.0.0.1:7199" || c.JMX(b).String() != "127.0.0.1:7299" {
		t.Errorf("jmx %s %s", c.JMX(a), c.JMX(b))
	}
	if cfg := c.CQL(b); !cfg.Only || strings.Join(cfg.Hosts, ",") != "10.0.0.2" || cfg.Password != "s3cret" {
		t.Errorf("cql of b: %+v", cfg)
	}
	if lt := c.LoadTarget(); strings.Join(lt.Hosts, ",") != "10.0.0.1,10.0.0.2" || lt.User != "restore" {
		t.Errorf("load target %+v", lt)
	}
	if _, err := ClusterFromSpec(map[string]any{"nodes": []any{map[string]any{"name": "a"}}}, nil); err == nil {
		t.Error("a node without host accepted")
	}
}

func TestFindHome(t *testing.T) {
	t.Setenv(EnvLib, "")
	empty := t.TempDir()
	if _, err := FindHome(empty); err == nil || !strings.Contains(err.Error(), "no cassandra-all") || !strings.Contains(drivers.HintOf(err), "./test.sh") {
		t.Errorf("empty folder: %v (hint %q)", err, drivers.HintOf(err))
	}
	if _, err := FindHome(filepath.Join(empty, "nope")); err == nil || !strings.Contains(drivers.HintOf(err), EnvLib) {
		t.Errorf("missing folder: %v", err)
	}
	old := t.TempDir()
	os.WriteFile(filepath.Join(old, "cassandra-all-4.1.5.jar"), nil, 0o644)
	if _, err := FindHome(old); err == nil || !strings.Contains(err.Error(), "4.1.5") {
		t.Errorf("4.1: %v", err)
	}
	good := t.TempDir()
	os.WriteFile(filepath.Join(good, "cassandra-all-5.0.8.jar"), nil, 0o644)
	os.WriteFile(filepath.Join(good, "jamm-0.4.0.jar"), nil, 0o644)
	t.Setenv(EnvLib, good)
	h, err := FindHome("")
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != "5.0.8" || h.Jamm != filepath.Join(good, "jamm-0.4.0.jar") || h.Classpath() != filepath.Join(good, "*") {
		t.Errorf("home %+v", h)
	}
}

func TestForEachNode(t *testing.T) {
	nodes := []ClusterNode{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	running, max := 0, 0
	var mu = make(chan struct{}, 1)
	err := ForEachNode(context.Background(), nodes, 2, func(ctx context.Context, n ClusterNode) error {
		mu <- struct{}{}
		running++
		if running > max {
			max = running
		}
		<-mu
		defer func() { mu <- struct{}{}; running--; <-mu }()
		if n.Name == "b" {
			return drivers.Errorf(drivers.Transient, "b is down")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "node b: b is down") || drivers.ClassOf(err) != drivers.Transient {
		t.Errorf("err = %v", err)
	}
	if max > 2 {
		t.Errorf("%d ran at once, parallel 2", max)
	}
}
