package scripts_test

// The harness of cassandra_test.go: fake "cassandra" and "cql" builtin modules
// answering from a small model of the target cluster (nodes, keyspaces, tables
// and their row counts), and whole restores of the embedded cassandra.star through
// engine.Runner. blob and fs stay real: snapshots are packed with blobstore.Pack
// in the layout `snapshot pack --from-cluster` writes.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// ---- the snapshot ----

// The snapshot every test restores: 3 nodes, an RF=3 keyspace with two tables and
// an RF=1 keyspace with one.
var (
	snapTokens = cassops.BalancedTokens(3)
	snapRows   = map[string]int64{"app.users": 60, "app.events": 400, "kv.items": 150}
)

func snapDigest(kt string) string { return "digest-of-" + kt }

func cassMeta() map[string]any {
	cols := []any{map[string]any{"name": "id", "type": "int", "kind": "partition_key", "position": 0},
		map[string]any{"name": "v", "type": "text", "kind": "regular", "position": -1}}
	table := func(kt string) map[string]any {
		return map[string]any{"id": "00000000-0000-0000-0000-000000000001", "columns": cols, "rows": snapRows[kt],
			"sample": map[string]any{"points": 32, "partitions": 10, "rows": 20, "digest": snapDigest(kt)}}
	}
	var nodes []any
	for i := 0; i < 3; i++ {
		nodes = append(nodes, map[string]any{"name": fmt.Sprintf("src-%d", i+1), "address": fmt.Sprintf("10.0.0.%d", i+1),
			"host_id": fmt.Sprint("h", i), "dc": "dc1", "rack": "r1", "tokens": []any{snapTokens[i]}})
	}
	return map[string]any{
		"cluster_name": "prod", "cassandra_version": "5.0.8", "storage_compatibility_mode": "CASSANDRA_4",
		"sstable_formats": []any{"nb"}, "partitioner": cassops.Murmur3, "snapshot_tag": "restore-run-t", "sample_points": 32,
		"nodes": nodes,
		"keyspaces": map[string]any{
			"app": map[string]any{"create": "CREATE KEYSPACE app WITH replication = {'class': 'org.apache.cassandra.locator.NetworkTopologyStrategy', 'dc1': '3'}  AND durable_writes = true;",
				"replication": map[string]any{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"},
				"tables":      map[string]any{"users": table("app.users"), "events": table("app.events")}},
			"kv": map[string]any{"create": "CREATE KEYSPACE kv WITH replication = {'class': 'org.apache.cassandra.locator.SimpleStrategy', 'replication_factor': '1'}  AND durable_writes = true;",
				"replication": map[string]any{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"},
				"tables":      map[string]any{"items": table("kv.items")}},
		},
	}
}

// packCassandra packs a snapshot in the layout of `snapshot pack --from-cluster`
// (the files of cassMeta()'s nodes and tables) with metadata meta (default
// cassMeta()).
func packCassandra(t *testing.T, meta map[string]any) string {
	t.Helper()
	if meta == nil {
		meta = cassMeta()
	}
	src := t.TempDir()
	var files []blobstore.PackFile
	add := func(name, content string) {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, blobstore.PackFile{Path: p, Name: name})
	}
	for _, n := range cassMeta()["nodes"].([]any) {
		node := n.(map[string]any)["name"].(string)
		for _, kt := range []string{"app.events", "app.users", "kv.items"} {
			ks, tb, _ := strings.Cut(kt, ".")
			dir := cassops.TableDir(node, ks, tb)
			add(dir+"/nb-1-big-Data.db", "data of "+node+" "+kt)
			add(dir+"/manifest.json", `{"files": ["nb-1-big-Data.db"]}`)
			add(dir+"/schema.cql", fmt.Sprintf("CREATE TYPE IF NOT EXISTS %s.addr (street text);\nCREATE TABLE IF NOT EXISTS %s.%s (id int PRIMARY KEY, v text) WITH ID = 00000000-0000-0000-0000-000000000001;\n", ks, ks, tb))
		}
	}
	dest := filepath.Join(t.TempDir(), "snap")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "cassandra", EngineVersion: "5.0.8", Files: files, Dest: dest, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	return dest
}

// ---- the model of the target ----

type cnode struct {
	Name, Host string
	Tokens     []string
	DC, Rack   string
	Up         bool
	Mode       string
	Ring       map[string]string // what it says of the others (default: UN for all)
}

type ctable struct {
	Columns map[string]string
	Rows    int64
	Digest  string
}

type ckeyspace struct {
	Replication map[string]any
	Tables      map[string]*ctable
}

// cmodel is the target cluster as the fakes see it.
type cmodel struct {
	Nodes       []*cnode
	Keyspaces   map[string]*ckeyspace
	Partitioner string
	Snapshots   map[string]map[string]ctable // tag -> "ks.t" -> rows at the snapshot
}

func (m *cmodel) node(name string) *cnode {
	for _, n := range m.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (m *cmodel) table(kt string) *ctable {
	ks, t, _ := strings.Cut(kt, ".")
	if k := m.Keyspaces[ks]; k != nil {
		return k.Tables[t]
	}
	return nil
}

// ---- the fakes ----

type cfake struct {
	t     *testing.T
	Model *cmodel
	// Hooks run before a fake answers; an error they return is the builtin's.
	Hooks map[string]func(c fakeCall) error
	// Load changes what a load leaves in a table (default: the snapshot's rows).
	Load func(kt string) (rows int64, digest string)

	mu    sync.Mutex
	calls []fakeCall
}

// newCfake models a healthy 3-node cluster (n1..n3 at the snapshot's tokens, DC
// and rack, in CASSANDRA_4 mode) with no user keyspace. A scratch target fills its
// nodes in when they start.
func newCfake(t *testing.T) *cfake {
	f := &cfake{t: t, Hooks: map[string]func(fakeCall) error{},
		Model: &cmodel{Keyspaces: map[string]*ckeyspace{}, Partitioner: cassops.Murmur3, Snapshots: map[string]map[string]ctable{}}}
	for i := 0; i < 3; i++ {
		f.Model.Nodes = append(f.Model.Nodes, &cnode{Name: fmt.Sprintf("n%d", i+1), Host: fmt.Sprintf("10.1.0.%d", i+1),
			Tokens: []string{snapTokens[i]}, DC: "dc1", Rack: "r1", Up: true, Mode: "CASSANDRA_4"})
	}
	return f
}

// withTables gives the model's cluster the snapshot's keyspaces and tables, with
// rows rows each.
func (f *cfake) withTables(rows int64) *cfake {
	meta := cassMeta()
	for ks, kv := range meta["keyspaces"].(map[string]any) {
		k := &ckeyspace{Replication: kv.(map[string]any)["replication"].(map[string]any), Tables: map[string]*ctable{}}
		for tb := range kv.(map[string]any)["tables"].(map[string]any) {
			k.Tables[tb] = &ctable{Columns: map[string]string{"id": "int", "v": "text"}, Rows: rows, Digest: "old-" + ks + "." + tb}
		}
		f.Model.Keyspaces[ks] = k
	}
	return f
}

func (f *cfake) record(c fakeCall) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.N = 1
	for _, p := range f.calls {
		if p.Builtin == c.Builtin {
			c.N++
		}
	}
	f.calls = append(f.calls, c)
	return len(f.calls) - 1
}

func (f *cfake) callsTo(names ...string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if len(names) == 0 || contains(names, c.Builtin) {
			out = append(out, c)
		}
	}
	return out
}

