package targets

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

func TestScratchCassandra(t *testing.T) {
	dir := t.TempDir()
	tg, err := Parse("scratch://cassandra?nodes=3&heap=1G&storage_compatibility_mode=NONE&lib=/opt/jars", dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := tg.Spec
	if !tg.Scratch || tg.Engine != "cassandra" || len(tg.Dirs) != 1 || tg.Dirs[0] != dir {
		t.Fatalf("target %+v", tg)
	}
	if spec["heap"] != "1G" || spec["storage_compatibility_mode"] != "NONE" || spec["cassandra_lib"] != "/opt/jars" || spec["cluster_name"] != "" {
		t.Errorf("spec %v", spec)
	}
	nodes := spec["nodes"].([]any)
	wantTokens := []string{"-9223372036854775808", "-3074457345618258603", "3074457345618258602"}
	jmx := map[int]bool{}
	for i, r := range nodes {
		n := r.(map[string]any)
		if n["host"] != "127.0.0.1" && n["host"] != "127.0.0.2" && n["host"] != "127.0.0.3" || n["jmx_host"] != "127.0.0.1" {
			t.Errorf("node %v", n)
		}
		if n["tokens"].([]any)[0] != wantTokens[i] || n["dc"] != "datacenter1" || n["rack"] != "rack1" {
			t.Errorf("node %d: tokens %v dc %v rack %v", i, n["tokens"], n["dc"], n["rack"])
		}
		if d := n["data_dirs"].([]any)[0].(string); !strings.HasPrefix(d, dir) || d != filepath.Join(n["dir"].(string), "data") {
			t.Errorf("data dir %s", d)
		}
		jmx[n["jmx_port"].(int)] = true
	}
	if len(jmx) != 3 || spec["cql_port"] == spec["storage_port"] {
		t.Errorf("ports: jmx %v cql %v storage %v", jmx, spec["cql_port"], spec["storage_port"])
	}
	tg, err = Parse("scratch://cassandra", dir)
	if err != nil || len(tg.Spec["nodes"].([]any)) != 1 || tg.Spec["heap"] != "512M" || tg.Spec["storage_compatibility_mode"] != "" {
		t.Errorf("default scratch: %v %v", tg, err)
	}
	for _, bad := range []string{"nodes=4", "nodes=0", "heap=lots", "storage_compatibility_mode=CASSANDRA_3", "members=3"} {
		if _, err := Parse("scratch://cassandra?"+bad, dir); err == nil {
			t.Errorf("%s accepted", bad)
		} else if !strings.Contains(err.Error(), "nodes=N (1-3") {
			t.Errorf("%s: error without the options: %v", bad, err)
		}
	}
}

const cassandraFile = `engine: cassandra
cluster_name: prod
cql:
  username: restore
  password: {env: CASS_PW}
nodes:
  - name: c1
    host: 10.0.0.1
    data_dirs: [/var/lib/cassandra/data, /data2/cassandra]
  - name: c2
    host: 10.0.0.2
    jmx_host: 127.0.0.1
    jmx_port: 7299
`

func TestCassandraTargetFile(t *testing.T) {
	t.Setenv("CASS_PW", "s3cret")
	tg, err := ParseYAML("prod.yaml", []byte(cassandraFile))
	if err != nil {
		t.Fatal(err)
	}
	spec := tg.Spec
	if spec["cql_port"] != 9042 || spec["storage_port"] != 7000 || spec["jmx_port"] != 7199 || spec["cassandra_lib"] != "" {
		t.Errorf("defaults: %v", spec)
	}
	c1 := spec["nodes"].([]any)[0].(map[string]any)
	c2 := spec["nodes"].([]any)[1].(map[string]any)
	if c1["jmx_host"] != "10.0.0.1" || c1["jmx_port"] != 7199 || c2["jmx_port"] != 7299 || len(c2["data_dirs"].([]any)) != 0 {
		t.Errorf("nodes: %v %v", c1, c2)
	}
	if pw, _ := tg.Secret("cql.password"); pw != "s3cret" || strings.Contains(strings.Join(tg.Dirs, ","), "s3cret") {
		t.Errorf("secret %q", pw)
	}
	if spec["cql"].(map[string]any)["password"] != "(secret from env CASS_PW)" {
		t.Errorf("spec holds %v", spec["cql"])
	}
	want := "/var/lib/cassandra/data,/var/lib/cassandra/data.restore-run,/data2/cassandra,/data2/cassandra.restore-run"
	if strings.Join(tg.Dirs, ",") != want {
		t.Errorf("dirs %v", tg.Dirs)
	}
	for name, bad := range map[string]string{
		"clear password":   strings.Replace(cassandraFile, "{env: CASS_PW}", "hunter2", 1),
		"unknown key":      cassandraFile + "replication: 3\n",
		"unknown node key": strings.Replace(cassandraFile, "    host: 10.0.0.1\n", "    host: 10.0.0.1\n    rack: r1\n", 1),
		"relative dir":     strings.Replace(cassandraFile, "/data2/cassandra", "data2", 1),
		"same host":        strings.Replace(cassandraFile, "10.0.0.2", "10.0.0.1", 1),
		"bad port":         cassandraFile + "cql_port: 99999\n",
		"no nodes":         "engine: cassandra\n",
		"no password":      strings.Replace(cassandraFile, "  password: {env: CASS_PW}\n", "", 1),
	} {
		if _, err := ParseYAML("prod.yaml", []byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if drivers.ClassOf(err) != drivers.Permanent {
			t.Errorf("%s: class %s", name, drivers.ClassOf(err))
		}
	}
}
