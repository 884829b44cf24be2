package scripts_test

// Tests of the embedded etcd.star driver with fake etcd and service builtins (see
// etcdfake_test.go): whole restores through engine.Runner, real blob and fs, no
// etcd server.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

const scratch3 = "scratch://etcd?members=3"

// 1. A scratch target of three members.
func TestEtcdScratchRestore(t *testing.T) {
	f := newFake(t)
	rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:ok commit:ok" {
		t.Errorf("phases = %s", got)
	}
	equal(t, "checks", checks(rep), allChecks(false))
	if rep.Result != "success" || rep.RolledBack {
		t.Errorf("result %s, rolled back %v", rep.Result, rep.RolledBack)
	}

	t.Run("one restore per member, same cluster and token", func(t *testing.T) {
		spec := rep.Target.Spec
		members := spec["members"].([]any)
		var cluster []string
		for _, r := range members {
			m := r.(map[string]any)
			cluster = append(cluster, fmt.Sprintf("%s=%s", m["name"], m["peer_url"]))
		}
		if spec["initial_cluster"] != strings.Join(cluster, ",") {
			t.Errorf("target initial_cluster = %v, want %s", spec["initial_cluster"], strings.Join(cluster, ","))
		}
		restores := f.callsTo("etcd.snapshot_restore")
		if len(restores) != len(members) {
			t.Fatalf("%d restores for %d members", len(restores), len(members))
		}
		for i, c := range restores {
			m := members[i].(map[string]any)
			want := map[string]any{
				"path": filepath.Join(rep.WorkDir, "download", "snapshot.db"),
				"name": m["name"], "data_dir": m["data_dir"], "peer_url": m["peer_url"],
				"initial_cluster": strings.Join(cluster, ","), "token": "restore-run-" + rep.RunID,
				"bump_revision": int64(0), "mark_compacted": false, "skip_hash_check": false,
			}
			if !reflect.DeepEqual(c.Args, want) || c.Phase != drivers.PhaseExecute {
				t.Errorf("restore %d in %s:\n got %v\nwant %v", i+1, c.Phase, c.Args, want)
			}
			if got := holds(m["data_dir"].(string)); got != "NEW "+m["name"].(string) {
				t.Errorf("data dir of %s holds %s", m["name"], got)
			}
		}
	})

	t.Run("members started once, after every restore", func(t *testing.T) {
		equal(t, "etcd writes", f.sequence("etcd.snapshot_restore", "etcd.start_members"),
			[]string{"etcd.snapshot_restore(m1)", "etcd.snapshot_restore(m2)", "etcd.snapshot_restore(m3)", "etcd.start_members()"})
		start := f.callsTo("etcd.start_members")[0]
		if n := len(start.Args["members"].([]any)); n != 3 || start.Args["token"] != "restore-run-"+rep.RunID {
			t.Errorf("start_members(%d members, token %v)", n, start.Args["token"])
		}
		if !reflect.DeepEqual(rep.Target.Endpoints, start.Result) || len(rep.Target.Endpoints) != 3 {
			t.Errorf("report endpoints %v, start_members returned %v", rep.Target.Endpoints, start.Result)
		}
	})

	t.Run("validation asks every member", func(t *testing.T) {
		if n := f.count("etcd.status"); n != 3 {
			t.Errorf("%d status calls", n)
		}
		if n := f.count("etcd.hashkv"); n != 3 {
			t.Errorf("%d hashkv calls", n)
		}
		for _, c := range f.callsTo("etcd.hashkv") {
			if c.Args["revision"] != int64(snapRevision) {
				t.Errorf("hashkv(%s) at revision %v, want %d", c.Member, c.Args["revision"], snapRevision)
			}
		}
	})

	if svc := f.sequence("service.start", "service.stop"); len(svc) != 0 {
		t.Errorf("service calls on a scratch target: %v", svc)
	}
}

