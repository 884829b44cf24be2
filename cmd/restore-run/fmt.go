package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bazelbuild/buildtools/build"
	"github.com/spf13/cobra"
)

func newFmtCmd() *cobra.Command {
	var write, check bool
	cmd := &cobra.Command{
		Use:   "fmt [-w|--check] FILE.star|DIR...",
		Short: "Format driver scripts, helper modules and tests (.star) the standard Starlark way",
		Long: `Format .star files with buildifier's rules for Starlark files (github.com/bazelbuild/buildtools):
4-space indentation, spaces around keyword arguments, one argument per line when a
call does not fit, normalized quotes and blank lines. Nothing is reordered.

Without flags the formatted text of each file is printed. -w rewrites the files
that change; --check prints the files that would change and exits 1 if there are any.
A DIR means every .star file in it and in its lib/ directory.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if write && check {
				return &flagError{errorf("-w and --check do not go together")}
			}
			files, err := starFiles(args)
			if err != nil {
				return &flagError{err}
			}
			out := cmd.OutOrStdout()
			var changed []string
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				formatted, err := formatStar(f, data)
				if err != nil {
					return &flagError{err}
				}
				same := bytes.Equal(data, formatted)
				switch {
				case check:
					if !same {
						changed = append(changed, f)
						fmt.Fprintln(out, f)
					}
				case write:
					if !same {
						if err := writeKeepingMode(f, formatted); err != nil {
							return err
						}
						fmt.Fprintln(out, f)
					}
				default:
					if _, err := out.Write(formatted); err != nil {
						return err
					}
				}
			}
			if check && len(changed) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "restore-run: %d file(s) are not formatted; run restore-run fmt -w %s\n", len(changed), strings.Join(changed, " "))
				return &silentError{fmt.Errorf("%d files not formatted", len(changed))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&write, "write", "w", false, "rewrite the files in place")
	cmd.Flags().BoolVar(&check, "check", false, "list the files that are not formatted and exit 1 if any")
	return cmd
}

// formatStar formats one Starlark file. .star files are parsed as general
// Starlark (buildifier's "default" type): no BUILD-file rules such as sorting
// lists or call arguments apply.
func formatStar(name string, data []byte) ([]byte, error) {
	f, err := build.ParseDefault(name, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return build.Format(f), nil
}

// starFiles expands args into .star files: files as given, directories to their
// .star files and those of their lib/.
func starFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, a)
			continue
		}
		for _, pattern := range []string{filepath.Join(a, "*.star"), filepath.Join(a, "lib", "*.star")} {
			m, _ := filepath.Glob(pattern)
			sort.Strings(m)
			out = append(out, m...)
		}
	}
	return out, nil
}

func writeKeepingMode(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".fmt.tmp"
	if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
