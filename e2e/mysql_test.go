package e2e

// Restores of real MariaDB snapshots made by the real tools (mariadb-dump, mydumper,
// mariabackup) from a source server holding a schema with utf8mb4 text, blobs,
// NULLs, JSON, generated columns, foreign keys, partitions, a trigger, views,
// routines, an event and a MyISAM table. Every round trip is compared table by
// table with the source: row counts and CHECKSUM TABLE, views, routines, triggers
// and events. Live targets (a target file) prove that nothing is lost: a refused
// restore changes nothing, a failed logical restore puts the previous schema back,
// a corrupt backup or a server that does not start leaves or puts back the previous
// data dir, serving. Passwords never appear in any output.
//
// MariaDB, mariabackup, mydumper and zstd come from Debian (./test.sh installs
// them); a missing tool fails the tests, it never skips them.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/mysqlops"
	"github.com/restore-run/restore-run/targets"
)

// mysqlTools are the programs the tests need.
var mysqlTools = []string{"mariadbd", "mariadb", "mariadb-install-db", "mariadb-admin", "mariadb-dump", "mariabackup", "mbstream", "mydumper", "myloader", "mariadb-check", "zstd"}

func requireMariaDB(t *testing.T) {
	t.Helper()
	for _, p := range mysqlTools {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := os.Stat("/usr/sbin/" + p); err != nil {
				t.Fatalf("%s is not installed: run ./test.sh, which installs mariadb-server, mariadb-backup, mydumper and zstd from Debian", p)
			}
		}
	}
}

// shopRows is how many rows each big table of the test schema gets.
const shopRows = 3000

// mysqlPassword is the live target's password: it must never appear in any output.
const mysqlPassword = "Zx9-secret-PW-never-shown"

// startMysql installs a new data dir under dir and starts a throwaway mariadbd on
// it, stopped at the end of the test.
func startMysql(t *testing.T, dir string, extra ...string) *mysqlops.Server {
	t.Helper()
	ctx := context.Background()
	if err := mysqlops.InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	srv, err := mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: dir, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(time.Minute) })
	return srv
}

// tool runs a MariaDB tool against the server's socket as root and returns stdout.
func tool(t *testing.T, srv *mysqlops.Server, stdin string, argv ...string) string {
	t.Helper()
	args := append([]string{argv[0], "--socket=" + srv.Config.Socket, "--user=root"}, argv[1:]...)
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, msg)
	}
	return string(out)
}

// fillShop creates the test schema with rows rows per big table.
func fillShop(t *testing.T, srv *mysqlops.Server, rows int) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "testdata", "mysql-shop.sql"))
	if err != nil {
		t.Fatal(err)
	}
	tool(t, srv, strings.ReplaceAll(string(text), "@@rows", fmt.Sprint(rows)), "mariadb")
}

// inventory is the full inventory of schema on a server, checksums included.
func inventory(t *testing.T, c mysqlops.ConnConfig, schema string) mysqlops.Schema {
	t.Helper()
	db, err := mysqlops.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv, err := mysqlops.TakeInventory(context.Background(), db, []string{schema}, mysqlops.InventoryOptions{Counts: true, Checksums: true})
	if err != nil {
		t.Fatal(err)
	}
	return inv[schema]
}

// sameSchema fails the test unless got holds what want holds: every table with
// its row count and checksum, and the same views, routines, triggers and events.
func sameSchema(t *testing.T, want, got mysqlops.Schema) {
	t.Helper()
	if len(want.Tables) == 0 {
		t.Fatal("the source schema has no tables: the comparison would prove nothing")
	}
	for name, w := range want.Tables {
		g, ok := got.Tables[name]
		switch {
		case !ok:
			t.Errorf("table %s missing", name)
		case g.Rows != w.Rows || g.Checksum != w.Checksum || g.Engine != w.Engine:
			t.Errorf("table %s: %d rows, checksum %s, %s; the source has %d rows, checksum %s, %s", name, g.Rows, g.Checksum, g.Engine, w.Rows, w.Checksum, w.Engine)
		case w.Rows == 0:
			t.Errorf("table %s is empty in the source", name)
		}
	}
	if len(got.Tables) != len(want.Tables) {
		t.Errorf("%d tables, the source has %d", len(got.Tables), len(want.Tables))
	}
	for kind, pair := range map[string][2][]string{"views": {want.Views, got.Views}, "routines": {want.Routines, got.Routines},
		"triggers": {want.Triggers, got.Triggers}, "events": {want.Events, got.Events}} {
		if len(pair[0]) == 0 {
			t.Errorf("the source has no %s", kind)
		}
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s = %v, the source has %v", kind, pair[1], pair[0])
		}
	}
}