// 2. bump_revision and mark_compacted.
func TestEtcdRevisionBump(t *testing.T) {
	bump := map[string]string{"bump_revision": "1000", "mark_compacted": "true"}

	t.Run("passed to every restore; bumped cluster passes", func(t *testing.T) {
		f := newFake(t)
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3, Params: bump})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		equal(t, "checks", checks(rep), allChecks(true))
		for _, c := range f.callsTo("etcd.snapshot_restore") {
			if c.Args["bump_revision"] != int64(1000) || c.Args["mark_compacted"] != true {
				t.Errorf("restore of %s: bump_revision %v mark_compacted %v", c.Member, c.Args["bump_revision"], c.Args["mark_compacted"])
			}
		}
		if n := f.count("etcd.snapshot_restore"); n != 3 {
			t.Errorf("%d restores", n)
		}
	})

	t.Run("revision not raised enough fails validation", func(t *testing.T) {
		f := newFake(t)
		f.Break = func(c *cluster) { c.setRevision(snapRevision + 999) }
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3, Params: bump})
		wantFailure(t, rep, err, drivers.Validation, "revision bumped", "snapshot 4242 + bump 1000, cluster at 5241")
		equal(t, "checks", checks(rep), allChecks(true, "revision bumped"))
		if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:failed(validation) rollback:ok" {
			t.Errorf("phases = %s", got)
		}
	})

	for name, params := range map[string]map[string]string{
		"bump without mark_compacted": {"bump_revision": "1000"},
		"mark_compacted without bump": {"mark_compacted": "true"},
	} {
		t.Run(name+" is refused in download", func(t *testing.T) {
			f := newFake(t)
			rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3, Params: params})
			wantFailure(t, rep, err, drivers.Permanent, "bump_revision", "mark_compacted", "go together")
			if got := phases(rep); got != "download:failed(permanent)" {
				t.Errorf("phases = %s", got)
			}
			if calls := f.sequence(); len(calls) != 0 {
				t.Errorf("fake calls before the refusal: %v", calls)
			}
			// The only call is the script's fail(): nothing fetched, nothing restored.
			if len(rep.Calls) != 1 || rep.Calls[0].Builtin != "fail" {
				t.Errorf("calls before the refusal: %v", rep.Calls)
			}
		})
	}
}

// 3. Validation: a consistent cluster passes; each broken thing alone fails the run.
func TestEtcdValidation(t *testing.T) {
	t.Run("consistent cluster: every check ok", func(t *testing.T) {
		f := newFake(t)
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		equal(t, "checks", checks(rep), allChecks(false))
		for _, c := range rep.Checks {
			if c.Name == "every member healthy" && c.Detail != "3 of 3 answer without alarms" {
				t.Errorf("health detail = %q", c.Detail)
			}
		}
	})

	cases := []struct {
		name   string
		breaks func(c *cluster)
		check  string   // the one check that fails
		detail []string // and what the error says about it
	}{
		{"alarm on one member", func(c *cluster) { c.Members[1].Errors = []string{"NOSPACE"} },
			"every member healthy", []string{": NOSPACE"}},
		{"two leaders", func(c *cluster) { c.Members[2].IsLeader = true },
			"exactly one leader", []string{"leader http://"}},
		{"members disagree on the leader", func(c *cluster) { c.Members[2].Leader = c.Members[2].ID },
			"exactly one leader", nil},
		{"HashKV differs on one member", func(c *cluster) { c.Members[1].Hash ^= 1 },
			"same HashKV on every member", []string{"revision 4242: 5eed5eec, 5eed5eed"}},
		{"key count differs from the snapshot", func(c *cluster) { c.Keys = snapKeys - 1 },
			"key count equals the snapshot's", []string{"expected 17, got 16"}},
		{"revision differs from the snapshot", func(c *cluster) { c.setRevision(snapRevision + 1) },
			"revision equals the snapshot's", []string{"expected 4242, got 4243"}},
		{"member_list misses a member", func(c *cluster) { c.Listed = []string{"m1", "m3"} },
			"members", []string{`got ["m1", "m3"]`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.Break = tc.breaks
			rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
			wantFailure(t, rep, err, drivers.Validation, append([]string{"1 of 6 validation checks failed: " + tc.check}, tc.detail...)...)
			equal(t, "checks", checks(rep), allChecks(false, tc.check))
			if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:failed(validation) rollback:ok" {
				t.Errorf("phases = %s", got)
			}
			if !rep.RolledBack {
				t.Error("not rolled back")
			}
			for _, p := range rep.Phases {
				if p.Name == drivers.PhaseValidate && p.Attempts != 1 {
					t.Errorf("a failed check was retried: %d attempts", p.Attempts)
				}
			}
		})
	}

	t.Run("a transient client error is retried", func(t *testing.T) {
		f := newFake(t)
		f.failNth("etcd.status", 2, drivers.Transient, "connection reset")
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		// etcd.status is idempotent: the call is retried on its own, each
		// attempt recorded; the phase runs once.
		for _, p := range rep.Phases {
			if p.Name == drivers.PhaseValidate && (p.Attempts != 1 || p.Result != "ok") {
				t.Errorf("validate: %d attempts, %s", p.Attempts, p.Result)
			}
		}
		var attempts []string
		for _, c := range rep.Calls {
			if c.Builtin == "etcd.status" && c.Phase == drivers.PhaseValidate {
				attempts = append(attempts, fmt.Sprintf("%d:%s", c.Attempt, c.Class))
			}
		}
		equal(t, "etcd.status attempts", attempts, []string{"1:", "1:transient", "2:", "1:"})
		equal(t, "checks", checks(rep), allChecks(false))
	})
}

