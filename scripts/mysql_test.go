package scripts_test

// Tests of the embedded mysql.star driver with fake sql, exec, proc, mysql and
// service builtins (see mysqlfake_test.go): whole restores through engine.Runner,
// real blob and fs, no MariaDB.

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

var mysqlChecks = []string{"server answers:ok", "schemas restored:ok", "every object of the snapshot exists:ok",
	"row counts equal the snapshot's:ok", "CHECKSUM TABLE equal to the snapshot's:ok", "mariadb-check clean:ok"}

func TestMysqlScratchDump(t *testing.T) {
	f := newMyFake(t)
	snap := packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql.zst": "fake dump"})
	rep, err := f.run(engine.Options{Snapshot: snap, Target: "scratch://mysql"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := phases(rep); got != "download:ok prepare:ok execute:ok validate:ok commit:ok" {
		t.Errorf("phases = %s", got)
	}
	equal(t, "checks", checks(rep), mysqlChecks)
	equal(t, "calls", f.sequence("exec.run", "proc.", "mysql.scan", "mysql.load", "sql.move", "service."), []string{
		"download mysql.scan_dump", "execute exec.run mariadb-install-db", "execute proc.memory", "execute proc.start",
		"execute mysql.load_dump", "validate exec.run mariadb-check"})
	load := f.callsTo("mysql.load_dump")[0].Args
	// The stream straight from the blob store, auto threads, only the dump's schema.
	if load["name"] != "shop.sql.zst" || load["threads"] != int64(0) || load["commit_mb"] != int64(32) ||
		!reflect.DeepEqual(load["schemas"], []any{"shop"}) || load["rename"] != nil || load["database"] != "" {
		t.Errorf("load: %v", load)
	}
	start := f.callsTo("proc.start")[0].Args
	argv := strings.Join(toStrings(start["argv"].([]any)), " ")
	for _, want := range []string{"mariadbd --no-defaults", "--innodb-doublewrite=0", "--skip-log-bin", "--innodb-buffer-pool-size=5120M"} {
		if !strings.Contains(argv, want) {
			t.Errorf("scratch server argv %q lacks %q", argv, want)
		}
	}
	if b, _ := rep.Details["binlog"].(map[string]any); b["file"] != "mysql-bin.000003" || b["gtid"] != "0-7-17" {
		t.Errorf("binlog in details: %v", rep.Details["binlog"])
	}
	if eps := rep.Target.Endpoints; len(eps) != 2 || !strings.HasPrefix(eps[1], "unix:") {
		t.Errorf("endpoints %v", eps)
	}
}

func TestMysqlFormats(t *testing.T) {
	t.Run("mydumper directory: fetched, myloader in parallel", func(t *testing.T) {
		f := newMyFake(t)
		snap := packMySQL(t, shopMeta(""), map[string]string{"metadata": "x", "shop-schema-create.sql": "x", "shop.orders.sql": "x"})
		rep, err := f.run(engine.Options{Snapshot: snap, Target: "scratch://mysql", Params: map[string]string{"threads": "4"}})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		argv := toStrings(f.callsTo("exec.run myloader")[0].Args["argv"].([]any))
		if !contains(argv, "--threads=4") || !contains(argv, "--directory="+rep.WorkDir+"/mydumper") {
			t.Errorf("myloader argv %v", argv)
		}
		if _, err := os.Stat(filepath.Join(rep.WorkDir, "mydumper", "shop.orders.sql")); err != nil {
			t.Errorf("mydumper files not fetched: %v", err)
		}
	})

	t.Run("bare xbstream: unpacked while streaming, prepared, moved in", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Inventory = shopInventory()
		p := filepath.Join(t.TempDir(), "backup.xbstream.zst")
		writeFile(t, p, "fake stream")
		rep, err := f.run(engine.Options{Snapshot: p, Target: "scratch://mysql"})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		equal(t, "calls", f.sequence("exec.run", "proc.start"), []string{
			"execute exec.run mbstream", "execute exec.run mariabackup", "execute proc.start", "validate exec.run mariadb-check"})
		if f.callsTo("exec.run mbstream")[0].Args["stdin_blob"] != "backup.xbstream.zst" {
			t.Errorf("mbstream: %v", f.callsTo("exec.run mbstream")[0].Args)
		}
		prep := strings.Join(toStrings(f.callsTo("exec.run mariabackup")[0].Args["argv"].([]any)), " ")
		if !strings.Contains(prep, "--prepare") || !strings.Contains(prep, "--use-memory=4096M") {
			t.Errorf("prepare argv %s", prep)
		}
		datadir := rep.Target.Spec["datadir"].(string)
		if fi, err := os.Stat(datadir); err != nil || !fi.IsDir() {
			t.Errorf("the prepared backup was not moved to the data dir %s", datadir)
		}
		equal(t, "checks", checks(rep), []string{"server answers:ok", "schemas restored:ok",
			"row counts (the snapshot records none to compare):ok", "mariadb-check clean:ok"})
	})

	t.Run("unknown file is refused in download", func(t *testing.T) {
		f := newMyFake(t)
		p := filepath.Join(t.TempDir(), "backup.tar")
		writeFile(t, p, "x")
		rep, err := f.run(engine.Options{Snapshot: p, Target: "scratch://mysql"})
		wantFailure(t, rep, err, drivers.Permanent, "cannot tell the format", "--param format=")
	})
}

func TestMysqlSeriesRefused(t *testing.T) {
	f := newMyFake(t)
	f.ToolSeries = "10.6"
	file, datadir := myTarget(t, true)
	snap := packMySQL(t, shopMeta("xbstream"), map[string]string{"shop.xbstream.zst": "x"})
	rep, err := f.run(engine.Options{Snapshot: snap, Target: file})
	wantFailure(t, rep, err, drivers.Permanent, "taken from a 10.11 server", "mariabackup here is 10.6")
	if got := f.sequence("service.", "exec.run"); len(got) != 0 {
		t.Errorf("calls after the refusal: %v", got)
	}
	if got := holds(datadir); got != "OLD old data" {
		t.Errorf("data dir holds %s", got)
	}
}

func TestMysqlLivePhysicalSwap(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		f := newMyFake(t)
		file, datadir := myTarget(t, true)
		snap := packMySQL(t, shopMeta("xbstream"), map[string]string{"shop.xbstream.zst": "x"})
		f.Hooks["service.stop"] = func(map[string]any) error {
			if got := holds(datadir); got != "OLD old data" {
				t.Errorf("at service.stop the data dir holds %s", got)
			}
			return nil
		}
		rep, err := f.run(engine.Options{Snapshot: snap, Target: file})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		equal(t, "checks", checks(rep), mysqlChecks)
		equal(t, "service", f.sequence("service."), []string{"execute service.stop", "execute service.start"})
		if _, err := os.Stat(datadir + ".restore-run"); err == nil {
			t.Errorf("%s.restore-run left after commit", datadir)
		}
		if _, err := os.Stat(filepath.Join(datadir, "OLD")); err == nil {
			t.Error("the old data is still in the data dir")
		}
	})

	t.Run("start fails: the previous data dir is back and started", func(t *testing.T) {
		f := newMyFake(t)
		file, datadir := myTarget(t, true)
		snap := packMySQL(t, shopMeta("xbstream"), map[string]string{"shop.xbstream.zst": "x"})
		n := 0
		f.Hooks["service.start"] = func(map[string]any) error {
			n++
			if n == 1 {
				return drivers.Errorf(drivers.Permanent, "start failed")
			}
			if got := holds(datadir); got != "OLD old data" {
				t.Errorf("at the rollback's start the data dir holds %s", got)
			}
			return nil
		}
		rep, err := f.run(engine.Options{Snapshot: snap, Target: file})
		wantFailure(t, rep, err, drivers.Permanent, "start failed")
		if !rep.RolledBack {
			t.Fatal("not rolled back")
		}
		equal(t, "service", f.sequence("service."), []string{"execute service.stop", "execute service.start", "rollback service.stop", "rollback service.start"})
		if got := holds(datadir); got != "OLD old data" {
			t.Errorf("data dir holds %s", got)
		}
		failed, _ := filepath.Glob(datadir + ".restore-run/failed-*")
		if len(failed) != 1 {
			t.Errorf("failed restore kept for inspection: %v", failed)
		}
	})
}