// shopSource is the source server and the snapshots made from it, shared by the
// tests of this package (made once, on first use).
type shopSource struct {
	srv  *mysqlops.Server
	dir  string
	want mysqlops.Schema
	md   mysqlops.Metadata
	// snapshots by format name: dump, dump.zst, mydumper, xbstream.zst (manifest
	// snapshots), and bare files.
	snaps map[string]string
	bare  map[string]string
}

var (
	shopOnce sync.Once
	shop     *shopSource
	shopErr  string
)

// theShop returns the shared source. Its server keeps running until the test
// binary exits (it stops with it: the tests never write to it).
func theShop(t *testing.T) *shopSource {
	t.Helper()
	requireMariaDB(t)
	shopOnce.Do(func() {
		s, err := makeShop()
		if err != nil {
			shopErr = err.Error()
			return
		}
		shop = s
	})
	if shop == nil {
		t.Fatalf("making the source snapshots failed: %s", shopErr)
	}
	return shop
}

// stopShop stops the shared source server and removes its files (TestMain).
func stopShop() {
	if shop != nil {
		shop.srv.Stop(time.Minute)
		os.RemoveAll(shop.dir)
	}
}

func run(stdin string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, ee.Stderr)
	}
	return string(out), err
}

func makeShop() (*shopSource, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "restore-run-e2e-mysql-source-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if err := mysqlops.InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
		return nil, err
	}
	srv, err := mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: dir, Extra: []string{"--log-bin=mysql-bin", "--server-id=7"}})
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			srv.Stop(time.Minute)
		}
	}()
	s := &shopSource{srv: srv, dir: dir, snaps: map[string]string{}, bare: map[string]string{}}
	sock := "--socket=" + srv.Config.Socket
	text, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "testdata", "mysql-shop.sql"))
	if err != nil {
		return nil, err
	}
	if _, err := run(strings.ReplaceAll(string(text), "@@rows", fmt.Sprint(shopRows)), "mariadb", sock, "-uroot"); err != nil {
		return nil, err
	}
	files := filepath.Join(dir, "files")
	os.MkdirAll(filepath.Join(files, "mydumper"), 0o755)
	dump := filepath.Join(files, "shop.sql")
	out, err := run("", "mariadb-dump", sock, "-uroot", "--databases", "shop", "--routines", "--events", "--triggers", "--single-transaction", "--master-data=2", "--gtid")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dump, []byte(out), 0o644); err != nil {
		return nil, err
	}
	if _, err := run("", "zstd", "-q", "-k", dump, "-o", dump+".zst"); err != nil {
		return nil, err
	}
	if _, err := run("", "mydumper", sock, "-u", "root", "-B", "shop", "-G", "-E", "-R", "-t", "2", "-o", filepath.Join(files, "mydumper")); err != nil {
		return nil, err
	}
	xbs := filepath.Join(files, "shop.xbstream.zst")
	if _, err := run("", "sh", "-c", fmt.Sprintf("mariabackup --backup --stream=xbstream --socket=%s --user=root 2>%s/mariabackup.log | zstd -q > %s", srv.Config.Socket, dir, xbs)); err != nil {
		return nil, err
	}
	db, err := srv.Open("")
	if err != nil {
		return nil, err
	}
	inv, err := mysqlops.TakeInventory(ctx, db, []string{"shop"}, mysqlops.InventoryOptions{Counts: true, Checksums: true})
	db.Close()
	if err != nil {
		return nil, err
	}
	s.want = inv["shop"]
	if s.md, err = mysqlops.CollectMetadata(ctx, srv.Conn(""), "", []string{"shop"}, true); err != nil {
		return nil, err
	}
	pack := func(name, format string, pf []blobstore.PackFile) error {
		md := s.md
		md.Format = format
		dest := filepath.Join(dir, "snapshots", name)
		_, err := blobstore.Pack(ctx, blobstore.PackOptions{Engine: "mysql", EngineVersion: s.md.ServerVersion, Source: "e2e-source",
			Files: pf, Dest: dest, Metadata: md.Map()})
		s.snaps[name] = dest
		return err
	}
	if err := pack("dump", "mysqldump", []blobstore.PackFile{{Path: dump}}); err != nil {
		return nil, err
	}
	if err := pack("dump.zst", "mysqldump", []blobstore.PackFile{{Path: dump + ".zst"}}); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(files, "mydumper"))
	if err != nil {
		return nil, err
	}
	var pf []blobstore.PackFile
	for _, e := range entries {
		pf = append(pf, blobstore.PackFile{Path: filepath.Join(files, "mydumper", e.Name())})
	}
	if err := pack("mydumper", "mydumper", pf); err != nil {
		return nil, err
	}
	if err := pack("xbstream.zst", "xbstream", []blobstore.PackFile{{Path: xbs}}); err != nil {
		return nil, err
	}
	s.bare["dump"], s.bare["xbstream.zst"] = dump, xbs
	ok = true
	return s, nil
}

