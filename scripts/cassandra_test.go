package scripts_test

// Tests of the embedded cassandra.star with fake cassandra and cql builtins (see
// cassandrafake_test.go): whole restores through engine.Runner, real blob and fs,
// no Cassandra. e2e/cassandra_test.go runs the same script against real nodes.

import (
	"os"
	"path/filepath"
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

// 11. Resume after a kill -9 during the import (replace=true): the safety snapshot
// and the truncation are not done again; the half-done load is not imported on
// top of: its tables are truncated and its staging removed first, then it runs
// again. The rows are the snapshot's, once.
func TestCassandraResumeAfterKillDuringImport(t *testing.T) {
	f := newCfake(t).withTables(5)
	snap, target := packCassandra(t, nil), f.cassTarget(t)
	wd := filepath.Join(t.TempDir(), "work")
	params := map[string]string{"replace": "true"}
	var staged string
	at := f.runKilled(engine.Options{Snapshot: snap, Target: target, WorkDir: wd, Params: params}, "cassandra.import_all", 1, func(c fakeCall) {
		// The first node got its first table in before the kill; its staging holds the
		// files of the next.
		jobs := c.Args["jobs"].([]any)
		j := jobs[0].(map[string]any)
		f.load(j["keyspace"].(string) + "." + j["table"].(string))
		var err error
		if staged, err = stage(jobs[1].(map[string]any)); err != nil {
			t.Error(err)
		}
	})
	st, err := engine.ReadRunState(wd)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.CheckpointNames(), ","); got != "cassandra:creating,cassandra:schema,cassandra:safety,cassandra:truncating,cassandra:truncated,cassandra:loading" {
		t.Errorf("checkpoints of the killed run: %s", got)
	}
	rep, err := f.resume(snap, target, wd, params, false)
	if err != nil {
		t.Fatalf("resume: %v (phases %s)", err, phases(rep))
	}
	if phases(rep) != "download:done before resume prepare:done before resume execute:ok validate:ok commit:ok" {
		t.Errorf("phases %s", phases(rep))
	}
	equal(t, "checks", checks(rep), cassChecks())
	for kt, want := range snapRows {
		if tb := f.Model.table(kt); tb.Rows != want || tb.Digest != snapDigest(kt) {
			t.Errorf("%s after the resume: %d rows, digest %s; want the snapshot's %d once", kt, tb.Rows, tb.Digest, want)
		}
	}
	if n := len(f.callsSince(at, "cassandra.snapshot")); n != 0 {
		t.Errorf("the safety snapshot was taken again (%d calls) after checkpoint cassandra:safety", n)
	}
	var truncated []string
	for _, c := range f.callsSince(at, "cql.exec") {
		if stmt := c.Args["stmt"].(string); strings.HasPrefix(stmt, "TRUNCATE") {
			truncated = append(truncated, stmt)
		}
	}
	equal(t, "truncated before the load again", truncated, []string{`TRUNCATE "app"."events"`, `TRUNCATE "app"."users"`, `TRUNCATE "kv"."items"`})
	if imp := f.callsSince(at, "cassandra.import_all"); len(imp) != 1 || imp[0].Phase != drivers.PhaseExecute {
		t.Errorf("import_all after the resume: %d calls", len(imp))
	}
	if _, err := os.Stat(staged); err == nil {
		t.Errorf("the interrupted run's staging %s is still there", staged)
	}
	if cl := f.callsSince(at, "cassandra.clear_snapshot"); len(cl) != 1 || cl[0].Phase != drivers.PhaseCommit {
		t.Errorf("clear_snapshot after the resume: %+v (want one, in commit)", cl)
	}
}

