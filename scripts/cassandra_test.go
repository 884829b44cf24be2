package scripts_test

// Tests of the embedded cassandra.star with fake cassandra and cql builtins (see
// cassandrafake_test.go): whole restores through engine.Runner, real blob and fs,
// no Cassandra. e2e/cassandra_test.go runs the same script against real nodes.

import (
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// 1. Same topology: a scratch cluster started with the snapshot's tokens, every
// node importing its twin's SSTables in one call.
func TestCassandraScratchImport(t *testing.T) {
	f := newCfake(t)
	rep, err := f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: "scratch://cassandra?nodes=3"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:ok commit:ok" {
		t.Errorf("phases = %s", got)
	}
	equal(t, "checks", checks(rep), cassChecks())
	if rep.Details["mode"] != "import" || len(rep.Target.Endpoints) != 3 {
		t.Errorf("details %v, endpoints %v", rep.Details, rep.Target.Endpoints)
	}
	start := f.callsTo("cassandra.start_nodes")
	if len(start) != 1 || start[0].Args["cluster_name"] != "prod" || start[0].Args["storage_compatibility_mode"] != "CASSANDRA_4" {
		t.Fatalf("start_nodes: %+v", start)
	}
	for i, raw := range start[0].Args["nodes"].([]any) {
		n := raw.(map[string]any)
		if n["tokens"].([]any)[0] != snapTokens[i] || n["dc"] != "dc1" || n["rack"] != "r1" {
			t.Errorf("scratch node %d starts with %v: want the snapshot node's tokens, DC and rack", i, n)
		}
	}
	imports := f.callsTo("cassandra.import_all")
	if len(imports) != 1 {
		t.Fatalf("%d import_all calls, want one for every node at once", len(imports))
	}
	jobs := imports[0].Args["jobs"].([]any)
	if len(jobs) != 9 || imports[0].Args["parallel"] != int64(0) {
		t.Errorf("%d jobs, parallel %v", len(jobs), imports[0].Args["parallel"])
	}
	for _, raw := range jobs {
		j := raw.(map[string]any)
		node := j["node"].(string)
		src := "src-" + strings.TrimPrefix(node, "n")
		dir := j["dirs"].([]any)[0].(string)
		if !strings.HasSuffix(dir, "/download/nodes/"+src+"/"+j["keyspace"].(string)+"/"+j["table"].(string)) {
			t.Errorf("node %s imports %s: want its twin %s's files", node, dir, src)
		}
		if !strings.HasSuffix(j["staging"].(string), "/staging/"+node) || !strings.HasPrefix(j["staging"].(string), rep.WorkDir) {
			t.Errorf("staging %s", j["staging"])
		}
	}
	if n := len(f.callsTo("cassandra.sstableloader", "cassandra.snapshot", "cql.query")); n != 0 {
		t.Errorf("%d loader/snapshot/emptiness calls on a scratch import", n)
	}
	// Schema: keyspaces as the snapshot has them, then each table's schema.cql.
	equal(t, "statements", f.execs()[:5], []string{
		`CREATE KEYSPACE IF NOT EXISTS "app" WITH replication = {'class': 'org.apache.cassandra.locator.NetworkTopologyStrategy', 'dc1': '3'} AND durable_writes = true`,
		"CREATE TYPE IF NOT EXISTS app.addr (street text)",
		"CREATE TABLE IF NOT EXISTS app.events (id int PRIMARY KEY, v text) WITH ID = 00000000-0000-0000-0000-000000000001",
		"CREATE TYPE IF NOT EXISTS app.addr (street text)",
		"CREATE TABLE IF NOT EXISTS app.users (id int PRIMARY KEY, v text) WITH ID = 00000000-0000-0000-0000-000000000001",
	})
}

