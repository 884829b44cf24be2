package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/mysqlops"
)

// benchTuning are the mariadbd options the baselines run with: the same ones
// scripts/lib/mariadb.star gives a scratch server, so that the comparison is about
// the restore method, not the server's configuration.
var benchTuning = []string{"--innodb-buffer-pool-size=2048M", "--innodb-log-file-size=1G", "--innodb-flush-log-at-trx-commit=2",
	"--innodb-doublewrite=0", "--max-allowed-packet=1G", "--skip-log-bin"}

func newBenchMysqlCmd(g *globalFlags) *cobra.Command {
	var rows, tables, threads int
	var dir string
	cmd := &cobra.Command{
		Use:   "bench-mysql",
		Short: "Measure MySQL restores against the manual commands (not part of the tests)",
		Long: `Builds sysbench-like tables (id, k, c, pad; ROWS rows over TABLES tables) on a throwaway
MariaDB, backs them up with mariadb-dump, mydumper and mariabackup (xbstream | zstd),
then times, each on a fresh server:

  logical:  restore-run (mysqldump and mydumper snapshots into scratch://mysql)
            vs mariadb < dump.sql  and  myloader -t THREADS
  physical: restore-run (xbstream.zst into scratch://mysql)
            vs zstd -dc | mbstream -x; mariabackup --prepare; mariabackup --copy-back; start

and prints the times and their ratios. Needs MariaDB's tools (./test.sh installs them)
and a few GB of disk in --dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchMysql(cmd.Context(), g, cmd.OutOrStdout(), dir, rows, tables, threads)
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 2_000_000, "rows in all, spread over --tables tables")
	cmd.Flags().IntVar(&tables, "tables", 4, "number of sbtest tables")
	cmd.Flags().IntVar(&threads, "threads", 2, "myloader threads (the baseline and the driver's)")
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a temp dir, removed at the end)")
	return cmd
}

func benchMysql(ctx context.Context, g *globalFlags, out io.Writer, dir string, rows, tables, threads int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "restore-run-bench-mysql-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	dir, _ = filepath.Abs(dir)
	step := func(format string, args ...any) { fmt.Fprintf(out, "# "+format+"\n", args...) }

	step("source: %d rows in %d sbtest tables", rows, tables)
	src, err := benchServer(ctx, filepath.Join(dir, "source"), true, "--log-bin=mysql-bin", "--server-id=1")
	if err != nil {
		return err
	}
	defer src.Stop(time.Minute)
	var sqlText strings.Builder
	sqlText.WriteString("CREATE DATABASE sbtest; USE sbtest;\n")
	per := rows / tables
	for i := 1; i <= tables; i++ {
		fmt.Fprintf(&sqlText, "CREATE TABLE sbtest%d (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_%d (k)) ENGINE=InnoDB;\n", i, i)
		fmt.Fprintf(&sqlText, "INSERT INTO sbtest%d (k, c, pad) SELECT FLOOR(RAND(%d)*%d), CONCAT_WS('-', FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11)), CONCAT_WS('-', FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11), FLOOR(RAND()*1e11)) FROM seq_1_to_%d;\n", i, i, per, per)
	}
	if _, err := benchShell(ctx, "", sqlText.String(), "mariadb", "--socket="+src.Config.Socket, "-uroot"); err != nil {
		return err
	}
	sock := src.Config.Socket
	files := filepath.Join(dir, "files")
	os.MkdirAll(filepath.Join(files, "mydumper"), 0o755)
	dump := filepath.Join(files, "sbtest.sql")
	xbs := filepath.Join(files, "sbtest.xbstream.zst")
	for _, c := range []string{
		fmt.Sprintf("mariadb-dump --socket=%s -uroot --databases sbtest --single-transaction --master-data=2 --gtid > %s", sock, dump),
		fmt.Sprintf("mydumper --socket=%s -u root -B sbtest -t %d -r 100000 -o %s/mydumper", sock, threads, files),
		fmt.Sprintf("mariabackup --backup --stream=xbstream --socket=%s --user=root 2>%s/mariabackup.log | zstd -q -T2 > %s", sock, dir, xbs),
	} {
		if _, err := benchShell(ctx, "", "", "bash", "-c", "set -o pipefail; "+c); err != nil {
			return err
		}
	}
	md, err := mysqlops.CollectMetadata(ctx, src.Conn(""), "", []string{"sbtest"}, true)
	if err != nil {
		return err
	}
	pack := func(name, format string, paths []string) (string, error) {
		m := md
		m.Format = format
		var pf []blobstore.PackFile
		for _, p := range paths {
			pf = append(pf, blobstore.PackFile{Path: p})
		}
		dest := filepath.Join(dir, "snapshots", name)
		_, err := blobstore.Pack(ctx, blobstore.PackOptions{Engine: "mysql", EngineVersion: md.ServerVersion, Files: pf, Dest: dest, Metadata: m.Map()})
		return dest, err
	}
	myd, _ := filepath.Glob(filepath.Join(files, "mydumper", "*"))
	snapDump, err := pack("dump", "mysqldump", []string{dump})
	if err != nil {
		return err
	}
	snapMyd, err := pack("mydumper", "mydumper", myd)
	if err != nil {
		return err
	}
	snapXbs, err := pack("xbstream", "xbstream", []string{xbs})
	if err != nil {
		return err
	}
	src.Stop(time.Minute)
	for _, f := range []string{dump, xbs} {
		if fi, err := os.Stat(f); err == nil {
			step("%s: %.1f MB", filepath.Base(f), float64(fi.Size())/1e6)
		}
	}

	// Each baseline on a fresh, empty server with the scratch target's options.
	timeOn := func(name string, fresh bool, fn func(s *mysqlops.Server) error) (time.Duration, error) {
		s, err := benchServer(ctx, filepath.Join(dir, name), fresh)
		if err != nil {
			return 0, err
		}
		defer func() { s.Stop(time.Minute); os.RemoveAll(filepath.Join(dir, name)) }()
		start := time.Now()
		err = fn(s)
		return time.Since(start), err
	}
	engineRun := func(name, snap string) (execute, rto time.Duration, err error) {
		host, err := g.host()
		if err != nil {
			return 0, 0, err
		}
		runner := &engine.Runner{Catalog: host.Discover()}
		rep, err := runner.Run(ctx, engine.Options{Driver: "mysql", Snapshot: snap, Target: "scratch://mysql",
			Params: map[string]string{"threads": fmt.Sprint(threads)}, WorkDir: filepath.Join(dir, name), Log: zerolog.Nop()})
		defer os.RemoveAll(filepath.Join(dir, name))
		if err != nil {
			return 0, 0, err
		}
		for _, p := range rep.Phases {
			if p.Name == drivers.PhaseExecute {
				execute = time.Duration(p.DurationSeconds * float64(time.Second))
			}
		}
		return execute, time.Duration(rep.RTOSeconds * float64(time.Second)), nil
	}
	type row struct {
		name string
		d    time.Duration
	}
	var results []row
	add := func(name string, d time.Duration) {
		results = append(results, row{name, d})
		step("%-58s %7.2fs", name, d.Seconds())
	}

	step("logical")
	d, err := timeOn("b-mariadb", true, func(s *mysqlops.Server) error {
		_, err := benchShell(ctx, dump, "", "mariadb", "--socket="+s.Config.Socket, "-uroot")
		return err
	})
	if err != nil {
		return err
	}
	add("mariadb < dump.sql", d)
	d, err = timeOn("b-myloader", true, func(s *mysqlops.Server) error {
		_, err := benchShell(ctx, "", "", "myloader", "--socket="+s.Config.Socket, "-u", "root", "-d", filepath.Join(files, "mydumper"), "-t", fmt.Sprint(threads))
		return err
	})
	if err != nil {
		return err
	}
	add(fmt.Sprintf("myloader -t %d", threads), d)
	for _, x := range []struct{ name, snap string }{{"dump", snapDump}, {"mydumper", snapMyd}} {
		exe, rto, err := engineRun("e-"+x.name, x.snap)
		if err != nil {
			return err
		}
		add("restore-run "+x.name+": execute (install, start, load)", exe)
		add("restore-run "+x.name+": whole run (with validation: counts, checksums, check)", rto)
	}

	step("physical")
	manual := filepath.Join(dir, "b-manual")
	os.MkdirAll(filepath.Join(manual, "backup"), 0o755)
	start := time.Now()
	for _, c := range [][]string{
		{"bash", "-c", fmt.Sprintf("set -o pipefail; zstd -dc %s | mbstream -x -C %s/backup", xbs, manual)},
		{"mariabackup", "--prepare", "--use-memory=2048M", "--target-dir=" + manual + "/backup"},
		{"mariabackup", "--copy-back", "--target-dir=" + manual + "/backup", "--datadir=" + manual + "/data"},
	} {
		if _, err := benchShell(ctx, "", "", c...); err != nil {
			return err
		}
	}
	s, err := mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: manual, Extra: benchTuning})
	if err != nil {
		return err
	}
	d = time.Since(start)
	s.Stop(time.Minute)
	os.RemoveAll(manual)
	add("zstd -dc | mbstream -x; --prepare; --copy-back; start", d)
	exe, rto, err := engineRun("e-xbstream", snapXbs)
	if err != nil {
		return err
	}
	add("restore-run xbstream: execute (unpack, prepare, move, start)", exe)
	add("restore-run xbstream: whole run (with validation)", rto)

	by := map[string]time.Duration{}
	for _, r := range results {
		by[r.name] = r.d
	}
	ratio := func(a, b string) {
		fmt.Fprintf(out, "%-66s %.2f\n", a+" / "+b, by[a].Seconds()/by[b].Seconds())
	}
	fmt.Fprintln(out, "\nratios (below 1: restore-run is faster)")
	ratio("restore-run dump: execute (install, start, load)", "mariadb < dump.sql")
	ratio("restore-run mydumper: execute (install, start, load)", fmt.Sprintf("myloader -t %d", threads))
	ratio("restore-run xbstream: execute (unpack, prepare, move, start)", "zstd -dc | mbstream -x; --prepare; --copy-back; start")
	return nil
}

// benchServer starts a tuned throwaway server in dir, with a new data dir when
// fresh.
func benchServer(ctx context.Context, dir string, fresh bool, extra ...string) (*mysqlops.Server, error) {
	if fresh {
		if err := mysqlops.InstallDB(ctx, filepath.Join(dir, "data")); err != nil {
			return nil, err
		}
	}
	opts := append([]string(nil), benchTuning...)
	if len(extra) > 0 {
		// A source with a binary log, so backups record their position.
		opts = append(opts[:len(opts)-1], extra...)
	}
	return mysqlops.StartServer(ctx, mysqlops.ServerConfig{Dir: dir, Extra: opts})
}

// benchShell runs a command with stdin from a file or a string.
func benchShell(ctx context.Context, stdinFile, stdin string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	switch {
	case stdinFile != "":
		f, err := os.Open(stdinFile)
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd.Stdin = f
	case stdin != "":
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, ee.Stderr)
	}
	return string(out), err
}
