package mysqlops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// executed is one statement a fake session ran.
type executed struct {
	seq  int64
	lane int
	text string
}

// fakeServer records what every fake session runs, in one order.
type fakeServer struct {
	mu     sync.Mutex
	seq    int64
	log    []executed
	failOn string        // a statement containing it fails
	delay  time.Duration // at most this long per INSERT, at random
	closed atomic.Int32  // sessions whose input ended normally
	killed atomic.Int32
}

func (f *fakeServer) record(lane int, text string) {
	f.mu.Lock()
	f.seq++
	f.log = append(f.log, executed{seq: f.seq, lane: lane, text: text})
	f.mu.Unlock()
}

// fakeSession splits what it is given as the mariadb client would, answers
// markers, and records every other statement.
type fakeSession struct {
	srv      *fakeServer
	lane     int
	pw       *io.PipeWriter
	out      *io.PipeReader
	done     chan struct{}
	code     atomic.Int32
	stderr   Tail
	inClosed atomic.Bool
	killOnce sync.Once
}

func (f *fakeServer) start(_ context.Context, lane int, argv []string) (session, error) {
	if !strings.Contains(strings.Join(argv, " "), "--init-command="+DefaultInitCommand) {
		return nil, fmt.Errorf("session %d started without the init command: %q", lane, argv)
	}
	pr, pw := io.Pipe()
	or, ow := io.Pipe()
	s := &fakeSession{srv: f, lane: lane, pw: pw, out: or, done: make(chan struct{})}
	rng := rand.New(rand.NewSource(int64(lane)))
	go func() {
		defer func() { ow.Close(); close(s.done) }()
		sp := NewDumpSplitter(pr, nil)
		for {
			st, err := sp.Next()
			if err == io.EOF {
				if s.inClosed.Load() {
					f.closed.Add(1)
				}
				return
			}
			if err != nil {
				s.code.Store(1)
				return
			}
			if st.Kind == StmtSandbox {
				continue // a client command, not a statement
			}
			q := strings.TrimSpace(string(st.Text))
			if id, ok := markerOf([]byte(strings.TrimSuffix(q, ";"))); ok {
				fmt.Fprintln(ow, id)
				continue
			}
			if f.failOn != "" && strings.Contains(q, f.failOn) {
				s.code.Store(1)
				fmt.Fprintf(&s.stderr, "ERROR 1064 (42000) at line %d: You have an error in your SQL syntax\n", st.Line)
				pr.CloseWithError(errors.New("the client exited"))
				return
			}
			if st.Kind == StmtInsert && f.delay > 0 {
				time.Sleep(time.Duration(rng.Int63n(int64(f.delay))))
			}
			f.record(lane, q)
		}
	}()
	return s, nil
}

func (s *fakeSession) Write(p []byte) (int, error) { return s.pw.Write(p) }
func (s *fakeSession) CloseInput()                 { s.inClosed.Store(true); s.pw.Close() }
func (s *fakeSession) InputClosed() bool           { return s.inClosed.Load() }
func (s *fakeSession) Output() io.Reader           { return s.out }
func (s *fakeSession) Stderr() string              { return s.stderr.String() }
func (s *fakeSession) Kill() {
	s.killOnce.Do(func() { s.srv.killed.Add(1) })
	s.code.Store(137)
	s.pw.CloseWithError(errors.New("killed"))
}
func (s *fakeSession) Wait() (int, error) { <-s.done; return int(s.code.Load()), nil }

// loadDump is a dump with what LoadDump orders: InnoDB tables loaded over
// several sessions, a MyISAM table under LOCK TABLES, a trigger after its
// table's rows, a view, a routine, replication set-up.
func loadDump(rows int) string {
	var b strings.Builder
	b.WriteString("/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n")
	b.WriteString("/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n/*M!100101 SET GLOBAL gtid_slave_pos='0-1-9' */;\nCHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=4;\n")
	b.WriteString("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `shop`;\n")
	for _, tb := range []string{"a", "b", "orders"} {
		fmt.Fprintf(&b, "DROP TABLE IF EXISTS `%s`;\nCREATE TABLE `%s` (\n  `id` int NOT NULL\n) ENGINE=InnoDB;\nLOCK TABLES `%s` WRITE;\n/*!40000 ALTER TABLE `%s` DISABLE KEYS */;\n", tb, tb, tb, tb)
		for i := 0; i < rows; i++ {
			fmt.Fprintf(&b, "INSERT INTO `%s` VALUES (%d);\n", tb, i)
		}
		fmt.Fprintf(&b, "/*!40000 ALTER TABLE `%s` ENABLE KEYS */;\nUNLOCK TABLES;\nCOMMIT;\n", tb)
	}
	b.WriteString("DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW BEGIN INSERT INTO a VALUES (-1); END */;;\nDELIMITER ;\n")
	b.WriteString("CREATE TABLE `legacy` (\n  `id` int NOT NULL\n) ENGINE=MyISAM;\nLOCK TABLES `legacy` WRITE;\n/*!40000 ALTER TABLE `legacy` DISABLE KEYS */;\n")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "INSERT INTO `legacy` VALUES (%d);\n", i)
	}
	b.WriteString("/*!40000 ALTER TABLE `legacy` ENABLE KEYS */;\nUNLOCK TABLES;\n")
	b.WriteString("/*!50001 CREATE VIEW `v` AS select `id` from `legacy` */;\nDELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END ;;\nDELIMITER ;\n")
	b.WriteString("INSERT INTO `b` VALUES (1000);\n-- Dump completed on 2026-11-25 18:19:37\n")
	return b.String()
}