// 2. Another topology: sstableloader streams every node's files; keyspaces get
// at most as many replicas as the target has nodes.
func TestCassandraScratchLoader(t *testing.T) {
	f := newCfake(t)
	rep, err := f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: "scratch://cassandra?nodes=1"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	equal(t, "checks", checks(rep), cassChecks())
	if rep.Details["mode"] != "loader" {
		t.Errorf("mode %v", rep.Details["mode"])
	}
	start := f.callsTo("cassandra.start_nodes")[0].Args["nodes"].([]any)
	if len(start) != 1 || start[0].(map[string]any)["tokens"] != nil {
		t.Errorf("start_nodes %v: a node of another topology keeps its balanced tokens", start)
	}
	loads := f.callsTo("cassandra.sstableloader")
	if len(loads) != 1 || len(f.callsTo("cassandra.import_all")) != 0 {
		t.Fatalf("loader calls %d, import calls %d", len(loads), len(f.callsTo("cassandra.import_all")))
	}
	for _, raw := range loads[0].Args["jobs"].([]any) {
		if dirs := raw.(map[string]any)["dirs"].([]any); len(dirs) != 3 {
			t.Errorf("job %v: want every snapshot node's directory", raw)
		}
	}
	if got := f.execs()[0]; !strings.Contains(got, "'dc1': '1'") {
		t.Errorf("app created as %s: want RF 1 on one node", got)
	}

	t.Run("fit_replication=false keeps the snapshot's", func(t *testing.T) {
		f := newCfake(t)
		f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: "scratch://cassandra?nodes=1", Params: map[string]string{"fit_replication": "false"}})
		if got := f.execs()[0]; !strings.Contains(got, "'dc1': '3'") {
			t.Errorf("app created as %s", got)
		}
	})
}

// 3. --param mode.
func TestCassandraModeParam(t *testing.T) {
	snap := packCassandra(t, nil)
	f := newCfake(t)
	rep, err := f.run(engine.Options{Snapshot: snap, Target: "scratch://cassandra?nodes=3", Params: map[string]string{"mode": "loader"}})
	if err != nil || rep.Details["mode"] != "loader" || len(f.callsTo("cassandra.import_all")) != 0 {
		t.Errorf("mode=loader: %v, details %v", err, rep.Details)
	}
	f = newCfake(t)
	rep, err = f.run(engine.Options{Snapshot: snap, Target: "scratch://cassandra?nodes=1", Params: map[string]string{"mode": "import"}})
	wantFailure(t, rep, err, drivers.Permanent, "mode=import needs the same topology", "the scratch target has 1 nodes, the snapshot 3")
	f = newCfake(t)
	rep, err = f.run(engine.Options{Snapshot: snap, Target: "scratch://cassandra", Params: map[string]string{"mode": "fastest"}})
	wantFailure(t, rep, err, drivers.Permanent, "--param mode=fastest: want auto, import or loader")
	if phases(rep) != "download:failed(permanent)" {
		t.Errorf("phases %s", phases(rep))
	}
}

// 4. An existing cluster of the same topology with empty tables.
func TestCassandraExistingClusterImport(t *testing.T) {
	f := newCfake(t).withTables(0)
	target := f.cassTarget(t)
	rep, err := f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: target})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	equal(t, "checks", checks(rep), cassChecks())
	if rep.Details["mode"] != "import" {
		t.Errorf("mode %v", rep.Details["mode"])
	}
	jobs := f.callsTo("cassandra.import_all")[0].Args["jobs"].([]any)
	for _, raw := range jobs {
		j := raw.(map[string]any)
		if !strings.HasSuffix(j["staging"].(string), "/data.restore-run/staging-"+rep.RunID) || !strings.Contains(j["staging"].(string), "/"+j["node"].(string)+"/") {
			t.Errorf("node %s stages in %s: want next to its own data dir", j["node"], j["staging"])
		}
	}
	if n := len(f.callsTo("cassandra.snapshot", "cassandra.start_nodes")); n != 0 {
		t.Errorf("%d snapshot/start calls for empty tables of a running cluster", n)
	}
	for _, s := range f.execs() {
		if strings.HasPrefix(s, "TRUNCATE") || strings.HasPrefix(s, "CREATE KEYSPACE") {
			t.Errorf("ran %s: the keyspaces exist and the tables are empty", s)
		}
	}
	// The secret never reaches a recorded call.
	for _, c := range rep.Calls {
		if strings.Contains(c.Args, "hunter2") {
			t.Errorf("%s records the password", c.Builtin)
		}
	}
}