// 12. `resume --rollback` after a kill -9 during the import puts the replaced rows
// back from the safety snapshot; after a kill while the schema was being created,
// it drops what the killed run had created.
func TestCassandraResumeRollbackAfterKill(t *testing.T) {
	f := newCfake(t).withTables(5)
	delete(f.Model.Keyspaces["kv"].Tables, "items") // created by the restore
	snap, target := packCassandra(t, nil), f.cassTarget(t)
	wd := filepath.Join(t.TempDir(), "work")
	params := map[string]string{"replace": "true"}
	f.runKilled(engine.Options{Snapshot: snap, Target: target, WorkDir: wd, Params: params}, "cassandra.import_all", 1, func(c fakeCall) {
		f.load("app.events")
	})
	rep, err := f.resume(snap, target, wd, params, true)
	rolledBack(t, rep, err)
	for _, kt := range []string{"app.events", "app.users"} {
		if tb := f.Model.table(kt); tb.Rows != 5 || tb.Digest != "old-"+kt {
			t.Errorf("%s after the rollback: %d rows, digest %s; want the 5 old rows", kt, tb.Rows, tb.Digest)
		}
	}
	if f.Model.table("kv.items") != nil {
		t.Error("kv.items, created by the killed run, is still there")
	}

	// Killed after its first CREATE: the rollback drops every keyspace it created.
	f = newCfake(t)
	target = f.cassTarget(t)
	wd = filepath.Join(t.TempDir(), "work")
	f.runKilled(engine.Options{Snapshot: snap, Target: target, WorkDir: wd}, "cql.exec", 2, nil)
	if f.Model.Keyspaces["app"] == nil {
		t.Fatal("the killed run had not created keyspace app: the test kills it too early")
	}
	rep, err = f.resume(snap, target, wd, nil, true)
	rolledBack(t, rep, err)
	if len(f.Model.Keyspaces) != 0 {
		t.Errorf("keyspaces left after the rollback: %v", f.Model.Keyspaces)
	}
}

// rolledBack checks that a resume rolled the interrupted run back.
func rolledBack(t *testing.T, rep *engine.Report, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "has been rolled back") || drivers.ClassOf(err) != drivers.Permanent {
		t.Errorf("resume --rollback: %v, want the run rolled back (class permanent)", err)
	}
	if !rep.RolledBack || rep.Result != "rolled_back" || phases(rep) != "rollback:ok" {
		t.Errorf("result %s, rolled back %v, phases %s", rep.Result, rep.RolledBack, phases(rep))
	}
}

// 13. A kill -9 while the safety snapshot is taken: the resume clears the
// half-taken snapshot (nodetool refuses an existing tag) and takes it again,
// then finishes.
func TestCassandraResumeAfterKillDuringSafetySnapshot(t *testing.T) {
	f := newCfake(t).withTables(5)
	snap, target := packCassandra(t, nil), f.cassTarget(t)
	wd := filepath.Join(t.TempDir(), "work")
	params := map[string]string{"replace": "true"}
	at := f.runKilled(engine.Options{Snapshot: snap, Target: target, WorkDir: wd, Params: params}, "cassandra.snapshot", 1, nil)
	rep, err := f.resume(snap, target, wd, params, false)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	var seq []string
	for _, c := range f.callsSince(at, "cassandra.snapshot", "cassandra.clear_snapshot", "cassandra.import_all") {
		seq = append(seq, c.Builtin+"@"+c.Phase)
	}
	equal(t, "calls after the resume", seq, []string{"cassandra.clear_snapshot@execute", "cassandra.snapshot@execute", "cassandra.import_all@execute", "cassandra.clear_snapshot@commit"})
	equal(t, "checks", checks(rep), cassChecks())
}

// 14. A scratch target's nodes die with a killed run: the resume starts them again
// and redoes execute from the start, over the staging the killed run left.
func TestCassandraScratchResumeRedoesExecute(t *testing.T) {
	t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	f := newCfake(t)
	snap := packCassandra(t, nil)
	wd := filepath.Join(t.TempDir(), "work")
	target := "scratch://cassandra?nodes=3"
	at := f.runKilled(engine.Options{Snapshot: snap, Target: target, WorkDir: wd}, "cassandra.import_all", 1, func(c fakeCall) {
		if _, err := stage(c.Args["jobs"].([]any)[0].(map[string]any)); err != nil {
			t.Error(err)
		}
	})
	f.Model.Keyspaces = map[string]*ckeyspace{} // the scratch nodes died with their data
	rep, err := f.resume(snap, target, wd, nil, false)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if phases(rep) != "download:done before resume prepare:ok execute:ok validate:ok commit:ok" {
		t.Errorf("phases %s", phases(rep))
	}
	equal(t, "checks", checks(rep), cassChecks())
	for _, b := range []string{"cassandra.start_nodes", "cassandra.import_all"} {
		if n := len(f.callsSince(at, b)); n != 1 {
			t.Errorf("%s called %d times by the resume, want once", b, n)
		}
	}
}
