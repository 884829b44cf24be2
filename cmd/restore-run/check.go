package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/scripttest"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE.star|DIR...",
		Short: "Check scripts before anything runs: syntax, undefined names, builtin arguments, declaration, api and phases",
		Long: `Check driver scripts, lib/ helpers and *_test.star files without running a restore,
and report every problem with file:line:col:

  - syntax errors and undefined names;
  - calls of builtins with arguments that do not fit their signature (unknown or
    missing arguments, too many positional ones), members a module does not have
    (etcd.stauts), and wrong calls of the script's own functions;
  - a missing or invalid driver() declaration, an unsupported api, missing execute
    or validate, phase functions with the wrong parameters.

A driver script that passes these checks is then loaded the way a restore would load
it (its top level runs, sandboxed). load() of lib/ modules resolves against the
script's own directory first, then the usual script roots. A DIR checks every .star
file in it and in its lib/ directory.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := starFiles(args)
			if err != nil {
				return &flagError{err}
			}
			out := cmd.OutOrStdout()
			var errs []error
			for _, file := range files {
				if err := checkFile(g, out, file); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) > 0 {
				// Exit code 2, like a script error found by a restore.
				return &silentError{drivers.WithClass(drivers.Script, "check", errors.Join(errs...))}
			}
			return nil
		},
	}
}

// checkFile checks one file and prints "ok   FILE: ..." or "FAIL FILE" and its
// problems.
func checkFile(g *globalFlags, out interface{ Write([]byte) (int, error) }, file string) error {
	host, err := g.host()
	if err != nil {
		return err
	}
	dir, base := filepath.Split(file)
	if dir == "" {
		dir = "."
	}
	kind := engine.LintDriver
	switch {
	case strings.HasSuffix(base, "_test.star"):
		kind = engine.LintTest
	case filepath.Base(filepath.Clean(dir)) == "lib":
		kind = engine.LintLib
		dir = filepath.Dir(filepath.Clean(dir))
		base = filepath.Join("lib", base)
	}
	fail := func(lines ...string) error {
		fmt.Fprintf(out, "FAIL %s\n", file)
		for _, l := range lines {
			fmt.Fprintf(out, "  %s\n", strings.ReplaceAll(l, "\n", "\n  "))
		}
		return fmt.Errorf("%s: %s", file, strings.Join(lines, "; "))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fail(err.Error())
	}
	src := engine.DirSource(dir)
	diags := host.Lint(file, data, engine.LintOptions{Kind: kind, Extra: scripttest.Modules()})
	if len(diags) > 0 {
		var lines []string
		for _, d := range diags {
			lines = append(lines, d.String())
		}
		return fail(lines...)
	}
	if kind != engine.LintDriver {
		fmt.Fprintf(out, "ok   %s\n", file)
		return nil
	}
	host.Sources = append(host.Sources, src)
	d, err := host.LoadSource(src, base, data)
	if err != nil {
		lines := []string{err.Error()}
		if bt := engine.BacktraceOf(err); bt != "" {
			lines = append(lines, bt)
		}
		return fail(lines...)
	}
	i := d.Info()
	fmt.Fprintf(out, "ok   %s: driver %s@%s, api %d, phases %s, %d params\n", file, i.Name, i.Version, i.API, strings.Join(i.Phases, ", "), len(i.Params))
	return nil
}
