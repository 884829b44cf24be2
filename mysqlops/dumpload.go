package mysqlops

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

// DefaultInitCommand is what every session of LoadDump runs first: no binary
// log, no foreign key or unique checks, and transactions that LoadDump ends
// itself (large ones).
const DefaultInitCommand = "SET SESSION sql_log_bin=0, foreign_key_checks=0, unique_checks=0, autocommit=0"

// LoadOptions says how LoadDump feeds a dump to a server.
type LoadOptions struct {
	// Client is the mariadb client with its connection options, e.g.
	// ["mariadb", "--defaults-extra-file=WORK/.restore-run-client.cnf"]. LoadDump
	// adds --binary-mode --batch --skip-column-names --unbuffered
	// --max-allowed-packet=1G, --init-command and --database.
	Client []string
	// InitCommand is each session's --init-command (default DefaultInitCommand).
	InitCommand string
	// Threads is the number of sessions that load rows, besides the one that
	// runs the dump's DDL in order (default 2). 1 runs the whole dump in one
	// session, in order, like `mariadb < dump.sql`.
	Threads int
	// Database is the schema of a dump made without --databases (no CREATE
	// DATABASE, no USE): every session starts in it.
	Database string
	// Rename renames schemas (old -> new) in CREATE DATABASE, DROP DATABASE,
	// USE and qualified table names.
	Rename map[string]string
	// Schemas, when not nil, are the only schemas (after renaming) the dump may
	// name in USE, CREATE/DROP DATABASE or a qualified table: any other fails
	// the load before a statement of it is sent.
	Schemas []string
	// CommitBytes ends a session's transaction after this many bytes of
	// statements (default 32 MiB); it also ends before a
	// session waits for another, and when it has nothing to do.
	CommitBytes int64
	// QueueBytes is how much a session may have queued ahead (default 8 MiB);
	// the dump is read no faster than the sessions load it.
	QueueBytes int64
	// Redact masks secrets in the error output kept.
	Redact func(string) string
	// Conn, when set, makes the row sessions connections of this process (the
	// Go MySQL driver) instead of mariadb clients; the control session stays a
	// mariadb client. The statements and their order are the same.
	Conn *ConnConfig

	// start starts session i (0: control; tests replace it).
	start func(ctx context.Context, i int, argv []string) (session, error)
}

// LoadResult is what LoadDump did.
type LoadResult struct {
	// DumpInfo is what the dump said about itself (read while it loaded).
	DumpInfo
	// Statements counts the statements read; Inserts the INSERT/REPLACE ones.
	Statements, Inserts int64
	// Sessions is the number of client sessions used.
	Sessions int
	// Skipped are the statements not run: replication set-up written by
	// --master-data=1 or --dump-slave (CHANGE MASTER TO, SET GLOBAL
	// gtid_slave_pos); the position is in DumpInfo.Binlog.
	Skipped []string
	// Duration is the load's wall time.
	Duration time.Duration
}

