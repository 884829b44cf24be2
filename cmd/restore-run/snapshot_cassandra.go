package main

// `snapshot pack --engine cassandra --from-cluster CLUSTER.yaml`: snapshot a live
// Cassandra cluster (nodetool snapshot on every node) and pack it, with the
// metadata the cassandra driver validates against (cassops.PackCluster).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/targets"
)

type clusterPackFlags struct {
	from         string
	keyspaces    []string
	samplePoints int
	keep         bool
}

func (c *clusterPackFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&c.from, "from-cluster", "", "--engine cassandra: snapshot the live cluster a cassandra target file describes (nodetool snapshot on every node), instead of --from")
	fl.StringSliceVar(&c.keyspaces, "keyspaces", nil, "with --from-cluster: the keyspaces to snapshot (comma-separated; default every user keyspace)")
	fl.IntVar(&c.samplePoints, "sample-points", cassops.DefaultSamplePoints, "with --from-cluster: tokens probed per table for the sampled-partition digest a restore is validated against")
	fl.BoolVar(&c.keep, "keep-snapshot", false, "with --from-cluster: leave the nodetool snapshot on the nodes once packed")
}

// packCluster runs `snapshot pack --from-cluster`.
func packCluster(cmd *cobra.Command, g *globalFlags, f *packFlags, sf *storeFlags, partSize int64, created time.Time) error {
	switch {
	case f.engine != "cassandra":
		return &flagError{errorf("--from-cluster is for --engine cassandra, not %q", f.engine)}
	case len(f.from) > 0:
		return &flagError{errorf("give --from or --from-cluster, not both")}
	case len(f.metadata) > 0 || f.metadataJSON != "":
		return &flagError{errorf("--from-cluster reads the metadata from the cluster; leave out --metadata")}
	case f.cluster.samplePoints < 1:
		return &flagError{errorf("--sample-points must be at least 1")}
	}
	ctx := cmd.Context()
	t, err := targets.ParseFile(f.cluster.from)
	if err != nil {
		return g.redactErr(err)
	}
	if t.Engine != "cassandra" {
		return &flagError{errorf("--from-cluster %s describes a %s target, not a cassandra cluster", f.cluster.from, t.Engine)}
	}
	g.redactor.Add(t.SecretValues()...)
	cluster, err := cassops.ClusterFromSpec(t.Spec, t.Secret)
	if err != nil {
		return g.redactErr(err)
	}
	home, err := cassops.FindHome(cluster.Lib)
	if err != nil {
		return err
	}
	opts, err := g.openOptions(sf)
	if err != nil {
		return err
	}
	// The tools' scratch files (logback, nodetool history, JMX password files)
	// stay out of the user's home and are removed at the end.
	work, err := os.MkdirTemp("", "restore-run-pack-")
	if err != nil {
		return drivers.WithClass(drivers.Permanent, "create a temp dir", err)
	}
	defer os.RemoveAll(work)
	out := cmd.OutOrStdout()
	start := time.Now()
	res, err := cassops.PackCluster(ctx, cassops.PackOptions{
		Cluster: cluster, Tools: &cassops.Tools{Home: home, Dir: filepath.Join(work, "tools"), Redact: g.redactor.String},
		Keyspaces: f.cluster.keyspaces, SamplePoints: f.cluster.samplePoints, KeepSnapshot: f.cluster.keep,
		Log: func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) },
	}, blobstore.PackOptions{
		Dest: f.to, Source: f.source, PartSize: partSize, Overwrite: f.overwrite, Created: created,
		Compression: f.compress, Stores: opts.Stores, Redactor: opts.Redactor,
	})
	if err != nil {
		return g.redactErr(err)
	}
	m := res.Metadata
	var rows int64
	for _, ks := range m.Keyspaces {
		for _, tm := range ks.Tables {
			rows += tm.Rows
		}
	}
	fmt.Fprintf(out, "cluster %s: Cassandra %s, %s, %d nodes; keyspaces %s: %d tables, %d rows\n",
		m.ClusterName, m.CassandraVersion, m.StorageCompatibilityMode, len(m.Nodes), strings.Join(m.KeyspaceNames(), ", "), len(m.Tables()), rows)
	fmt.Fprintf(out, "packed %d files (%s stored) to %s in %.1fs; manifest.json written last\n",
		res.Files, humanBytes(res.Bytes), g.redactor.String(f.to), time.Since(start).Seconds())
	return nil
}