// 4. Integrity of the snapshot: everything here fails in download, before any restore.
func TestEtcdSnapshotIntegrity(t *testing.T) {
	noRestore := func(t *testing.T, f *fake, rep *engine.Report) {
		t.Helper()
		if got := phases(rep); got != "download:failed(corruption)" && got != "download:failed(permanent)" {
			t.Errorf("phases = %s", got)
		}
		if n := f.count("etcd.snapshot_restore"); n != 0 {
			t.Errorf("%d restores", n)
		}
	}

	t.Run("manifest revision differs from the file's", func(t *testing.T) {
		f := newFake(t)
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, map[string]any{"revision": 4000, "total_key": snapKeys}), Target: scratch3})
		wantFailure(t, rep, err, drivers.Corruption, "the snapshot file has revision 4242 but its manifest says 4000")
		noRestore(t, f, rep)
		if rep.Phases[0].Attempts != 1 {
			t.Errorf("corruption retried: %d attempts", rep.Phases[0].Attempts)
		}
	})

	t.Run("bare file without sha256 trailer is refused", func(t *testing.T) {
		f := newFake(t)
		f.Status.HasChecksum = false
		rep, err := f.run(engine.Options{Snapshot: bareSnapshot(t), Target: scratch3})
		wantFailure(t, rep, err, drivers.Corruption, "etcd-backup.db has no sha256 trailer", "--param skip_hash_check=true")
		noRestore(t, f, rep)
	})

	t.Run("bare file without trailer restores with skip_hash_check=true", func(t *testing.T) {
		f := newFake(t)
		f.Status.HasChecksum = false
		rep, err := f.run(engine.Options{Snapshot: bareSnapshot(t), Target: scratch3, Params: map[string]string{"skip_hash_check": "true"}})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if !rep.Snapshot.Bare {
			t.Error("snapshot not reported bare")
		}
		restores := f.callsTo("etcd.snapshot_restore")
		if len(restores) != 3 {
			t.Fatalf("%d restores", len(restores))
		}
		for _, c := range restores {
			if c.Args["skip_hash_check"] != true || c.Args["path"] != filepath.Join(rep.WorkDir, "download", "etcd-backup.db") {
				t.Errorf("restore of %s: %v", c.Member, c.Args)
			}
		}
		equal(t, "checks", checks(rep), allChecks(false))
	})

	t.Run("snapshot_status finds corruption", func(t *testing.T) {
		f := newFake(t)
		f.failNth("etcd.snapshot_status", 1, drivers.Corruption, "download/snapshot.db is not an etcd snapshot or is damaged")
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
		wantFailure(t, rep, err, drivers.Corruption, "not an etcd snapshot")
		noRestore(t, f, rep)
		if n := f.count("etcd.snapshot_status"); n != 1 || rep.Phases[0].Attempts != 1 {
			t.Errorf("snapshot_status called %d times, %d attempts; corruption is not retried", n, rep.Phases[0].Attempts)
		}
	})

	t.Run("a file marked compressed that does not decompress fails in download", func(t *testing.T) {
		f := newFake(t)
		snap := packSnapshot(t, nil)
		editManifest(t, snap, func(m map[string]any) { m["files"].([]any)[0].(map[string]any)["compression"] = "zstd" })
		rep, err := f.run(engine.Options{Snapshot: snap, Target: scratch3})
		wantFailure(t, rep, err, drivers.Corruption, "do not decompress as zstd")
		if got := phases(rep); got != "download:failed(corruption)" {
			t.Errorf("phases = %s", got)
		}
		if calls := f.sequence(); len(calls) != 0 {
			t.Errorf("compressed bytes reached etcd: %v", calls)
		}
	})

	t.Run("a zstd-compressed snapshot file is decompressed in download", func(t *testing.T) {
		f := newFake(t)
		src := filepath.Join(t.TempDir(), "snapshot.db")
		plain := strings.Repeat("fake etcd snapshot, compressible. ", 1000)
		writeFile(t, src, plain)
		snap := filepath.Join(t.TempDir(), "snap")
		if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "etcd", Files: []blobstore.PackFile{{Path: src}}, Dest: snap,
			Compression: "zstd", Metadata: map[string]any{"revision": snapRevision, "total_key": snapKeys}}); err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(t.TempDir(), "work")
		rep, err := f.run(engine.Options{Snapshot: snap, Target: scratch3, WorkDir: work})
		if err != nil {
			t.Fatalf("run: %v (phases %s)", err, phases(rep))
		}
		if got, _ := os.ReadFile(filepath.Join(work, "download", "snapshot.db")); string(got) != plain {
			t.Errorf("the downloaded file holds %d bytes, not the %d decompressed ones", len(got), len(plain))
		}
	})

	t.Run("a manifest listing two files is refused", func(t *testing.T) {
		f := newFake(t)
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil, "a.db", "b.db"), Target: scratch3})
		wantFailure(t, rep, err, drivers.Permanent, "an etcd snapshot holds exactly one file; this one lists 2")
		noRestore(t, f, rep)
		if calls := f.sequence(); len(calls) != 0 {
			t.Errorf("fake calls: %v", calls)
		}
	})
}

