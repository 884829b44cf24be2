package mysqlops

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// SystemSchemas are the server's own schemas: never part of an inventory, never
// replaced by a logical restore into a live server.
var SystemSchemas = []string{"mysql", "sys", "information_schema", "performance_schema"}

// IsSystemSchema reports whether s is one of SystemSchemas.
func IsSystemSchema(s string) bool {
	for _, x := range SystemSchemas {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Table is what an inventory records about one base table.
type Table struct {
	Engine string `json:"engine,omitempty"`
	Rows   int64  `json:"rows"`
	// Checksum is CHECKSUM TABLE ... EXTENDED, as a decimal string (it can exceed
	// what a JSON number holds exactly); empty when not taken.
	Checksum string `json:"checksum,omitempty"`
}

// Schema is the inventory of one schema: its objects by kind.
type Schema struct {
	Tables   map[string]Table `json:"tables"`
	Views    []string         `json:"views"`
	Routines []string         `json:"routines"` // "PROCEDURE name", "FUNCTION name"
	Triggers []string         `json:"triggers"`
	Events   []string         `json:"events"`
}

// Inventory maps schema names to their objects.
type Inventory map[string]Schema

// InventoryOptions say how deep an inventory goes.
type InventoryOptions struct {
	// Counts takes SELECT COUNT(*) of every table (exact, reads every row).
	Counts bool
	// Checksums takes CHECKSUM TABLE ... EXTENDED of every table.
	Checksums bool
}

// UserSchemas lists the schemas that are not SystemSchemas, sorted.
func UserSchemas(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, Classify(ctx, "list schemas", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, Classify(ctx, "list schemas", err)
		}
		if !IsSystemSchema(s) {
			out = append(out, s)
		}
	}
	return out, Classify(ctx, "list schemas", rows.Err())
}

// SchemaExists reports whether schema exists.
func SchemaExists(ctx context.Context, db *sql.DB, schema string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", schema).Scan(&n)
	return n > 0, Classify(ctx, "look up schema "+schema, err)
}

func strings1(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, Classify(ctx, "inventory", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, Classify(ctx, "inventory", err)
		}
		out = append(out, s)
	}
	return out, Classify(ctx, "inventory", rows.Err())
}

// TakeInventory lists the objects of each schema (all user schemas when schemas
// is empty) and, as opts say, counts rows and checksums tables.
func TakeInventory(ctx context.Context, db *sql.DB, schemas []string, opts InventoryOptions) (Inventory, error) {
	if len(schemas) == 0 {
		var err error
		if schemas, err = UserSchemas(ctx, db); err != nil {
			return nil, err
		}
	}
	inv := Inventory{}
	for _, s := range schemas {
		sc := Schema{Tables: map[string]Table{}}
		rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, TABLE_TYPE, IFNULL(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", s)
		if err != nil {
			return nil, Classify(ctx, "inventory of "+s, err)
		}
		var tables []string
		for rows.Next() {
			var name, typ, engine string
			if err := rows.Scan(&name, &typ, &engine); err != nil {
				rows.Close()
				return nil, Classify(ctx, "inventory of "+s, err)
			}
			switch typ {
			case "VIEW", "SYSTEM VIEW":
				sc.Views = append(sc.Views, name)
			case "SEQUENCE":
				// A sequence is a table too (one row); checksums do not apply.
				sc.Tables[name] = Table{Engine: "SEQUENCE"}
			default:
				sc.Tables[name] = Table{Engine: engine}
				tables = append(tables, name)
			}
		}
		rows.Close()
		if sc.Views == nil {
			sc.Views = []string{}
		}
		if sc.Routines, err = strings1(ctx, db, "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME", s); err != nil {
			return nil, err
		}
		if sc.Triggers, err = strings1(ctx, db, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME", s); err != nil {
			return nil, err
		}
		if sc.Events, err = strings1(ctx, db, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", s); err != nil {
			return nil, err
		}
		for _, t := range tables {
			ti := sc.Tables[t]
			q := QuoteIdent(s) + "." + QuoteIdent(t)
			if opts.Counts {
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+q).Scan(&ti.Rows); err != nil {
					return nil, Classify(ctx, "count rows of "+s+"."+t, err)
				}
			}
			if opts.Checksums {
				var name string
				var sum sql.NullString
				if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+q+" EXTENDED").Scan(&name, &sum); err != nil {
					return nil, Classify(ctx, "checksum "+s+"."+t, err)
				}
				ti.Checksum = sum.String
			}
			sc.Tables[t] = ti
		}
		inv[s] = sc
	}
	return inv, nil
}

