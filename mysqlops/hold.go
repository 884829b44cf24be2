package mysqlops

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// DDLTable is the table a holding schema keeps the saved definitions in.
const DDLTable = "_restore_run_ddl"

// Held says what MoveAside moved.
type Held struct {
	Tables, Views, Routines, Triggers, Events int
}

// Map is h as a plain map.
func (h Held) Map() map[string]any {
	return map[string]any{"tables": h.Tables, "views": h.Views, "routines": h.Routines, "triggers": h.Triggers, "events": h.Events}
}

type definition struct {
	kind, name, sqlMode, charset, collation, ddl string
}

// MoveAside empties schema without losing anything, so a logical restore can load
// into it and a rollback can put the previous data back (MoveBack):
//
//  1. creates the holding schema (same character set) with a table DDLTable;
//  2. saves there the definitions of the schema's views, routines, triggers and
//     events (SHOW CREATE ..., with their sql_mode and character sets);
//  3. drops those objects (RENAME TABLE cannot move views to another schema, nor
//     tables with triggers);
//  4. moves every base table into the holding schema with one RENAME TABLE,
//     which is atomic and moves no data.
//
// Grants given on the schema's objects by name are not touched.
func MoveAside(ctx context.Context, db *sql.DB, schema, holding string) (Held, error) {
	var h Held
	op := fmt.Sprintf("move %s aside into %s", schema, holding)
	if schema == holding || IsSystemSchema(schema) || IsSystemSchema(holding) {
		return h, drivers.Errorf(drivers.Script, "%s: refused (system schema, or the same name)", op)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return h, Classify(ctx, op, err)
	}
	defer conn.Close()
	if ok, err := SchemaExists(ctx, db, holding); err != nil {
		return h, err
	} else if ok {
		return h, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s: the holding schema %s already exists", op, holding),
			"it may hold the data of an earlier run: inspect it, move it back or drop it")
	}
	var cs, coll string
	if err := conn.QueryRowContext(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", schema).Scan(&cs, &coll); err != nil {
		return h, Classify(ctx, op+": schema "+schema, err)
	}
	qh := QuoteIdent(holding)
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE %s CHARACTER SET %s COLLATE %s", qh, cs, coll),
		fmt.Sprintf("CREATE TABLE %s.%s (seq INT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(16) NOT NULL, name VARCHAR(192) NOT NULL, "+
			"sql_mode VARCHAR(1024) NOT NULL, charset VARCHAR(64) NOT NULL, collation VARCHAR(64) NOT NULL, ddl LONGTEXT NOT NULL) "+
			"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", qh, QuoteIdent(DDLTable)),
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return h, Classify(ctx, op, err)
		}
	}
	defs, err := definitions(ctx, conn, schema)
	if err != nil {
		return h, err
	}
	for _, d := range defs {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s.%s (kind, name, sql_mode, charset, collation, ddl) VALUES (?, ?, ?, ?, ?, ?)", qh, QuoteIdent(DDLTable)),
			d.kind, d.name, d.sqlMode, d.charset, d.collation, d.ddl); err != nil {
			return h, Classify(ctx, op+": save "+d.kind+" "+d.name, err)
		}
	}
	// Saved; now drop them (a trigger before its table moves).
	for _, d := range defs {
		if err := dropObject(ctx, conn, schema, d.kind, d.name); err != nil {
			return h, Classify(ctx, op, err)
		}
		switch d.kind {
		case "VIEW":
			h.Views++
		case "PROCEDURE", "FUNCTION":
			h.Routines++
		case "TRIGGER":
			h.Triggers++
		case "EVENT":
			h.Events++
		}
	}
	tables, err := strings1(ctx, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME", schema)
	if err != nil {
		return h, err
	}
	if err := renameAll(ctx, conn, schema, holding, tables); err != nil {
		return h, Classify(ctx, op, err)
	}
	h.Tables = len(tables)
	return h, nil
}

