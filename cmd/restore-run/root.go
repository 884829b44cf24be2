package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/redact"
)

// globalFlags are the flags every command takes.
type globalFlags struct {
	scripts  []string
	logLevel string
	maxSteps uint64
	redactor *redact.Redactor
	// started is set once cobra has parsed and checked the command line.
	started bool
}

func newRootCmd() (*cobra.Command, *globalFlags) {
	g := &globalFlags{redactor: redact.New()}
	root := &cobra.Command{
		Use:   "restore-run",
		Short: "Restore database snapshots with versioned, scriptable drivers, and prove they work",
		Long: `restore-run restores etcd, MySQL/MariaDB and Cassandra snapshots from a blob store
into a target, validates the restored database and reports the recovery time.
Each database's steps live in a Starlark driver script that a DBA can export,
change and test without rebuilding restore-run.

Exit codes: 0 success; 1 restore or validation failed; 2 usage, configuration or
script error; 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			g.started = true
			if _, err := g.logger(); err != nil {
				return err
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.StringArrayVar(&g.scripts, "scripts", nil, "extra script directory, searched after the embedded scripts, /etc/restore-run/scripts, $XDG_CONFIG_HOME/restore-run/scripts and $RESTORE_RUN_PATH (repeatable; later wins)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.Uint64Var(&g.maxSteps, "max-steps", engine.DefaultMaxSteps, "Starlark step limit per phase (stops endless loops)")

	root.AddCommand(
		newRestoreCmd(g, engine.ModeRestore),
		newRestoreCmd(g, engine.ModePlan),
		newRestoreCmd(g, engine.ModeValidate),
		newResumeCmd(g),
		newDriversCmd(g),
		newCheckCmd(g),
		newTestCmd(g),
		newFmtCmd(),
		newDocsCmd(),
		newSnapshotCmd(g),
		newVersionCmd(),
		newBenchMysqlCmd(g), // bench_mysql.go: the mysql driver's benchmark
		newBenchCmd(g),      // bench.go: the download pipeline's benchmark
		newDrillCmd(g),      // drill.go: game-day drills
	)
	return root, g
}

// logger returns the run logger: readable console lines on a terminal, JSON
// otherwise, on stderr, with secrets masked.
func (g *globalFlags) logger() (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(g.logLevel)
	if err != nil || g.logLevel == "" || level == zerolog.NoLevel {
		return zerolog.Nop(), &flagError{errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	var w io.Writer = os.Stderr
	if term.IsTerminal(int(os.Stderr.Fd())) {
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(g.redactor.Writer(w)).Level(level).With().Timestamp().Logger(), nil
}

// host returns a script host over the default sources plus --scripts.
func (g *globalFlags) host() (*engine.Host, error) {
	for _, dir := range g.scripts {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, &flagError{errorf("--scripts %s: not a directory", dir)}
		}
	}
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	h := engine.NewHost(engine.DefaultSources(g.scripts))
	h.MaxSteps = g.maxSteps
	h.Log = log
	return h, nil
}