func runFakeLoad(t *testing.T, ctx context.Context, f *fakeServer, dump string, o LoadOptions) (LoadResult, error) {
	t.Helper()
	o.Client = []string{"mariadb"}
	o.start = f.start
	if o.QueueBytes == 0 {
		o.QueueBytes = 256 // small queues: the dispatcher blocks often
	}
	return LoadDump(ctx, strings.NewReader(dump), o)
}

// TestLoadDumpOrder checks, over many interleavings, what LoadDump promises:
// rows after their table's DDL, a trigger only after the rows before it are
// committed, the rows of a MyISAM table in one session under its LOCK TABLES,
// SET statements on every session, replication set-up never run, and every
// row loaded exactly once.
func TestLoadDumpOrder(t *testing.T) {
	const rows = 40
	dump := loadDump(rows)
	for _, threads := range []int{2, 3} {
		for round := 0; round < 5; round++ {
			f := &fakeServer{delay: time.Millisecond}
			res, err := runFakeLoad(t, context.Background(), f, dump, LoadOptions{Threads: threads, CommitBytes: 200})
			if err != nil {
				t.Fatalf("threads=%d: %v", threads, err)
			}
			if res.Sessions != threads+1 || res.Inserts != 4*rows+1 || len(res.Skipped) != 2 || res.Binlog.GTID != "" && res.Binlog.GTID != "0-1-9" {
				t.Fatalf("threads=%d: result %+v", threads, res)
			}
			if int(f.closed.Load()) != threads+1 || f.killed.Load() != 0 {
				t.Fatalf("threads=%d: %d sessions ended their input, %d killed", threads, f.closed.Load(), f.killed.Load())
			}
			checkOrder(t, f.log, rows, threads)
		}
	}
}

