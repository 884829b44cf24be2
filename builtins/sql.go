package builtins

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

func init() {
	net := []drivers.Class{drivers.Transient, drivers.Permanent, drivers.Cancelled}
	Register(Module{
		Name: "sql",
		Doc: "SQL on the target's MySQL/MariaDB server, connected as the target says (host/port or " +
			"socket, user, and the password from the target file's secret reference: scripts never " +
			"handle passwords). Queries are READ, statements that change anything are WRITE.",
		Funcs: []Func{
			{Name: "query", Idempotent: true, Effect: Read, Params: `stmt, args=[], db=""`, Returns: "list of dicts (column -> value)",
				Doc: "Runs a query and returns its rows. Values are strings, ints, floats or None. " +
					"args fill `?` placeholders (quoted by the driver).",
				Errors: net, Impl: sqlQuery},
			{Name: "exec", Effect: Write, Params: `stmt, args=[], db=""`, Returns: "struct(rows_affected, last_insert_id)",
				Doc: "Runs a statement that changes something (DDL, DML, SET GLOBAL).", Errors: net, Impl: sqlExec,
				Plan: func(context.Context, *Env, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
					return Struct(map[string]any{"rows_affected": 0, "last_insert_id": 0})
				}},
			{Name: "wait_ready", Effect: Read, Params: "timeout=60", Returns: "string (the server's VERSION())",
				Doc: "Polls the server until it accepts a connection and answers, or fails after timeout seconds " +
					"(transient). Access denied fails at once (permanent).",
				Errors: net, Impl: sqlWaitReady,
				// A plan does not start the server it would wait for.
				Plan: func(context.Context, *Env, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
					return starlark.None, nil
				}},
			{Name: "inventory", Idempotent: true, Effect: Read, Params: "schemas=None, counts=True, checksums=False",
				Returns: "dict schema -> {tables: {name: {rows, engine, checksum}}, views, routines, triggers, events}",
				Doc: "The objects of each schema (every user schema when schemas is None), with exact row counts " +
					"(SELECT COUNT(*)) and, with checksums, CHECKSUM TABLE ... EXTENDED as decimal strings. " +
					"The same shape as a mysql manifest's metadata.inventory.",
				Errors: net, Impl: sqlInventory},
			{Name: "objects", Idempotent: true, Effect: Read, Params: "schema", Returns: "int",
				Doc: "How many tables, views, routines and events the schema holds (0 if it does not exist).", Errors: net, Impl: sqlObjects},
			{Name: "move_aside", Effect: Write, Params: "schema, holding", Returns: "dict(tables, views, routines, triggers, events)",
				Doc: "Empties schema without losing anything: saves the definitions of its views, routines, triggers and " +
					"events in holding._restore_run_ddl, drops them, and moves every table into the new schema holding " +
					"with one atomic RENAME TABLE. move_back undoes it.",
				Errors: net, Impl: sqlMoveAside, Plan: heldPlan},
			{Name: "move_back", Effect: Write, Params: "holding, schema", Returns: "dict(tables, views, routines, triggers, events)",
				Doc: "Undoes move_aside: drops what schema holds now (a failed restore), moves the held tables back, " +
					"recreates the saved views, routines, triggers and events, and drops holding.",
				Errors: net, Impl: sqlMoveBack, Plan: heldPlan},
			{Name: "drop_holding", Effect: Write, Params: "holding", Returns: "None",
				Doc:    "Drops a holding schema made by move_aside (once the restore is validated); refuses any other schema.",
				Errors: net, Impl: sqlDropHolding},
		},
	})
}

func heldPlan(context.Context, *Env, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return ToValue(mysqlops.Held{}.Map())
}