// 5. Tables with data are refused before anything changes; replace=true snapshots,
// truncates, loads and clears the snapshot.
func TestCassandraReplace(t *testing.T) {
	snap := packCassandra(t, nil)
	t.Run("refused without replace", func(t *testing.T) {
		f := newCfake(t).withTables(7)
		rep, err := f.run(engine.Options{Snapshot: snap, Target: f.cassTarget(t)})
		wantFailure(t, rep, err, drivers.Permanent, "tables already hold data: app.events, app.users, kv.items", "--param replace=true")
		if phases(rep) != "download:ok prepare:failed(permanent) rollback:ok" {
			t.Errorf("phases %s", phases(rep))
		}
		if n := len(f.execs()) + len(f.callsTo("cassandra.import_all", "cassandra.sstableloader", "cassandra.snapshot")); n != 0 {
			t.Errorf("%d changes made: %v", n, f.execs())
		}
		if f.Model.table("app.users").Rows != 7 {
			t.Error("data changed")
		}
	})
	for _, keep := range []bool{false, true} {
		name := map[bool]string{false: "replace=true", true: "replace=true keep_previous=true"}[keep]
		t.Run(name, func(t *testing.T) {
			f := newCfake(t).withTables(7)
			params := map[string]string{"replace": "true"}
			if keep {
				params["keep_previous"] = "true"
			}
			rep, err := f.run(engine.Options{Snapshot: snap, Target: f.cassTarget(t), Params: params})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			equal(t, "checks", checks(rep), cassChecks())
			tag := "restore-run-before-" + rep.RunID
			var order []string
			for _, c := range f.callsTo("cassandra.snapshot", "cql.exec", "cassandra.import_all", "cassandra.clear_snapshot") {
				switch c.Builtin {
				case "cql.exec":
					if s := c.Args["stmt"].(string); strings.HasPrefix(s, "TRUNCATE") {
						order = append(order, s+" "+c.Args["consistency"].(string))
					}
				case "cassandra.snapshot":
					order = append(order, "snapshot "+c.Args["tag"].(string))
				default:
					order = append(order, c.Builtin)
				}
			}
			want := []string{"snapshot " + tag, `TRUNCATE "app"."events" ALL`, `TRUNCATE "app"."users" ALL`, `TRUNCATE "kv"."items" ALL`, "cassandra.import_all"}
			if !keep {
				want = append(want, "cassandra.clear_snapshot")
			}
			equal(t, "order", order, want)
			if _, ok := f.Model.Snapshots[tag]; ok == !keep {
				t.Errorf("snapshot %s kept: %v", tag, ok)
			}
		})
	}
}

// 6. A failed validation after a replace: the loaded rows go, the replaced ones
// come back from the snapshot, created tables are dropped.
func TestCassandraRollback(t *testing.T) {
	f := newCfake(t).withTables(7)
	delete(f.Model.Keyspaces["kv"].Tables, "items") // created by the restore
	f.Load = func(kt string) (int64, string) {      // one row is lost on the way
		return snapRows[kt] - 1, snapDigest(kt)
	}
	rep, err := f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: f.cassTarget(t), Params: map[string]string{"replace": "true"}})
	wantFailure(t, rep, err, drivers.Validation, "rows in app.events (expected 400, got 399)")
	if phases(rep) != "download:ok prepare:ok execute:ok validate:failed(validation) rollback:ok" || !rep.RolledBack {
		t.Errorf("phases %s, rolled back %v", phases(rep), rep.RolledBack)
	}
	for _, kt := range []string{"app.events", "app.users"} {
		if tb := f.Model.table(kt); tb.Rows != 7 || tb.Digest != "old-"+kt {
			t.Errorf("%s after rollback: %d rows, digest %s; want the 7 old rows", kt, tb.Rows, tb.Digest)
		}
	}
	if f.Model.table("kv.items") != nil {
		t.Error("kv.items, created by the restore, is still there")
	}
	reimports := f.callsTo("cassandra.import_all")
	last := reimports[len(reimports)-1]
	if last.Phase != drivers.PhaseRollback || last.Args["copy_data"] != true || len(last.Args["jobs"].([]any)) != 6 {
		t.Errorf("rollback import: %+v", last)
	}
	if n := len(f.callsTo("cassandra.clear_snapshot")); n != 0 {
		t.Error("the safety snapshot was cleared after a failed restore")
	}
}

