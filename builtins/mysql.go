package builtins

import (
	"context"
	"os"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

func init() {
	Register(Module{
		Name: "mysql",
		Doc: "What MySQL/MariaDB backups say about themselves: a mariadb-dump header, a mydumper " +
			"metadata file, mariabackup's xtrabackup_info and xtrabackup_binlog_info; and version parsing.",
		Funcs: []Func{
			{Name: "scan_dump", Idempotent: true, Effect: Read, Params: `name, decompress="auto"`,
				Returns: "struct(tool, server_version, schemas, tables, binlog, bytes, sandbox)",
				Doc: "Reads a mariadb-dump/mysqldump snapshot file to its end (decompressing .zst/.gz), which checks its " +
					"sha256 against the manifest before anything is restored, and returns what its header and structure " +
					"lines say: the source server version, the schemas it creates or USEs, its CREATE TABLE count, and " +
					"the binlog file, position and GTID recorded with --master-data/--gtid.",
				Errors: []drivers.Class{drivers.Corruption, drivers.Permanent, drivers.Transient, drivers.Cancelled},
				Impl:   mysqlScanDump},
			{Name: "load_dump", Effect: Write,
				Params:  `name, threads=0, database="", rename=None, schemas=None, decompress="auto", commit_mb=32, timeout=0`,
				Returns: "struct(statements, inserts, sessions, skipped, bytes, seconds, binlog, complete)",
				Doc: "Loads a mariadb-dump/mysqldump snapshot file into the target, streamed from the blob store (verified " +
					"as it is read, decompressed on the way, no copy on disk) and split into statements. threads > 1 (0: as many " +
					"as the machine has cores, 2 to 4): one " +
					"mariadb client session runs the DDL, views, triggers, routines and events in the dump's order, and " +
					"`threads` sessions of the Go MySQL driver load the rows in parallel (the rows of a non-InnoDB table in " +
					"one session under its LOCK TABLES; a trigger, view or routine only after every row before it is " +
					"committed). threads=1: one mariadb client session in the dump's order, like `mariadb < dump.sql`. " +
					"Every session runs with sql_log_bin=0, foreign_key_checks=0 and its own transactions, committed every " +
					"commit_mb MiB and when a session waits; replication set-up written by --master-data=1/--dump-slave " +
					"(CHANGE MASTER TO, SET GLOBAL gtid_slave_pos) is skipped (the position is in binlog). database: the " +
					"schema of a dump made without --databases; rename ({old: new}) renames schemas in CREATE DATABASE, USE " +
					"and qualified names; schemas, when given, are the only ones the dump may name (any other fails the load " +
					"before a statement of it runs). A checksum mismatch, a cut dump (a header without \"-- Dump completed\", " +
					"or a statement without its delimiter) or a failing statement (named with its line of the dump) kills " +
					"every session before its input ends; what was committed stays for the caller's rollback. " +
					"A timeout (seconds) or Ctrl-C cancels the load the same way.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Transient, drivers.Corruption, drivers.Cancelled, drivers.Script},
				Impl:   mysqlLoadDump, Plan: mysqlLoadDumpPlan},
			{Name: "backup_info", Idempotent: true, Effect: Read, Params: "dir",
				Returns: "struct(server_version, tool_version, binlog, info)",
				Doc: "Reads xtrabackup_info and xtrabackup_binlog_info of an unpacked mariabackup/xtrabackup backup. " +
					"A directory without xtrabackup_info is not a backup (corruption).",
				Errors: []drivers.Class{drivers.Corruption, drivers.Permanent}, Impl: mysqlBackupInfo, Plan: mysqlBackupInfoPlan},
			{Name: "mydumper_info", Idempotent: true, Effect: Read, Params: "dir", Returns: "struct(schemas, binlog)",
				Doc:    "Reads a downloaded mydumper directory: its schemas (SCHEMA-schema-create.sql) and the binlog position in its metadata file.",
				Errors: []drivers.Class{drivers.Permanent}, Impl: mysqlMydumperInfo, Plan: mysqlMydumperInfoPlan},
			{Name: "parse_version", Idempotent: true, Effect: Read, Params: "text", Returns: "struct(version, series, mariadb) or None",
				Doc: "Parses a server or tool version (\"10.11.19-MariaDB-0+deb12u1-log\"); None if there is none.", Impl: mysqlParseVersion, NoRecord: true},
		},
	})
}

// binlogValue is the binlog position as a dict, or nil when the backup has none.
func binlogValue(b mysqlops.Binlog) any {
	if b.Empty() {
		return nil
	}
	return b.Map()
}

func mysqlScanDump(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	decompress := "auto"
	if err := Unpack("mysql.scan_dump", args, kwargs, "name", &name, "decompress?", &decompress); err != nil {
		return nil, err
	}
	if _, ok := env.Snapshot.Manifest.File(name); !ok {
		return nil, drivers.Errorf(drivers.Script, "mysql.scan_dump: the snapshot has no file %q (files: %s)", name, fileNames(env.Snapshot.Manifest))
	}
	rc, err := openBlobStream(ctx, env, name, decompress)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	d, err := mysqlops.ScanDump(rc)
	if err != nil {
		if drivers.ClassOf(err) == drivers.Permanent {
			var de *drivers.Error
			if !asDriverError(err, &de) {
				err = drivers.WithClass(drivers.Transient, "read "+name, err)
			}
		}
		return nil, drivers.WithClass(drivers.ClassOf(err), "mysql.scan_dump "+name, err)
	}
	if d.Tool == "" && d.Tables == 0 {
		return nil, drivers.Errorf(drivers.Corruption, "mysql.scan_dump: %s is not a mariadb-dump/mysqldump file (no dump header, no CREATE TABLE)", name)
	}
	env.Log.Info().Str("file", name).Int64("bytes", d.Bytes).Strs("schemas", d.Schemas).Int("tables", d.Tables).Msg("dump verified and scanned")
	return Struct(map[string]any{"tool": d.Tool, "server_version": d.ServerVersion, "schemas": d.Schemas,
		"tables": d.Tables, "binlog": binlogValue(d.Binlog), "bytes": d.Bytes, "sandbox": d.Sandbox})
}

func mysqlBackupInfo(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, err := onePathNamed("mysql.backup_info", "dir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	info, err := os.ReadFile(filepath.Join(dir, "xtrabackup_info"))
	if err != nil {
		return nil, drivers.Errorf(drivers.Corruption, "mysql.backup_info: %s has no readable xtrabackup_info: it is not a mariabackup/xtrabackup backup (%v)", dir, err)
	}
	kv := mysqlops.ParseKeyValues(string(info))
	var b mysqlops.Binlog
	if data, err := os.ReadFile(filepath.Join(dir, "xtrabackup_binlog_info")); err == nil {
		b = mysqlops.ParseBinlogInfo(string(data))
	}
	m := map[string]any{}
	for k, v := range kv {
		m[k] = v
	}
	return Struct(map[string]any{"server_version": kv["server_version"], "tool_version": kv["tool_version"], "binlog": binlogValue(b), "info": m})
}

func mysqlBackupInfoPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, err := onePathNamed("mysql.backup_info", "dir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "xtrabackup_info")); err == nil {
		return mysqlBackupInfo(ctx, env, args, kwargs)
	}
	return Struct(map[string]any{"server_version": nil, "tool_version": nil, "binlog": nil, "info": map[string]any{}})
}

func mysqlMydumperInfo(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, err := onePathNamed("mysql.mydumper_info", "dir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "mysql.mydumper_info", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	var b mysqlops.Binlog
	if data, err := os.ReadFile(filepath.Join(dir, "metadata")); err == nil {
		b = mysqlops.ParseMydumperMetadata(string(data))
	}
	schemas := mysqlops.MydumperSchemas(names)
	if schemas == nil {
		schemas = []string{}
	}
	return Struct(map[string]any{"schemas": schemas, "binlog": binlogValue(b)})
}

func mysqlMydumperInfoPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, err := onePathNamed("mysql.mydumper_info", "dir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return mysqlMydumperInfo(ctx, env, args, kwargs)
	}
	return Struct(map[string]any{"schemas": nil, "binlog": nil})
}

func mysqlParseVersion(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var text string
	if err := Unpack("mysql.parse_version", args, kwargs, "text", &text); err != nil {
		return nil, err
	}
	v, ok := mysqlops.ParseVersion(text)
	if !ok {
		return starlark.None, nil
	}
	return Struct(map[string]any{"version": v.String(), "series": v.Series(), "mariadb": v.MariaDB})
}

func onePathNamed(fn, name string, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (string, error) {
	var p string
	if err := Unpack(fn, args, kwargs, name, &p); err != nil {
		return "", err
	}
	return env.CheckPath(p)
}