// MySQLConn is how builtins reach the target's server: the target spec's socket
// or host/port and user, and the password from the target's secrets.
func MySQLConn(env *Env, db string) (mysqlops.ConnConfig, error) {
	if env.Target == nil || env.Target.Engine != "mysql" {
		return mysqlops.ConnConfig{}, drivers.Errorf(drivers.Script, "sql: the target is not a mysql target")
	}
	spec := env.Target.Spec
	c := mysqlops.ConnConfig{DB: db}
	c.Socket, _ = spec["socket"].(string)
	c.Host, _ = spec["host"].(string)
	c.User, _ = spec["user"].(string)
	switch p := spec["port"].(type) {
	case float64:
		c.Port = int(p)
	case int:
		c.Port = p
	case int64:
		c.Port = int(p)
	}
	if pw, ok := env.Target.Secret("password"); ok {
		c.Password = pw
	}
	return c, nil
}

// sqlPools are the connection pools of a run, one per default database.
type sqlPools struct {
	mu    sync.Mutex
	pools map[string]*sql.DB
}

func poolOf(env *Env, db string) (*sql.DB, mysqlops.ConnConfig, error) {
	c, err := MySQLConn(env, db)
	if err != nil {
		return nil, c, err
	}
	p := env.Value("sql.pools", func() any {
		p := &sqlPools{pools: map[string]*sql.DB{}}
		env.Defer("sql connections", func(context.Context) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			for k, db := range p.pools {
				db.Close()
				delete(p.pools, k)
			}
			return nil
		})
		return p
	}).(*sqlPools)
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool, ok := p.pools[db]; ok {
		return pool, c, nil
	}
	pool, err := mysqlops.Open(c)
	if err != nil {
		return nil, c, err
	}
	p.pools[db] = pool
	return pool, c, nil
}

func unpackStmt(fn string, args starlark.Tuple, kwargs []starlark.Tuple) (stmt string, params []any, db string, err error) {
	var argv starlark.Value = starlark.None
	if err = Unpack(fn, args, kwargs, "stmt", &stmt, "args?", &argv, "db?", &db); err != nil {
		return
	}
	if argv != starlark.None {
		g, cerr := FromValue(argv)
		l, ok := g.([]any)
		if cerr != nil || !ok {
			err = drivers.Errorf(drivers.Script, "%s: args must be a list of values", fn)
			return
		}
		params = l
	}
	if strings.TrimSpace(stmt) == "" {
		err = drivers.Errorf(drivers.Script, "%s: empty statement", fn)
	}
	return
}

func sqlErr(env *Env, ctx context.Context, fn string, c mysqlops.ConnConfig, err error) error {
	return mysqlops.Classify(ctx, fn+" on "+c.Where(), err)
}

func sqlQuery(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	stmt, params, dbName, err := unpackStmt("sql.query", args, kwargs)
	if err != nil {
		return nil, err
	}
	db, c, err := poolOf(env, dbName)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, stmt, params...)
	if err != nil {
		return nil, sqlErr(env, ctx, "sql.query", c, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, sqlErr(env, ctx, "sql.query", c, err)
	}
	var out []starlark.Value
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, sqlErr(env, ctx, "sql.query", c, err)
		}
		row := map[string]any{}
		for i, col := range cols {
			row[col] = sqlValue(vals[i])
		}
		v, err := ToValue(row)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if len(out) > 1_000_000 {
			return nil, drivers.Errorf(drivers.Script, "sql.query: more than 1000000 rows; scripts read small results")
		}
	}
	if err := rows.Err(); err != nil {
		return nil, sqlErr(env, ctx, "sql.query", c, err)
	}
	return starlark.NewList(out), nil
}

// sqlValue converts what database/sql scanned into a plain value.
func sqlValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	case uint64:
		if x < 1<<63 {
			return int64(x)
		}
		return fmt.Sprint(x)
	}
	return v
}

