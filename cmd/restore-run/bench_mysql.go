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
	var dir, loaders string
	var reuse bool
	var rounds int
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

and the engine's dump loader alone (mysqlops.LoadDump, what mysql.load_dump runs) in each
--loaders setting, on a fresh server like the baselines: the load portion, compared like
with like. Prints the times and their ratios. Needs MariaDB's tools (./test.sh installs
them) and a few GB of disk in --dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchMysql(cmd.Context(), g, cmd.OutOrStdout(), benchMysqlOptions{dir: dir, rows: rows, tables: tables, threads: threads,
				loaders: loaders, reuse: reuse, rounds: rounds})
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 2_000_000, "rows in all, spread over --tables tables")
	cmd.Flags().IntVar(&tables, "tables", 4, "number of sbtest tables")
	cmd.Flags().IntVar(&threads, "threads", 2, "myloader threads (the baseline and the driver's)")
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a temp dir, removed at the end)")
	cmd.Flags().IntVar(&rounds, "rounds", 2, "times each logical line runs, in rounds (the spread is printed; the ratios use the means)")
	cmd.Flags().StringVar(&loaders, "loaders", "driver:2,driver:3,clients:2,mydumper:3",
		"the engine's dump loader (mysqlops.LoadDump) alone, on a fresh server like the baselines: SESSIONS:THREADS[:COMMIT_MB], "+
			"SESSIONS driver (row sessions over the Go driver) or clients (mariadb processes); THREADS 1 is one client session in order")
	cmd.Flags().BoolVar(&reuse, "reuse", false, "reuse the source, backups and snapshots of an earlier run in --dir (same --rows and --tables)")
	return cmd
}

// benchMysqlOptions are bench-mysql's flags.
type benchMysqlOptions struct {
	dir                   string
	rows, tables, threads int
	loaders               string
	reuse                 bool
	rounds                int
}