// 5. A real target: stage, stop, swap, start, wait; commit drops the previous data.
func TestEtcdRealTargetSwap(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep_previous=%v", keep), func(t *testing.T) {
			rt := newRealTarget(t, 3, nil)
			f := newFake(t)
			// Nothing is stopped before every member's data is staged, and nothing
			// started before every data dir holds the new data.
			f.Hooks["service.stop"] = func(c fakeCall) error {
				for _, m := range rt.Names {
					if got := holds(rt.Dirs[m]); got != "OLD "+m {
						t.Errorf("at service.stop(%s), %s holds %s", c.Member, m, got)
					}
				}
				return nil
			}
			f.Hooks["service.start"] = func(c fakeCall) error {
				for _, m := range rt.Names {
					if got := holds(rt.Dirs[m]); got != "NEW "+m {
						t.Errorf("at service.start(%s), %s holds %s", c.Member, m, got)
					}
				}
				return nil
			}
			params := map[string]string{}
			if keep {
				params["keep_previous"] = "true"
			}
			rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: rt.File, Params: params})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:ok commit:ok" {
				t.Errorf("phases = %s", got)
			}
			equal(t, "checks", checks(rep), allChecks(false))

			equal(t, "prepare", effects(rep, drivers.PhasePrepare), perMember(rt.Names, "fs.mkdir <{m}>.restore-run/staging-RUN"))
			equal(t, "execute", effects(rep, drivers.PhaseExecute), concat(
				perMember(rt.Names, "etcd.snapshot_restore <{m}>.restore-run/staging-RUN/data"),
				perMember(rt.Names, "service.stop {m}"),
				perMember(rt.Names, "fs.move <{m}> -> <{m}>.restore-run/previous-RUN", "fs.move <{m}>.restore-run/staging-RUN/data -> <{m}>"),
				perMember(rt.Names, "service.start {m}"),
				[]string{"etcd.wait_healthy"},
			))
			wantCommit := perMember(rt.Names, "fs.remove <{m}>.restore-run/previous-RUN", "fs.remove <{m}>.restore-run/staging-RUN", "fs.rmdir <{m}>.restore-run")
			if keep {
				wantCommit = perMember(rt.Names, "fs.remove <{m}>.restore-run/staging-RUN")
			}
			equal(t, "commit", effects(rep, drivers.PhaseCommit), wantCommit)

			for i, c := range f.callsTo("etcd.snapshot_restore") {
				m := rt.Names[i]
				if c.Member != m || c.Args["data_dir"] != rt.staging(rep, m)+"/data" || c.Args["token"] != "restore-run-test" ||
					c.Args["peer_url"] != fmt.Sprintf("http://10.0.0.%d:2380", i+1) ||
					c.Args["initial_cluster"] != "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380" {
					t.Errorf("restore %d: %v", i+1, c.Args)
				}
			}
			wantEndpoints := []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"}
			if w := f.callsTo("etcd.wait_healthy"); len(w) != 1 || !reflect.DeepEqual(w[0].Args, map[string]any{"endpoints": toAny(wantEndpoints), "timeout": int64(120)}) {
				t.Errorf("wait_healthy calls: %+v", w)
			}
			if !reflect.DeepEqual(rep.Target.Endpoints, wantEndpoints) {
				t.Errorf("endpoints = %v", rep.Target.Endpoints)
			}
			if n := f.count("etcd.start_members"); n != 0 {
				t.Errorf("start_members called %d times on a real target", n)
			}

			for _, m := range rt.Names {
				if got := holds(rt.Dirs[m]); got != "NEW "+m {
					t.Errorf("%s data dir holds %s", m, got)
				}
				wantPrev := "absent"
				if keep {
					wantPrev = "OLD " + m
				}
				if got := holds(rt.previous(rep, m)); got != wantPrev {
					t.Errorf("%s previous dir holds %s, want %s", m, got, wantPrev)
				}
				if got := holds(rt.staging(rep, m)); got != "absent" {
					t.Errorf("%s staging dir holds %s", m, got)
				}
			}
		})
	}
}

