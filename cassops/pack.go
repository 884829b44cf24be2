package cassops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
)

// DefaultSamplePoints is how many tokens a table's partition sample probes.
const DefaultSamplePoints = 32

// PackOptions says which cluster to snapshot and how.
type PackOptions struct {
	Cluster *Cluster
	Tools   *Tools
	// Keyspaces to snapshot; empty means every user keyspace.
	Keyspaces []string
	// Tag names the nodetool snapshot (default restore-run-YYYYMMDDTHHMMSSZ).
	Tag string
	// SamplePoints per table (default DefaultSamplePoints).
	SamplePoints int
	// KeepSnapshot leaves the nodetool snapshot on the nodes; by default it is
	// cleared once packed (or after a failure).
	KeepSnapshot bool
	// Log, if set, is told what happens.
	Log func(format string, args ...any)
}

// PackResult is what PackCluster did.
type PackResult struct {
	Manifest *drivers.Manifest
	Metadata *Metadata
	Files    int
	Bytes    int64
}

// PackCluster snapshots a live cluster and writes it as a restore-run snapshot:
//
//  1. reads every node's identity (system.local: tokens, DC, rack, version,
//     storage compatibility mode) and every keyspace's schema;
//  2. counts each table's rows and digests its partition sample (consistency ALL);
//  3. runs `nodetool snapshot -t TAG KEYSPACES` on every node, in parallel;
//  4. counts and digests again: if anything changed while the snapshot was taken,
//     the recorded facts would not describe the files, and the pack is refused;
//  5. packs every node's snapshot files as nodes/NODE/KEYSPACE/TABLE/FILE with
//     blobstore.Pack (dest, stores, parts and compression as pack says), the
//     metadata in the manifest;
//  6. clears the nodetool snapshot on every node (unless KeepSnapshot).
//
// The nodes' data dirs must be readable from this machine.
func PackCluster(ctx context.Context, opts PackOptions, pack blobstore.PackOptions) (*PackResult, error) {
	c, tools := opts.Cluster, opts.Tools
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.SamplePoints <= 0 {
		opts.SamplePoints = DefaultSamplePoints
	}
	if opts.Tag == "" {
		opts.Tag = "restore-run-" + time.Now().UTC().Format("20060102T150405Z")
	}
	for _, n := range c.Nodes {
		if len(n.DataDirs) == 0 {
			return nil, drivers.Errorf(drivers.Permanent, "node %s has no data_dirs: packing reads the snapshot files from them", n.Name)
		}
	}
	meta := &Metadata{SnapshotTag: opts.Tag, SamplePoints: opts.SamplePoints, Keyspaces: map[string]KeyspaceMeta{}}

	// 1. Nodes and schema.
	for _, n := range c.Nodes {
		s, err := Connect(ctx, c.CQL(n))
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		info, err := s.LocalInfo(ctx)
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if meta.ClusterName == "" {
			meta.ClusterName, meta.Partitioner, meta.CassandraVersion, meta.StorageCompatibilityMode =
				info.ClusterName, info.Partitioner, info.ReleaseVersion, info.StorageCompatibilityMode
		}
		if info.ClusterName != meta.ClusterName {
			return nil, drivers.Errorf(drivers.Permanent, "node %s belongs to cluster %q, node %s to %q", n.Name, info.ClusterName, c.Nodes[0].Name, meta.ClusterName)
		}
		if c.Name != "" && info.ClusterName != c.Name {
			return nil, drivers.Errorf(drivers.Permanent, "node %s belongs to cluster %q, the target file says %q", n.Name, info.ClusterName, c.Name)
		}
		meta.Nodes = append(meta.Nodes, NodeMeta{Name: n.Name, Address: info.Address, HostID: info.HostID, DC: info.DC, Rack: info.Rack, Tokens: info.Tokens})
	}
	if meta.Partitioner != Murmur3 {
		return nil, drivers.Errorf(drivers.Permanent, "the cluster uses %s; restore-run restores Murmur3Partitioner clusters", meta.Partitioner)
	}
	sess, err := Connect(ctx, c.CQL())
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	keyspaces := opts.Keyspaces
	if len(keyspaces) == 0 {
		if keyspaces, err = sess.Keyspaces(ctx); err != nil {
			return nil, err
		}
	}
	if len(keyspaces) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "the cluster has no user keyspace to snapshot")
	}
	for _, ks := range keyspaces {
		if IsSystemKeyspace(ks) {
			return nil, drivers.Errorf(drivers.Permanent, "keyspace %s belongs to Cassandra itself; snapshot user keyspaces", ks)
		}
		info, err := sess.Keyspace(ctx, ks)
		if err != nil {
			return nil, err
		}
		if !info.Exists {
			return nil, drivers.Errorf(drivers.Permanent, "keyspace %s does not exist", ks)
		}
		if len(info.Views) > 0 {
			return nil, drivers.Errorf(drivers.Permanent, "keyspace %s has materialized views (%s); restore-run does not snapshot them: drop them, or leave the keyspace out", ks, strings.Join(info.Views, ", "))
		}
		km := KeyspaceMeta{Create: info.Create, Replication: info.Replication, Tables: map[string]TableMeta{}}
		for t, id := range info.Tables {
			cols, err := sess.Columns(ctx, ks, t)
			if err != nil {
				return nil, err
			}
			km.Tables[t] = TableMeta{ID: id, Columns: cols}
		}
		meta.Keyspaces[ks] = km
	}

	// 2. Facts before.
	before, err := facts(ctx, sess, meta)
	if err != nil {
		return nil, err
	}

	// 3. The snapshot, on every node at once.
	logf("nodetool snapshot -t %s %s on %d nodes", opts.Tag, strings.Join(keyspaces, " "), len(c.Nodes))
	clear := func() {
		if opts.KeepSnapshot {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		_ = ForEachNode(cctx, c.Nodes, 0, func(ctx context.Context, n ClusterNode) error {
			return tools.ClearSnapshot(ctx, c.JMX(n), opts.Tag)
		})
	}
	err = ForEachNode(ctx, c.Nodes, 0, func(ctx context.Context, n ClusterNode) error {
		return tools.Snapshot(ctx, c.JMX(n), opts.Tag, keyspaces, nil)
	})
	defer clear()
	if err != nil {
		return nil, err
	}

	// 4. Facts after: the same, or the files are not what was counted.
	after, err := facts(ctx, sess, meta)
	if err != nil {
		return nil, err
	}
	for _, kt := range meta.Tables() {
		b, a := before[kt], after[kt]
		if b != a {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "table %s changed while the snapshot was taken (%d rows, digest %.12s before; %d rows, digest %.12s after)", kt, b.rows, b.sample.Digest, a.rows, a.sample.Digest),
				"stop writes to the keyspaces being packed (or let TTLs settle) and pack again")
		}
		ks, t, _ := strings.Cut(kt, ".")
		tm := meta.Keyspaces[ks].Tables[t]
		tm.Rows, tm.Sample = a.rows, a.sample
		meta.Keyspaces[ks].Tables[t] = tm
	}

	// 5. The files.
	var files []blobstore.PackFile
	formats := map[string]bool{}
	for _, n := range c.Nodes {
		for _, kt := range meta.Tables() {
			ks, t, _ := strings.Cut(kt, ".")
			dirs, err := snapshotDirs(n, ks, t, meta.Keyspaces[ks].Tables[t].ID, opts.Tag)
			if err != nil {
				return nil, err
			}
			for _, d := range dirs {
				entries, err := os.ReadDir(d)
				if err != nil {
					return nil, drivers.WithClass(drivers.Permanent, "read "+d, err)
				}
				for _, e := range entries {
					if !e.Type().IsRegular() {
						continue // .INDEX/ subdirs: secondary indexes are rebuilt on restore
					}
					if v, _, _, _, ok := SSTableName(e.Name()); ok {
						formats[v] = true
					}
					files = append(files, blobstore.PackFile{Path: filepath.Join(d, e.Name()), Name: TableDir(n.Name, ks, t) + "/" + e.Name()})
				}
			}
		}
	}
	for f := range formats {
		meta.SSTableFormats = append(meta.SSTableFormats, f)
	}
	sort.Strings(meta.SSTableFormats)
	mm, err := meta.Map()
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "encode metadata", err)
	}
	pack.Engine = "cassandra"
	pack.EngineVersion = meta.CassandraVersion
	if pack.Source == "" {
		pack.Source = meta.ClusterName
	}
	pack.Files = files
	pack.Metadata = mm
	logf("packing %d files of %d tables from %d nodes", len(files), len(meta.Tables()), len(c.Nodes))
	m, err := blobstore.Pack(ctx, pack)
	if err != nil {
		return nil, err
	}
	return &PackResult{Manifest: m, Metadata: meta, Files: len(m.Files), Bytes: m.TotalSize()}, nil
}