// LoadDump loads a mariadb-dump/mysqldump stream (already decompressed) into a
// server over several sessions, in parallel:
//
//   - one session (control, a mariadb client) runs every statement that is not
//     a row load, in the dump's order: CREATE DATABASE, USE, CREATE TABLE,
//     views, triggers, routines, events;
//   - Threads sessions (mariadb clients, or connections of the Go driver when
//     Conn is set) load the rows: each INSERT of an InnoDB table goes to the
//     least busy session once its table exists; the rows of a table of another
//     engine (MyISAM, Aria, ...) all go to one session, with the dump's LOCK
//     TABLES and DISABLE/ENABLE KEYS around them; LOCK TABLES and DISABLE/ENABLE
//     KEYS of InnoDB tables (no effect there, and they would serialize) are
//     left out; row sessions run with unique_checks=1 (see uniqueChecksOn);
//   - every session gets the dump's SET statements, in order, so each runs with
//     the dump's character set, time zone and sql_mode;
//   - a statement that is not a row load, a table's DDL or a SET (a trigger, a
//     view, a routine, anything unknown) waits until every row before it is
//     loaded and committed, so a trigger never fires on the dump's own rows;
//   - replication set-up statements (CHANGE MASTER TO, SET GLOBAL
//     gtid_slave_pos, START SLAVE) are not run (Skipped).
//
// The stream is read once, statement by statement, and never faster than the
// sessions load it (QueueBytes each). A read error (a checksum mismatch of a
// verified stream) or a cut dump (mariadb-dump's header without its "-- Dump
// completed" line) kills every session before any input ends, so what ran
// uncommitted is rolled back and the load fails; what was committed stays (the
// caller rolls back). A failing statement stops the load the same way, with the
// client's error and the dump's line.
func LoadDump(ctx context.Context, r io.Reader, o LoadOptions) (LoadResult, error) {
	if o.Threads <= 0 {
		o.Threads = 2
	}
	if o.InitCommand == "" {
		o.InitCommand = DefaultInitCommand
	}
	if o.CommitBytes <= 0 {
		o.CommitBytes = 32 << 20
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 8 << 20
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	if o.start == nil {
		o.start = func(ctx context.Context, i int, argv []string) (session, error) {
			if i > 0 && o.Conn != nil {
				return startDriverSession(ctx, *o.Conn, o.InitCommand, o.Database)
			}
			return startSession(ctx, argv)
		}
	}
	if len(o.Client) == 0 {
		return LoadResult{}, drivers.Errorf(drivers.Script, "LoadDump: no client command")
	}
	began := time.Now()
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ld := &loader{ctx: lctx, cancel: cancel, o: o, serial: o.Threads == 1, tables: map[string]*tableState{}, curDB: o.Database}
	b := make([]byte, 6)
	rand.Read(b)
	ld.nonce = "rr-" + hex.EncodeToString(b)
	n := 1
	if !ld.serial {
		n += o.Threads
	}
	argv := append(append([]string(nil), o.Client...), "--binary-mode", "--batch", "--skip-column-names", "--unbuffered",
		"--max-allowed-packet=1G", "--init-command="+o.InitCommand)
	if o.Database != "" {
		argv = append(argv, "--database="+o.Database)
	}
	// Start every session before any goroutine that may fail the load (and
	// walk ld.lanes) runs.
	for i := 0; i < n; i++ {
		name := "control"
		if ld.serial {
			name = "session"
		} else if i > 0 {
			name = fmt.Sprintf("rows-%d", i)
		}
		p, err := o.start(lctx, i, argv)
		if err != nil {
			for _, l := range ld.lanes {
				l.proc.Kill()
				l.proc.Wait()
			}
			return LoadResult{Duration: time.Since(began)}, fmt.Errorf("start load session %s: %w", name, err)
		}
		l := &lane{id: i, name: name, ld: ld, proc: p, markers: map[string]*event{}}
		l.cond = sync.NewCond(&l.mu)
		ld.lanes = append(ld.lanes, l)
	}
	var wg sync.WaitGroup
	for _, l := range ld.lanes {
		wg.Add(2)
		go func() { defer wg.Done(); l.writer() }()
		go func() { defer wg.Done(); l.reader() }()
	}
	go func() {
		<-lctx.Done()
		if ctx.Err() != nil {
			ld.fail(drivers.WithClass(drivers.Cancelled, "load the dump", context.Cause(ctx)))
		}
		for _, l := range ld.lanes {
			l.mu.Lock()
			l.cond.Broadcast()
			l.mu.Unlock()
		}
	}()

	sp := NewDumpSplitter(r, o.Rename)
	var err error
	for err == nil && lctx.Err() == nil {
		st, e := sp.Next()
		if e == io.EOF {
			break
		}
		if e != nil {
			err = e
			break
		}
		if err = ld.dispatch(st); err != nil {
			break
		}
	}
	info := sp.Info()
	if err == nil && lctx.Err() == nil {
		err = info.CheckComplete()
	}
	if err != nil {
		// Kill every session before any input ends: none may take a broken
		// stream for a complete one.
		ld.fail(classifyStream(err))
	} else {
		for _, l := range ld.lanes {
			l.close()
		}
	}
	wg.Wait()
	res := ld.res
	res.DumpInfo = info
	res.Sessions = len(ld.lanes)
	res.Duration = time.Since(began)
	if ld.err != nil {
		if ctx.Err() != nil {
			return res, drivers.WithClass(drivers.Cancelled, "load the dump", context.Cause(ctx))
		}
		return res, ld.err
	}
	return res, nil
}

// classifyStream gives a read error of the dump stream a class: its own, or
// transient for a plain read error.
func classifyStream(err error) error {
	var de *drivers.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return drivers.WithClass(drivers.Cancelled, "read the dump", err)
	}
	return drivers.WithClass(drivers.Transient, "read the dump", err)
}