// execs lists the statements cql.exec ran, normalized to one line.
func (f *cfake) execs() []string {
	var out []string
	for _, c := range f.callsTo("cql.exec") {
		out = append(out, strings.Join(strings.Fields(c.Args["stmt"].(string)), " "))
	}
	return out
}

type canswer func(env *builtins.Env, c fakeCall) (any, error)

// realCQL are the cql functions that touch nothing and stay real.
var realCQL = map[string]bool{"cql.statements": true, "cql.ident": true}

func (f *cfake) modules(mods []builtins.Module) []builtins.Module {
	answers := map[string]map[string]canswer{
		"cassandra": {
			"inspect_snapshot": f.inspect, "start_nodes": f.startNodes, "stop_node": func(*builtins.Env, fakeCall) (any, error) { return false, nil },
			"status": f.status, "nodetool": func(*builtins.Env, fakeCall) (any, error) { return "", nil },
			"snapshot": f.snapshot, "clear_snapshot": f.clearSnapshot, "snapshot_dirs": f.snapshotDirs,
			"import_all": f.importAll, "sstableloader": f.loader,
		},
		"cql": {
			"query": f.query, "exec": f.exec, "wait_schema_agreement": func(*builtins.Env, fakeCall) (any, error) { return map[string]any{}, nil },
			"schema_versions": func(*builtins.Env, fakeCall) (any, error) { return map[string]any{}, nil },
			"keyspace":        f.keyspace, "columns": f.columns, "count": f.count, "sample_digest": f.sampleDigest,
		},
	}
	return fakeModules(f.t, mods, answers, realCQL, f.impl)
}

