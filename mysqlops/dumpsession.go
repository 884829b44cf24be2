package mysqlops

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/restore-run/restore-run/drivers"
)

// statementSink is a session that takes whole statements from its lane, with
// the line of the session's input each starts on, instead of text it would
// split into statements again.
type statementSink interface {
	Statement(text []byte, delim string, line int64) error
}

// driverSession is a session of LoadDump without a client process: one
// connection of the Go MySQL driver that runs each statement its lane hands it
// (statementSink). It saves a client process and a second parse of every byte;
// markers (SELECT 'rr-...') are answered on Output as the client would print
// them, and a failing statement is reported on Stderr as the client reports it
// ("ERROR N (STATE) at line L: ...").
type driverSession struct {
	db       *sql.DB
	conn     *sql.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	stop     func() bool
	out      *io.PipeReader
	ow       *io.PipeWriter
	endOnce  sync.Once
	done     chan struct{}
	code     atomic.Int32
	stderr   Tail
	inClosed atomic.Bool
}

// startDriverSession connects to c (in database, when set) and runs init.
func startDriverSession(ctx context.Context, c ConnConfig, init, database string) (session, error) {
	c.DB = database
	mc, err := mysql.ParseDSN(c.DSN())
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "connect to "+c.Where(), err)
	}
	mc.MaxAllowedPacket = 1 << 30
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "connect to "+c.Where(), err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	conn, err := db.Conn(sctx)
	if err == nil && init != "" {
		_, err = conn.ExecContext(sctx, init)
	}
	if err != nil {
		// Classified by the caller's context: sctx is cancelled just below.
		if ctx.Err() != nil {
			err = drivers.WithClass(drivers.Cancelled, "connect to "+c.Where(), context.Cause(ctx))
		} else {
			err = Classify(ctx, "connect to "+c.Where(), err)
		}
		stop()
		cancel()
		if conn != nil {
			conn.Close()
		}
		db.Close()
		return nil, err
	}
	or, ow := io.Pipe()
	return &driverSession{db: db, conn: conn, ctx: sctx, cancel: cancel, stop: stop, out: or, ow: ow, done: make(chan struct{}),
		stderr: Tail{Max: 64 << 10}}, nil
}

// Statement runs one statement (text ends with delim) that starts on line of
// the session's input.
func (s *driverSession) Statement(text []byte, delim string, line int64) error {
	q := bytes.TrimSuffix(bytes.TrimRight(text, " \t\r\n"), []byte(delim))
	t := bytes.TrimSpace(q)
	switch {
	case len(t) == 0:
		return nil
	case bytes.HasPrefix(t, []byte("/*M!")) && bytes.Contains(t, []byte("enable the sandbox mode")):
		return nil // the mariadb client's sandbox command: no statement
	}
	if id, ok := markerOf(t); ok {
		_, err := fmt.Fprintln(s.ow, id)
		return err
	}
	_, err := s.conn.ExecContext(s.ctx, string(q))
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	switch {
	case s.ctx.Err() != nil:
		s.fail("ERROR: killed")
	case errors.As(err, &me):
		s.fail(fmt.Sprintf("ERROR %d (%s) at line %d: %s", me.Number, string(me.SQLState[:]), line, me.Message))
	case ClassOf(err) == drivers.Transient:
		s.fail(fmt.Sprintf("ERROR at line %d: lost connection to the server: %v", line, err))
	default:
		s.fail(fmt.Sprintf("ERROR at line %d: %v", line, err))
	}
	s.end()
	return err
}

// markerOf reads the id of a marker statement SELECT 'rr-...'.
func markerOf(q []byte) (string, bool) {
	const pre = "SELECT 'rr-"
	if !bytes.HasPrefix(q, []byte(pre)) || !bytes.HasSuffix(q, []byte("'")) {
		return "", false
	}
	id := string(q[len("SELECT '") : len(q)-1])
	if strings.ContainsAny(id, "' \n") {
		return "", false
	}
	return id, true
}

func (s *driverSession) fail(msg string) {
	s.code.Store(1)
	s.stderr.Write([]byte(msg + "\n"))
}

// end closes the connection and Output, once.
func (s *driverSession) end() {
	s.endOnce.Do(func() {
		s.stop()
		s.cancel()
		s.conn.Close()
		s.db.Close()
		s.ow.Close()
		close(s.done)
	})
}

// Write is not used: the lane hands a driver session whole statements.
func (s *driverSession) Write(p []byte) (int, error) {
	return 0, errors.New("a driver session takes statements, not text")
}
func (s *driverSession) CloseInput()       { s.inClosed.Store(true); s.end() }
func (s *driverSession) InputClosed() bool { return s.inClosed.Load() }
func (s *driverSession) Output() io.Reader { return s.out }
func (s *driverSession) Stderr() string    { return s.stderr.String() }
func (s *driverSession) Kill() {
	if !s.inClosed.Load() {
		s.code.CompareAndSwap(0, 137)
	}
	s.cancel()
	s.end()
}
func (s *driverSession) Wait() (int, error) {
	<-s.done
	return int(s.code.Load()), nil
}