func sqlExec(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	stmt, params, dbName, err := unpackStmt("sql.exec", args, kwargs)
	if err != nil {
		return nil, err
	}
	db, c, err := poolOf(env, dbName)
	if err != nil {
		return nil, err
	}
	res, err := db.ExecContext(ctx, stmt, params...)
	if err != nil {
		return nil, sqlErr(env, ctx, "sql.exec", c, err)
	}
	n, _ := res.RowsAffected()
	id, _ := res.LastInsertId()
	return Struct(map[string]any{"rows_affected": n, "last_insert_id": id})
}

func timeoutArg(fn string, v starlark.Value, def float64) (time.Duration, error) {
	if v == nil || v == starlark.None {
		return time.Duration(def * float64(time.Second)), nil
	}
	f, ok := starlark.AsFloat(v)
	if !ok || f <= 0 {
		return 0, drivers.Errorf(drivers.Script, "%s: timeout must be a positive number of seconds", fn)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func sqlWaitReady(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tv starlark.Value = starlark.None
	if err := Unpack("sql.wait_ready", args, kwargs, "timeout?", &tv); err != nil {
		return nil, err
	}
	timeout, err := timeoutArg("sql.wait_ready", tv, 60)
	if err != nil {
		return nil, err
	}
	c, err := MySQLConn(env, "")
	if err != nil {
		return nil, err
	}
	v, err := mysqlops.WaitReady(ctx, c, timeout)
	if err != nil {
		return nil, err
	}
	return starlark.String(v), nil
}

func stringList(fn string, v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	g, err := FromValue(v)
	l, ok := g.([]any)
	if err != nil || !ok {
		return nil, drivers.Errorf(drivers.Script, "%s: want a list of strings, not %s", fn, v.Type())
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "%s: want a list of strings", fn)
		}
		out = append(out, s)
	}
	return out, nil
}

func sqlInventory(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sv starlark.Value = starlark.None
	counts, checksums := true, false
	if err := Unpack("sql.inventory", args, kwargs, "schemas?", &sv, "counts?", &counts, "checksums?", &checksums); err != nil {
		return nil, err
	}
	schemas, err := stringList("sql.inventory", sv)
	if err != nil {
		return nil, err
	}
	db, _, err := poolOf(env, "")
	if err != nil {
		return nil, err
	}
	inv, err := mysqlops.TakeInventory(ctx, db, schemas, mysqlops.InventoryOptions{Counts: counts, Checksums: checksums})
	if err != nil {
		return nil, err
	}
	return ToValue(inv.Map())
}

func sqlObjects(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var schema string
	if err := Unpack("sql.objects", args, kwargs, "schema", &schema); err != nil {
		return nil, err
	}
	db, _, err := poolOf(env, "")
	if err != nil {
		return nil, err
	}
	n, err := mysqlops.Objects(ctx, db, schema)
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt(n), nil
}

func sqlMoveAside(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var schema, holding string
	if err := Unpack("sql.move_aside", args, kwargs, "schema", &schema, "holding", &holding); err != nil {
		return nil, err
	}
	db, _, err := poolOf(env, "")
	if err != nil {
		return nil, err
	}
	h, err := mysqlops.MoveAside(ctx, db, schema, holding)
	if err != nil {
		return nil, err
	}
	return ToValue(h.Map())
}

func sqlMoveBack(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var schema, holding string
	if err := Unpack("sql.move_back", args, kwargs, "holding", &holding, "schema", &schema); err != nil {
		return nil, err
	}
	db, _, err := poolOf(env, "")
	if err != nil {
		return nil, err
	}
	h, err := mysqlops.MoveBack(ctx, db, holding, schema)
	if err != nil {
		return nil, err
	}
	return ToValue(h.Map())
}

func sqlDropHolding(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var holding string
	if err := Unpack("sql.drop_holding", args, kwargs, "holding", &holding); err != nil {
		return nil, err
	}
	db, _, err := poolOf(env, "")
	if err != nil {
		return nil, err
	}
	return starlark.None, mysqlops.DropHolding(ctx, db, holding)
}