func TestMysqlLiveLogical(t *testing.T) {
	snap := func(t *testing.T) string {
		return packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql": "fake dump"})
	}
	t.Run("non-empty schema refused without replace", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Objects["shop"] = 9
		file, _ := myTarget(t, false)
		rep, err := f.run(engine.Options{Snapshot: snap(t), Target: file})
		wantFailure(t, rep, err, drivers.Permanent, "schema shop", "already holds 9", "replace=true", "nothing was changed")
		for _, c := range rep.Calls {
			if c.Effect == "WRITE" && c.Builtin != "blob.fetch" {
				t.Errorf("a WRITE before the refusal: %s", c)
			}
		}
		if strings.Contains(reportJSON(t, rep), "fake-secret-pw") {
			t.Error("the password is in the report")
		}
	})

	t.Run("replace: moved aside, loaded, holding dropped on commit", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Objects["shop"] = 9
		file, _ := myTarget(t, false)
		if _, err := f.run(engine.Options{Snapshot: snap(t), Target: file, Params: map[string]string{"replace": "true"}}); err != nil {
			t.Fatalf("run: %v", err)
		}
		equal(t, "calls", f.sequence("sql.move", "sql.drop", "exec.run mariadb", "mysql.load"), []string{
			"execute sql.move_aside", "execute mysql.load_dump", "validate exec.run mariadb-check", "commit sql.drop_holding"})
		holding := f.callsTo("sql.move_aside")[0].Args["holding"].(string)
		if !strings.HasPrefix(holding, "rr_") || !strings.HasSuffix(holding, "_shop") || f.Server.Holding[holding] {
			t.Errorf("holding schema %s (left: %v)", holding, f.Server.Holding)
		}
	})

	t.Run("replace: a failed load moves the previous content back", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Objects["shop"] = 9
		f.Hooks["mysql.load_dump"] = func(map[string]any) error {
			return drivers.Errorf(drivers.Permanent, "mariadb (session rows-1) exited with code 1: ERROR 1064 (42000) at line 3 (the dump's line 90, table orders)")
		}
		file, _ := myTarget(t, false)
		rep, err := f.run(engine.Options{Snapshot: snap(t), Target: file, Params: map[string]string{"replace": "true"}})
		wantFailure(t, rep, err, drivers.Permanent, "ERROR 1064")
		equal(t, "calls", f.sequence("sql.move", "sql.drop"), []string{"execute sql.move_aside", "rollback sql.move_back"})
		if len(f.Server.Holding) != 0 {
			t.Errorf("holding schemas left: %v", f.Server.Holding)
		}
	})

	t.Run("plan: nothing runs, the password is nowhere", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Objects["shop"] = 9
		file, _ := myTarget(t, false)
		rep, err := f.run(engine.Options{Mode: engine.ModePlan, Snapshot: snap(t), Target: file, Params: map[string]string{"replace": "true"}})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		for _, c := range f.sequence("sql.move", "exec.run", "service.", "mysql.load") {
			t.Errorf("a WRITE fake ran in plan mode: %s", c)
		}
		var planned []string
		for _, c := range rep.Calls {
			if c.Planned {
				planned = append(planned, c.Builtin)
			}
		}
		if !reflect.DeepEqual(planned, []string{"sql.move_aside", "mysql.load_dump"}) {
			t.Errorf("planned writes %v", planned)
		}
		if strings.Contains(reportJSON(t, rep), "fake-secret-pw") {
			t.Error("the password is in the plan's report")
		}
	})
}

