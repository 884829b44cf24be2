package mysqlops

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/restore-run/restore-run/drivers"
)

// Server error numbers that decide a class (see MariaDB's error list).
var (
	// Permanent: retrying the same statement cannot help.
	permanentErrnos = map[uint16]string{
		1044: "access denied to database",
		1045: "access denied",
		1049: "unknown database",
		1142: "command denied",
		1146: "table does not exist",
		1227: "needs a privilege",
		1064: "syntax error",
		1050: "table already exists",
		1007: "database already exists",
		1062: "duplicate key",
		1451: "foreign key constraint",
		1452: "foreign key constraint",
		1114: "table is full",
		1030: "storage engine error",
		1021: "disk full",
		3024: "query timeout",
	}
	// Transient: the server is busy, restarting or a lock waited too long.
	transientErrnos = map[uint16]string{
		1040: "too many connections",
		1053: "server shutdown in progress",
		1205: "lock wait timeout",
		1213: "deadlock",
		1317: "query interrupted",
		2002: "cannot connect",
		2003: "cannot connect",
		2006: "server has gone away",
		2013: "lost connection",
	}
)

// Classify gives err a drivers class: connection refused, timeouts, a server
// going away, deadlocks and lock waits are transient; access denied, unknown
// database, syntax errors and the like are permanent; context errors are
// cancelled. An error that already has a class keeps it.
func Classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var de *drivers.Error
	if errors.As(err, &de) {
		return err
	}
	if ctx != nil && ctx.Err() != nil {
		return drivers.WithClass(drivers.Cancelled, op, err)
	}
	return drivers.WithClass(ClassOf(err), op, err)
}

// ClassOf returns the class of a driver, network or tool error.
func ClassOf(err error) drivers.Class {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return drivers.Cancelled
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if _, ok := transientErrnos[me.Number]; ok {
			return drivers.Transient
		}
		return drivers.Permanent
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, mysql.ErrPktSync) {
		return drivers.Transient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return drivers.Transient
	}
	return ClassOfText(err.Error())
}

// ClassOfText classifies the message of a client tool (mariadb, myloader,
// mariadb-admin), which only reports errors as text such as
// "ERROR 1045 (28000): Access denied ..." or "ERROR 2002 (HY000): Can't connect".
func ClassOfText(msg string) drivers.Class {
	m := strings.ToLower(msg)
	for _, s := range []string{
		"can't connect", "connection refused", "server has gone away", "lost connection",
		"too many connections", "lock wait timeout", "deadlock found", "i/o timeout",
		"connection reset", "shutdown in progress",
	} {
		if strings.Contains(m, s) {
			return drivers.Transient
		}
	}
	return drivers.Permanent
}

func asDriverErr(err error, target **drivers.Error) bool { return errors.As(err, target) }
