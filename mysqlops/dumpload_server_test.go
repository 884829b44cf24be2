package mysqlops

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// startTestServer installs a data dir under dir and starts a throwaway
// mariadbd on it, stopped at the end of the test. MariaDB must be installed
// (./test.sh installs it): a missing server fails the test.
func startTestServer(t *testing.T, dir string, extra ...string) *Server {
	t.Helper()
	ctx := context.Background()
	if err := InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
		t.Fatalf("%v (MariaDB's server is needed: ./test.sh installs it)", err)
	}
	srv, err := StartServer(ctx, ServerConfig{Dir: dir, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(time.Minute) })
	return srv
}

// shopDump loads the project's rich test schema (e2e/testdata/mysql-shop.sql:
// utf8mb4, blobs, NULLs, JSON, generated columns, FKs, partitions, triggers,
// views, routines, an event, a MyISAM table) into a new server, dumps it with
// mariadb-dump as the driver's users do, and returns the dump and the source's
// inventory with checksums.
func shopDump(t *testing.T, rows int) ([]byte, Schema) {
	t.Helper()
	src := startTestServer(t, t.TempDir(), "--log-bin=mysql-bin", "--server-id=3")
	text, err := os.ReadFile(filepath.Join("..", "e2e", "testdata", "mysql-shop.sql"))
	if err != nil {
		t.Fatal(err)
	}
	sock := "--socket=" + src.Config.Socket
	load := exec.Command("mariadb", sock, "-uroot")
	load.Stdin = strings.NewReader(strings.ReplaceAll(string(text), "@@rows", fmt.Sprint(rows)))
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load the test schema: %v: %s", err, out)
	}
	// --net-buffer-length keeps the extended INSERTs small, so that each
	// table's rows come in many statements spread over the sessions.
	dump, err := exec.Command("mariadb-dump", sock, "-uroot", "--databases", "shop", "--routines", "--events", "--triggers",
		"--single-transaction", "--master-data=1", "--gtid", "--net-buffer-length=16384").Output()
	if err != nil {
		t.Fatalf("mariadb-dump: %v", err)
	}
	return dump, inventoryOf(t, src, "shop")
}

func inventoryOf(t *testing.T, srv *Server, schema string) Schema {
	t.Helper()
	db, err := srv.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv, err := TakeInventory(context.Background(), db, []string{schema}, InventoryOptions{Counts: true, Checksums: true})
	if err != nil {
		t.Fatal(err)
	}
	return inv[schema]
}

func sameInventory(t *testing.T, name string, want, got Schema) {
	t.Helper()
	if len(want.Tables) < 5 || len(want.Views) == 0 || len(want.Routines) == 0 || len(want.Triggers) == 0 || len(want.Events) == 0 {
		t.Fatalf("the source lacks objects, the comparison would prove little: %+v", want)
	}
	for tb, w := range want.Tables {
		g := got.Tables[tb]
		if w.Rows == 0 || g != w {
			t.Errorf("%s: table %s: %+v, the source has %+v", name, tb, g, w)
		}
	}
	if len(got.Tables) != len(want.Tables) || !reflect.DeepEqual(want.Views, got.Views) || !reflect.DeepEqual(want.Routines, got.Routines) ||
		!reflect.DeepEqual(want.Triggers, got.Triggers) || !reflect.DeepEqual(want.Events, got.Events) {
		t.Errorf("%s: objects differ:\n got %+v\nwant %+v", name, got, want)
	}
}