// readyLine waits for `ready: ENDPOINTS` of a --keep run and returns the unix
// socket endpoint.
func readySocket(t *testing.T, r *running) string {
	t.Helper()
	line := r.waitLine(t, r.lines, 3*time.Minute, "`ready: ENDPOINTS` line on stdout", func(l string) bool { return strings.HasPrefix(l, "ready: ") })
	for _, ep := range strings.Split(strings.TrimPrefix(line, "ready: "), ",") {
		if s, ok := strings.CutPrefix(ep, "unix:"); ok {
			return s
		}
	}
	t.Fatalf("ready line %q names no unix socket", line)
	return ""
}

// checkNamed fails unless the report has a passed check called name (whose detail
// holds detail, when given).
func checkNamed(t *testing.T, rep *engine.Report, name, detail string) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			if !c.OK || !strings.Contains(c.Detail, detail) {
				t.Errorf("check %q: ok=%v detail %q; want ok with %q", name, c.OK, c.Detail, detail)
			}
			return
		}
	}
	t.Errorf("no check %q in %+v", name, rep.Checks)
}

// TestMysqlRoundTrip restores each format into scratch://mysql, keeps the server,
// and compares it with the source table by table.
func TestMysqlRoundTrip(t *testing.T) {
	src := theShop(t)
	for _, format := range []string{"dump", "dump.zst", "mydumper", "xbstream.zst"} {
		t.Run(format, func(t *testing.T) {
			r := startCLI(t, "restore", "--driver", "mysql", "--snapshot", src.snaps[format], "--target", "scratch://mysql", "--keep")
			sock := readySocket(t, r)
			got := inventory(t, mysqlops.ConnConfig{Socket: sock, User: "root"}, "shop")
			sameSchema(t, src.want, got)
			if code, _ := r.interruptAndWait(t, time.Minute); code != 0 {
				t.Fatalf("exit %d after SIGINT, want 0\n%s", code, r.output())
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("the scratch server's socket %s is still there after the run", sock)
			}
			rep := r.report(t)
			if rep.Result != "success" {
				t.Fatalf("result %s\n%s", rep.Result, r.output())
			}
			checkNamed(t, rep, "CHECKSUM TABLE equal to the snapshot's", fmt.Sprintf("%d tables", len(src.want.Tables)))
			checkNamed(t, rep, "row counts equal the snapshot's", "")
			checkNamed(t, rep, "every object of the snapshot exists", "")
			checkNamed(t, rep, "mariadb-check clean", "")
			b, _ := rep.Details["binlog"].(map[string]any)
			if b == nil || b["file"] != src.md.Binlog.File || fmt.Sprint(b["position"]) != fmt.Sprint(src.md.Binlog.Position) || b["gtid"] != src.md.Binlog.GTID {
				t.Errorf("report binlog %v; the source was at %+v", rep.Details["binlog"], src.md.Binlog)
			}
		})
	}
}

