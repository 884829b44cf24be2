package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE.star...",
		Short: "Check driver scripts: syntax, undefined names, the driver() declaration, api and phase functions",
		Long: `Load each driver script the way a restore would (its top level runs, sandboxed) and
report what is wrong with file:line:col: syntax errors, undefined names, a missing or
invalid driver() declaration, an unsupported api, missing or malformed phase
functions. load() of lib/ modules resolves against the script's own directory first,
then the usual script roots.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var errs []error
			for _, file := range args {
				dir, base := filepath.Split(file)
				if dir == "" {
					dir = "."
				}
				host, err := g.host()
				if err != nil {
					return err
				}
				host.Sources = append(host.Sources, engine.DirSource(dir))
				d, err := host.LoadScript(engine.DirSource(dir), base)
				if err != nil {
					fmt.Fprintf(out, "FAIL %s\n  %v\n", file, err)
					if bt := engine.BacktraceOf(err); bt != "" {
						fmt.Fprintf(out, "  %s\n", strings.ReplaceAll(bt, "\n", "\n  "))
					}
					errs = append(errs, err)
					continue
				}
				i := d.Info()
				fmt.Fprintf(out, "ok   %s: driver %s@%s, api %d, phases %s, %d params\n", file, i.Name, i.Version, i.API, strings.Join(i.Phases, ", "), len(i.Params))
			}
			if len(errs) > 0 {
				return &silentError{errors.Join(errs...)}
			}
			return nil
		},
	}
}