func checkOrder(t *testing.T, log []executed, rows, threads int) {
	t.Helper()
	at := map[string]executed{}
	seen := map[string]int{}
	lanesOf := map[string]map[int]bool{}
	for _, e := range log {
		seen[e.text]++
		at[e.text] = e
		if lanesOf[e.text] == nil {
			lanesOf[e.text] = map[int]bool{}
		}
		lanesOf[e.text][e.lane] = true
	}
	for _, bad := range []string{"CHANGE MASTER", "gtid_slave_pos"} {
		for text := range seen {
			if strings.Contains(text, bad) {
				t.Fatalf("replication set-up ran: %q", text)
			}
		}
	}
	if n := len(lanesOf["/*!40101 SET NAMES utf8mb4 */;"]); n != threads+1 {
		t.Fatalf("SET NAMES ran on %d sessions, want all %d", n, threads+1)
	}
	if n := len(lanesOf["USE `shop`;"]); n != threads+1 {
		t.Fatalf("USE ran on %d sessions, want all %d", n, threads+1)
	}
	// Row sessions load with unique_checks on (MariaDB's bulk insert into an
	// empty table would lock the table against the other sessions).
	unique := map[int]string{}
	for _, e := range log {
		if strings.Contains(strings.ToLower(e.text), "unique_checks") {
			unique[e.lane] = e.text
		}
		if strings.HasPrefix(e.text, "INSERT") && unique[e.lane] != "SET SESSION unique_checks=1;" {
			t.Fatalf("%s ran on session %d after %q", e.text, e.lane, unique[e.lane])
		}
	}
	rowLanes := map[int]bool{}
	for _, tb := range []string{"a", "b", "orders", "legacy"} {
		create := at[fmt.Sprintf("CREATE TABLE `%s` (\n  `id` int NOT NULL\n) ENGINE=%s;", tb, map[bool]string{true: "MyISAM", false: "InnoDB"}[tb == "legacy"])]
		if create.seq == 0 {
			t.Fatalf("CREATE TABLE %s did not run", tb)
		}
		for i := 0; i < rows; i++ {
			text := fmt.Sprintf("INSERT INTO `%s` VALUES (%d);", tb, i)
			e := at[text]
			if seen[text] != 1 {
				t.Fatalf("%s ran %d times", text, seen[text])
			}
			if e.seq < create.seq || e.lane == 0 {
				t.Fatalf("%s ran at %d on session %d; its CREATE TABLE at %d", text, e.seq, e.lane, create.seq)
			}
			if tb != "legacy" {
				rowLanes[e.lane] = true
			}
		}
	}
	if len(rowLanes) < 2 {
		t.Errorf("InnoDB rows used %d sessions, want them spread over several", len(rowLanes))
	}
	// The MyISAM table: one session, between its LOCK TABLES and UNLOCK TABLES.
	lock, unlock := at["LOCK TABLES `legacy` WRITE;"], at["UNLOCK TABLES;"]
	if seen["LOCK TABLES `legacy` WRITE;"] != 1 || seen["UNLOCK TABLES;"] != 1 || lock.lane != unlock.lane || lock.lane == 0 {
		t.Fatalf("MyISAM locks: lock %+v unlock %+v (%d unlocks); InnoDB ones must be left out", lock, unlock, seen["UNLOCK TABLES;"])
	}
	for i := 0; i < rows; i++ {
		e := at[fmt.Sprintf("INSERT INTO `legacy` VALUES (%d);", i)]
		if e.lane != lock.lane || e.seq < lock.seq || e.seq > unlock.seq {
			t.Fatalf("MyISAM row %d at %d on session %d, outside its lock (%d-%d on session %d)", i, e.seq, e.lane, lock.seq, unlock.seq, lock.lane)
		}
	}
	if seen["/*!40000 ALTER TABLE `legacy` ENABLE KEYS */;"] != 1 || seen["/*!40000 ALTER TABLE `a` ENABLE KEYS */;"] != 0 {
		t.Fatal("DISABLE/ENABLE KEYS: kept for MyISAM, left out for InnoDB")
	}
	// The trigger and the view: after every row before them, each committed.
	for _, name := range []string{"TRIGGER orders_audit", "CREATE VIEW `v`"} {
		var obj executed
		for text, e := range at {
			if strings.Contains(text, name) {
				obj = e
			}
		}
		if obj.seq == 0 || obj.lane != 0 {
			t.Fatalf("%s ran at %d on session %d, want once on the control session", name, obj.seq, obj.lane)
		}
		for _, e := range log {
			if !strings.HasPrefix(e.text, "INSERT INTO") || (name == "TRIGGER orders_audit" && strings.Contains(e.text, "legacy")) || e.text == "INSERT INTO `b` VALUES (1000);" {
				continue
			}
			if e.seq > obj.seq {
				t.Fatalf("%s ran at %d, before %s (at %d)", name, obj.seq, e.text, e.seq)
			}
			if !committedBetween(log, e, obj.seq) {
				t.Fatalf("%s was not committed before %s ran", e.text, name)
			}
		}
	}
	if last := at["INSERT INTO `b` VALUES (1000);"]; last.seq < at["CREATE PROCEDURE p() BEGIN SELECT 1; END ;;"].seq {
		t.Fatal("a row after the routine ran before it")
	}
}

// committedBetween reports whether e's session ran COMMIT after e and before seq.
func committedBetween(log []executed, e executed, seq int64) bool {
	for _, c := range log {
		if c.lane == e.lane && c.text == "COMMIT;" && c.seq > e.seq && c.seq < seq {
			return true
		}
	}
	return false
}

