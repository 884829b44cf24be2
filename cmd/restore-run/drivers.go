package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
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
	cmd.AddCommand(&cobra.Command{
		Use:   "export NAME[@CONSTRAINT]",
		Short: "Print a driver's script text: the starting point of an override",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := resolveDriver(g, args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(d.Text())
			return err
		},
	})
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