// 7. The cluster must be whole and of the snapshot's kind before anything changes.
func TestCassandraPrepareRefusals(t *testing.T) {
	snap := packCassandra(t, nil)
	cases := []struct {
		name  string
		brk   func(m *cmodel)
		class drivers.Class
		want  []string
	}{
		{"node down", func(m *cmodel) { m.Nodes[2].Up = false }, drivers.Transient,
			[]string{"node n3 (10.1.0.3) is down", "connection refused", "Every node must be up and normal"}},
		{"node seen down", func(m *cmodel) { m.Nodes[0].Ring = map[string]string{"10.1.0.2": "DN"} }, drivers.Transient,
			[]string{"node n1 sees node n2 (10.1.0.2) as DN"}},
		{"format mode", func(m *cmodel) {
			for _, n := range m.Nodes {
				n.Mode = "NONE"
			}
		}, drivers.Permanent, []string{"storage_compatibility_mode CASSANDRA_4, but node n1 runs in NONE", "set `storage_compatibility_mode: CASSANDRA_4` in every node's cassandra.yaml"}},
		{"partitioner", func(m *cmodel) { m.Partitioner = "org.apache.cassandra.dht.RandomPartitioner" }, drivers.Permanent,
			[]string{"node n1 uses org.apache.cassandra.dht.RandomPartitioner"}},
		{"column types", func(m *cmodel) { m.Keyspaces["app"].Tables["users"].Columns["v"] = "blob" }, drivers.Permanent,
			[]string{"table app.users exists with column v blob, the snapshot has v text"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCfake(t).withTables(0)
			c.brk(f.Model)
			rep, err := f.run(engine.Options{Snapshot: snap, Target: f.cassTarget(t)})
			wantFailure(t, rep, err, c.class, c.want...)
			if !strings.HasPrefix(phases(rep), "download:ok prepare:failed") {
				t.Errorf("phases %s", phases(rep))
			}
			if n := len(f.execs()) + len(f.callsTo("cassandra.import_all", "cassandra.sstableloader")); n != 0 {
				t.Errorf("%d changes made", n)
			}
		})
	}
}

// 8. Another topology of an existing cluster falls back to sstableloader, or is
// refused with mode=import.
func TestCassandraExistingOtherTopology(t *testing.T) {
	snap := packCassandra(t, nil)
	f := newCfake(t).withTables(0)
	f.Model.Nodes[1].Tokens = []string{"42"}
	rep, err := f.run(engine.Options{Snapshot: snap, Target: f.cassTarget(t)})
	if err != nil || rep.Details["mode"] != "loader" {
		t.Fatalf("run: %v, details %v", err, rep.Details)
	}
	f = newCfake(t).withTables(0)
	f.Model.Nodes[1].Rack = "r2"
	rep, err = f.run(engine.Options{Snapshot: snap, Target: f.cassTarget(t), Params: map[string]string{"mode": "import"}})
	wantFailure(t, rep, err, drivers.Permanent, "needs the same topology", "snapshot node src-2 (1 tokens, dc1/r1) has no target node with the same tokens, DC and rack")
}

// 9. A plan of a scratch restore runs nothing and shows every step.
func TestCassandraPlan(t *testing.T) {
	f := newCfake(t)
	rep, err := f.run(engine.Options{Mode: engine.ModePlan, Snapshot: packCassandra(t, nil), Target: "scratch://cassandra?nodes=3"})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if got := phases(rep); got != "download:planned prepare:planned execute:planned validate:skipped" {
		t.Errorf("phases %s", got)
	}
	for _, c := range f.callsTo() {
		if c.Builtin == "cassandra.start_nodes" || c.Builtin == "cassandra.import_all" || c.Builtin == "cql.exec" {
			t.Errorf("plan ran %s", c.Builtin)
		}
	}
	var planned []string
	for _, c := range rep.Calls {
		if c.Planned {
			planned = append(planned, c.Builtin)
		}
	}
	joined := strings.Join(planned, " ")
	for _, want := range []string{"blob.fetch_all", "cassandra.start_nodes", "cql.exec", "cassandra.import_all"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plan lacks %s: %s", want, joined)
		}
	}
}

// 10. What download refuses: a manifest without Cassandra metadata, a snapshot the
// inspection finds damaged. Nothing else runs.
func TestCassandraDownloadRefusals(t *testing.T) {
	bare := packCassandra(t, map[string]any{"revision": 4, "total_key": 2})
	f := newCfake(t)
	rep, err := f.run(engine.Options{Snapshot: bare, Target: "scratch://cassandra"})
	wantFailure(t, rep, err, drivers.Corruption, "has no Cassandra metadata", "snapshot pack --engine cassandra --from-cluster")
	if phases(rep) != "download:failed(corruption)" || len(f.callsTo()) != 0 {
		t.Errorf("phases %s, %d fake calls", phases(rep), len(f.callsTo()))
	}

	f = newCfake(t)
	f.Hooks["cassandra.inspect_snapshot"] = func(fakeCall) error {
		return drivers.Errorf(drivers.Corruption, "snapshot table dir nodes/src-2/app/users: nb-1-big-Data.db has CRC32 1 but its Digest.crc32 says 2")
	}
	rep, err = f.run(engine.Options{Snapshot: packCassandra(t, nil), Target: "scratch://cassandra?nodes=3"})
	wantFailure(t, rep, err, drivers.Corruption, "Digest.crc32")
	if phases(rep) != "download:failed(corruption)" || len(f.callsTo("cassandra.start_nodes")) != 0 {
		t.Errorf("phases %s", phases(rep))
	}
}
