package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
)

func newResumeCmd(g *globalFlags) *cobra.Command {
	var report string
	var force, rollback bool
	cmd := &cobra.Command{
		Use:   "resume WORKDIR",
		Short: "Continue a restore that was interrupted (crash, kill -9) from its work dir",
		Long: `Continue a restore that was interrupted (a crash, kill -9, a lost machine) at the
first step it had not finished. Only a restore given --workdir can be resumed: its
state is in WORKDIR/.restore-run/run.json (the request, the driver script's sha256,
the phases reached, the script's checkpoints and ctx.state).

Phases that finished are not run again (the download's verified parts are kept);
the phase that was interrupted is entered again with ctx.resumed set, and the
driver re-enters it by its checkpoints and by what is on disk (see the "Resume"
section of each driver's doc). A run that had failed, or was rolling back, is
rolled back. The run keeps its run id, so staging and previous data are found.

The run's --scripts dirs and config file (--config/--store-config) are used again
unless given here. The driver script must be the one the run started with (same sha256): a changed
script is refused unless --force. --rollback puts the target back as it was
instead of finishing the restore.`,
		Example: `  restore-run restore --driver etcd --snapshot s3://backups/etcd/latest --target prod-etcd.yaml --workdir /var/lib/restore-run/etcd
  # ... the machine rebooted during execute ...
  restore-run resume /var/lib/restore-run/etcd
  restore-run resume --rollback /var/lib/restore-run/etcd   # give up: put the previous data back`,
		Args: cobra.ExactArgs(1),
	}
	fl := cmd.Flags()
	fl.StringVar(&report, "report", "", "write the JSON run report to this file")
	fl.BoolVar(&force, "force", false, "resume even though the driver script changed since the run started")
	fl.BoolVar(&rollback, "rollback", false, "roll the interrupted run back instead of finishing it")
	storeFlags := addStoreFlags(fl)
	transferFlags := addTransferFlags(fl)
	runFl := addRunFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		dir := args[0]
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return &flagError{errorf("resume %s: not a directory", dir)}
		}
		st, err := engine.ReadRunState(dir)
		if err != nil {
			return engine.Usage(err)
		}
		if len(g.scripts) == 0 {
			g.scripts = st.Request.Scripts
		}
		if storeFlags.configPath == "" && os.Getenv("RESTORE_RUN_CONFIG") == "" {
			// The stores, retries and timeouts of the run it continues.
			storeFlags.configPath = st.Request.Config
		}
		if storeFlags.fl.Lookup("target") == nil {
			// The store config may come from the target file's store: section.
			storeFlags.targetRef = st.Request.Target
		}
		opts := engine.Options{
			Mode:   engine.Mode(st.Mode),
			Driver: st.Driver.Name + "@=" + st.Driver.Version, Snapshot: st.Request.Snapshot, Target: st.Request.Target,
			Params: st.Request.Params, WorkDir: dir, Keep: st.Request.Keep, ReportPath: report,
			Resume: st, ForceResume: force, RollbackOnly: rollback,
		}
		return runEngine(cmd, g, opts, storeFlags, transferFlags, runFl)
	}
	return cmd
}