func TestMysqlValidation(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(f *myFake)
		check string
		want  string
	}{
		{"row count differs", func(f *myFake) {
			inv := shopInventory()
			inv["shop"].(map[string]any)["tables"].(map[string]any)["orders"].(map[string]any)["rows"] = 2999
			f.Server.Inventory = inv
		}, "row counts equal the snapshot's", "shop.orders: 2999 rows, the snapshot had 3001"},
		{"checksum differs", func(f *myFake) { f.Server.Checksums = map[string]string{"shop.legacy": "334"} },
			"CHECKSUM TABLE equal to the snapshot's", "shop.legacy: 334, the snapshot had 333"},
		{"a view is missing", func(f *myFake) {
			inv := shopInventory()
			inv["shop"].(map[string]any)["views"] = []any{"paid_orders"}
			f.Server.Inventory = inv
		}, "every object of the snapshot exists", "view shop.big_paid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMyFake(t)
			tc.edit(f)
			rep, err := f.run(engine.Options{Snapshot: packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql": "x"}), Target: "scratch://mysql"})
			wantFailure(t, rep, err, drivers.Validation, tc.check, tc.want)
		})
	}

	t.Run("checksums skipped across series", func(t *testing.T) {
		f := newMyFake(t)
		f.Server.Version = "11.4.3-MariaDB"
		f.Server.Checksums = map[string]string{"shop.legacy": "334"}
		rep, err := f.run(engine.Options{Snapshot: packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql": "x"}), Target: "scratch://mysql"})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		for _, c := range rep.Checks {
			if c.Name == "CHECKSUM TABLE equal to the snapshot's" && !strings.Contains(c.Detail, "skipped") {
				t.Errorf("checksum check %+v", c)
			}
		}
	})
}

func reportJSON(t *testing.T, rep *engine.Report) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.json")
	if err := rep.Write(p); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	return string(data)
}