// MoveBack undoes MoveAside: it drops whatever schema holds now (a failed
// restore), moves the held tables back, recreates the saved views, routines,
// triggers and events, and drops the holding schema.
func MoveBack(ctx context.Context, db *sql.DB, holding, schema string) (Held, error) {
	var h Held
	op := fmt.Sprintf("move %s back into %s", holding, schema)
	if err := checkHolding(ctx, db, holding); err != nil {
		return h, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return h, Classify(ctx, op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return h, Classify(ctx, op, err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+QuoteIdent(schema)); err != nil {
		return h, Classify(ctx, op, err)
	}
	if err := clearSchema(ctx, conn, db, schema); err != nil {
		return h, Classify(ctx, op+": clear the failed restore", err)
	}
	tables, err := strings1(ctx, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' AND TABLE_NAME <> ? ORDER BY TABLE_NAME", holding, DDLTable)
	if err != nil {
		return h, err
	}
	if err := renameAll(ctx, conn, holding, schema, tables); err != nil {
		return h, Classify(ctx, op, err)
	}
	h.Tables = len(tables)
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT kind, name, sql_mode, charset, collation, ddl FROM %s.%s ORDER BY seq", QuoteIdent(holding), QuoteIdent(DDLTable)))
	if err != nil {
		return h, Classify(ctx, op, err)
	}
	var defs []definition
	for rows.Next() {
		var d definition
		if err := rows.Scan(&d.kind, &d.name, &d.sqlMode, &d.charset, &d.collation, &d.ddl); err != nil {
			rows.Close()
			return h, Classify(ctx, op, err)
		}
		defs = append(defs, d)
	}
	rows.Close()
	if _, err := conn.ExecContext(ctx, "USE "+QuoteIdent(schema)); err != nil {
		return h, Classify(ctx, op, err)
	}
	// Views may depend on views saved after them: retry until no progress.
	pending := defs
	for len(pending) > 0 {
		var next []definition
		var lastErr error
		for _, d := range pending {
			if err := recreate(ctx, conn, d); err != nil {
				next, lastErr = append(next, d), fmt.Errorf("%s %s: %w", d.kind, d.name, err)
				continue
			}
			switch d.kind {
			case "VIEW":
				h.Views++
			case "PROCEDURE", "FUNCTION":
				h.Routines++
			case "TRIGGER":
				h.Triggers++
			case "EVENT":
				h.Events++
			}
		}
		if len(next) == len(pending) {
			return h, drivers.WithHint(Classify(ctx, op+": recreate", lastErr),
				fmt.Sprintf("the definitions are kept in %s.%s", holding, DDLTable))
		}
		pending = next
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(holding)); err != nil {
		return h, Classify(ctx, op+": drop the holding schema", err)
	}
	return h, nil
}

// DropHolding drops a holding schema made by MoveAside (after a restore was
// validated). It refuses a schema without DDLTable.
func DropHolding(ctx context.Context, db *sql.DB, holding string) error {
	if err := checkHolding(ctx, db, holding); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(holding))
	return Classify(ctx, "drop "+holding, err)
}

func checkHolding(ctx context.Context, db *sql.DB, holding string) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", holding, DDLTable).Scan(&n); err != nil {
		return Classify(ctx, "look up "+holding, err)
	}
	if n == 0 {
		return drivers.Errorf(drivers.Permanent, "%s is not a holding schema made by restore-run (it has no %s table)", holding, DDLTable)
	}
	return nil
}

func renameAll(ctx context.Context, conn *sql.Conn, from, to string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	var parts []string
	for _, t := range tables {
		parts = append(parts, QuoteIdent(from)+"."+QuoteIdent(t)+" TO "+QuoteIdent(to)+"."+QuoteIdent(t))
	}
	_, err := conn.ExecContext(ctx, "RENAME TABLE "+strings.Join(parts, ", "))
	return err
}

func dropObject(ctx context.Context, conn *sql.Conn, schema, kind, name string) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf("DROP %s IF EXISTS %s.%s", kind, QuoteIdent(schema), QuoteIdent(name)))
	return err
}

// clearSchema drops every object of schema.
func clearSchema(ctx context.Context, conn *sql.Conn, db *sql.DB, schema string) error {
	q := []struct{ kind, query string }{
		{"TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"},
		{"VIEW", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?"},
		{"PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE'"},
		{"FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION'"},
		{"EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?"},
		{"TABLE", "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'"},
	}
	for _, x := range q {
		names, err := strings1(ctx, db, x.query, schema)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := dropObject(ctx, conn, schema, x.kind, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func recreate(ctx context.Context, conn *sql.Conn, d definition) error {
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ?, character_set_client = ?, collation_connection = ?", d.sqlMode, d.charset, d.collation); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, d.ddl)
	return err
}

// definitions reads SHOW CREATE of every view, routine, trigger and event of schema.
func definitions(ctx context.Context, conn *sql.Conn, schema string) ([]definition, error) {
	var out []definition
	kinds := []struct{ kind, list, ddlCol string }{
		{"VIEW", "SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", "Create View"},
		{"ROUTINE", "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME", ""},
		{"TRIGGER", "SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER", "SQL Original Statement"},
		{"EVENT", "SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", "Create Event"},
	}
	for _, k := range kinds {
		rows, err := conn.QueryContext(ctx, k.list, schema)
		if err != nil {
			return nil, Classify(ctx, "list "+k.kind, err)
		}
		type obj struct{ kind, name string }
		var objs []obj
		for rows.Next() {
			var o obj
			if err := rows.Scan(&o.kind, &o.name); err != nil {
				rows.Close()
				return nil, Classify(ctx, "list "+k.kind, err)
			}
			objs = append(objs, o)
		}
		rows.Close()
		for _, o := range objs {
			col := k.ddlCol
			if k.kind == "ROUTINE" {
				col = "Create Procedure"
				if o.kind == "FUNCTION" {
					col = "Create Function"
				}
			}
			m, err := showCreate(ctx, conn, fmt.Sprintf("SHOW CREATE %s %s.%s", o.kind, QuoteIdent(schema), QuoteIdent(o.name)))
			if err != nil {
				return nil, Classify(ctx, "show create "+o.kind+" "+o.name, err)
			}
			d := definition{kind: o.kind, name: o.name, sqlMode: m["sql_mode"], charset: m["character_set_client"], collation: m["collation_connection"], ddl: m[col]}
			if d.ddl == "" {
				return nil, drivers.Errorf(drivers.Permanent, "SHOW CREATE %s %s.%s gave no definition (a missing privilege?)", o.kind, schema, o.name)
			}
			if d.charset == "" {
				d.charset = "utf8mb4"
			}
			if d.collation == "" {
				d.collation = "utf8mb4_general_ci"
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func showCreate(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, fmt.Errorf("%s returned no row", q)
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, rows.Err()
}
