package mysqlops

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/restore-run/restore-run/drivers"
)

// ConnConfig says how to reach a server. Socket wins over Host/Port.
type ConnConfig struct {
	Host     string
	Port     int
	Socket   string
	User     string
	Password string
	// DB is the default database ("" for none).
	DB string
}

// Where names the server without credentials, for messages.
func (c ConnConfig) Where() string {
	if c.Socket != "" {
		return "socket " + c.Socket
	}
	return fmt.Sprintf("%s:%d", c.Host, c.port())
}

func (c ConnConfig) port() int {
	if c.Port == 0 {
		return 3306
	}
	return c.Port
}

// DSN is the go-sql-driver/mysql DSN. It holds the password: never log it.
func (c ConnConfig) DSN() string {
	mc := mysql.NewConfig()
	mc.User = c.User
	mc.Passwd = c.Password
	if c.Socket != "" {
		mc.Net, mc.Addr = "unix", c.Socket
	} else {
		host := c.Host
		if host == "" {
			host = "127.0.0.1"
		}
		mc.Net, mc.Addr = "tcp", fmt.Sprintf("%s:%d", host, c.port())
	}
	mc.DBName = c.DB
	mc.Timeout = 10 * time.Second
	mc.InterpolateParams = true
	mc.MultiStatements = false
	mc.Params = map[string]string{"charset": "utf8mb4"}
	mc.AllowNativePasswords = true
	return mc.FormatDSN()
}

// Open opens a pool (it does not connect yet).
func Open(c ConnConfig) (*sql.DB, error) {
	db, err := sql.Open("mysql", c.DSN())
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "open "+c.Where(), err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// WaitReady polls the server until a connection and `SELECT VERSION()` succeed
// and returns the version, or fails after timeout with the last error
// (transient). Access denied and unknown database fail at once (permanent).
func WaitReady(ctx context.Context, c ConnConfig, timeout time.Duration) (string, error) {
	db, err := Open(c)
	if err != nil {
		return "", err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var v string
		err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return "", drivers.WithClass(drivers.Cancelled, "wait for "+c.Where(), context.Cause(ctx))
		}
		if ClassOf(err) == drivers.Permanent {
			return "", drivers.WithClass(drivers.Permanent, "connect to "+c.Where(), err)
		}
		if time.Now().After(deadline) {
			return "", drivers.Errorf(drivers.Transient, "the server at %s is not ready after %s: %v", c.Where(), timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WriteDefaultsFile writes an option file with a [client] group (user, password,
// host/port or socket) readable by the owner only, for the client tools'
// --defaults-extra-file / --defaults-file: the password never goes on a command
// line. groups adds the same options under more group names (e.g. "myloader").
func WriteDefaultsFile(path string, c ConnConfig, groups ...string) error {
	var b strings.Builder
	for _, g := range append([]string{"client"}, groups...) {
		fmt.Fprintf(&b, "[%s]\n", g)
		if c.User != "" {
			fmt.Fprintf(&b, "user=%s\n", optionValue(c.User))
		}
		if c.Password != "" {
			fmt.Fprintf(&b, "password=%s\n", optionValue(c.Password))
		}
		if c.Socket != "" {
			fmt.Fprintf(&b, "socket=%s\n", optionValue(c.Socket))
		} else {
			host := c.Host
			if host == "" {
				host = "127.0.0.1"
			}
			fmt.Fprintf(&b, "host=%s\nport=%s\n", optionValue(host), strconv.Itoa(c.port()))
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// optionValue quotes a value for an option file: double quotes, with backslash
// escapes for backslash and double quote.
func optionValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// QuoteIdent quotes a schema or table name with backticks.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
