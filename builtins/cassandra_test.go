package builtins

import (
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/targets"
)

// cassHarness is a harness whose target is a cassandra target: scratch (3 nodes
// under the harness's target dir) or a target file's spec.
func cassHarness(t *testing.T, plan, scratch bool) *harness {
	h := newHarness(t, plan)
	var tg *drivers.Target
	var err error
	if scratch {
		tg, err = targets.Parse("scratch://cassandra?nodes=3&lib="+t.TempDir(), h.target)
	} else {
		t.Setenv("CASS_PW", "hunter2")
		tg, err = targets.ParseYAML("c.yaml", []byte("engine: cassandra\ncassandra_lib: "+t.TempDir()+"\ncql: {username: u, password: {env: CASS_PW}}\nnodes:\n  - {name: a, host: 10.0.0.1, data_dirs: ["+h.target+"/a]}\n"))
	}
	if err != nil {
		t.Fatal(err)
	}
	h.env.Target = tg
	return h
}

func node(name string) starlark.Value {
	return MustStruct(map[string]any{"name": name})
}

func TestCassandraScratchOnly(t *testing.T) {
	h := cassHarness(t, false, false)
	nodes := starlark.NewList([]starlark.Value{node("a")})
	if _, err := h.call(t, "cassandra", "start_nodes", nodes, s("c")); err == nil || !strings.Contains(err.Error(), "scratch targets only") || drivers.ClassOf(err) != drivers.Script {
		t.Errorf("start_nodes on a real target: %v", err)
	}
	if _, err := h.call(t, "cassandra", "stop_node", s("a")); err == nil || !strings.Contains(err.Error(), "scratch targets only") {
		t.Errorf("stop_node on a real target: %v", err)
	}
}

func TestCassandraNodesOfTheTargetOnly(t *testing.T) {
	h := cassHarness(t, false, false)
	for _, fn := range []string{"status", "clear_snapshot"} {
		var err error
		if fn == "status" {
			_, err = h.call(t, "cassandra", fn, starlark.NewList([]starlark.Value{node("evil")}))
		} else {
			_, err = h.call(t, "cassandra", fn, s("tag"), starlark.NewList([]starlark.Value{s("evil")}))
		}
		if err == nil || !strings.Contains(err.Error(), `"evil" is not a node of the target (nodes: a)`) {
			t.Errorf("%s: %v", fn, err)
		}
	}
	if _, err := h.call(t, "cql", "count", s("ks"), s("t")); err == nil {
		t.Error("cql.count without a cluster succeeded")
	}
	if _, err := h.call(t, "cql", "query", s("SELECT 1"), starlark.NewList(nil), s("SOMETIMES")); err == nil || !strings.Contains(err.Error(), "consistency") {
		t.Errorf("bad consistency: %v", err)
	}
	if _, err := h.call(t, "cql", "query", s("SELECT 1"), starlark.NewList(nil), s("ONE"), s("evil")); err == nil || !strings.Contains(err.Error(), `"evil" is not a node of the target`) {
		t.Errorf("query on another node: %v", err)
	}
	// nodetool runs read-only commands only.
	if _, err := h.call(t, "cassandra", "nodetool", node("a"), s("decommission")); err == nil || !strings.Contains(err.Error(), "not a read-only command") {
		t.Errorf("nodetool decommission: %v", err)
	}
	// An empty tag would clear every snapshot.
	if _, err := h.call(t, "cassandra", "clear_snapshot", s("")); err == nil || !strings.Contains(err.Error(), "tag is empty") {
		t.Errorf("clear_snapshot(\"\"): %v", err)
	}
	// Missing jars: the error names the fix.
	if _, err := h.call(t, "cassandra", "status"); err == nil || !strings.Contains(drivers.HintOf(err), "./test.sh") {
		t.Errorf("status without jars: %v (hint %q)", err, drivers.HintOf(err))
	}
	// Job dirs are confined like every path.
	jobs, _ := ToValue([]any{map[string]any{"node": "a", "keyspace": "ks", "table": "t", "dirs": []any{"/etc"}, "staging": nil}})
	if _, err := h.call(t, "cassandra", "import_all", jobs); err == nil || !strings.Contains(err.Error(), "outside the run's work dir") {
		t.Errorf("import from /etc: %v", err)
	}
}

func TestCassandraPlanPlaceholders(t *testing.T) {
	h := cassHarness(t, true, true)
	// A plan starts nothing, so READs of the scratch cluster answer placeholders.
	v, err := h.call(t, "cql", "count", s("ks"), s("t"))
	if err != nil || v != starlark.None {
		t.Errorf("planned count = %v, %v", v, err)
	}
	v, err = h.call(t, "cassandra", "status")
	if err != nil || v.(*starlark.List).Len() != 0 {
		t.Errorf("planned status = %v, %v", v, err)
	}
	nodes, _ := ToValue([]any{map[string]any{"name": "n1", "tokens": []any{"5"}}, map[string]any{"name": "n2"}})
	v, err = h.call(t, "cassandra", "start_nodes", nodes, s("prod"))
	if err != nil || !strings.Contains(v.String(), "127.0.0.1:") || !strings.Contains(v.String(), "127.0.0.2:") {
		t.Errorf("planned start_nodes = %v, %v", v, err)
	}
	if len(cassandraNodesOf(h.env).names()) != 0 {
		t.Error("a plan started nodes")
	}
	jobs, _ := ToValue([]any{map[string]any{"node": "n1", "keyspace": "ks", "table": "t", "dirs": []any{h.work + "/download/nodes/x/ks/t"}, "staging": h.work + "/staging/n1"}})
	v, err = h.call(t, "cassandra", "import_all", jobs)
	if err != nil || !strings.Contains(v.String(), `node = "n1"`) || !strings.Contains(v.String(), "sstables = None") {
		t.Errorf("planned import_all = %v, %v", v, err)
	}
	calls := h.env.Calls()
	if last := calls[len(calls)-1]; !last.Planned || last.Builtin != "cassandra.import_all" {
		t.Errorf("last call %+v", last)
	}
	// The snapshot as its metadata describes it, before the download.
	meta, _ := ToValue(map[string]any{"partitioner": "p", "storage_compatibility_mode": "CASSANDRA_4", "sstable_formats": []any{"nb"},
		"nodes":     []any{map[string]any{"name": "s1", "tokens": []any{"1"}}},
		"keyspaces": map[string]any{"ks": map[string]any{"create": "CREATE KEYSPACE ks", "tables": map[string]any{"t": map[string]any{"columns": []any{map[string]any{"name": "k"}}}}}}})
	v, err = h.call(t, "cassandra", "inspect_snapshot", s(h.work+"/download"), meta)
	if err != nil || !strings.Contains(v.String(), `node = "s1"`) || !strings.Contains(v.String(), "/download/nodes/s1/ks/t") {
		t.Errorf("planned inspect = %v, %v", v, err)
	}
}

func TestCassandraSecretsStayOut(t *testing.T) {
	h := cassHarness(t, false, false)
	c, err := clusterOf(h.env)
	if err != nil {
		t.Fatal(err)
	}
	if c.CQLUser != "u" || c.CQLPassword != "hunter2" {
		t.Errorf("cluster credentials %q %q", c.CQLUser, c.CQLPassword)
	}
	if strings.Contains(h.env.Target.Spec["cql"].(map[string]any)["password"].(string), "hunter2") {
		t.Error("the spec holds the password")
	}
}