// A member whose data dir does not exist yet gets the restored data; there is
// nothing to move aside, keep or put back.
func TestEtcdRealTargetNewMember(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "m2.etcd")
	rt := newRealTarget(t, 3, map[string]string{"m2": fresh})
	f := newFake(t)
	rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: rt.File})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	swaps := effects(rep, drivers.PhaseExecute)[6:12]
	equal(t, "swaps", swaps, []string{
		"fs.move <m1> -> <m1>.restore-run/previous-RUN", "fs.move <m1>.restore-run/staging-RUN/data -> <m1>",
		"fs.move <m2>.restore-run/staging-RUN/data -> <m2>",
		"fs.move <m3> -> <m3>.restore-run/previous-RUN", "fs.move <m3>.restore-run/staging-RUN/data -> <m3>",
		"service.start m1",
	})
	for _, m := range rt.Names {
		if got := holds(rt.Dirs[m]); got != "NEW "+m {
			t.Errorf("%s data dir holds %s", m, got)
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, e := range s {
		out[i] = e
	}
	return out
}

// 6. Rollback on a real target.
func TestEtcdRealTargetRollback(t *testing.T) {
	// After a failure past the swap: members stopped, restored data moved to
	// failed-RUN, previous data back, members started, staging removed.
	swapped := []struct {
		name    string
		setup   func(f *fake)
		cls     drivers.Class
		msg     string
		phases  string
		service []string // service calls of execute and validate, before the rollback's
	}{
		{"first service.start after the swap fails",
			func(f *fake) { f.failNth("service.start", 1, drivers.Permanent, "unit etcd-m1 failed to start") },
			drivers.Permanent, "unit etcd-m1 failed to start",
			"download:ok prepare:ok execute:failed(permanent) rollback:ok",
			[]string{"service.stop(m1)", "service.stop(m2)", "service.stop(m3)", "service.start(m1)"}},
		{"validation fails after the swap",
			func(f *fake) { f.Break = func(c *cluster) { c.Members[2].Hash ^= 1 } },
			drivers.Validation, "same HashKV on every member",
			"download:ok prepare:ok execute:ok validate:failed(validation) rollback:ok",
			[]string{"service.stop(m1)", "service.stop(m2)", "service.stop(m3)", "service.start(m1)", "service.start(m2)", "service.start(m3)"}},
	}
	for _, tc := range swapped {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRealTarget(t, 3, nil)
			f := newFake(t)
			tc.setup(f)
			rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: rt.File})
			wantFailure(t, rep, err, tc.cls, tc.msg)
			if got := phases(rep); got != tc.phases {
				t.Errorf("phases = %s, want %s", got, tc.phases)
			}
			if !rep.RolledBack {
				t.Error("report not rolled back")
			}
			equal(t, "service calls", f.sequence("service.start", "service.stop"), concat(tc.service,
				perMember(rt.Names, "service.stop({m})"), perMember(rt.Names, "service.start({m})")))
			equal(t, "rollback", effects(rep, drivers.PhaseRollback), concat(
				perMember(rt.Names, "service.stop {m}"),
				perMember(rt.Names, "fs.move <{m}> -> <{m}>.restore-run/failed-RUN", "fs.move <{m}>.restore-run/previous-RUN -> <{m}>"),
				perMember(rt.Names, "service.start {m}"),
				perMember(rt.Names, "fs.remove <{m}>.restore-run/staging-RUN"),
				[]string{"etcd.wait_healthy"},
			))
			for _, m := range rt.Names {
				for dir, want := range map[string]string{
					rt.Dirs[m]:          "OLD " + m,
					rt.failed(rep, m):   "NEW " + m,
					rt.previous(rep, m): "absent",
					rt.staging(rep, m):  "absent",
				} {
					if got := holds(dir); got != want {
						t.Errorf("%s holds %s, want %s", dir, got, want)
					}
				}
			}
		})
	}

	// Before the swap nothing was stopped or moved: rollback only drops staging.
	untouched := func(t *testing.T, f *fake, rt *realTarget, rep *engine.Report) {
		t.Helper()
		if svc := f.sequence("service.start", "service.stop"); len(svc) != 0 {
			t.Errorf("service calls: %v", svc)
		}
		equal(t, "rollback", effects(rep, drivers.PhaseRollback), perMember(rt.Names, "fs.remove <{m}>.restore-run/staging-RUN"))
		if !rep.RolledBack {
			t.Error("report not rolled back")
		}
		for _, m := range rt.Names {
			if _, err := os.Stat(rt.Dirs[m]); err == nil {
				if got := holds(rt.Dirs[m]); got != "OLD "+m {
					t.Errorf("%s data dir holds %s", m, got)
				}
			}
			for _, dir := range []string{rt.staging(rep, m), rt.previous(rep, m), rt.failed(rep, m)} {
				if got := holds(dir); got != "absent" {
					t.Errorf("%s holds %s", dir, got)
				}
			}
		}
	}

	t.Run("restore of member 2 fails before any swap", func(t *testing.T) {
		rt := newRealTarget(t, 3, nil)
		f := newFake(t)
		f.failNth("etcd.snapshot_restore", 2, drivers.Permanent, "no space left on device")
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: rt.File})
		wantFailure(t, rep, err, drivers.Permanent, "no space left on device")
		if got := phases(rep); got != "download:ok prepare:ok execute:failed(permanent) rollback:ok" {
			t.Errorf("phases = %s", got)
		}
		equal(t, "restores", f.sequence("etcd.snapshot_restore"), []string{"etcd.snapshot_restore(m1)", "etcd.snapshot_restore(m2)"})
		untouched(t, f, rt, rep)
	})

	t.Run("prepare refuses when the disk has no room", func(t *testing.T) {
		// fs is real, so the room must really be missing: /proc reports 0 bytes
		// free. (A manifest claiming a huge size cannot reach prepare: blob.fetch
		// checks sizes in download; see the next subtest.)
		if runtime.GOOS != "linux" {
			t.Skip("needs /proc, a filesystem with no free space")
		}
		noRoom := "/proc/restore-run-test-no-such-dir/m3.etcd"
		rt := newRealTarget(t, 3, map[string]string{"m3": noRoom})
		f := newFake(t)
		snap := packSnapshot(t, nil)
		rep, err := f.run(engine.Options{Snapshot: snap, Target: rt.File})
		wantFailure(t, rep, err, drivers.Permanent,
			fmt.Sprintf("member m3: 0 bytes free next to %s, the restore needs about %d", noRoom, 2*rep.Snapshot.Bytes))
		if got := phases(rep); got != "download:ok prepare:failed(permanent) rollback:ok" {
			t.Errorf("phases = %s", got)
		}
		equal(t, "prepare", effects(rep, drivers.PhasePrepare), perMember(rt.Names[:2], "fs.mkdir <{m}>.restore-run/staging-RUN"))
		if w := f.sequence(writes...); len(w) != 0 {
			t.Errorf("writes after a refused prepare: %v", w)
		}
		untouched(t, f, rt, rep)
	})

	t.Run("manifest claiming an absurd size is refused before any phase", func(t *testing.T) {
		rt := newRealTarget(t, 3, nil)
		f := newFake(t)
		snap := packSnapshot(t, nil)
		editManifest(t, snap, func(m map[string]any) { m["files"].([]any)[0].(map[string]any)["size"] = 1 << 50 })
		rep, err := f.run(engine.Options{Snapshot: snap, Target: rt.File})
		wantFailure(t, rep, err, drivers.Permanent, "claims 1125899906842624 bytes (1.0 PiB), more than restore-run accepts for one file")
		if got := phases(rep); got != "" {
			t.Errorf("phases = %s, want none", got)
		}
		if calls := f.sequence(); len(calls) != 0 {
			t.Errorf("fake calls: %v", calls)
		}
		for _, m := range rt.Names {
			if got := holds(rt.Dirs[m]); got != "OLD "+m {
				t.Errorf("%s data dir holds %s", m, got)
			}
		}
	})

	t.Run("rollback that cannot restart a member still puts the old data back", func(t *testing.T) {
		rt := newRealTarget(t, 3, nil)
		f := newFake(t)
		f.Hooks["service.start"] = func(c fakeCall) error {
			if c.Member == "m1" {
				return drivers.Errorf(drivers.Permanent, "unit etcd-m1 failed to start")
			}
			return nil
		}
		rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: rt.File})
		wantFailure(t, rep, err, drivers.Permanent, "unit etcd-m1 failed to start", "rollback failed too")
		if got := phases(rep); got != "download:ok prepare:ok execute:failed(permanent) rollback:failed(permanent)" {
			t.Errorf("phases = %s", got)
		}
		if rep.RolledBack {
			t.Error("report says rolled back")
		}
		for _, m := range rt.Names {
			if got := holds(rt.Dirs[m]); got != "OLD "+m {
				t.Errorf("%s data dir holds %s", m, got)
			}
			if got := holds(rt.failed(rep, m)); got != "NEW "+m {
				t.Errorf("%s failed dir holds %s", m, got)
			}
		}
	})
}