func (f *cfake) impl(qualified, params string, ans canswer) builtins.Impl {
	names := paramNames(strings.ReplaceAll(params, "*args", ""))
	return func(ctx context.Context, env *builtins.Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if qualified == "cassandra.nodetool" {
			args = args[:1]
		}
		bound, err := bind(qualified, names, args, kwargs)
		if err != nil {
			return nil, err
		}
		c := fakeCall{Builtin: qualified, Phase: builtins.PhaseFrom(ctx), Args: bound}
		if n, ok := bound["node"].(string); ok {
			c.Member = n
		} else if n, ok := bound["node"].(map[string]any); ok {
			c.Member, _ = n["name"].(string)
		}
		idx := f.record(c)
		c.N = f.callsTo(qualified)[len(f.callsTo(qualified))-1].N
		if hook := f.Hooks[qualified]; hook != nil {
			if err := hook(c); err != nil {
				return nil, err
			}
		}
		v, err := ans(env, c)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.calls[idx].Result = v
		f.mu.Unlock()
		return builtins.ToValue(v)
	}
}

func (f *cfake) inspect(env *builtins.Env, c fakeCall) (any, error) {
	if _, err := os.Stat(c.Args["dir"].(string)); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "fake inspect: %v", err)
	}
	return builtins.Struct(map[string]any{"root": c.Args["dir"], "tables": starlark.NewList(nil), "formats": []string{"nb"}, "bytes": 4242})
}

func (f *cfake) startNodes(env *builtins.Env, c fakeCall) (any, error) {
	if env.Target == nil || !env.Target.Scratch {
		return nil, drivers.Errorf(drivers.Script, "cassandra.start_nodes starts nodes of scratch targets only")
	}
	f.Model.Nodes = nil
	var eps []string
	for _, raw := range c.Args["nodes"].([]any) {
		a := raw.(map[string]any)
		spec := specNode(env, a["name"].(string))
		n := &cnode{Name: a["name"].(string), Host: spec["host"].(string), DC: a["dc"].(string), Rack: a["rack"].(string), Up: true,
			Mode: c.Args["storage_compatibility_mode"].(string)}
		toks := spec["tokens"]
		if v, ok := a["tokens"]; ok {
			toks = v
		}
		for _, t := range toks.([]any) {
			n.Tokens = append(n.Tokens, t.(string))
		}
		f.Model.Nodes = append(f.Model.Nodes, n)
		eps = append(eps, fmt.Sprintf("%s:%v", n.Host, env.Target.Spec["cql_port"]))
	}
	return eps, nil
}