type tableFacts struct {
	rows   int64
	sample Sample
}

func facts(ctx context.Context, s *Session, meta *Metadata) (map[string]tableFacts, error) {
	out := map[string]tableFacts{}
	for _, kt := range meta.Tables() {
		ks, t, _ := strings.Cut(kt, ".")
		rows, sample, err := s.TableFacts(ctx, ks, t, meta.SamplePoints)
		if err != nil {
			return nil, err
		}
		out[kt] = tableFacts{rows, sample}
	}
	return out, nil
}

// snapshotDirs finds a table's snapshot TAG on node n: DATA_DIR/KS/TABLE-ID/snapshots/TAG
// in each of its data dirs; every node has at least one.
func snapshotDirs(n ClusterNode, ks, table, id, tag string) ([]string, error) {
	name := table + "-" + strings.ReplaceAll(id, "-", "")
	var out []string
	for _, dd := range n.DataDirs {
		d := filepath.Join(dd, ks, name, "snapshots", tag)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, drivers.WithClass(drivers.Permanent, "node "+n.Name, err)
		}
	}
	if len(out) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "node %s: no snapshot %s of %s.%s under its data dirs (%s); are data_dirs right, and readable from this machine?",
			n.Name, tag, ks, table, strings.Join(n.DataDirs, ", "))
	}
	return out, nil
}

// SnapshotDirs is snapshotDirs for callers outside the package (rollback reads
// the snapshot a restore took before it truncated).
func SnapshotDirs(n ClusterNode, ks, table, id, tag string) ([]string, error) {
	return snapshotDirs(n, ks, table, id, tag)
}

// ForEachNode runs fn for every node, at most parallel at once (0: all), and
// returns the errors joined, each naming its node.
func ForEachNode(ctx context.Context, nodes []ClusterNode, parallel int, fn func(context.Context, ClusterNode) error) error {
	if parallel <= 0 || parallel > len(nodes) {
		parallel = len(nodes)
	}
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(ctx, n); err != nil {
				errs[i] = drivers.WithClass(drivers.ClassOf(err), "node "+n.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