// loader is one LoadDump.
type loader struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	o      LoadOptions
	serial bool
	lanes  []*lane // lanes[0] is the control session
	nonce  string
	seq    int64

	errOnce sync.Once
	err     error

	// dispatcher state
	tables   map[string]*tableState
	curDB    string
	lockLane *lane
	rr       int
	uniqueOn bool // unique_checks=1 was sent to the row sessions
	res      LoadResult
}

type tableState struct {
	engine  string
	created bool
	rows    bool
	lane    *lane // the one session of a table not of InnoDB
}

func (t *tableState) innodb() bool { return t.created && strings.EqualFold(t.engine, "InnoDB") }

// fail stops the load with err (the first error wins) and kills every session.
func (ld *loader) fail(err error) {
	ld.errOnce.Do(func() {
		ld.err = err
		ld.cancel(err)
		for _, l := range ld.lanes {
			if l.proc != nil {
				l.proc.Kill()
			}
		}
	})
}

func (ld *loader) check(schema string, st Stmt) error {
	if ld.o.Schemas == nil || schema == "" {
		return nil
	}
	for _, s := range ld.o.Schemas {
		if s == schema {
			return nil
		}
	}
	return drivers.Errorf(drivers.Corruption, "line %d of the dump names schema %s, which is not among the schemas this restore may write (%s); "+
		"nothing of it was loaded: the dump is not what the snapshot's metadata says", st.Line, schema, strings.Join(ld.o.Schemas, ", "))
}

func (ld *loader) tableOf(st Stmt) (*tableState, error) {
	db := st.Schema
	if db == "" {
		db = ld.curDB
	}
	if db == "" {
		return nil, drivers.Errorf(drivers.Permanent, "line %d of the dump uses table %s before any USE or CREATE DATABASE: the dump was made without --databases; "+
			"name the schema to load it into (--param database=NAME)", st.Line, st.Table)
	}
	if err := ld.check(st.Schema, st); err != nil {
		return nil, err
	}
	key := db + "\x00" + st.Table
	t := ld.tables[key]
	if t == nil {
		t = &tableState{}
		ld.tables[key] = t
	}
	return t, nil
}

// dispatch sends one statement where it belongs.
func (ld *loader) dispatch(st Stmt) error {
	ld.res.Statements++
	if st.Kind == StmtReplication {
		ld.skip(st)
		return nil
	}
	ctl := ld.lanes[0]
	switch st.Kind {
	case StmtUse, StmtCreateDB, StmtDropDB:
		if err := ld.check(st.Schema, st); err != nil {
			return err
		}
	case StmtInsert, StmtTableDDL, StmtKeys:
		if _, err := ld.tableOf(st); err != nil {
			return err
		}
	}
	if ld.serial {
		if st.Kind == StmtInsert {
			ld.res.Inserts++
		}
		if st.Kind == StmtUse {
			ld.curDB = st.Schema
		}
		return ctl.push(ld.item(st, nil))
	}
	if !ld.uniqueOn && st.Kind != StmtSandbox {
		// After the sandbox line, which must stay the first of each session.
		ld.uniqueOn = true
		if err := ld.uniqueChecksOn(); err != nil {
			return err
		}
	}
	switch st.Kind {
	case StmtSandbox, StmtSet:
		it := ld.item(st, nil)
		it.shared = true
		for _, l := range ld.lanes {
			if err := l.push(it); err != nil {
				return err
			}
		}
		if bytes.Contains(bytes.ToUpper([]byte(headOf(st.Text))), []byte("UNIQUE_CHECKS")) {
			return ld.uniqueChecksOn()
		}
	case StmtCommit:
		// Each session commits its own work (see CommitBytes).
	case StmtUse:
		if err := ctl.push(ld.item(st, nil)); err != nil {
			return err
		}
		it := ld.item(st, ld.controlWaits())
		it.shared = true
		for _, l := range ld.lanes[1:] {
			if err := l.push(it); err != nil {
				return err
			}
		}
		ld.curDB = st.Schema
	case StmtCreateDB:
		return ctl.push(ld.item(st, nil))
	case StmtTableDDL:
		t, _ := ld.tableOf(st)
		var waits []*event
		if t.rows {
			waits = ld.barrier() // its rows were sent already: after them
		}
		if err := ctl.push(ld.item(st, waits)); err != nil {
			return err
		}
		if st.Create {
			t.engine, t.created, t.rows, t.lane = st.Engine, true, false, nil
		}
	case StmtInsert:
		t, _ := ld.tableOf(st)
		l := t.lane
		if l == nil {
			l = ld.leastBusy()
			if !t.innodb() {
				t.lane = l
			}
		}
		t.rows = true
		ld.res.Inserts++
		return l.push(ld.item(st, ld.controlWaits()))
	case StmtLock:
		if st.Table == "" {
			return drivers.Errorf(drivers.Permanent, "line %d of the dump locks several tables at once; load it in one session (--param threads=1)", st.Line)
		}
		t, err := ld.tableOf(st)
		if err != nil {
			return err
		}
		if t.innodb() {
			return nil
		}
		if t.lane == nil {
			t.lane = ld.leastBusy()
		}
		ld.lockLane = t.lane
		return t.lane.push(ld.item(st, ld.controlWaits()))
	case StmtUnlock:
		if l := ld.lockLane; l != nil {
			ld.lockLane = nil
			return l.push(ld.item(st, nil))
		}
	case StmtKeys:
		t, _ := ld.tableOf(st)
		if t.innodb() {
			return nil
		}
		if t.lane == nil {
			t.lane = ld.leastBusy()
		}
		return t.lane.push(ld.item(st, ld.controlWaits()))
	default: // StmtOther, StmtDropDB
		return ctl.push(ld.item(st, ld.barrier()))
	}
	return nil
}