// TestLoadDumpServer loads a mariadb-dump of the rich schema into a real
// server in every mode (one client session; 2 and 3 row sessions through
// clients or the Go driver; renamed) and compares row counts, CHECKSUM TABLE
// and every object with the source. The trigger must not fire on the dump's
// own rows: audit's checksum proves it.
func TestLoadDumpServer(t *testing.T) {
	dump, want := shopDump(t, 1500)
	if !bytes.Contains(dump, []byte("CHANGE MASTER TO MASTER_LOG_FILE")) || !bytes.Contains(dump, []byte("DELIMITER ;;")) {
		t.Fatal("the dump lacks the replication set-up or the DELIMITER blocks this test is about")
	}
	dst := startTestServer(t, t.TempDir(), "--innodb-print-all-deadlocks=ON")
	client := []string{"mariadb", "--socket=" + dst.Config.Socket, "-uroot"}
	conn := dst.Conn("")
	for _, c := range []struct {
		name    string
		threads int
		conn    *ConnConfig
	}{
		{"serial", 1, nil},
		{"clients-2", 2, nil},
		{"driver-2", 2, &conn},
		{"driver-3", 3, &conn},
	} {
		t.Run(c.name, func(t *testing.T) {
			schema := "shop_" + strings.ReplaceAll(c.name, "-", "_")
			res, err := LoadDump(context.Background(), bytes.NewReader(dump), LoadOptions{Client: client, Threads: c.threads, Conn: c.conn,
				Rename: map[string]string{"shop": schema}, Schemas: []string{schema}, CommitBytes: 64 << 10})
			if err != nil {
				db, _ := dst.Open("")
				var typ, name, status string
				db.QueryRow("SHOW ENGINE INNODB STATUS").Scan(&typ, &name, &status)
				db.Close()
				if i := strings.Index(status, "LATEST DETECTED DEADLOCK"); i >= 0 {
					status = status[i:min(len(status), i+4000)]
				}
				t.Fatalf("%v\nSHOW ENGINE INNODB STATUS:\n%s", err, status)
			}
			if !res.Complete || res.Binlog.File == "" || res.Binlog.GTID == "" || len(res.Skipped) == 0 || res.Inserts < 10 {
				t.Errorf("result: %+v", res)
			}
			sameInventory(t, c.name, want, inventoryOf(t, dst, schema))
			// Replication set-up (--master-data=1) was not run on the target.
			db, _ := dst.Open("")
			defer db.Close()
			var pos string
			db.QueryRow("SELECT @@GLOBAL.gtid_slave_pos").Scan(&pos)
			if pos != "" {
				t.Errorf("gtid_slave_pos = %q: the dump's replication set-up ran", pos)
			}
		})
	}
}

// TestLoadDumpServerFailures: a failing statement names the dump's line and
// leaves nothing uncommitted; a cut dump fails as corruption.
func TestLoadDumpServerFailures(t *testing.T) {
	dst := startTestServer(t, t.TempDir())
	client := []string{"mariadb", "--socket=" + dst.Config.Socket, "-uroot"}
	conn := dst.Conn("")
	head := "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\nCREATE DATABASE `f`;\nUSE `f`;\n" +
		"CREATE TABLE `t` (`id` int PRIMARY KEY) ENGINE=InnoDB;\n"
	var rows strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&rows, "INSERT INTO `t` VALUES (%d);\n", i)
	}
	bad := head + rows.String() + "INSERT INTO `t` VALUES (1,2,3);\n-- Dump completed on 2026-11-25\n"
	for _, c := range []*ConnConfig{nil, &conn} {
		_, err := LoadDump(context.Background(), strings.NewReader(bad), LoadOptions{Client: client, Threads: 2, Conn: c})
		if err == nil || !strings.Contains(err.Error(), "the dump's line 55") || !strings.Contains(err.Error(), "1136") {
			t.Errorf("a failing statement (driver %v): %v; want error 1136 at the dump's line 55", c != nil, err)
		}
		mustExec(t, dst, "DROP DATABASE IF EXISTS `f`")
	}
	cut := head + rows.String()
	_, err := LoadDump(context.Background(), strings.NewReader(cut), LoadOptions{Client: client, Threads: 2, Conn: &conn})
	if drivers.ClassOf(err) != drivers.Corruption {
		t.Errorf("a cut dump: %v (class %s), want corruption", err, drivers.ClassOf(err))
	}
	mustExec(t, dst, "DROP DATABASE IF EXISTS `f`")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadDump(ctx, strings.NewReader(head+rows.String()+"-- Dump completed\n"), LoadOptions{Client: client, Threads: 2, Conn: &conn}); drivers.ClassOf(err) != drivers.Cancelled {
		t.Errorf("a cancelled load: %v (class %s)", err, drivers.ClassOf(err))
	}
}

func mustExec(t *testing.T, srv *Server, q string) {
	t.Helper()
	db, err := srv.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}
