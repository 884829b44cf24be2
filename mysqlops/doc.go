// Package mysqlops holds the MySQL/MariaDB work the mysql driver's builtins call,
// and knows nothing of Starlark: throwaway mariadbd servers (install, start, wait
// ready, stop), running the client and backup tools with bounded stderr tails in
// errors, splitting a mariadb-dump stream into statements (DumpSplitter) and
// loading it over parallel sessions (LoadDump), reading what backups record about themselves (xtrabackup_info,
// xtrabackup_binlog_info, a mydumper metadata file, a mariadb-dump header),
// server version and series detection, schema inventories with row counts and
// CHECKSUM TABLE (also what `snapshot pack` records in a manifest), moving a
// schema's objects aside into a holding schema and back (a logical restore's
// rollback), and the classification of errors into the drivers' classes.
package mysqlops