// uniqueChecksOn turns unique_checks back on in the row sessions (after the
// init command, and after every SET of the dump that names it). With
// unique_checks=0 and foreign_key_checks=0, MariaDB 10.6+ loads an empty InnoDB
// table in "bulk insert" mode under a table X lock: a second session inserting
// into that table waits for the first one's commit, and two that both started
// deadlock (ERROR 1213). Row sessions share tables, so they keep the checks.
func (ld *loader) uniqueChecksOn() error {
	text := []byte("SET SESSION unique_checks=1;\n")
	it := &item{text: text, raw: text, delim: ";", shared: true, line: 0}
	for _, l := range ld.lanes[1:] {
		if err := l.push(it); err != nil {
			return err
		}
	}
	return nil
}

func (ld *loader) skip(st Stmt) {
	s := strings.TrimSpace(headOf(st.Text))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if len(ld.res.Skipped) < 100 {
		ld.res.Skipped = append(ld.res.Skipped, s)
	}
}

// item wraps a statement for a session: with its DELIMITER when it is not ";",
// ending with a newline.
func (ld *loader) item(st Stmt, waits []*event) *item {
	text := st.Terminated()
	pooled := true
	if len(text) == 0 || text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	raw := text
	if st.Delim != ";" {
		text = append(append([]byte("DELIMITER "+st.Delim+"\n"), text...), "DELIMITER ;\n"...)
		pooled = false
	}
	it := &item{text: text, raw: raw, delim: st.Delim, waits: waits, line: st.Line, table: st.Table, pooled: pooled && st.Kind == StmtInsert}
	if !pooled {
		it.line-- // its first input line is the DELIMITER command
	}
	return it
}

// leastBusy is the row session with the least queued, never the one holding a
// LOCK TABLES.
func (ld *loader) leastBusy() *lane {
	var best *lane
	rows := ld.lanes[1:]
	for k := range rows {
		l := rows[(ld.rr+k)%len(rows)]
		if l == ld.lockLane {
			continue
		}
		if best == nil || l.queued.Load() < best.queued.Load() {
			best = l
		}
	}
	ld.rr++
	if best == nil {
		best = rows[0]
	}
	return best
}

// progress is an event that fires once l has run everything sent to it so
// far (nil: it has).
func (ld *loader) progress(l *lane) *event {
	if l.dirty {
		ld.seq++
		e := &event{id: fmt.Sprintf("%s-%d", ld.nonce, ld.seq), done: make(chan struct{})}
		l.mu.Lock()
		l.markers[e.id] = e
		l.mu.Unlock()
		l.pushMarker(e)
		l.dirty = false
		l.last = e
		return e
	}
	if l.last != nil && !l.last.fired() {
		return l.last
	}
	return nil
}

// controlWaits: what a row statement waits for (the control session's DDL so far).
func (ld *loader) controlWaits() []*event {
	if e := ld.progress(ld.lanes[0]); e != nil {
		return []*event{e}
	}
	return nil
}

// barrier: what a control statement waits for (every row sent so far, committed).
func (ld *loader) barrier() []*event {
	var w []*event
	for _, l := range ld.lanes[1:] {
		if e := ld.progress(l); e != nil {
			w = append(w, e)
		}
	}
	return w
}

