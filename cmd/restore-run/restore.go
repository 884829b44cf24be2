package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
)

type restoreFlags struct {
	driver, snapshot, target string
	params                   []string
	report, workdir          string
	keep                     bool
}

func newRestoreCmd(g *globalFlags, mode engine.Mode) *cobra.Command {
	f := &restoreFlags{}
	cmd := &cobra.Command{Args: cobra.NoArgs}
	switch mode {
	case engine.ModeRestore:
		cmd.Use = "restore --driver NAME[@VERSION] --snapshot REF --target TARGET"
		cmd.Short = "Restore a snapshot into a target and validate it"
		cmd.Long = `Restore a snapshot into a target and validate it.

Phases: download (fetch and verify every byte of the snapshot), prepare, execute,
validate. If prepare, execute or validate fail, or the run is interrupted, the
driver's rollback puts the target's previous data back.

REF is a snapshot directory with a manifest.json, a single native file (e.g. from
etcdctl snapshot save), or a file:// URL. TARGET is scratch://ENGINE?options (a
throwaway server, e.g. scratch://etcd?members=3) or a YAML target file.`
		cmd.Example = `  restore-run restore --driver etcd --snapshot testdata/etcd/quickstart --target 'scratch://etcd?members=3'
  restore-run restore --driver etcd@^1 --snapshot /backups/etcd.db --target prod-etcd.yaml --param bump_revision=1000000000 --param mark_compacted=true`
	case engine.ModePlan:
		cmd.Use = "plan --driver NAME[@VERSION] --snapshot REF --target TARGET"
		cmd.Short = "Print every step and side effect a restore would make, changing nothing"
		cmd.Long = `Run the driver in plan mode: builtins that change anything (downloads, file moves,
server start/stop, restores) are recorded instead of run, and printed in order with
the script line that asked for them. Validation is not run.`
	case engine.ModeValidate:
		cmd.Use = "validate --driver NAME[@VERSION] --snapshot REF --target TARGET"
		cmd.Short = "Only validate a target against a snapshot (after verifying the snapshot)"
	}
	fl := cmd.Flags()
	fl.StringVar(&f.driver, "driver", "", "driver NAME or NAME@CONSTRAINT (e.g. etcd, etcd@1, etcd@^1.2, etcd@=1.2.0)")
	fl.StringVar(&f.snapshot, "snapshot", "", "snapshot reference: a directory or prefix with manifest.json (local path, file://, s3://, gs://, azblob://), PREFIX/latest, or a single native file")
	fl.StringVar(&f.target, "target", "", "target: scratch://ENGINE?options or a YAML target file")
	fl.StringArrayVar(&f.params, "param", nil, "driver parameter KEY=VALUE (repeatable; see `restore-run drivers show NAME`)")
	fl.StringVar(&f.report, "report", "", "write the JSON run report to this file")
	fl.StringVar(&f.workdir, "workdir", "", "work directory for downloads and scratch data (kept); default: a temp dir removed at the end")
	storeFlags := addStoreFlags(fl)
	transferFlags := addTransferFlags(fl)
	if mode == engine.ModeRestore {
		fl.BoolVar(&f.keep, "keep", false, "scratch targets: after validation print `ready: ENDPOINTS` and keep serving until SIGINT/SIGTERM")
	}
	runFl := addRunFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var missing []string
		for name, v := range map[string]string{"driver": f.driver, "snapshot": f.snapshot, "target": f.target} {
			if v == "" {
				missing = append(missing, "--"+name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return &flagError{errorf("required flag(s) %s not set (see restore-run %s --help)", strings.Join(missing, ", "), cmd.Name())}
		}
		params, err := parseParams(f.params)
		if err != nil {
			return err
		}
		opts := engine.Options{
			Mode: mode, Driver: f.driver, Snapshot: f.snapshot, Target: f.target, Params: params,
			WorkDir: f.workdir, Keep: f.keep, ReportPath: f.report,
		}
		return runEngine(cmd, g, opts, storeFlags, transferFlags, runFl)
	}
	return cmd
}

// runEngine runs one restore, plan, validate or resume with the flags every one
// of them takes, and prints its summary (or plan).
func runEngine(cmd *cobra.Command, g *globalFlags, opts engine.Options, storeFlags *storeFlags, transferFlags *transferFlags, runFl *runFlags) error {
	var err error
	if opts.Blob.Stores, err = storeFlags.config(); err != nil {
		return err
	}
	if opts.Policy, err = configPolicy(storeFlags); err != nil {
		return err
	}
	if opts.Blob.Transfer, err = transferFlags.options(); err != nil {
		return err
	}
	host, err := g.host()
	if err != nil {
		return err
	}
	log, _ := g.logger()
	catalog := host.Discover()
	runner := &engine.Runner{Catalog: catalog}
	out := cmd.OutOrStdout()
	opts.Log, opts.Redactor, opts.Scripts = log, g.redactor, g.scripts
	if path, explicit := storeFlags.configFile(); explicit {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		opts.ConfigFile = path
	}
	opts.Ready = func(endpoints []string) {
		fmt.Fprintf(out, "ready: %s\n", strings.Join(endpoints, ","))
		if fl, ok := out.(*os.File); ok {
			fl.Sync()
		}
	}
	w, err := runFl.wire(cmd.Context(), &opts, log, g.redactor)
	if err != nil {
		return err
	}
	rep, err := runner.Run(cmd.Context(), opts)
	if werr := w.finish(cmd.Context()); werr != nil && rep != nil {
		// Logged by finish; a metrics or audit problem does not undo the run.
		rep.Notes = append(rep.Notes, werr.Error())
	}
	if rep != nil {
		if opts.Mode == engine.ModePlan && err == nil {
			printPlan(out, rep)
		} else {
			printSummary(out, rep)
		}
		var usage *engine.UsageError
		if err != nil && len(rep.Phases) > 0 && !errors.As(err, &usage) {
			explainFailure(g.redactor.Writer(cmd.ErrOrStderr()), rep, err)
			return &silentError{err}
		}
	}
	return err
}

func parseParams(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &flagError{errorf("--param %q: want KEY=VALUE", kv)}
		}
		if _, dup := out[k]; dup {
			return nil, &flagError{errorf("--param %s given twice", k)}
		}
		out[k] = v
	}
	return out, nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