// editManifest rewrites the manifest.json of a packed snapshot.
func editManifest(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "manifest.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, string(data))
}

// 7. Plan mode: the calls of a real run, none of its writes.
func TestEtcdPlanMode(t *testing.T) {
	runPhases := []string{drivers.PhaseDownload, drivers.PhasePrepare, drivers.PhaseExecute}
	noWrites := func(t *testing.T, f *fake, plan *engine.Report) {
		t.Helper()
		if plan.Result != "planned" {
			t.Errorf("result = %s", plan.Result)
		}
		if got := phases(plan); got != "download:planned prepare:planned execute:planned validate:skipped" {
			t.Errorf("phases = %s", got)
		}
		for _, w := range writes {
			if n := f.count(w); n != 0 {
				t.Errorf("fake %s ran %d times in plan mode", w, n)
			}
		}
		for _, c := range plan.Calls {
			if c.Effect == "WRITE" && !c.Planned {
				t.Errorf("WRITE call not marked planned: %s", c)
			}
		}
		for _, dir := range []string{"download", "scratch"} {
			if _, err := os.Stat(filepath.Join(plan.WorkDir, dir)); err == nil {
				t.Errorf("plan created %s in the work dir", dir)
			}
		}
	}

	t.Run("scratch", func(t *testing.T) {
		snap := packSnapshot(t, nil)
		f := newFake(t)
		plan, err := f.run(engine.Options{Mode: engine.ModePlan, Snapshot: snap, Target: scratch3})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		noWrites(t, f, plan)
		equal(t, "planned execute", effects(plan, drivers.PhaseExecute), concat(
			perMember([]string{"m1", "m2", "m3"}, "etcd.snapshot_restore <{m}>"), []string{"etcd.start_members"}))

		real, err := newFake(t).run(engine.Options{Snapshot: snap, Target: scratch3})
		if err != nil {
			t.Fatalf("real run: %v", err)
		}
		equal(t, "plan calls vs real run", callLines(plan, runPhases...), callLines(real, runPhases...))
	})

	t.Run("real target", func(t *testing.T) {
		snap := packSnapshot(t, nil)
		rt := newRealTarget(t, 3, nil)
		before := tree(t, filepath.Dir(rt.File))
		f := newFake(t)
		plan, err := f.run(engine.Options{Mode: engine.ModePlan, Snapshot: snap, Target: rt.File})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		noWrites(t, f, plan)
		equal(t, "files after the plan", tree(t, filepath.Dir(rt.File)), before)

		real, err := newFake(t).run(engine.Options{Snapshot: snap, Target: rt.File})
		if err != nil {
			t.Fatalf("real run: %v", err)
		}
		equal(t, "plan calls vs real run", callLines(plan, runPhases...), callLines(real, runPhases...))
	})

	t.Run("real target: no client calls against members only planned to start", func(t *testing.T) {
		rt := newRealTarget(t, 3, nil)
		f := newFake(t)
		plan, err := f.run(engine.Options{Mode: engine.ModePlan, Snapshot: packSnapshot(t, nil), Target: rt.File})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if calls := f.sequence("etcd.wait_healthy", "etcd.status", "etcd.member_list", "etcd.hashkv", "etcd.count", "etcd.get"); len(calls) != 0 {
			t.Errorf("plan mode ran etcd client calls against the target: %v (calls: %v)", calls, callLines(plan, drivers.PhaseExecute))
		}
	})
}

// tree lists every file and dir under root with the content of files.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		data, err := os.ReadFile(p)
		out = append(out, fmt.Sprintf("%s %q", rel, data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// 8. A script error inside validate names the script position.
func TestEtcdScriptErrorInValidate(t *testing.T) {
	f := newFake(t)
	f.EditStatus = func(fields map[string]any) { delete(fields, "errors") }
	rep, err := f.run(engine.Options{Snapshot: packSnapshot(t, nil), Target: scratch3})
	wantFailure(t, rep, err, drivers.Script, "errors", "(at embedded:etcd.star:")
	if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:failed(script) rollback:ok" {
		t.Errorf("phases = %s", got)
	}
	bt := engine.BacktraceOf(err)
	if !regexp.MustCompile(`embedded:etcd\.star:\d+:\d+: in validate`).MatchString(bt) {
		t.Errorf("backtrace does not name embedded:etcd.star:LINE:COL in validate:\n%s", bt)
	}
	if rep.Error == nil || rep.Error.Backtrace != bt {
		t.Errorf("report backtrace = %+v", rep.Error)
	}
	if len(rep.Checks) != 0 {
		t.Errorf("checks recorded from a crashed validate: %v", checks(rep))
	}
}