type event struct {
	id   string
	done chan struct{}
}

func (e *event) fired() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

type item struct {
	text   []byte // what a client session reads: raw, in a DELIMITER block if its delimiter is not ";"
	raw    []byte // the statement alone, with its delimiter
	delim  string
	waits  []*event
	marker *event
	line   int64
	table  string
	shared bool // sent to several sessions
	pooled bool
}

// lane is one client session.
type lane struct {
	id   int
	name string
	ld   *loader
	proc session

	mu      sync.Mutex
	cond    *sync.Cond
	items   []*item
	closed  bool
	queued  atomic.Int64
	markers map[string]*event

	// dispatcher side
	dirty bool
	last  *event

	// writer side: which dump line each of the recent input lines came from
	lines    int64
	recentMu sync.Mutex // recent is read by reader when the session fails
	recent   []origin
	writeErr atomic.Pointer[error]
}

type origin struct {
	from, line int64
	table      string
}

func (l *lane) push(it *item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.queued.Load() > 0 && l.queued.Load()+int64(len(it.text)) > l.ld.o.QueueBytes && l.ld.ctx.Err() == nil {
		l.cond.Wait()
	}
	if err := l.ld.ctx.Err(); err != nil {
		return context.Cause(l.ld.ctx)
	}
	l.items = append(l.items, it)
	l.queued.Add(int64(len(it.text)))
	l.dirty = true
	l.cond.Broadcast()
	return nil
}

func (l *lane) pushMarker(e *event) {
	l.mu.Lock()
	l.items = append(l.items, &item{marker: e})
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// next returns the next item: at once, or (wait) when one comes; nil when the
// lane is closed and empty, or the load stopped.
func (l *lane) next(wait bool) (*item, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.items) == 0 {
		if l.closed || l.ld.ctx.Err() != nil {
			return nil, true
		}
		if !wait {
			return nil, false
		}
		l.cond.Wait()
	}
	it := l.items[0]
	l.items[0] = nil
	l.items = l.items[1:]
	l.queued.Add(-int64(len(it.text)))
	l.cond.Broadcast()
	return it, false
}

var stmtPool = sync.Pool{}