// TestMysqlDumpLoadParams: load_threads, commit_mb, rename and database reach
// mysql.load_dump, which may write only the schemas of this restore.
func TestMysqlDumpLoadParams(t *testing.T) {
	f := newMyFake(t)
	f.Server.Inventory = map[string]any{"shop_copy": shopInventory()["shop"]} // what the renamed load holds
	snap := packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql": "fake dump"})
	if _, err := f.run(engine.Options{Snapshot: snap, Target: "scratch://mysql",
		Params: map[string]string{"load_threads": "3", "commit_mb": "64", "rename": `{"shop": "shop_copy"}`}}); err != nil {
		t.Fatalf("run: %v", err)
	}
	load := f.callsTo("mysql.load_dump")[0].Args
	if load["threads"] != int64(3) || load["commit_mb"] != int64(64) || !reflect.DeepEqual(load["rename"], map[string]any{"shop": "shop_copy"}) ||
		!reflect.DeepEqual(load["schemas"], []any{"shop_copy"}) {
		t.Errorf("load with rename: %v", load)
	}

	f = newMyFake(t)
	snap = packMySQL(t, shopMeta("mysqldump"), map[string]string{"shop.sql": "fake dump"})
	if _, err := f.run(engine.Options{Snapshot: snap, Target: "scratch://mysql", Params: map[string]string{"database": "shop", "load_threads": "1"}}); err != nil {
		t.Fatalf("run: %v", err)
	}
	load = f.callsTo("mysql.load_dump")[0].Args
	if load["database"] != "shop" || load["threads"] != int64(1) || !reflect.DeepEqual(load["schemas"], []any{"shop"}) {
		t.Errorf("load into a named database: %v", load)
	}
}
