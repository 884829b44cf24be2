package main

import (
	"fmt"
	"regexp"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/scripttest"
)

func newTestCmd(g *globalFlags) *cobra.Command {
	var (
		embedded bool
		run      string
	)
	cmd := &cobra.Command{
		Use:   "test [DIR|FILE]...",
		Short: "Run the Starlark tests of driver scripts (*_test.star) with fake builtins",
		Long: `Run the test_* functions of *_test.star files. A DIR runs every *_test.star in it;
no argument runs those of the current directory.

A test loads a driver with testing.driver("NAME[@CONSTRAINT]"), found like --driver
(the test file's own directory wins), runs it with testing.run(...) and fake
builtins that record their calls and return scripted answers, and checks the result
with assert.eq, assert.true, assert.fails, ... Builtins that only touch the run's
temporary files (fs, blob, log, time.now, fail) run for real; every other builtin
must be faked, so a test never reaches a real server. See docs/overriding.md and the
testing module in docs/builtins.md.

Each test prints "ok   test_name (12ms)" or "FAIL test_name: file:line:col: message"
with the backtrace. Exit code 1 when any test fails.`,
		Example: `  restore-run test ~/.config/restore-run/scripts
  restore-run test scripts/etcd_test.star --run bump
  restore-run test --embedded`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var re *regexp.Regexp
			if run != "" {
				var err error
				if re, err = regexp.Compile(run); err != nil {
					return &flagError{errorf("--run %q: %v", run, err)}
				}
			}
			host, err := g.host()
			if err != nil {
				return err
			}
			var files []scripttest.File
			sources := host.Sources
			if embedded {
				if len(args) > 0 {
					return &flagError{errorf("--embedded takes no files or directories")}
				}
				sources = []engine.Source{engine.Embedded()}
				files, err = scripttest.Embedded()
			} else {
				if len(args) == 0 {
					args = []string{"."}
				}
				files, err = scripttest.Find(args)
			}
			if err != nil {
				return &flagError{err}
			}
			// Script logs would drown the results; --log-level debug shows them.
			log := zerolog.Nop()
			if g.logLevel == "debug" {
				log, _ = g.logger()
			}
			sum := scripttest.Run(cmd.Context(), scripttest.Options{
				Sources: sources, MaxSteps: g.maxSteps, Run: re, Out: cmd.OutOrStdout(), Log: log,
			}, files)
			fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", sum.Passed, sum.Failed+sum.Broken)
			if sum.Failed+sum.Broken > 0 {
				return &silentError{testFailed{}}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&embedded, "embedded", false, "run the tests embedded in the binary against the embedded scripts")
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose name matches this regular expression")
	return cmd
}

// testFailed is the error of a test run with failures (exit code 1).
type testFailed struct{}

func (testFailed) Error() string { return "tests failed" }