// writer feeds the session its items; it commits before it waits for another
// session, before a marker, when it has nothing to do, and every CommitBytes.
func (l *lane) writer() {
	w := bufio.NewWriterSize(l.proc, 256<<10)
	ctx := l.ld.ctx
	var pending int64
	dirty := false
	// A client session reads text; a statementSink takes each statement with
	// the line of the session's input it starts on.
	sink, direct := l.proc.(statementSink)
	write := func(text, raw []byte, delim string, line int64) error {
		if direct {
			return sink.Statement(raw, delim, line)
		}
		_, err := w.Write(text)
		return err
	}
	flush := func() error {
		if direct {
			return nil
		}
		return w.Flush()
	}
	// A write fails when the client died (its statement failed): kill what is
	// left of it; reader reports the exit with the client's own error.
	failed := func(err error) {
		l.writeErr.Store(&err)
		l.proc.Kill()
	}
	commit := func() error {
		if !dirty {
			return nil
		}
		dirty, pending = false, 0
		l.lines++
		return write([]byte("COMMIT;\n"), []byte("COMMIT;"), ";", l.lines)
	}
	for {
		it, done := l.next(false)
		if it == nil && !done {
			if err := commit(); err != nil {
				failed(err)
				return
			}
			if err := flush(); err != nil {
				failed(err)
				return
			}
			it, done = l.next(true)
		}
		if it == nil {
			break
		}
		if len(it.waits) > 0 {
			err := commit()
			if err == nil {
				err = flush()
			}
			if err != nil {
				failed(err)
				return
			}
			for _, e := range it.waits {
				select {
				case <-e.done:
				case <-ctx.Done():
					return
				}
			}
		}
		if it.marker != nil {
			if err := commit(); err != nil {
				failed(err)
				return
			}
			l.lines++
			q := []byte(fmt.Sprintf("SELECT '%s';\n", it.marker.id))
			err := write(q, q, ";", l.lines)
			if err == nil {
				err = flush()
			}
			if err != nil {
				failed(err)
				return
			}
			continue
		}
		l.recentMu.Lock()
		if len(l.recent) >= 4096 {
			l.recent = append(l.recent[:0], l.recent[2048:]...)
		}
		from := l.lines + 1
		l.recent = append(l.recent, origin{from: from, line: it.line, table: it.table})
		l.recentMu.Unlock()
		l.lines += int64(bytes.Count(it.text, []byte{'\n'}))
		if it.delim != ";" {
			from++ // the statement's own first line, after the DELIMITER command
		}
		if err := write(it.text, it.raw, it.delim, from); err != nil {
			failed(err)
			return
		}
		if it.pooled && !it.shared {
			stmtPool.Put(it.text[:0])
		}
		dirty = true
		pending += int64(len(it.text))
		if pending >= l.ld.o.CommitBytes {
			if err := commit(); err != nil {
				failed(err)
				return
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	err := commit()
	if err == nil {
		err = flush()
	}
	if err != nil {
		failed(err)
		return
	}
	l.proc.CloseInput()
}

var atLineRE = regexp.MustCompile(`at line (\d+)`)

// reader reads the session's output for markers, then its exit.
func (l *lane) reader() {
	br := bufio.NewReaderSize(l.proc.Output(), 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if id := string(bytes.TrimSpace(line)); strings.HasPrefix(id, l.ld.nonce) {
			l.mu.Lock()
			e := l.markers[id]
			delete(l.markers, id)
			l.mu.Unlock()
			if e != nil {
				close(e.done)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	code, werr := l.proc.Wait()
	if l.ld.ctx.Err() != nil {
		return
	}
	var cause error
	if p := l.writeErr.Load(); p != nil {
		cause = fmt.Errorf("write to the client: %w", *p)
	}
	switch {
	case code != 0 || werr != nil || cause != nil:
		l.ld.fail(l.exitError(code, cause))
	case !l.proc.InputClosed():
		l.ld.fail(l.exitError(code, errors.New("it ended before its input did")))
	}
}

// exitError describes a session that failed, with the dump line of the
// statement the client names ("at line N" of its input).
func (l *lane) exitError(code int, cause error) error {
	stderr := strings.TrimSpace(l.ld.o.Redact(l.proc.Stderr()))
	where := ""
	if m := atLineRE.FindStringSubmatch(stderr); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		l.recentMu.Lock()
		defer l.recentMu.Unlock()
		for i := len(l.recent) - 1; i >= 0; i-- {
			if l.recent[i].from <= n {
				where = fmt.Sprintf(" (the dump's line %d", l.recent[i].line+(n-l.recent[i].from))
				if t := l.recent[i].table; t != "" {
					where += ", table " + t
				}
				where += ")"
				break
			}
		}
	}
	msg := tailText(stderr, 2000)
	if msg == "" && cause != nil {
		msg = cause.Error()
	}
	if msg == "" {
		msg = "(no output on stderr)"
	}
	return drivers.WithClass(ClassOfText(stderr), "", fmt.Errorf("mariadb (session %s) exited with code %d: %s%s", l.name, code, msg, where))
}

// session is one running client.
type session interface {
	io.Writer
	CloseInput()
	InputClosed() bool
	Output() io.Reader
	// Wait waits for the exit (after Output reached its end) and returns the
	// exit code; it may be called again.
	Wait() (int, error)
	Kill()
	Stderr() string
}

type procSession struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stdout   io.Reader
	stderr   *Tail
	inClosed atomic.Bool
	once     sync.Once
	code     int
	err      error
}

func startSession(ctx context.Context, argv []string) (session, error) {
	prog := argv[0]
	if !filepath.IsAbs(prog) {
		p, err := LookPath(prog)
		if err != nil {
			return nil, err
		}
		prog = p
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s := &procSession{cmd: cmd, stderr: &Tail{Max: 64 << 10}}
	cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "stdin pipe", err)
	}
	if s.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "stdout pipe", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "start "+filepath.Base(prog), err)
	}
	return s, nil
}

func (s *procSession) Write(p []byte) (int, error) { return s.stdin.Write(p) }
func (s *procSession) CloseInput()                 { s.inClosed.Store(true); s.stdin.Close() }
func (s *procSession) InputClosed() bool           { return s.inClosed.Load() }
func (s *procSession) Output() io.Reader           { return s.stdout }
func (s *procSession) Stderr() string              { return s.stderr.String() }
func (s *procSession) Kill()                       { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) }
func (s *procSession) Wait() (int, error) {
	s.once.Do(func() {
		s.err = s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // nothing of the group outlives it
	})
	return s.code, s.err
}
