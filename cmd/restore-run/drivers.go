package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/scripts"
)

func newDriversCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drivers",
		Short: "List driver scripts: name, version, api, source, and what shadows what",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, err := g.host()
			if err != nil {
				return err
			}
			c := host.Discover()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tAPI\tSOURCE\tSHADOWED BY")
			for _, e := range c.Registry.List() {
				i := e.Info()
				by := "-"
				if e.ShadowedBy != "" {
					by = e.ShadowedBy
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", i.Name, i.Version, i.API, i.Source, by)
			}
			w.Flush()
			for _, p := range c.Problems {
				fmt.Fprintf(cmd.OutOrStdout(), "not loaded: %s: %v\n", p.File, p.Err)
			}
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show NAME[@CONSTRAINT]",
		Short: "Show a driver: version, source, phases and params with defaults and docs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := resolveDriver(g, args[0])
			if err != nil {
				return err
			}
			i := d.Info()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s@%s (api %d, engine %s)\nsource: %s\nsha256: %s\nphases: %s\n",
				i.Name, i.Version, i.API, i.Engine, i.Source, i.SHA256, strings.Join(i.Phases, ", "))
			if i.Doc != "" {
				fmt.Fprintf(out, "\n%s\n", i.Doc)
			}
			fmt.Fprintln(out, "\nparams:")
			if len(i.Params) == 0 {
				fmt.Fprintln(out, "  (none)")
			}
			for _, p := range i.Params {
				def, _ := json.Marshal(p.Default)
				fmt.Fprintf(out, "  %s (%s, default %s)\n", p.Name, p.Type, def)
				if p.Doc != "" {
					fmt.Fprintf(out, "      %s\n", strings.ReplaceAll(p.Doc, "\n", "\n      "))
				}
			}
			return nil
		},
	})
	var withTest bool
	export := &cobra.Command{
		Use:   "export NAME[@CONSTRAINT]",
		Short: "Print a driver's script text (or, with --test, its tests): the starting point of an override",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Scripts that do not load are skipped here: the shell creates the
			// file `export NAME > DIR/NAME.star` writes before restore-run runs,
			// and an empty or broken override must not hide the original.
			host, err := g.host()
			if err != nil {
				return err
			}
			cat := host.Discover()
			for _, p := range cat.Problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "restore-run: skipping %s, which does not load: %v\n", p.File, firstLine(p.Err.Error()))
			}
			rd, err := cat.Registry.Resolve(args[0])
			if err != nil {
				return engine.Usage(err)
			}
			d, ok := rd.(*engine.ScriptDriver)
			if !ok {
				return fmt.Errorf("driver %s is not a script", args[0])
			}
			if !withTest {
				_, err = cmd.OutOrStdout().Write(d.Text())
				return err
			}
			text, err := driverTests(d)
			if err != nil {
				// The script may be a copy without its tests (an override of the
				// same version): take those of the script it shadows.
				for _, e := range cat.Registry.List() {
					sd, ok := e.Driver.(*engine.ScriptDriver)
					if ok && e.ShadowedBy != "" && sd.Info().ID() == d.Info().ID() {
						if t, terr := driverTests(sd); terr == nil {
							text, err = t, nil
							break
						}
					}
				}
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(text)
			return err
		},
	}
	export.Flags().BoolVar(&withTest, "test", false, "print the driver's tests (NAME_test.star next to its script) instead of the script")
	cmd.AddCommand(export)
	return cmd
}

func resolveDriver(g *globalFlags, spec string) (*engine.ScriptDriver, error) {
	host, err := g.host()
	if err != nil {
		return nil, err
	}
	d, err := host.Discover().Resolve(spec)
	if err != nil {
		return nil, engine.Usage(err)
	}
	sd, ok := d.(*engine.ScriptDriver)
	if !ok {
		return nil, fmt.Errorf("driver %s is not a script", spec)
	}
	return sd, nil
}

// driverTests returns the text of the *_test.star file next to a driver's script:
// NAME_test.star for NAME.star, in the same source.
func driverTests(d *engine.ScriptDriver) ([]byte, error) {
	name := d.Filename()
	testName := strings.TrimSuffix(name, ".star") + "_test.star"
	var (
		data []byte
		err  error
	)
	if rest, ok := strings.CutPrefix(name, "embedded:"); ok {
		data, err = fs.ReadFile(scripts.FS, strings.TrimSuffix(rest, ".star")+"_test.star")
	} else {
		data, err = os.ReadFile(testName)
	}
	if err != nil || len(data) == 0 {
		return nil, engine.Usage(fmt.Errorf("driver %s has no tests: %s not found", d.Info().ID(), testName))
	}
	return data, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