// Map converts the inventory to plain maps and lists (JSON's shape), for
// scripts and manifests.
func (inv Inventory) Map() map[string]any {
	out := map[string]any{}
	for s, sc := range inv {
		tables := map[string]any{}
		for t, ti := range sc.Tables {
			m := map[string]any{"rows": ti.Rows}
			if ti.Engine != "" {
				m["engine"] = ti.Engine
			}
			if ti.Checksum != "" {
				m["checksum"] = ti.Checksum
			}
			tables[t] = m
		}
		out[s] = map[string]any{
			"tables": tables, "views": anyList(sc.Views), "routines": anyList(sc.Routines),
			"triggers": anyList(sc.Triggers), "events": anyList(sc.Events),
		}
	}
	return out
}

func anyList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// Objects counts what a schema holds: tables, views, routines, triggers and events.
func Objects(ctx context.Context, db *sql.DB, schema string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?) +
		(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?) +
		(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?)`, schema, schema, schema).Scan(&n)
	return n, Classify(ctx, "objects of "+schema, err)
}

// Metadata is what a mysql snapshot's manifest records (docs/manifest.md).
type Metadata struct {
	// Format is how the snapshot was made: mysqldump, mydumper, xbstream or
	// backup_dir.
	Format string `json:"format,omitempty"`
	// ServerVersion is the source server's VERSION().
	ServerVersion string `json:"server_version,omitempty"`
	// Schemas are the user schemas the snapshot holds.
	Schemas []string `json:"schemas,omitempty"`
	// Inventory is each schema's objects, row counts and (optionally) checksums.
	Inventory Inventory `json:"inventory,omitempty"`
	// Binlog is the backup's replication position.
	Binlog *Binlog `json:"binlog,omitempty"`
}

// Map is m as a manifest's metadata object.
func (m Metadata) Map() map[string]any {
	out := map[string]any{}
	if m.Format != "" {
		out["format"] = m.Format
	}
	if m.ServerVersion != "" {
		out["server_version"] = m.ServerVersion
	}
	if len(m.Schemas) > 0 {
		out["schemas"] = anyList(m.Schemas)
	}
	if m.Inventory != nil {
		out["inventory"] = m.Inventory.Map()
	}
	if m.Binlog != nil && !m.Binlog.Empty() {
		out["binlog"] = m.Binlog.Map()
	}
	return out
}

// CollectMetadata connects to a live source server and returns the manifest
// metadata of a snapshot of schemas (all user schemas when empty): server
// version, schemas, inventory with exact row counts and, with checksums,
// CHECKSUM TABLE of every table. format names the snapshot's format. The caller
// makes sure the source does not change between the backup and this call (a
// quiesced source or a stopped replica), or the counts will not match.
// `restore-run snapshot pack` calls it for mysql snapshots given a live source.
func CollectMetadata(ctx context.Context, c ConnConfig, format string, schemas []string, checksums bool) (Metadata, error) {
	db, err := Open(c)
	if err != nil {
		return Metadata{}, err
	}
	defer db.Close()
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return Metadata{}, Classify(ctx, "connect to "+c.Where(), err)
	}
	inv, err := TakeInventory(ctx, db, schemas, InventoryOptions{Counts: true, Checksums: checksums})
	if err != nil {
		return Metadata{}, err
	}
	names := make([]string, 0, len(inv))
	for s := range inv {
		names = append(names, s)
	}
	sort.Strings(names)
	md := Metadata{Format: format, ServerVersion: version, Schemas: names, Inventory: inv}
	if b, err := masterStatus(ctx, db); err == nil && !b.Empty() {
		md.Binlog = &b
	}
	return md, nil
}

// masterStatus reads SHOW MASTER STATUS and @@gtid_binlog_pos (empty when the
// source has no binary log).
func masterStatus(ctx context.Context, db *sql.DB) (Binlog, error) {
	var b Binlog
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return b, err
	}
	cols, _ := rows.Columns()
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err == nil && len(vals) >= 2 {
			b.File = vals[0].String
			fmt.Sscan(vals[1].String, &b.Position)
		}
	}
	rows.Close()
	var gtid sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&gtid); err == nil {
		b.GTID = gtid.String
	}
	return b, nil
}

// errNoDB is returned by helpers given no pool.
var errNoDB = drivers.Errorf(drivers.Script, "no database connection")
