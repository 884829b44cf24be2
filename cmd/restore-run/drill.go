package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/drill"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/metrics"
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/transfer"
)

// drillFlags are the flags of restore-run drill.
type drillFlags struct {
	params          []string
	reportDir       string
	timeout         string
	list            bool
	metricsAddr     string
	metricsTextfile string
	metricsPush     string
}

func newDrillCmd(g *globalFlags) *cobra.Command {
	f := &drillFlags{}
	cmd := &cobra.Command{
		Use:   "drill FILE.star|NAME [--param K=V]... [--report-dir DIR]",
		Short: "Run a game-day drill: scripted restores with objectives, faults, expectations and reports",
		Long: `Run a drill script: restores of snapshots into scratch targets (or target files),
one after the other or side by side, each with a recovery-time objective, injected
faults (a slow or failing blob store, a corrupted byte, a server killed
mid-restore) and expectations on the restored data, checked while the target
still runs. Every scratch target is torn down at the end, also after a failure
or Ctrl-C.

NAME runs drills/NAME.star from the script sources (embedded: quickstart, full).
The reports go to --report-dir: report.json, junit.xml, report.html (a timeline
of every restore against its objective) and each restore's run report. See
docs/drills.md.

Exit codes: 0 the drill passed; 1 a restore, expectation or objective failed;
2 drill script or usage error; 130 interrupted.`,
		Example: `  restore-run drill quickstart
  restore-run drill full --param mysql_snapshot=s3://backups/mysql/latest --param cassandra_snapshot=s3://backups/cassandra/latest --report-dir /var/lib/restore-run/drills/full
  restore-run drill my-drill.star --metrics-textfile /var/lib/node_exporter/textfile/drill-my.prom`,
		Args: cobra.MaximumNArgs(1),
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.params, "param", nil, "drill parameter KEY=VALUE, as the script's drill(params={...}) declares (repeatable)")
	fl.StringVar(&f.reportDir, "report-dir", "", "directory for report.json, junit.xml and report.html (default drill-reports/NAME-TIME)")
	fl.StringVar(&f.timeout, "timeout", "", "deadline of the whole drill, e.g. 1h; its restores still roll back and tear down after it")
	fl.BoolVar(&f.list, "list", false, "list the drills of the script sources and exit")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT/metrics while the drill runs (docs/drills.md)")
	fl.StringVar(&f.metricsTextfile, "metrics-textfile", "", "write the drill metrics to this file when the drill ends (node exporter textfile collector; other drills' series in it are kept)")
	fl.StringVar(&f.metricsPush, "metrics-push", "", "push the drill metrics to this Pushgateway URL when the drill ends (job restore_run, grouped by instance and restore_drill)")
	storeFl := addStoreFlags(fl)
	transferFl := addTransferFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		host, err := g.host()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if f.list {
			names, _ := drill.List(host.Sources)
			for _, n := range names {
				fmt.Fprintln(out, n)
			}
			return nil
		}
		if len(args) != 1 {
			return &flagError{errorf("name a drill: restore-run drill FILE.star|NAME (restore-run drill --list shows the drills)")}
		}
		params, err := parseParams(f.params)
		if err != nil {
			return err
		}
		src, p, err := drill.Find(host.Sources, args[0])
		if err != nil {
			return err
		}
		opts := drill.Options{Host: host, Params: params, Redactor: g.redactor}
		opts.Log, _ = g.logger()
		if opts.Blob.Stores, err = storeFl.config(); err != nil {
			return err
		}
		if opts.Policy, err = configPolicy(storeFl); err != nil {
			return err
		}
		if opts.Blob.Transfer, err = transferFl.options(); err != nil {
			return err
		}
		if opts.Blob.Transfer.Progress == transfer.ProgressBar {
			// Restores run side by side: one bar each would overwrite the others.
			opts.Blob.Transfer.Progress, opts.Blob.Transfer.ProgressOut = transfer.ProgressLog, nil
		}
		if f.timeout != "" {
			if opts.Timeout, err = engine.ParseDuration(f.timeout); err != nil || opts.Timeout == 0 {
				return &flagError{errorf("--timeout %q: want a duration like 30m or 1h", f.timeout)}
			}
		}
		name := strings.TrimSuffix(filepath.Base(p), ".star")
		opts.ReportDir = f.reportDir
		if opts.ReportDir == "" {
			opts.ReportDir = filepath.Join("drill-reports", name+"-"+time.Now().UTC().Format("20060102T150405Z"))
		}
		if err := os.MkdirAll(opts.ReportDir, 0o755); err != nil {
			return &flagError{errorf("--report-dir %s: %v", opts.ReportDir, err)}
		}
		exp, err := newDrillExporter(cmd.Context(), f, opts.Log, g.redactor)
		if err != nil {
			return err
		}
		if exp != nil {
			opts.Exporter = exp
		}

		d := drill.New(opts)
		rep, runErr := d.Run(cmd.Context(), src, p)
		if exp != nil {
			if err := exp.finish(cmd.Context(), rep); err != nil {
				opts.Log.Error().Err(err).Msg("drill metrics")
			}
		}
		printDrill(out, rep, opts.ReportDir)
		if runErr == nil {
			return nil
		}
		var usage *engine.UsageError
		var se *engine.ScriptError
		switch {
		case errors.As(runErr, &usage), drivers.ClassOf(runErr) == drivers.Cancelled:
			return runErr
		case errors.As(runErr, &se):
			return runErr // printed with its backtrace by main
		}
		return &silentError{runErr}
	}
	return cmd
}