// TestMysqlBareFiles restores bare files (no manifest): a dump (verified only by
// its own content) and an xbstream, validated by counts.
func TestMysqlBareFiles(t *testing.T) {
	src := theShop(t)
	for _, name := range []string{"dump", "xbstream.zst"} {
		t.Run(name, func(t *testing.T) {
			res := cli(t, 5*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.bare[name], "--target", "scratch://mysql").mustSucceed(t)
			checkNamed(t, res.Report, "row counts (the snapshot records none to compare)", "")
			checkNamed(t, res.Report, "mariadb-check clean", "")
		})
	}
}

// liveServer is an existing server a target file describes.
type liveServer struct {
	srv    *mysqlops.Server
	target string
	port   int
}

// startLive starts a server on a TCP port with a password-protected account and
// writes a target file for it (the password by env reference).
func startLive(t *testing.T) *liveServer {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := startMysqlErr(dir, ports[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(time.Minute) })
	tool(t, srv, fmt.Sprintf("CREATE USER restorer@'127.0.0.1' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO restorer@'127.0.0.1' WITH GRANT OPTION;", mysqlPassword), "mariadb")
	t.Setenv("E2E_MYSQL_PASSWORD", mysqlPassword)
	target := filepath.Join(dir, "target.yaml")
	writeText(t, target, fmt.Sprintf("engine: mysql\nhost: 127.0.0.1\nport: %d\nuser: restorer\npassword: {env: E2E_MYSQL_PASSWORD}\n", ports[0]))
	return &liveServer{srv: srv, target: target, port: ports[0]}
}

func startMysqlErr(dir string, port int) (*mysqlops.Server, error) {
	ctx := context.Background()
	if err := mysqlops.InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
		return nil, err
	}
	return mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: dir, Port: port})
}

func freePorts(n int) ([]int, error) { return targets.FreePorts(n) }

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noPassword fails if the password shows anywhere in what a run printed or wrote.
func noPassword(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, mysqlPassword) {
			t.Errorf("the password appears in the %s", what)
		}
	}
}