func specNode(env *builtins.Env, name string) map[string]any {
	for _, r := range env.Target.Spec["nodes"].([]any) {
		if m := r.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

func (f *cfake) status(env *builtins.Env, c fakeCall) (any, error) {
	var out []any
	for _, raw := range c.Args["nodes"].([]any) {
		name := raw.(map[string]any)["name"].(string)
		n := f.Model.node(name)
		if n == nil {
			return nil, drivers.Errorf(drivers.Script, "%s is not a node of the target", name)
		}
		ring := map[string]any{}
		for _, o := range f.Model.Nodes {
			ring[o.Host] = "UN"
			if !o.Up {
				ring[o.Host] = "DN"
			}
		}
		for k, v := range n.Ring {
			ring[k] = v
		}
		toks := make([]any, len(n.Tokens))
		for i, t := range n.Tokens {
			toks[i] = t
		}
		st := map[string]any{"name": n.Name, "host": n.Host, "address": n.Host, "up": n.Up, "error": "", "cluster_name": "prod", "release_version": "5.0.8",
			"storage_compatibility_mode": n.Mode, "partitioner": f.Model.Partitioner, "dc": n.DC, "rack": n.Rack, "host_id": "h-" + n.Name,
			"tokens": toks, "schema_version": "v1", "ring": ring}
		if !n.Up {
			st["error"] = fmt.Sprintf("CQL at %s:9042 does not answer: connection refused; JMX does not answer", n.Host)
			st["ring"] = map[string]any{}
		}
		s, err := builtins.Struct(st)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (f *cfake) snapshot(env *builtins.Env, c fakeCall) (any, error) {
	tag := c.Args["tag"].(string)
	f.Model.Snapshots[tag] = map[string]ctable{}
	for _, kt := range c.Args["tables"].([]any) {
		if tb := f.Model.table(kt.(string)); tb != nil {
			f.Model.Snapshots[tag][kt.(string)] = *tb
		}
	}
	return nil, nil
}

func (f *cfake) clearSnapshot(env *builtins.Env, c fakeCall) (any, error) {
	delete(f.Model.Snapshots, c.Args["tag"].(string))
	return nil, nil
}

// snapshotDirs answers a directory under the node's data dir for a snapshot the
// fake took.
func (f *cfake) snapshotDirs(env *builtins.Env, c fakeCall) (any, error) {
	tag := c.Args["tag"].(string)
	kt := c.Args["keyspace"].(string) + "." + c.Args["table"].(string)
	if _, ok := f.Model.Snapshots[tag][kt]; !ok {
		return []any{}, nil
	}
	dd := specNode(env, c.Member)["data_dirs"].([]any)[0].(string)
	return []any{fmt.Sprintf("%s/%s/%s-1/snapshots/%s", dd, c.Args["keyspace"], c.Args["table"], tag)}, nil
}

var snapDirRe = regexp.MustCompile(`/snapshots/([^/]+)$`)

func (f *cfake) load(kt string) {
	tb := f.Model.table(kt)
	if tb == nil {
		f.t.Errorf("load into %s, which the model lacks (was it created?)", kt)
		return
	}
	rows, digest := snapRows[kt], snapDigest(kt)
	if f.Load != nil {
		rows, digest = f.Load(kt)
	}
	if tb.Rows > 0 {
		// Loading on top of rows (an import run twice): the model adds them up,
		// so that a double import fails the row count and the digest.
		rows, digest = rows+tb.Rows, "mixed:"+digest
	}
	tb.Rows, tb.Digest = rows, digest
}

// stage gathers a job's SSTables into its staging dir as import_all does
// (cassops.Merge refuses a staging dir that is not empty) and returns the dir.
func stage(j map[string]any) (string, error) {
	s, _ := j["staging"].(string)
	if s == "" {
		return "", nil
	}
	dst := filepath.Join(s, j["keyspace"].(string), j["table"].(string))
	if entries, _ := os.ReadDir(dst); len(entries) > 0 {
		return "", drivers.Errorf(drivers.Permanent, "%s.%s: stage %s: the directory is not empty", j["keyspace"], j["table"], dst)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	return dst, os.WriteFile(filepath.Join(dst, "nb-1-big-Data.db"), []byte("staged"), 0o644)
}

func (f *cfake) importAll(env *builtins.Env, c fakeCall) (any, error) {
	var out []any
	loaded := map[string]bool{}
	for _, raw := range c.Args["jobs"].([]any) {
		j := raw.(map[string]any)
		kt := j["keyspace"].(string) + "." + j["table"].(string)
		dirs := j["dirs"].([]any)
		if m := snapDirRe.FindStringSubmatch(dirs[0].(string)); m != nil {
			// A rollback imports the safety snapshot back.
			saved := f.Model.Snapshots[m[1]][kt]
			tb := f.Model.table(kt)
			tb.Rows, tb.Digest = saved.Rows, saved.Digest
		} else {
			dst, err := stage(j)
			if err != nil {
				return nil, err
			}
			if !loaded[kt] {
				f.load(kt)
				loaded[kt] = true
			}
			if dst != "" && c.Args["copy_data"] != true {
				os.Remove(filepath.Join(dst, "nb-1-big-Data.db")) // nodetool import moves the files in
			}
		}
		s, _ := builtins.Struct(map[string]any{"node": j["node"], "keyspace": j["keyspace"], "table": j["table"], "sstables": 1, "seconds": 0.5})
		out = append(out, s)
	}
	return out, nil
}

func (f *cfake) loader(env *builtins.Env, c fakeCall) (any, error) {
	var out []any
	for _, raw := range c.Args["jobs"].([]any) {
		j := raw.(map[string]any)
		f.load(j["keyspace"].(string) + "." + j["table"].(string))
		s, _ := builtins.Struct(map[string]any{"keyspace": j["keyspace"], "table": j["table"], "sstables": len(j["dirs"].([]any)), "seconds": 1.5})
		out = append(out, s)
	}
	return out, nil
}

var (
	limitOne     = regexp.MustCompile(`^SELECT \* FROM "([^"]+)"\."([^"]+)" LIMIT 1$`)
	createKs     = regexp.MustCompile(`^CREATE KEYSPACE IF NOT EXISTS "([^"]+)" WITH replication = \{(.*)\} AND durable_writes`)
	createTable  = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) `)
	truncateRe   = regexp.MustCompile(`^TRUNCATE "([^"]+)"\."([^"]+)"$`)
	dropTableRe  = regexp.MustCompile(`^DROP TABLE IF EXISTS "([^"]+)"\."([^"]+)"$`)
	dropKsRe     = regexp.MustCompile(`^DROP KEYSPACE IF EXISTS "([^"]+)"$`)
	replEntryRe  = regexp.MustCompile(`'([^']+)': '([^']+)'`)
	createTypeRe = regexp.MustCompile(`^CREATE (TYPE|INDEX) IF NOT EXISTS `)
)

func (f *cfake) query(env *builtins.Env, c fakeCall) (any, error) {
	stmt := c.Args["stmt"].(string)
	if m := limitOne.FindStringSubmatch(stmt); m != nil {
		tb := f.Model.table(m[1] + "." + m[2])
		if tb == nil {
			return nil, drivers.Errorf(drivers.Permanent, "table %s.%s does not exist", m[1], m[2])
		}
		if tb.Rows > 0 {
			return []any{map[string]any{"id": 1}}, nil
		}
		return []any{}, nil
	}
	return nil, drivers.Errorf(drivers.Permanent, "fake cql.query does not know %q", stmt)
}

func (f *cfake) exec(env *builtins.Env, c fakeCall) (any, error) {
	stmt := strings.Join(strings.Fields(c.Args["stmt"].(string)), " ")
	switch {
	case createKs.MatchString(stmt):
		m := createKs.FindStringSubmatch(stmt)
		if f.Model.Keyspaces[m[1]] == nil {
			repl := map[string]any{}
			for _, e := range replEntryRe.FindAllStringSubmatch(m[2], -1) {
				repl[e[1]] = e[2]
			}
			f.Model.Keyspaces[m[1]] = &ckeyspace{Replication: repl, Tables: map[string]*ctable{}}
		}
	case createTable.MatchString(stmt):
		m := createTable.FindStringSubmatch(stmt)
		k := f.Model.Keyspaces[m[1]]
		if k == nil {
			return nil, drivers.Errorf(drivers.Permanent, "keyspace %s does not exist", m[1])
		}
		if k.Tables[m[2]] == nil {
			k.Tables[m[2]] = &ctable{Columns: map[string]string{"id": "int", "v": "text"}}
		}
	case createTypeRe.MatchString(stmt):
	case truncateRe.MatchString(stmt):
		m := truncateRe.FindStringSubmatch(stmt)
		if tb := f.Model.table(m[1] + "." + m[2]); tb != nil {
			tb.Rows, tb.Digest = 0, ""
		}
	case dropTableRe.MatchString(stmt):
		m := dropTableRe.FindStringSubmatch(stmt)
		if k := f.Model.Keyspaces[m[1]]; k != nil {
			delete(k.Tables, m[2])
		}
	case dropKsRe.MatchString(stmt):
		delete(f.Model.Keyspaces, dropKsRe.FindStringSubmatch(stmt)[1])
	default:
		return nil, drivers.Errorf(drivers.Permanent, "fake cql.exec does not know %q", stmt)
	}
	return nil, nil
}

func (f *cfake) keyspace(env *builtins.Env, c fakeCall) (any, error) {
	k := f.Model.Keyspaces[c.Args["name"].(string)]
	if k == nil {
		return builtins.Struct(map[string]any{"exists": false, "create": "", "replication": map[string]any{}, "tables": map[string]any{}, "views": []any{}})
	}
	tables := map[string]any{}
	for t := range k.Tables {
		tables[t] = "id-" + t
	}
	return builtins.Struct(map[string]any{"exists": true, "create": "CREATE KEYSPACE ...", "replication": k.Replication, "tables": tables, "views": []any{}})
}

func (f *cfake) columns(env *builtins.Env, c fakeCall) (any, error) {
	tb := f.Model.table(c.Args["keyspace"].(string) + "." + c.Args["table"].(string))
	var out []any
	if tb != nil {
		var names []string
		for n := range tb.Columns {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s, _ := builtins.Struct(map[string]any{"name": n, "type": tb.Columns[n], "kind": "regular", "position": -1})
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *cfake) count(env *builtins.Env, c fakeCall) (any, error) {
	tb := f.Model.table(c.Args["keyspace"].(string) + "." + c.Args["table"].(string))
	if tb == nil {
		return nil, drivers.Errorf(drivers.Permanent, "no such table")
	}
	return tb.Rows, nil
}

func (f *cfake) sampleDigest(env *builtins.Env, c fakeCall) (any, error) {
	tb := f.Model.table(c.Args["keyspace"].(string) + "." + c.Args["table"].(string))
	if tb == nil {
		return nil, drivers.Errorf(drivers.Permanent, "no such table")
	}
	return builtins.Struct(map[string]any{"points": 32, "partitions": 10, "rows": 20, "digest": tb.Digest})
}

// ---- running restores ----

// run runs the embedded cassandra.star with the fakes; the work dir is kept.
func (f *cfake) run(o engine.Options) (*engine.Report, error) {
	f.t.Helper()
	return runFaked(f.t, "cassandra", f.modules, o)
}

// runner runs the embedded cassandra.star with the fakes in o.WorkDir. It may be
// called from another goroutine than the test's.
func (f *cfake) runner(o engine.Options) (*engine.Report, error) {
	return runEmbedded("cassandra", f.modules, o)
}

// runKilled starts a restore in o.WorkDir (given) that "dies" in the nth call of
// builtin, as restore-run killed with SIGKILL would: before(c) does the part of
// the call that got done, then the call never returns. runKilled returns once the
// run is frozen there, with its run state and the model as the kill left them,
// and the index of the frozen call in f.calls. The frozen run is released (and
// waited for) when the test ends; what it does then is not looked at.
func (f *cfake) runKilled(o engine.Options, builtin string, n int, before func(c fakeCall)) int {
	t := f.t
	t.Helper()
	frozen, release := make(chan int, 1), make(chan struct{})
	f.Hooks[builtin] = func(c fakeCall) error {
		if c.N != n {
			return nil
		}
		if before != nil {
			before(c)
		}
		frozen <- len(f.callsTo()) - 1
		<-release
		return drivers.Errorf(drivers.Cancelled, "the test released the run it had frozen as killed")
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.runner(o)
		done <- err
	}()
	t.Cleanup(func() {
		close(release)
		<-done
	})
	select {
	case at := <-frozen:
		delete(f.Hooks, builtin)
		// The dead process held the target lock in this process: the resume
		// takes it in a new lock dir, as a new process would take the dead one's.
		t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
		return at
	case err := <-done:
		t.Fatalf("the run ended (%v) before call %d of %s, where the test kills it", err, n, builtin)
	case <-time.After(time.Minute):
		t.Fatalf("the run did not reach call %d of %s within a minute", n, builtin)
	}
	return 0
}

// resume resumes the run in workDir as `restore-run resume` does.
func (f *cfake) resume(snap, target, workDir string, params map[string]string, rollback bool) (*engine.Report, error) {
	f.t.Helper()
	st, err := engine.ReadRunState(workDir)
	if err != nil {
		f.t.Fatalf("read the run state of the killed run: %v", err)
	}
	return f.run(engine.Options{Snapshot: snap, Target: target, WorkDir: workDir, Params: params, Resume: st, RollbackOnly: rollback})
}

// callsSince lists the calls of names recorded after index at.
func (f *cfake) callsSince(at int, names ...string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls[at+1:] {
		if len(names) == 0 || contains(names, c.Builtin) {
			out = append(out, c)
		}
	}
	return out
}

// cassTarget writes a target file for the model's nodes, each with a data dir
// under t.TempDir (created), and returns its path.
func (f *cfake) cassTarget(t *testing.T) string {
	t.Helper()
	t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	t.Setenv("CASS_TEST_PW", "hunter2")
	base := t.TempDir()
	var b strings.Builder
	b.WriteString("engine: cassandra\ncluster_name: prod\ncql:\n  username: restore\n  password: {env: CASS_TEST_PW}\nnodes:\n")
	for _, n := range f.Model.Nodes {
		dd := filepath.Join(base, n.Name, "data")
		os.MkdirAll(dd, 0o755)
		fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    data_dirs: [%s]\n", n.Name, n.Host, dd)
	}
	p := filepath.Join(base, "cluster.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cassChecks lists cassandra.star's checks for the snapshot, all ok unless named.
func cassChecks(failed ...string) []string {
	names := []string{"every node up and normal", "schema agreement"}
	for _, kt := range []string{"app.events", "app.users", "kv.items"} {
		names = append(names, "rows in "+kt, "sampled partitions of "+kt)
	}
	var out []string
	for _, n := range names {
		if contains(failed, n) {
			out = append(out, n+":FAILED")
		} else {
			out = append(out, n+":ok")
		}
	}
	return out
}
