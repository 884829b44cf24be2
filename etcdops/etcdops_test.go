package etcdops

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/testcheck"
)

func httpURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

// startSingle starts a fresh one-member cluster in a temp dir, retrying with new
// ports if one was taken meanwhile.
func startSingle(t *testing.T, name, dataDir string) *Member {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ports, err := FreeLoopbackPorts(2)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		m, err := StartMember(t.Context(), MemberConfig{
			Name: name, DataDir: dataDir, ClientURL: httpURL(ports[0]), PeerURL: httpURL(ports[1]),
		})
		if err != nil && drivers.ClassOf(err) == drivers.Transient && attempt < 2 {
			t.Logf("retrying: %v", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("member %s ready in %s", name, time.Since(start).Round(time.Millisecond))
		t.Cleanup(func() { _ = m.Stop() })
		return m
	}
}

// waitStorageVersion waits until the member at endpoint has recorded its storage
// version: a member writes it shortly after it becomes ready, and a snapshot saved
// before that has an empty Version.
func waitStorageVersion(t *testing.T, c *Client, endpoint string) MemberStatus {
	t.Helper()
	start := time.Now()
	for {
		s, err := c.Status(t.Context(), endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if s.StorageVersion != "" && strings.HasPrefix(s.Version, strings.TrimSuffix(s.StorageVersion, "0")) {
			t.Logf("storage version %s recorded %s after the first check", s.StorageVersion, time.Since(start).Round(time.Millisecond))
			return s
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("member %s recorded no storage version within 10s", endpoint)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dial(t *testing.T, endpoints ...string) *Client {
	t.Helper()
	c, err := Dial(t.Context(), endpoints)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// collect returns every key and value under prefix.
func collect(t *testing.T, c *Client, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := c.Range(t.Context(), prefix, func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func fileDigest(t *testing.T, path string) (string, time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), fi.ModTime()
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// restoreCluster restores snap into n members of one new cluster and starts them,
// retrying with new ports and dirs when a port was taken meanwhile.
func restoreCluster(t *testing.T, snap string, n int, bump uint64) []*Member {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ports, err := FreeLoopbackPorts(2 * n)
		if err != nil {
			t.Fatal(err)
		}
		base := t.TempDir()
		var initial []string
		for i := range n {
			initial = append(initial, fmt.Sprintf("m%d=%s", i+1, httpURL(ports[2*i+1])))
		}
		var cfgs []MemberConfig
		start := time.Now()
		for i := range n {
			name := fmt.Sprintf("m%d", i+1)
			dir := filepath.Join(base, name)
			err := Restore(t.Context(), RestoreConfig{
				SnapshotPath: snap, Name: name, DataDir: dir,
				PeerURLs:            []string{httpURL(ports[2*i+1])},
				InitialCluster:      strings.Join(initial, ","),
				InitialClusterToken: "restored-test",
				RevisionBump:        bump, MarkCompacted: bump > 0,
			})
			if err != nil {
				t.Fatal(err)
			}
			cfgs = append(cfgs, MemberConfig{
				Name: name, DataDir: dir, ClientURL: httpURL(ports[2*i]), PeerURL: httpURL(ports[2*i+1]),
				InitialCluster: strings.Join(initial, ","), InitialClusterToken: "restored-test",
				LogFile: filepath.Join(base, name+".log"),
			})
		}
		restored := time.Now()
		ms, err := StartMembers(t.Context(), cfgs)
		if err != nil && drivers.ClassOf(err) == drivers.Transient && attempt < 2 {
			t.Logf("retrying: %v", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("restored %d members in %s, started them in %s", n, restored.Sub(start).Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
		t.Cleanup(func() {
			start := time.Now()
			_ = StopMembers(ms)
			t.Logf("stopped %d members in %s", n, time.Since(start).Round(time.Millisecond))
		})
		return ms
	}
}

// TestSnapshotRestoreCluster saves a snapshot from a live member, inspects it,
// restores it into a three-member cluster and checks the cluster against the source.
func TestSnapshotRestoreCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	src := startSingle(t, "src", filepath.Join(dir, "src"))
	sc := dial(t, src.ClientURL())

	// 120 keys, 20 overwritten, 10 deleted: 110 live keys, revision 1+120+20+10.
	want := map[string]string{}
	for i := range 120 {
		k, v := fmt.Sprintf("/test/key-%03d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%17))
		if i%13 == 0 {
			v = string([]byte{0, 0xff, byte(i), '\n'}) // not UTF-8: Range must keep the bytes
		}
		if err := sc.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("/test/key-%03d", i*5)
		want[k] = "overwritten " + k
		if err := sc.Put(ctx, k, want[k]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		k := fmt.Sprintf("/test/key-%03d", 100+i)
		if n, err := sc.Delete(ctx, k); err != nil || n != 1 {
			t.Fatalf("delete %s: %d, %v", k, n, err)
		}
		delete(want, k)
	}
	if v, ok, err := sc.Get(ctx, "/test/key-005"); err != nil || !ok || v != want["/test/key-005"] {
		t.Fatalf("get: %q %v %v", v, ok, err)
	}
	if _, ok, err := sc.Get(ctx, "/test/key-100"); err != nil || ok {
		t.Fatalf("get deleted key: found=%v err=%v", ok, err)
	}
	srcStatus := waitStorageVersion(t, sc, src.ClientURL())
	if srcStatus.Revision != 151 || !srcStatus.IsLeader {
		t.Fatalf("source status %+v, want revision 151 and leader", srcStatus)
	}

	snap := filepath.Join(dir, "snap.db")
	start := time.Now()
	version, err := Save(ctx, src.ClientURL(), snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved snapshot in %s, version %q, server %s", time.Since(start).Round(time.Millisecond), version, srcStatus.Version)

	digest, mtime := fileDigest(t, snap)
	st, err := Status(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot status %+v", st)
	if st.Revision != srcStatus.Revision || st.TotalKey != len(want) || !st.HasChecksum || st.Version == "" || st.TotalSize <= 0 {
		t.Fatalf("status %+v, want revision %d, %d keys, a checksum and a version", st, srcStatus.Revision, len(want))
	}
	if d, m := fileDigest(t, snap); d != digest || !m.Equal(mtime) {
		t.Fatal("Status modified the snapshot file")
	}

	t.Run("FlippedByte", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "flipped.db")
		b, _ := os.ReadFile(snap)
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(bad, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Status(ctx, bad)
		testcheck.Class(t, err, drivers.Corruption, bad, "checksum")
		out := filepath.Join(t.TempDir(), "out")
		err = Restore(ctx, RestoreConfig{SnapshotPath: bad, Name: "m1", DataDir: out, PeerURLs: []string{"http://127.0.0.1:2380"}})
		testcheck.Class(t, err, drivers.Corruption, "restore member m1", bad)
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("failed restore left %s behind", out)
		}
	})

	t.Run("RawDB", func(t *testing.T) {
		// A restored, never started data dir holds a raw member/snap/db: no trailer.
		out := filepath.Join(t.TempDir(), "raw")
		if err := Restore(ctx, RestoreConfig{SnapshotPath: snap, Name: "r", DataDir: out, PeerURLs: []string{"http://127.0.0.1:2380"}}); err != nil {
			t.Fatal(err)
		}
		raw := filepath.Join(out, "member", "snap", "db")
		rs, err := Status(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if rs.HasChecksum || rs.TotalKey != len(want) || rs.Revision != st.Revision {
			t.Fatalf("raw status %+v", rs)
		}
		err = Restore(ctx, RestoreConfig{SnapshotPath: raw, Name: "r", DataDir: filepath.Join(t.TempDir(), "x"), PeerURLs: []string{"http://127.0.0.1:2380"}})
		testcheck.Class(t, err, drivers.Permanent, "no sha256 trailer", "SkipHashCheck")
		if err := Restore(ctx, RestoreConfig{SnapshotPath: raw, Name: "r", DataDir: filepath.Join(t.TempDir(), "x"), PeerURLs: []string{"http://127.0.0.1:2380"}, SkipHashCheck: true}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("LiveDBIsLocked", func(t *testing.T) {
		start := time.Now()
		_, err := Status(ctx, filepath.Join(src.DataDir(), "member", "snap", "db"))
		testcheck.Class(t, err, drivers.Permanent, "locked")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Status on a locked file took %s", d)
		}
	})

	t.Run("NonEmptyDataDir", func(t *testing.T) {
		out := t.TempDir()
		if err := os.WriteFile(filepath.Join(out, "keep"), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := Restore(ctx, RestoreConfig{SnapshotPath: snap, Name: "m1", DataDir: out, PeerURLs: []string{"http://127.0.0.1:2380"}})
		testcheck.Class(t, err, drivers.Permanent, "restore member m1: data dir "+out+" already exists and is not empty; restore into a new directory")
		if b, err := os.ReadFile(filepath.Join(out, "keep")); err != nil || string(b) != "mine" {
			t.Fatal("refused restore touched the data dir")
		}
		// An existing empty dir is fine.
		if err := Restore(ctx, RestoreConfig{SnapshotPath: snap, Name: "m1", DataDir: t.TempDir(), WALDir: t.TempDir(), PeerURLs: []string{"http://127.0.0.1:2380"}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("BadArguments", func(t *testing.T) {
		base := RestoreConfig{SnapshotPath: snap, Name: "m1", DataDir: filepath.Join(t.TempDir(), "d"), PeerURLs: []string{"http://127.0.0.1:2380"}}
		c := base
		c.RevisionBump = 1000
		testcheck.Class(t, Restore(ctx, c), drivers.Permanent, "without MarkCompacted")
		c = base
		c.MarkCompacted = true
		testcheck.Class(t, Restore(ctx, c), drivers.Permanent, "MarkCompacted without RevisionBump")
		c = base
		c.InitialCluster = "other=http://127.0.0.1:2380"
		testcheck.Class(t, Restore(ctx, c), drivers.Permanent, "InitialCluster")
		c = base
		c.PeerURLs = nil
		testcheck.Class(t, Restore(ctx, c), drivers.Permanent, "PeerURLs")
		if _, err := os.Stat(base.DataDir); !os.IsNotExist(err) {
			t.Fatal("refused restore left the data dir behind")
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		out := filepath.Join(t.TempDir(), "d")
		testcheck.Class(t, Restore(cctx, RestoreConfig{SnapshotPath: snap, Name: "m1", DataDir: out, PeerURLs: []string{"http://127.0.0.1:2380"}}), drivers.Cancelled)
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatal("cancelled restore created the data dir")
		}
		_, err := Status(cctx, snap)
		testcheck.Class(t, err, drivers.Cancelled)
		_, err = Save(cctx, src.ClientURL(), filepath.Join(t.TempDir(), "s.db"))
		testcheck.Class(t, err, drivers.Cancelled)
		_, err = Dial(cctx, []string{src.ClientURL()})
		testcheck.Class(t, err, drivers.Cancelled)
		_, err = sc.Count(cctx, "")
		testcheck.Class(t, err, drivers.Cancelled)
		_, err = sc.Status(cctx, src.ClientURL())
		testcheck.Class(t, err, drivers.Cancelled)
		err = sc.Range(cctx, "", func(k, v []byte) error { return nil })
		testcheck.Class(t, err, drivers.Cancelled)
		_, err = StartMember(cctx, MemberConfig{Name: "x", DataDir: t.TempDir(), ClientURL: "http://127.0.0.1:1", PeerURL: "http://127.0.0.1:2"})
		testcheck.Class(t, err, drivers.Cancelled)
	})

	t.Run("ThreeMembers", func(t *testing.T) {
		ms := restoreCluster(t, snap, 3, 0)
		var eps []string
		for _, m := range ms {
			eps = append(eps, m.ClientURL())
		}
		c := dial(t, eps...)

		list, err := c.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("member list %+v, want 3 members", list)
		}
		names := map[string]uint64{}
		for _, m := range list {
			names[m.Name] = m.ID
		}
		for _, m := range ms {
			if names[m.Name()] == 0 {
				t.Fatalf("member %s missing from %+v", m.Name(), list)
			}
		}

		// Exactly one leader, and every member agrees on it. A leader change between
		// two calls (a loaded machine) would show two or none: look again then.
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaders, ids := 0, map[uint64]bool{}
			for _, ep := range eps {
				s, err := c.Status(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				if s.Endpoint != ep || s.Revision != st.Revision || len(s.Errors) != 0 || s.Version == "" {
					t.Fatalf("status of %s: %+v (want revision %d, no errors)", ep, s, st.Revision)
				}
				ids[s.Leader] = true
				if s.IsLeader {
					leaders++
				}
			}
			if leaders == 1 && len(ids) == 1 && !ids[0] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d members say they lead, leaders seen %v; want exactly one everybody agrees on", leaders, ids)
			}
			time.Sleep(100 * time.Millisecond)
		}

		// Same revision on every member, so the hashes must match, and match the
		// source's: without a bump the restored keys are the source's keys.
		srcHash, err := sc.HashKV(ctx, src.ClientURL(), st.Revision)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range eps {
			h, err := c.HashKV(ctx, ep, st.Revision)
			if err != nil {
				t.Fatal(err)
			}
			if h.Hash != srcHash.Hash || h.HashRevision != st.Revision {
				t.Fatalf("hashkv of %s: %+v, source %+v", ep, h, srcHash)
			}
		}

		if n, err := c.Count(ctx, ""); err != nil || n != int64(len(want)) {
			t.Fatalf("count: %d, %v; want %d", n, err, len(want))
		}
		if n, err := c.Count(ctx, "/test/key-0"); err != nil || n != 100 {
			t.Fatalf("count /test/key-0: %d, %v; want 100", n, err)
		}
		got := collect(t, c, "")
		if !maps.Equal(got, want) {
			t.Fatalf("restored keys differ from what was put: %d keys vs %d", len(got), len(want))
		}
		if srcKeys := collect(t, sc, ""); !maps.Equal(got, srcKeys) {
			t.Fatal("restored keys differ from the source's")
		}
		// The cluster accepts writes.
		if err := c.Put(ctx, "/after/restore", "ok"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RevisionBump", func(t *testing.T) {
		const bump = 1_000_000
		ms := restoreCluster(t, snap, 1, bump)
		c := dial(t, ms[0].ClientURL())
		s, err := c.Status(ctx, ms[0].ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		if s.Revision < st.Revision+bump {
			t.Fatalf("revision %d after a bump of %d from %d", s.Revision, bump, st.Revision)
		}
		if n, err := c.Count(ctx, ""); err != nil || n != int64(len(want)) {
			t.Fatalf("count: %d, %v; want %d", n, err, len(want))
		}
		// Revisions before the bump are compacted: a watcher must re-list.
		_, err = c.HashKV(ctx, ms[0].ClientURL(), st.Revision)
		testcheck.Class(t, err, drivers.Permanent, "compacted")
	})
}

// TestNotASnapshot feeds Status files that are not etcd snapshots.
func TestNotASnapshot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()

	random := filepath.Join(dir, "random.bin")
	b := make([]byte, 10000)
	rand.Read(b)
	if err := os.WriteFile(random, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Status(ctx, random)
	testcheck.Class(t, err, drivers.Corruption, random+" is not an etcd snapshot")

	// Random bytes of a size that looks like a trailer: the checksum fails.
	trailer := filepath.Join(dir, "random-trailer.bin")
	if err := os.WriteFile(trailer, b[:512*3+32], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Status(ctx, trailer)
	testcheck.Class(t, err, drivers.Corruption, trailer, "checksum")

	// A bbolt database that is not etcd's.
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("stuff")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Status(ctx, other)
	testcheck.Class(t, err, drivers.Corruption, "is not an etcd snapshot", `"key" bucket`)

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Status(ctx, empty)
	testcheck.Class(t, err, drivers.Corruption, "is not an etcd snapshot")

	_, err = Status(ctx, filepath.Join(dir, "missing.db"))
	testcheck.Class(t, err, drivers.Permanent, "does not exist")
	_, err = Status(ctx, dir)
	testcheck.Class(t, err, drivers.Permanent, "not a regular file")
	err = Restore(ctx, RestoreConfig{SnapshotPath: random, Name: "m1", DataDir: filepath.Join(dir, "out"), PeerURLs: []string{"http://127.0.0.1:2380"}})
	testcheck.Class(t, err, drivers.Corruption, "restore member m1", "is not an etcd snapshot")
}

// TestStartFailures checks the classes of StartMember's failures.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("PortInUse", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports, err := FreeLoopbackPorts(1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = StartMember(ctx, MemberConfig{Name: "p", DataDir: t.TempDir(), ClientURL: "http://" + l.Addr().String(), PeerURL: httpURL(ports[0])})
		testcheck.Class(t, err, drivers.Transient, "address already in use", "FreeLoopbackPorts")
	})

	t.Run("NoQuorum", func(t *testing.T) {
		ports, err := FreeLoopbackPorts(4)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = StartMember(ctx, MemberConfig{
			Name: "a", DataDir: t.TempDir(), ClientURL: httpURL(ports[0]), PeerURL: httpURL(ports[1]),
			InitialCluster: fmt.Sprintf("a=%s,b=%s,c=%s", httpURL(ports[1]), httpURL(ports[2]), httpURL(ports[3])),
			StartTimeout:   time.Second,
		})
		testcheck.Class(t, err, drivers.Transient, "not ready after 1s", "StartMembers")
		t.Logf("failed start returned after %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("BadConfig", func(t *testing.T) {
		_, err := StartMember(ctx, MemberConfig{Name: "b", DataDir: t.TempDir(), ClientURL: "127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380"})
		testcheck.Class(t, err, drivers.Permanent, "ClientURL")
		_, err = StartMember(ctx, MemberConfig{Name: "b", DataDir: t.TempDir(), ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380", ClusterState: "old"})
		testcheck.Class(t, err, drivers.Permanent, "ClusterState")
		_, err = StartMembers(ctx, []MemberConfig{
			{Name: "a", DataDir: "/x", ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380"},
			{Name: "b", DataDir: "/y", ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2381"},
		})
		testcheck.Class(t, err, drivers.Permanent, "share the URL")
		_, err = FreeLoopbackPorts(0)
		testcheck.Class(t, err, drivers.Permanent)
	})

	t.Run("OneOfThreeFails", func(t *testing.T) {
		// One member's port is taken: StartMembers must not wait for the others'
		// quorum until the timeout, and must stop them.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports, err := FreeLoopbackPorts(6)
		if err != nil {
			t.Fatal(err)
		}
		ports[4] = l.Addr().(*net.TCPAddr).Port // member c's client port
		initial := fmt.Sprintf("a=%s,b=%s,c=%s", httpURL(ports[1]), httpURL(ports[3]), httpURL(ports[5]))
		var cfgs []MemberConfig
		for i, n := range []string{"a", "b", "c"} {
			cfgs = append(cfgs, MemberConfig{Name: n, DataDir: filepath.Join(t.TempDir(), n), ClientURL: httpURL(ports[2*i]), PeerURL: httpURL(ports[2*i+1]), InitialCluster: initial})
		}
		start := time.Now()
		_, err = StartMembers(ctx, cfgs)
		testcheck.Class(t, err, drivers.Transient, "start etcd member c", "address already in use")
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("StartMembers took %s to give up", d)
		}
		// The others were stopped: their ports are free again.
		for _, p := range []int{ports[0], ports[1], ports[2], ports[3]} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d still in use after StartMembers failed: %v", p, err)
			}
			l.Close()
		}
	})
}

// TestDialUnreachable checks that a cluster nobody listens for gives a Transient
// error within the dial timeout, and that a short ctx gives Cancelled.
func TestDialUnreachable(t *testing.T) {
	t.Parallel()
	ports, err := FreeLoopbackPorts(1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Dial(t.Context(), []string{httpURL(ports[0])})
	testcheck.Class(t, err, drivers.Transient, "no endpoint accepted a connection")
	if d := time.Since(start); d > DefaultDialTimeout+2*time.Second {
		t.Fatalf("Dial took %s", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = Save(ctx, httpURL(ports[0]), filepath.Join(t.TempDir(), "s.db"))
	testcheck.Class(t, err, drivers.Cancelled)
	_, err = Save(t.Context(), httpURL(ports[0]), filepath.Join(t.TempDir(), "missing", "s.db"))
	testcheck.Class(t, err, drivers.Permanent, "does not exist")
	if _, err := Dial(t.Context(), nil); drivers.ClassOf(err) != drivers.Permanent {
		t.Fatalf("Dial with no endpoints: %v", err)
	}
}