func reportText(t *testing.T, rep *engine.Report) string {
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestMysqlLiveLogical restores into an existing server whose schema already
// holds other data: refused without replace; with replace, a failing load puts
// the previous schema back; a good one replaces it.
func TestMysqlLiveLogical(t *testing.T) {
	src := theShop(t)
	live := startLive(t)
	fillShop(t, live.srv, 40) // an older, smaller shop
	liveConn := mysqlops.ConnConfig{Socket: live.srv.Config.Socket, User: "root"}
	before := inventory(t, liveConn, "shop")

	t.Run("refused without replace", func(t *testing.T) {
		res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["dump.zst"], "--target", live.target)
		res.mustFail(t, 1, "schema shop", "already holds", "replace=true")
		noPassword(t, "output of a refused restore", res.Stdout, res.Stderr, reportText(t, res.Report))
		sameSchema(t, before, inventory(t, liveConn, "shop"))
	})

	t.Run("failed load with replace puts the previous schema back", func(t *testing.T) {
		// A dump that breaks half way: the first tables load, then a statement fails.
		text, err := os.ReadFile(src.bare["dump"])
		if err != nil {
			t.Fatal(err)
		}
		cut := strings.Index(string(text), "-- Table structure for table `legacy`")
		if cut < 0 {
			t.Fatal("the dump has no legacy table")
		}
		broken := filepath.Join(t.TempDir(), "broken.sql")
		writeText(t, broken, string(text[:cut])+"\nTHIS IS NOT SQL;\n"+string(text[cut:]))
		res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", broken, "--target", live.target, "--param", "replace=true")
		// The failing statement is named with its line of the dump.
		line := strings.Count(string(text[:cut]), "\n") + 2
		res.mustFail(t, 1, "mariadb (session control) exited with code 1", "ERROR 1064", fmt.Sprintf("(the dump's line %d)", line))
		if res.Report == nil || !res.Report.RolledBack {
			t.Fatalf("not rolled back\n%s", res.Stderr)
		}
		noPassword(t, "output of a failed restore", res.Stdout, res.Stderr, reportText(t, res.Report))
		sameSchema(t, before, inventory(t, liveConn, "shop"))
		if schemas := userSchemas(t, liveConn); !reflect.DeepEqual(schemas, []string{"shop"}) {
			t.Errorf("schemas after the rollback: %v, want only shop (no holding schema left)", schemas)
		}
	})

	t.Run("plan shows the steps without the password", func(t *testing.T) {
		res := cli(t, 3*time.Minute, "plan", "--driver", "mysql", "--snapshot", src.snaps["dump"], "--target", live.target, "--param", "replace=true").mustSucceed(t)
		for _, want := range []string{"sql.move_aside(\"shop\"", "mysql.load_dump(\"shop.sql\"", "schemas=[\"shop\"]"} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("plan does not show %s:\n%s", want, res.Stdout)
			}
		}
		noPassword(t, "plan", res.Stdout, res.Stderr, reportText(t, res.Report))
		sameSchema(t, before, inventory(t, liveConn, "shop"))
	})

	t.Run("replace", func(t *testing.T) {
		res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["dump.zst"], "--target", live.target, "--param", "replace=true").mustSucceed(t)
		noPassword(t, "output of a restore", res.Stdout, res.Stderr, reportText(t, res.Report))
		sameSchema(t, src.want, inventory(t, liveConn, "shop"))
		checkNamed(t, res.Report, "CHECKSUM TABLE equal to the snapshot's", "tables")
		if schemas := userSchemas(t, liveConn); !reflect.DeepEqual(schemas, []string{"shop"}) {
			t.Errorf("schemas after the restore: %v, want only shop (the holding schema dropped)", schemas)
		}
	})

	t.Run("under another name", func(t *testing.T) {
		res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["mydumper"], "--target", live.target, "--param", `rename={"shop": "shop_copy"}`).mustSucceed(t)
		sameSchema(t, src.want, inventory(t, liveConn, "shop_copy"))
		checkNamed(t, res.Report, "CHECKSUM TABLE equal to the snapshot's", "tables")
	})
}

func userSchemas(t *testing.T, c mysqlops.ConnConfig) []string {
	t.Helper()
	db, err := mysqlops.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := mysqlops.UserSchemas(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serviceServer is a mariadbd controlled like an installed service, through
// mysql-service.sh start/stop commands in its target file.
type serviceServer struct {
	state, datadir, socket, target string
}

func startService(t *testing.T) *serviceServer {
	t.Helper()
	base := t.TempDir()
	s := &serviceServer{state: filepath.Join(base, "state"), datadir: filepath.Join(base, "data"), socket: filepath.Join(base, "mysqld.sock")}
	os.MkdirAll(s.state, 0o755)
	if err := mysqlops.InstallDB(context.Background(), s.datadir); err != nil {
		t.Fatal(err)
	}
	args := mysqlops.ServerArgs(mysqlops.ServerConfig{Dir: base, DataDir: s.datadir, Socket: s.socket})
	writeText(t, filepath.Join(s.state, "flags"), strings.Join(args[1:], "\n")+"\n")
	svc := filepath.Join(repoRoot, "e2e", "testdata", "mysql-service.sh")
	s.target = filepath.Join(base, "target.yaml")
	writeText(t, s.target, fmt.Sprintf("engine: mysql\nsocket: %s\nuser: root\ndatadir: %s\nos_user: root\nservice:\n  start: [%s, start, %s]\n  stop: [%s, stop, %s]\n",
		s.socket, s.datadir, svc, s.state, svc, s.state))
	s.service(t, "start")
	t.Cleanup(func() { s.service(t, "stop") })
	if _, err := mysqlops.WaitReady(context.Background(), s.conn(), time.Minute); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *serviceServer) conn() mysqlops.ConnConfig {
	return mysqlops.ConnConfig{Socket: s.socket, User: "root"}
}

func (s *serviceServer) service(t *testing.T, action string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "e2e", "testdata", "mysql-service.sh"), action, s.state).CombinedOutput()
	if err != nil {
		t.Fatalf("mysql-service.sh %s: %v: %s", action, err, out)
	}
}