// printDrill prints the drill's verdict, one line per restore, and where the
// reports are.
func printDrill(w io.Writer, rep *drill.Report, dir string) {
	fmt.Fprintf(w, "drill %s: %s in %.1fs", rep.Drill, strings.ToUpper(rep.Result), rep.DurationSeconds)
	if rep.RTOObjective != nil {
		fmt.Fprintf(w, " (drill RTO %.1fs, objective %.1fs)", rep.RTOSeconds, *rep.RTOObjective)
	} else if rep.RTOSeconds > 0 {
		fmt.Fprintf(w, " (drill RTO %.1fs)", rep.RTOSeconds)
	}
	fmt.Fprintln(w)
	if len(rep.Restores) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  RESTORE\tVERDICT\tRESULT\tRTO\tOBJECTIVE\tCHECKS\t")
		for _, r := range rep.Restores {
			verdict := "passed"
			if !r.Passed {
				verdict = "FAILED"
			}
			obj := "-"
			if r.RTOObjective != nil {
				obj = fmt.Sprintf("%.1fs", *r.RTOObjective)
			}
			ok := 0
			for _, c := range r.Checks {
				if c.OK {
					ok++
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%.1fs\t%s\t%d/%d\t\n", r.Name, verdict, r.Result, r.RTOSeconds, obj, ok, len(r.Checks))
		}
		tw.Flush()
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	if len(rep.Files) > 0 {
		fmt.Fprintf(w, "  reports: %s\n", filepath.Join(dir, "report.html"))
	}
}

// drillExporter exports the drill metrics through restore-run's metrics
// (package metrics): its registry, /metrics server and textfile writer, and a
// push grouped by drill.
type drillExporter struct {
	f    *drillFlags
	m    *metrics.Metrics
	dm   *drill.Metrics
	log  zerolog.Logger
	red  *redact.Redactor
	stop context.CancelFunc
}

func newDrillExporter(ctx context.Context, f *drillFlags, log zerolog.Logger, red *redact.Redactor) (*drillExporter, error) {
	if f.metricsAddr == "" && f.metricsTextfile == "" && f.metricsPush == "" {
		return nil, nil
	}
	m := metrics.New()
	dm, err := drill.NewMetrics(m.Registry)
	if err != nil {
		return nil, err
	}
	e := &drillExporter{f: f, m: m, dm: dm, log: log, red: red}
	if f.metricsAddr != "" {
		sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		addr, err := m.Serve(sctx, f.metricsAddr)
		if err != nil {
			stop()
			return nil, &flagError{err}
		}
		e.stop = stop
		log.Info().Str("addr", addr).Msg("serving metrics on /metrics")
	}
	return e, nil
}

// DrillEnd implements drill.Exporter: an earlier textfile's series are carried
// over first, so that counters go on and other drills' series stay.
func (e *drillExporter) DrillEnd(rep *drill.Report) {
	if e.f.metricsTextfile != "" {
		if err := e.m.SeedFromTextfile(e.f.metricsTextfile); err != nil {
			e.log.Warn().Err(err).Msg("metrics textfile")
		}
		if err := e.dm.SeedFromTextfile(e.f.metricsTextfile, rep.Drill); err != nil {
			e.log.Warn().Err(err).Msg("metrics textfile")
		}
	}
	e.dm.DrillEnd(rep)
}

// finish writes the textfile and pushes the metrics.
func (e *drillExporter) finish(ctx context.Context, rep *drill.Report) error {
	var errs []error
	if e.f.metricsTextfile != "" {
		if err := e.m.WriteTextfile(e.f.metricsTextfile); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-textfile: %w", err))
		}
	}
	if e.f.metricsPush != "" {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		host, _ := os.Hostname()
		// Grouped by drill, so that drills pushing to one gateway keep their own
		// series (a grouping label may not repeat a metric's label: drill).
		p := push.New(e.f.metricsPush, "restore_run").Gatherer(e.m.Registry).Grouping("instance", host).Grouping("restore_drill", rep.Drill)
		if err := p.Client(&http.Client{Timeout: 30 * time.Second}).AddContext(pctx); err != nil {
			errs = append(errs, fmt.Errorf("push the drill metrics to %s: %v", withoutUserinfo(e.f.metricsPush), e.red.String(err.Error())))
		}
		cancel()
	}
	if e.stop != nil {
		e.stop()
	}
	return errors.Join(errs...)
}

// withoutUserinfo drops the user:password part of a URL for messages.
func withoutUserinfo(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		p.User = nil
		return p.String()
	}
	return u
}
