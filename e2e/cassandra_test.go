package e2e

// Restores of real Cassandra 5.0 snapshots (scripts/cassandra.star) into real
// nodes run from the jars ./test.sh installs. Two source clusters start together:
// three nodes (storage_compatibility_mode CASSANDRA_4, PasswordAuthenticator, an
// RF=3 and an RF=1 keyspace) and one node (NONE: Cassandra 5.0's own SSTable
// format). `restore-run snapshot pack --from-cluster` snapshots both; every restore
// is then compared with its source row by row, beyond the driver's own checks.
// The clusters are shared by the subtests, which run in order: the last ones
// change the 3-node cluster (replace, rollback, a node down).

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drivers"
)

var (
	threeNodeTables = []string{"ks_rf1.empty", "ks_rf1.kv", "ks_rf3.events", "ks_rf3.users"}
	oneNodeTables   = []string{"ks_one.items"}
)

func TestCassandraRestores(t *testing.T) {
	start := time.Now()
	clusters := startCassandras(t,
		clusterSpec{name: "src3", nodes: 3, mode: cassops.ModeCassandra4, auth: true},
		clusterSpec{name: "src1", nodes: 1, mode: cassops.ModeNone},
	)
	src3, src1 := clusters[0], clusters[1]
	s3, s1 := src3.session(t), src1.session(t)
	fillThreeNode(t, s3)
	fillOneNode(t, s1)
	want3, want1 := dumpAll(t, s3, threeNodeTables), dumpAll(t, s1, oneNodeTables)

	snaps := t.TempDir()
	snap3, snap1 := filepath.Join(snaps, "three"), filepath.Join(snaps, "one")
	out := cli(t, 5*time.Minute, "snapshot", "pack", "--engine", "cassandra", "--from-cluster", src3.Target, "--to", snap3).mustSucceed(t)
	if !strings.Contains(out.Stdout, "cluster src3: Cassandra 5.0") || !strings.Contains(out.Stdout, "4 tables") {
		t.Errorf("pack output:\n%s", out.Stdout)
	}
	cli(t, 5*time.Minute, "snapshot", "pack", "--engine", "cassandra", "--from-cluster", src1.Target, "--to", snap1).mustSucceed(t)
	meta3, meta1 := snapshotMeta(t, snap3), snapshotMeta(t, snap1)
	t.Logf("sources started, filled and packed in %s", time.Since(start).Round(time.Second))

	t.Run("snapshot metadata", func(t *testing.T) {
		if len(meta3.Nodes) != 3 || meta3.StorageCompatibilityMode != "CASSANDRA_4" || strings.Join(meta3.SSTableFormats, ",") != "nb" {
			t.Errorf("3-node snapshot: %d nodes, mode %s, formats %v", len(meta3.Nodes), meta3.StorageCompatibilityMode, meta3.SSTableFormats)
		}
		if meta1.StorageCompatibilityMode != "NONE" || strings.Join(meta1.SSTableFormats, ",") != "oa" {
			t.Errorf("1-node snapshot: mode %s, formats %v (want NONE, oa)", meta1.StorageCompatibilityMode, meta1.SSTableFormats)
		}
		for _, n := range meta3.Nodes {
			if len(n.Tokens) != 1 || n.DC != "datacenter1" || n.HostID == "" {
				t.Errorf("node %+v", n)
			}
		}
		for _, kt := range threeNodeTables {
			ks, tb, _ := strings.Cut(kt, ".")
			if got, want := meta3.Keyspaces[ks].Tables[tb].Rows, int64(len(want3[kt])); got != want {
				t.Errorf("%s: manifest says %d rows, the source has %d", kt, got, want)
			}
		}
		if !strings.HasPrefix(meta3.Keyspaces["ks_rf3"].Create, "CREATE KEYSPACE ks_rf3 WITH replication") {
			t.Errorf("ks_rf3 create: %q", meta3.Keyspaces["ks_rf3"].Create)
		}
		// The nodetool snapshot is cleared from the nodes once packed.
		for _, cfg := range src3.Cfgs {
			if m, _ := filepath.Glob(filepath.Join(cfg.DataDir(), "ks_rf3", "*", "snapshots", "restore-run-*")); len(m) > 0 {
				t.Errorf("node %s still holds %v", cfg.Name, m)
			}
		}
	})

	t.Run("1 node to 1 node, Cassandra 5.0 format", func(t *testing.T) {
		rr := keptCassandraRestore(t, snap1, "scratch://cassandra?nodes=1", nil, func(eps []string) {
			sameRows(t, want1, dumpAll(t, sessionAt(t, eps), oneNodeTables))
		})
		rep := rr.report(t)
		if rep.Details["mode"] != "import" {
			t.Errorf("mode %v, want import", rep.Details["mode"])
		}
	})

	t.Run("3 nodes to 3 nodes, every node imports at once", func(t *testing.T) {
		rr := keptCassandraRestore(t, snap3, "scratch://cassandra?nodes=3", nil, func(eps []string) {
			if len(eps) != 3 {
				t.Fatalf("endpoints %v", eps)
			}
			s := sessionAt(t, eps)
			sameRows(t, want3, dumpAll(t, s, threeNodeTables))
			ttl := queryInt(t, s, "SELECT TTL(note) FROM ks_rf3.events WHERE sensor = 'sensor-00' AND day = '2026-11-25' AND seq = 7")
			if ttl <= 0 || ttl > 86400 {
				t.Errorf("TTL of a restored row = %d, want its remaining TTL (0 < ttl <= 86400)", ttl)
			}
			if n := queryInt(t, s, "SELECT COUNT(*) FROM ks_rf3.events WHERE note = 'note-1'"); n == 0 {
				t.Error("the secondary index finds nothing after the restore")
			}
		})
		rep := rr.report(t)
		if rep.Details["mode"] != "import" {
			t.Fatalf("mode %v, want import", rep.Details["mode"])
		}
		overlapping(t, rr.stderr.String(), 3)
	})

	t.Run("3 nodes to 1 node through sstableloader", func(t *testing.T) {
		rr := keptCassandraRestore(t, snap3, "scratch://cassandra?nodes=1", nil, func(eps []string) {
			sameRows(t, want3, dumpAll(t, sessionAt(t, eps), threeNodeTables))
		})
		rep := rr.report(t)
		if rep.Details["mode"] != "loader" {
			t.Errorf("mode %v, want loader", rep.Details["mode"])
		}
	})

	t.Run("a snapshot in another SSTable format mode is refused", func(t *testing.T) {
		res := cli(t, 3*time.Minute, "restore", "--driver", "cassandra", "--snapshot", snap1, "--target", src3.Target)
		res.mustFail(t, 1, "storage_compatibility_mode NONE", "runs in CASSANDRA_4", "set `storage_compatibility_mode: NONE`")
		if ph := phaseResults(res); ph != "download:ok prepare:failed rollback:ok" {
			t.Errorf("phases %s", ph)
		}
	})

	t.Run("a corrupted SSTable is refused before anything is loaded", func(t *testing.T) {
		// A byte changed in the store: the manifest's sha256 catches it.
		bad := copySnapshot(t, snap3)
		data := firstFile(t, bad, "-Data.db")
		flipByte(t, data)
		res := cli(t, 2*time.Minute, "restore", "--driver", "cassandra", "--snapshot", bad, "--target", "scratch://cassandra?nodes=3")
		res.mustFail(t, 1, strings.TrimPrefix(data, bad+"/"))
		if ph := phaseResults(res); ph != "download:failed" || res.Report.Error.Class != "corruption" {
			t.Errorf("phases %s, error %+v", ph, res.Report.Error)
		}
		// Damaged before it was packed: the SSTable's own Digest.crc32 catches it.
		repacked := repackWith(t, snap3, func(name string, data []byte) []byte {
			if strings.HasSuffix(name, "nodes/src3-n2/ks_rf3/users/nb-1-big-Data.db") {
				data[len(data)/2] ^= 0xff
			}
			return data
		})
		res = cli(t, 2*time.Minute, "restore", "--driver", "cassandra", "--snapshot", repacked, "--target", "scratch://cassandra?nodes=3")
		res.mustFail(t, 1, "nb-1-big-Data.db has CRC32", "Digest.crc32", "src3-n2/ks_rf3/users")
		if ph := phaseResults(res); ph != "download:failed" {
			t.Errorf("phases %s", ph)
		}
	})

	t.Run("a snapshot of another engine is refused", func(t *testing.T) {
		res := cli(t, time.Minute, "restore", "--driver", "cassandra", "--snapshot", filepath.Join(repoRoot, "testdata", "etcd", "quickstart"), "--target", "scratch://cassandra")
		res.mustFail(t, 1, "is a etcd snapshot", "use --driver etcd")
	})

	t.Run("tables holding data are refused, then replaced with replace=true", func(t *testing.T) {
		execAll(t, s3,
			"INSERT INTO ks_rf3.users (id, name) VALUES (1000, 'written after the snapshot')",
			"DELETE FROM ks_rf3.users WHERE id = 1",
			"TRUNCATE ks_rf1.kv")
		before := dumpAll(t, s3, threeNodeTables)
		res := cli(t, 3*time.Minute, "restore", "--driver", "cassandra", "--snapshot", snap3, "--target", src3.Target)
		res.mustFail(t, 1, "tables already hold data: ks_rf3.events, ks_rf3.users", "--param replace=true")
		sameRows(t, before, dumpAll(t, s3, threeNodeTables))

		res = cli(t, 5*time.Minute, "restore", "--driver", "cassandra", "--snapshot", snap3, "--target", src3.Target, "--param", "replace=true").mustSucceed(t)
		if res.Report.Details["mode"] != "import" {
			t.Errorf("mode %v, want import (the same cluster)", res.Report.Details["mode"])
		}
		sameRows(t, want3, dumpAll(t, s3, threeNodeTables))
		for _, cfg := range src3.Cfgs {
			if m, _ := filepath.Glob(filepath.Join(cfg.DataDir(), "*", "*", "snapshots", "restore-run-before-*")); len(m) > 0 {
				t.Errorf("node %s still holds the safety snapshot: %v", cfg.Name, m)
			}
			if _, err := os.Stat(cfg.DataDir() + ".restore-run"); err == nil {
				t.Errorf("node %s: %s.restore-run is left behind", cfg.Name, cfg.DataDir())
			}
		}
	})

	t.Run("a failed validation puts the replaced rows back", func(t *testing.T) {
		execAll(t, s3, "INSERT INTO ks_rf3.users (id, name) VALUES (2000, 'must survive')", "DELETE FROM ks_rf1.kv WHERE k = 'key-020'")
		before := dumpAll(t, s3, threeNodeTables)
		// The manifest promises one row more than the files hold.
		lying := copySnapshot(t, snap3)
		editMeta(t, lying, func(m map[string]any) {
			users := m["keyspaces"].(map[string]any)["ks_rf3"].(map[string]any)["tables"].(map[string]any)["users"].(map[string]any)
			users["rows"] = users["rows"].(float64) + 1
		})
		res := cli(t, 5*time.Minute, "restore", "--driver", "cassandra", "--snapshot", lying, "--target", src3.Target, "--param", "replace=true")
		res.mustFail(t, 1, "rows in ks_rf3.users")
		if ph := phaseResults(res); ph != "download:ok prepare:ok execute:ok validate:failed rollback:ok" || !res.Report.RolledBack {
			t.Errorf("phases %s, rolled back %v", ph, res.Report.RolledBack)
		}
		sameRows(t, before, dumpAll(t, s3, threeNodeTables))
	})

	t.Run("a node down before the restore is named", func(t *testing.T) {
		down := src3.Nodes[2]
		down.Kill()
		res := cli(t, 3*time.Minute, "restore", "--driver", "cassandra", "--snapshot", snap3, "--target", src3.Target, "--param", "replace=true")
		res.mustFail(t, 1, "node src3-n3 (127.0.0.3) is down", "Every node must be up and normal")
		if ph := phaseResults(res); ph != "download:ok prepare:failed rollback:ok" {
			t.Errorf("phases %s", ph)
		}
	})
	t.Logf("TestCassandraRestores took %s", time.Since(start).Round(time.Second))
}