func (s *serviceServer) events() string {
	data, _ := os.ReadFile(filepath.Join(s.state, "events"))
	return string(data)
}

// marker writes a row only the previous data dir holds.
func (s *serviceServer) marker(t *testing.T) {
	t.Helper()
	db, err := mysqlops.Open(s.conn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE DATABASE previous_data", "CREATE TABLE previous_data.marker (id INT PRIMARY KEY, note VARCHAR(50))", "INSERT INTO previous_data.marker VALUES (1, 'the data before the restore')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// servesPrevious fails unless the server answers with the marker row.
func (s *serviceServer) servesPrevious(t *testing.T) {
	t.Helper()
	if _, err := mysqlops.WaitReady(context.Background(), s.conn(), 30*time.Second); err != nil {
		t.Fatalf("the server does not answer after the failed restore: %v\nevents:\n%s", err, s.events())
	}
	db, err := mysqlops.Open(s.conn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var note string
	if err := db.QueryRow("SELECT note FROM previous_data.marker WHERE id = 1").Scan(&note); err != nil || note != "the data before the restore" {
		t.Fatalf("the server does not serve the previous data (%q, %v)", note, err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'").Scan(&n); err != nil || n != 0 {
		t.Errorf("the restored shop schema is visible after the rollback (%d, %v)", n, err)
	}
}

// TestMysqlLivePhysical swaps the data dir of a server run as a service.
func TestMysqlLivePhysical(t *testing.T) {
	src := theShop(t)

	t.Run("corrupt xbstream leaves the server untouched", func(t *testing.T) {
		s := startService(t)
		s.marker(t)
		data, err := os.ReadFile(src.bare["xbstream.zst"])
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		data[len(data)/2+1] ^= 0xff
		bad := filepath.Join(t.TempDir(), "shop.xbstream.zst")
		writeText(t, bad, string(data))
		res := cli(t, 3*time.Minute, "restore", "--driver", "mysql", "--snapshot", bad, "--target", s.target)
		res.mustFail(t, 1)
		if strings.Contains(s.events(), "stopped") {
			t.Errorf("the server was stopped for a backup that cannot be unpacked:\n%s", s.events())
		}
		s.servesPrevious(t)
		left, _ := os.ReadDir(s.datadir + ".restore-run")
		if len(left) != 0 {
			t.Errorf("left in %s.restore-run: %v", s.datadir, left)
		}
	})

	t.Run("a failed start puts the previous data dir back", func(t *testing.T) {
		s := startService(t)
		s.marker(t)
		writeText(t, filepath.Join(s.state, "fail-next-start"), "")
		res := cli(t, 5*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["xbstream.zst"], "--target", s.target)
		res.mustFail(t, 1, "fail-next-start")
		if res.Report == nil || !res.Report.RolledBack {
			t.Fatalf("not rolled back\n%s", res.Stderr)
		}
		s.servesPrevious(t)
		if !strings.Contains(s.events(), "start failed (fail-next-start)") {
			t.Errorf("events:\n%s", s.events())
		}
	})

	t.Run("swap", func(t *testing.T) {
		s := startService(t)
		s.marker(t)
		res := cli(t, 5*time.Minute, "restore", "--driver", "mysql", "--snapshot", src.snaps["xbstream.zst"], "--target", s.target).mustSucceed(t)
		checkNamed(t, res.Report, "CHECKSUM TABLE equal to the snapshot's", "tables")
		sameSchema(t, src.want, inventory(t, s.conn(), "shop"))
		if _, err := os.Stat(s.datadir + ".restore-run"); err == nil {
			t.Errorf("%s.restore-run is left after a successful restore", s.datadir)
		}
	})
}