func benchMysql(ctx context.Context, g *globalFlags, out io.Writer, o benchMysqlOptions) error {
	dir, rows, tables, threads := o.dir, o.rows, o.tables, o.threads
	loaders, err := parseBenchLoaders(o.loaders)
	if err != nil {
		return err
	}
	if o.rounds < 1 {
		return fmt.Errorf("--rounds must be at least 1, not %d", o.rounds)
	}
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

	files := filepath.Join(dir, "files")
	dump := filepath.Join(files, "sbtest.sql")
	xbs := filepath.Join(files, "sbtest.xbstream.zst")
	snapDump, snapMyd, snapXbs := filepath.Join(dir, "snapshots", "dump"), filepath.Join(dir, "snapshots", "mydumper"), filepath.Join(dir, "snapshots", "xbstream")
	if _, err := os.Stat(filepath.Join(snapXbs, "manifest.json")); o.reuse && err == nil {
		step("reusing the backups and snapshots in %s", dir)
	} else if err := benchMysqlSource(ctx, dir, rows, tables, threads, step); err != nil {
		return err
	}
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
	// engineRun restores snap into scratch://mysql: the execute phase, the
	// load call alone (mysql.load_dump or myloader's exec.run) and the RTO.
	engineRun := func(name, snap string) (execute, load, rto time.Duration, err error) {
		host, err := g.host()
		if err != nil {
			return 0, 0, 0, err
		}
		runner := &engine.Runner{Catalog: host.Discover()}
		rep, err := runner.Run(ctx, engine.Options{Driver: "mysql", Snapshot: snap, Target: "scratch://mysql",
			Params: map[string]string{"threads": fmt.Sprint(threads)}, WorkDir: filepath.Join(dir, name), Log: zerolog.Nop()})
		defer os.RemoveAll(filepath.Join(dir, name))
		if err != nil {
			return 0, 0, 0, err
		}
		for _, p := range rep.Phases {
			if p.Name == drivers.PhaseExecute {
				execute = time.Duration(p.DurationSeconds * float64(time.Second))
			}
		}
		for _, c := range rep.Calls {
			if c.Builtin == "mysql.load_dump" || c.Builtin == "exec.run" && strings.Contains(c.Args, `"myloader"`) {
				load = c.Duration
			}
		}
		return execute, load, time.Duration(rep.RTOSeconds * float64(time.Second)), nil
	}
	var results []benchRow
	add := func(name string, d time.Duration) {
		results = append(results, benchRow{name, d})
		step("%-58s %7.2fs", name, d.Seconds())
	}

	step("logical, %d rounds (each round runs every line once, in this order)", o.rounds)
	var bestLoader string
	for round := 1; round <= o.rounds; round++ {
		step("round %d", round)
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
		for _, l := range loaders {
			d, err := timeOn("l-"+strings.NewReplacer(":", "-", " ", "-").Replace(l.name()), true, func(s *mysqlops.Server) error {
				_, err := benchLoad(ctx, s, l, dump, filepath.Join(files, "mydumper"))
				return err
			})
			if err != nil {
				return fmt.Errorf("loader %s: %w", l.name(), err)
			}
			add("LoadDump "+l.name(), d)
		}
		for _, x := range []struct{ name, snap string }{{"dump", snapDump}, {"mydumper", snapMyd}} {
			exe, load, rto, err := engineRun("e-"+x.name, x.snap)
			if err != nil {
				return err
			}
			add("restore-run "+x.name+": load call alone", load)
			add("restore-run "+x.name+": execute (install, start, load)", exe)
			add("restore-run "+x.name+": whole run (with validation: counts, checksums, check)", rto)
		}
	}
	for _, l := range loaders {
		if name := "LoadDump " + l.name(); l.source == "dump" && (bestLoader == "" || meanOf(results, name) < meanOf(results, bestLoader)) {
			bestLoader = name
		}
	}

	step("physical")
	manual := filepath.Join(dir, "b-manual")
	os.RemoveAll(manual)
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
	d := time.Since(start)
	s.Stop(time.Minute)
	os.RemoveAll(manual)
	add("zstd -dc | mbstream -x; --prepare; --copy-back; start", d)
	exe, _, rto, err := engineRun("e-xbstream", snapXbs)
	if err != nil {
		return err
	}
	add("restore-run xbstream: execute (unpack, prepare, move, start)", exe)
	add("restore-run xbstream: whole run (with validation)", rto)

	fmt.Fprintln(out, "\nseconds: mean (min-max) over the runs of each line")
	var seen []string
	for _, r := range results {
		if !contains(seen, r.name) {
			seen = append(seen, r.name)
			lo, hi := spreadOf(results, r.name)
			fmt.Fprintf(out, "%-78s %7.2f (%.2f-%.2f)\n", r.name, meanOf(results, r.name).Seconds(), lo.Seconds(), hi.Seconds())
		}
	}
	ratio := func(a, b string) {
		fmt.Fprintf(out, "%-78s %.2f\n", a+" / "+b, meanOf(results, a).Seconds()/meanOf(results, b).Seconds())
	}
	fmt.Fprintln(out, "\nratios of the means (below 1: restore-run is faster)")
	myl := fmt.Sprintf("myloader -t %d", threads)
	if bestLoader != "" {
		ratio(bestLoader, "mariadb < dump.sql")
		ratio(bestLoader, myl)
	}
	ratio("restore-run dump: load call alone", "mariadb < dump.sql")
	ratio("restore-run dump: load call alone", myl)
	ratio("restore-run dump: execute (install, start, load)", "mariadb < dump.sql")
	ratio("restore-run dump: execute (install, start, load)", myl)
	ratio("restore-run mydumper: execute (install, start, load)", fmt.Sprintf("myloader -t %d", threads))
	ratio("restore-run xbstream: execute (unpack, prepare, move, start)", "zstd -dc | mbstream -x; --prepare; --copy-back; start")
	return nil
}