// snapshotMeta reads a snapshot's Cassandra metadata.
func snapshotMeta(t *testing.T, dir string) *cassops.Metadata {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := drivers.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := cassops.MetadataFromMap(m.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func phaseResults(res result) string {
	if res.Report == nil {
		return "(no report)"
	}
	var out []string
	for _, p := range res.Report.Phases {
		out = append(out, p.Name+":"+p.Result)
	}
	return strings.Join(out, " ")
}

func queryInt(t *testing.T, s *cassops.Session, stmt string) int64 {
	t.Helper()
	rows, err := s.Query(context.Background(), stmt, nil, gocql.All, 0, 0)
	if err != nil || len(rows) != 1 {
		t.Fatalf("%s: %v (%d rows)", stmt, err, len(rows))
	}
	for _, v := range rows[0] {
		if n, ok := v.(int64); ok {
			return n
		}
	}
	t.Fatalf("%s: no integer in %v", stmt, rows[0])
	return 0
}

// overlapping checks, from the "nodetool import" log lines, that the imports of
// at least nodes different nodes ran at the same time.
func overlapping(t *testing.T, stderr string, nodes int) {
	t.Helper()
	type span struct{ start, end time.Time }
	spans := map[string][]span{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Message string    `json:"message"`
			Node    string    `json:"node"`
			Seconds float64   `json:"seconds"`
			Time    time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Message != "nodetool import" {
			continue
		}
		spans[l.Node] = append(spans[l.Node], span{l.Time.Add(-time.Duration(l.Seconds * float64(time.Second))), l.Time})
	}
	if len(spans) != nodes {
		t.Fatalf("imports logged for %d nodes, want %d:\n%s", len(spans), nodes, stderr)
	}
	// The first import of every node starts before any node's first import ends.
	var latestStart, earliestEnd time.Time
	for _, s := range spans {
		if latestStart.IsZero() || s[0].start.After(latestStart) {
			latestStart = s[0].start
		}
		if earliestEnd.IsZero() || s[0].end.Before(earliestEnd) {
			earliestEnd = s[0].end
		}
	}
	if !latestStart.Before(earliestEnd.Add(time.Second)) { // log times have second precision
		t.Errorf("the nodes' imports did not overlap: the last started at %s, the first ended at %s", latestStart, earliestEnd)
	}
}

// copySnapshot copies a snapshot directory.
func copySnapshot(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "snap")
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// firstFile returns the first file under dir (sorted walk) whose name ends in suffix.
func firstFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	var found string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && found == "" && !fi.IsDir() && strings.HasSuffix(p, suffix) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no *%s under %s", suffix, dir)
	}
	return found
}

// repackWith packs snap's files again, each through edit, with snap's metadata: a
// snapshot whose manifest matches damaged files.
func repackWith(t *testing.T, snap string, edit func(name string, data []byte) []byte) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(snap, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := drivers.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	var files []blobstore.PackFile
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(f.Name)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(src, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, edit(f.Name, b), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, blobstore.PackFile{Path: p, Name: f.Name})
	}
	dst := filepath.Join(t.TempDir(), "repacked")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: m.Engine, EngineVersion: m.EngineVersion, Files: files, Dest: dst, Metadata: m.Metadata}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// editMeta rewrites the metadata of a snapshot's manifest (whose own bytes no
// digest covers).
func editMeta(t *testing.T, snap string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(snap, "manifest.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m["metadata"].(map[string]any))
	out, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