// TestLoadDumpSerial: Threads 1 runs the whole dump in order on one session.
func TestLoadDumpSerial(t *testing.T) {
	dump := loadDump(5)
	f := &fakeServer{}
	res, err := runFakeLoad(t, context.Background(), f, dump, LoadOptions{Threads: 1})
	if err != nil || res.Sessions != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	// COMMITs left out: the session adds its own (CommitBytes, the end).
	var want []string
	stmts, _, _ := splitAll([]byte(dump), nil)
	for _, st := range stmts {
		if text := strings.TrimSpace(string(st.Text)); st.Kind != StmtReplication && st.Kind != StmtSandbox && text != "COMMIT;" {
			want = append(want, text)
		}
	}
	var got []string
	for _, e := range f.log {
		if e.text != "COMMIT;" {
			got = append(got, e.text)
		}
	}
	if n := len(f.log) - len(got); n == 0 {
		t.Error("a serial load never committed")
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("serial load ran, in order:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLoadDumpFailures: a failing statement, a cut dump, a read error and a
// cancelled context each fail the load, kill every session before its input
// ends, and say what happened.
func TestLoadDumpFailures(t *testing.T) {
	dump := loadDump(30)

	f := &fakeServer{failOn: "INSERT INTO `b` VALUES (7);"}
	_, err := runFakeLoad(t, context.Background(), f, dump, LoadOptions{Threads: 2})
	wantLine := int64(strings.Count(dump[:strings.Index(dump, "INSERT INTO `b` VALUES (7);")], "\n") + 1)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the dump's line %d, table b", wantLine)) || drivers.ClassOf(err) != drivers.Permanent {
		t.Errorf("failing statement: %v (class %s), want the dump's line %d", err, drivers.ClassOf(err), wantLine)
	}
	if f.closed.Load() != 0 {
		t.Errorf("a failed load ended the input of %d sessions normally", f.closed.Load())
	}

	cut := dump[:strings.Index(dump, "INSERT INTO `orders` VALUES (20);")]
	f = &fakeServer{}
	_, err = runFakeLoad(t, context.Background(), f, cut, LoadOptions{Threads: 2})
	if drivers.ClassOf(err) != drivers.Corruption || !strings.Contains(err.Error(), "cut") || f.closed.Load() != 0 || f.killed.Load() != 3 {
		t.Errorf("cut dump: %v (class %s), %d sessions ended normally, %d killed", err, drivers.ClassOf(err), f.closed.Load(), f.killed.Load())
	}

	f = &fakeServer{}
	r := io.MultiReader(strings.NewReader(dump[:len(dump)/2]), &failingReader{strings.NewReader("")})
	_, err = LoadDump(context.Background(), r, LoadOptions{Client: []string{"mariadb"}, Threads: 2, start: f.start})
	if drivers.ClassOf(err) != drivers.Corruption || f.closed.Load() != 0 {
		t.Errorf("read error: %v (class %s), %d sessions ended normally", err, drivers.ClassOf(err), f.closed.Load())
	}

	f = &fakeServer{delay: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = runFakeLoad(t, ctx, f, dump, LoadOptions{Threads: 2})
	if drivers.ClassOf(err) != drivers.Cancelled || f.closed.Load() != 0 || time.Since(began) > 5*time.Second {
		t.Errorf("cancelled: %v (class %s) after %v, %d sessions ended normally", err, drivers.ClassOf(err), time.Since(began), f.closed.Load())
	}

	_, err = runFakeLoad(t, context.Background(), &fakeServer{}, "USE `other`;\nINSERT INTO t VALUES (1);\n", LoadOptions{Threads: 2, Schemas: []string{"shop"}})
	if drivers.ClassOf(err) != drivers.Corruption || !strings.Contains(err.Error(), "schema other") {
		t.Errorf("a schema outside Schemas: %v", err)
	}
	_, err = runFakeLoad(t, context.Background(), &fakeServer{}, "INSERT INTO t VALUES (1);\n", LoadOptions{Threads: 2})
	if err == nil || !strings.Contains(err.Error(), "--param database=NAME") {
		t.Errorf("a dump without a schema: %v", err)
	}
}

func TestLoadDumpQueueBound(t *testing.T) {
	// A statement larger than the queue still goes through (alone).
	big := "USE `s`;\nCREATE TABLE `t` (`id` int) ENGINE=InnoDB;\nINSERT INTO `t` VALUES ('" + strings.Repeat("x", 4096) + "');\n"
	f := &fakeServer{}
	if _, err := runFakeLoad(t, context.Background(), f, big, LoadOptions{Threads: 2, QueueBytes: 100}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range f.log {
		found = found || bytes.Contains([]byte(e.text), []byte(strings.Repeat("x", 4096)))
	}
	if !found {
		t.Error("the large row was not loaded")
	}
}

// TestDriverSessionConnectFailureIsNotCancelled: a server that is gone is a
// connection failure (transient, retryable), not an interruption: the session's
// own context is cancelled while it cleans up, and must not decide the class.
func TestDriverSessionConnectFailureIsNotCancelled(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gone.sock") // nothing listens there
	_, err := startDriverSession(context.Background(), ConnConfig{Socket: sock, User: "root"}, DefaultInitCommand, "")
	if err == nil {
		t.Fatal("connected to a socket nobody listens on")
	}
	if c := drivers.ClassOf(err); c == drivers.Cancelled {
		t.Fatalf("class %s for a refused connection: %v", c, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = startDriverSession(ctx, ConnConfig{Socket: sock, User: "root"}, DefaultInitCommand, "")
	if c := drivers.ClassOf(err); c != drivers.Cancelled {
		t.Fatalf("class %s when the caller cancelled, want cancelled: %v", c, err)
	}
}
