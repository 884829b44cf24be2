package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/scripttest"
)

func newDocsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docs",
		Short: "Print generated reference documentation",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "builtins",
		Short: "Print the builtins reference (Markdown): every function a driver script can call",
		Long: `Print the reference of everything a driver script can call, generated from the Go
definitions: per module its functions with signature, return value, READ or WRITE,
error classes and doc; the engine's globals (driver, param, check, struct, fail, json);
the ctx, snapshot and target values; and the assert and testing modules of
restore-run test. docs/builtins.md is this output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(builtinsReference(builtins.Modules()))
			return err
		},
	})
	return cmd
}

// builtinsReference renders the Markdown reference of mods, the engine's globals
// and the test modules.
func builtinsReference(mods []builtins.Module) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Builtins reference\n\n")
	w("<!-- Generated from the Go definitions (builtins/*.go, engine/globals.go, scripttest/).\n")
	w("     Do not edit by hand: run `go run ./cmd/restore-run docs builtins > docs/builtins.md`. -->\n\n")
	w("Everything a driver script can call. A phase function receives `ctx`, `snapshot` and\n")
	w("`target`; it calls the global functions and the functions of the modules below.\n\n")
	w("- **READ** functions only look. They run in `restore-run plan` too.\n")
	w("- **WRITE** functions change files, processes or servers. In `restore-run plan` they are\n")
	w("  recorded, not run, and a planned call returns what the real one would (a path) or None.\n")
	w("- Every error a function raises has a class. `transient` and `throttled` errors are\n")
	w("  retried in the download and validate phases; the others fail the run. See\n")
	w("  [scripting.md](scripting.md#errors-and-retries).\n")
	w("- Builtins may be called only inside phase functions, never at a script's top level.\n")
	w("- `restore-run check` checks every call against the signatures below.\n\n")

	w("Contents: [ctx, snapshot, target](#phase-values-ctx-snapshot-target) · [global functions](#global-functions)")
	all := append([]builtins.Module{engine.JSONModule}, mods...)
	for _, m := range all {
		w(" · [%s](#module-%s)", m.Name, m.Name)
	}
	w(" · [assert and testing](#tests-assert-and-testing)\n\n")

	w("## Phase values: ctx, snapshot, target\n\n")
	w("Every phase function is called as `download(ctx, snapshot)` or `PHASE(ctx, snapshot, target)`.\n\n")
	for _, v := range engine.PhaseValues {
		w("### %s\n\n%s\n\n| field | type | |\n| --- | --- | --- |\n", v.Name, v.Doc)
		for _, f := range v.Fields {
			name := "`" + v.Name + "." + f.Name + "`"
			if strings.HasPrefix(f.Name, "(") {
				name = f.Name
			}
			w("| %s | %s | %s |\n", name, f.Type, cell(f.Doc))
		}
		w("\n")
	}

	w("## Global functions\n\nCalled without a module prefix.\n\n")
	globals := append([]builtins.Func{}, engine.EngineFuncs...)
	globals = append(globals, builtins.Globals.Funcs...)
	for _, f := range globals {
		writeFunc(&b, "", f)
	}
	for _, m := range all {
		w("## Module %s\n\n", m.Name)
		if m.Doc != "" {
			w("%s\n\n", m.Doc)
		}
		for _, f := range m.Funcs {
			writeFunc(&b, m.Name, f)
		}
	}

	w("## Tests: assert and testing\n\n")
	w("Only in `*_test.star` files run by `restore-run test` (see [overriding.md](overriding.md)).\n\n")
	for _, m := range scripttest.Modules() {
		if m.Doc != "" {
			w("### Module %s\n\n%s\n\n", m.Name, m.Doc)
		}
		for _, f := range m.Funcs {
			writeFuncLevel(&b, m.Name, f, "####")
		}
	}
	return b.Bytes()
}

func writeFunc(w io.Writer, module string, f builtins.Func) { writeFuncLevel(w, module, f, "###") }

func writeFuncLevel(w io.Writer, module string, f builtins.Func, level string) {
	name := f.Name
	if module != "" {
		name = module + "." + f.Name
	}
	sig := f.Params
	if s, err := f.Signature(); err == nil {
		sig = s.String()
	}
	fmt.Fprintf(w, "%s %s\n\n", level, name)
	fmt.Fprintf(w, "```python\n%s(%s)\n```\n\n", name, sig)
	var facts []string
	if f.Impl != nil && module != "" {
		facts = append(facts, "**"+f.Effect.String()+"**")
		if f.Idempotent {
			facts = append(facts, "idempotent: transient errors retried per call (`retry=`)")
		}
	}
	if f.Returns != "" {
		facts = append(facts, "returns: "+f.Returns)
	}
	if len(f.Errors) > 0 {
		var cls []string
		for _, c := range f.Errors {
			cls = append(cls, "`"+string(c)+"`")
		}
		facts = append(facts, "errors: "+strings.Join(cls, ", "))
	}
	if len(facts) > 0 {
		fmt.Fprintf(w, "%s\n\n", strings.Join(facts, " · "))
	}
	if f.Doc != "" {
		fmt.Fprintf(w, "%s\n\n", f.Doc)
	}
}

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