// benchMysqlSource makes the source tables on a throwaway server, backs them up
// (mariadb-dump, mydumper, mariabackup) into DIR/files and packs each backup as
// a snapshot in DIR/snapshots/{dump,mydumper,xbstream}.
func benchMysqlSource(ctx context.Context, dir string, rows, tables, threads int, step func(string, ...any)) error {
	for _, d := range []string{"source", "files", "snapshots"} {
		os.RemoveAll(filepath.Join(dir, d))
	}
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
	for _, p := range []struct {
		name, format string
		paths        []string
	}{{"dump", "mysqldump", []string{dump}}, {"mydumper", "mydumper", myd}, {"xbstream", "xbstream", []string{xbs}}} {
		os.RemoveAll(filepath.Join(dir, "snapshots", p.name))
		if _, err := pack(p.name, p.format, p.paths); err != nil {
			return err
		}
	}
	src.Stop(time.Minute)
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

// benchLoader is one --loaders setting.
type benchLoader struct {
	sessions string // "driver" or "clients"
	source   string // "dump", or "mydumper": the mydumper directory as one stream
	threads  int
	commitMB int
}

func (l benchLoader) name() string {
	n := fmt.Sprintf("%s:%d", l.sessions, l.threads)
	if l.source == "mydumper" {
		n = "mydumper-dir " + n
	}
	if l.commitMB > 0 {
		n += fmt.Sprintf(":%d", l.commitMB)
	}
	return n
}

// parseBenchLoaders reads --loaders: SESSIONS:THREADS[:COMMIT_MB], comma
// separated; SESSIONS is driver, clients or mydumper (the mydumper directory,
// with driver sessions).
func parseBenchLoaders(s string) ([]benchLoader, error) {
	var out []benchLoader
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		parts := strings.Split(f, ":")
		l := benchLoader{sessions: parts[0], source: "dump"}
		if l.sessions == "mydumper" {
			l.sessions, l.source = "driver", "mydumper"
		}
		ok := len(parts) >= 2 && len(parts) <= 3 && (l.sessions == "driver" || l.sessions == "clients")
		if ok {
			_, err := fmt.Sscan(parts[1], &l.threads)
			ok = err == nil && l.threads >= 1
		}
		if ok && len(parts) == 3 {
			_, err := fmt.Sscan(parts[2], &l.commitMB)
			ok = err == nil && l.commitMB >= 1
		}
		if !ok {
			return nil, fmt.Errorf("--loaders: %q is not SESSIONS:THREADS[:COMMIT_MB] with SESSIONS driver, clients or mydumper (e.g. driver:3 or clients:2:64)", f)
		}
		out = append(out, l)
	}
	return out, nil
}

// benchLoad runs mysqlops.LoadDump as mysql.load_dump does, on the dump or on
// the mydumper directory read as one stream.
func benchLoad(ctx context.Context, s *mysqlops.Server, l benchLoader, dump, mydumperDir string) (mysqlops.LoadResult, error) {
	var r io.Reader
	if l.source == "mydumper" {
		mr, closeAll, err := mydumperStream(mydumperDir)
		if err != nil {
			return mysqlops.LoadResult{}, err
		}
		defer closeAll()
		r = mr
	} else {
		f, err := os.Open(dump)
		if err != nil {
			return mysqlops.LoadResult{}, err
		}
		defer f.Close()
		r = f
	}
	o := mysqlops.LoadOptions{Client: []string{"mariadb", "--socket=" + s.Config.Socket, "-uroot"}, Threads: l.threads,
		CommitBytes: int64(l.commitMB) << 20}
	if l.sessions == "driver" {
		c := s.Conn("")
		o.Conn = &c
	}
	return mysqlops.LoadDump(ctx, r, o)
}

// mydumperStream reads a mydumper directory as one dump: each schema's create
// file, each table's schema file, then the data files, each after a USE.
func mydumperStream(dir string) (io.Reader, func(), error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var creates, tables, data []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, "-schema-create.sql"):
			creates = append(creates, n)
		case strings.HasSuffix(n, "-schema.sql"):
			tables = append(tables, n)
		case strings.HasSuffix(n, ".sql"):
			data = append(data, n)
		}
	}
	var readers []io.Reader
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, group := range [][]string{creates, tables, data} {
		for _, n := range group {
			f, err := os.Open(filepath.Join(dir, n))
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			files = append(files, f)
			db := strings.SplitN(strings.TrimSuffix(n, "-schema-create.sql"), ".", 2)[0]
			if !strings.HasSuffix(n, "-schema-create.sql") {
				readers = append(readers, strings.NewReader("USE "+mysqlops.QuoteIdent(db)+";\n"))
			}
			readers = append(readers, f, strings.NewReader("\n"))
		}
	}
	return io.MultiReader(readers...), closeAll, nil
}

// benchRow is one measured line.
type benchRow struct {
	name string
	d    time.Duration
}

// meanOf is the mean of the measurements of one line.
func meanOf(rows []benchRow, name string) time.Duration {
	var sum time.Duration
	n := 0
	for _, r := range rows {
		if r.name == name {
			sum += r.d
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / time.Duration(n)
}

// spreadOf is the lowest and highest measurement of one line.
func spreadOf(rows []benchRow, name string) (lo, hi time.Duration) {
	for _, r := range rows {
		if r.name == name {
			if lo == 0 || r.d < lo {
				lo = r.d
			}
			hi = max(hi, r.d)
		}
	}
	return lo, hi
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
