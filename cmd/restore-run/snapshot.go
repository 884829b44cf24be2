package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/etcdops"
)

// defaultPartSize is the part size `snapshot pack` records digests for.
const defaultPartSize = 8 << 20

func newSnapshotCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "List, inspect, verify and pack snapshots (local, s3://, gs://, azblob://)",
		Long: `Work with snapshots in a store: list the snapshots under a prefix, show a manifest,
verify every byte against it, or pack existing backup files into a new snapshot.

REF is a local directory or file, a file:// URL, or an s3://BUCKET/PREFIX,
gs://BUCKET/PREFIX or azblob://CONTAINER/PREFIX URL. A REF ending in /latest names
the newest complete snapshot under its parent. Stores are configured with
--store-config and the environment (docs/stores.md).

Exit codes: 0 success; 1 failed (not found, refused, corrupt); 2 usage or
configuration error.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSnapshotLsCmd(g), newSnapshotInspectCmd(g), newSnapshotVerifyCmd(g), newSnapshotPackCmd(g))
	return cmd
}

// redactErr masks the run's secrets in err's text, keeping its class and whether it
// is a usage error.
func (g *globalFlags) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := g.redactor.String(err.Error())
	if msg == err.Error() {
		return err
	}
	red := &drivers.Error{Class: drivers.ClassOf(err), Err: errors.New(msg)}
	var ue *engine.UsageError
	if errors.As(err, &ue) {
		return engine.Usage(red)
	}
	return red
}

// openOptions returns the blob options of a snapshot command.
func (g *globalFlags) openOptions(sf *storeFlags) (blobstore.OpenOptions, error) {
	stores, err := sf.config()
	if err != nil {
		return blobstore.OpenOptions{}, err
	}
	return blobstore.OpenOptions{Stores: stores, Redactor: g.redactor}, nil
}

func newSnapshotLsCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls REF",
		Short: "List the snapshots under a prefix, newest first: name, created, engine, size, files, complete or not",
		Long: `List the snapshots directly under a prefix, newest first by their manifest's
created time. A sub-prefix without manifest.json (an upload that did not finish) or
with a damaged one is listed as incomplete, after the complete ones. A prefix that
is itself a snapshot lists as that one snapshot.`,
		Example: `  restore-run snapshot ls s3://backups/etcd --store-config ~/.config/restore-run/config.yaml
  restore-run snapshot ls /srv/backups/etcd --json`,
		Args: cobra.ExactArgs(1),
	}
	sf := addStoreFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts, err := g.openOptions(sf)
		if err != nil {
			return err
		}
		infos, err := blobstore.List(cmd.Context(), args[0], opts)
		if err != nil {
			return g.redactErr(err)
		}
		out := cmd.OutOrStdout()
		if asJSON {
			type row struct {
				Name          string    `json:"name"`
				Ref           string    `json:"ref"`
				Complete      bool      `json:"complete"`
				Problem       string    `json:"problem,omitempty"`
				Created       time.Time `json:"created,omitzero"`
				Engine        string    `json:"engine,omitempty"`
				EngineVersion string    `json:"engine_version,omitempty"`
				Size          int64     `json:"size"`
				Files         int       `json:"files"`
			}
			rows := []row{}
			for _, i := range infos {
				r := row{Name: i.Name, Ref: i.Ref, Complete: i.Complete, Problem: i.Problem, Size: i.Size()}
				if m := i.Manifest; m != nil {
					r.Created, r.Engine, r.EngineVersion, r.Files = m.Created, m.Engine, m.EngineVersion, len(m.Files)
				}
				rows = append(rows, r)
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(rows)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tENGINE\tVERSION\tSIZE\tFILES\tSTATUS")
		for _, i := range infos {
			if m := i.Manifest; m != nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\tcomplete\n", i.Name, m.Created.UTC().Format(time.RFC3339), m.Engine, dash(m.EngineVersion), humanBytes(i.Size()), len(m.Files))
			} else {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tincomplete: %s\n", i.Name, g.redactor.String(i.Problem))
			}
		}
		return tw.Flush()
	}
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newSnapshotInspectCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show a snapshot's manifest: engine, version, created, source, files with size, sha256, compression and parts, metadata",
		Example: `  restore-run snapshot inspect s3://backups/etcd/latest
  restore-run snapshot inspect /srv/backups/etcd/2026-11-25 --json`,
		Args: cobra.ExactArgs(1),
	}
	sf := addStoreFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON (for a native file, the one restore-run synthesizes)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts, err := g.openOptions(sf)
		if err != nil {
			return err
		}
		src, err := blobstore.OpenWith(cmd.Context(), args[0], opts)
		if err != nil {
			return g.redactErr(err)
		}
		defer src.Close()
		m := src.Manifest()
		out := cmd.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(m)
		}
		fmt.Fprintf(out, "snapshot  %s\n", src.Ref())
		if src.Bare() {
			fmt.Fprintf(out, "native file %s, %d bytes (%s): no manifest, so no engine, metadata or digest; choose the engine with --driver\n",
				m.Files[0].Name, m.Files[0].Size, humanBytes(m.Files[0].Size))
			return nil
		}
		var total int64
		for _, f := range m.Files {
			total += f.Size
		}
		fmt.Fprintf(out, "format    %s\n", m.Format)
		fmt.Fprintf(out, "engine    %s %s\n", m.Engine, m.EngineVersion)
		fmt.Fprintf(out, "created   %s\n", m.Created.UTC().Format(time.RFC3339))
		fmt.Fprintf(out, "source    %s\n", dash(m.Source))
		fmt.Fprintf(out, "files     %d, %s stored (%d bytes)\n", len(m.Files), humanBytes(total), total)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tSIZE\tSHA256\tCOMPRESSION\tPARTS")
		for _, f := range m.Files {
			comp := f.Compression
			if comp == "" {
				comp = "none"
			}
			parts := "-"
			if len(f.Parts) > 0 {
				parts = fmt.Sprintf("%d x %s", len(f.Parts), humanBytes(f.PartSize))
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", f.Name, f.Size, f.SHA256, comp, parts)
		}
		tw.Flush()
		if len(m.Metadata) > 0 {
			fmt.Fprintln(out, "metadata")
			keys := make([]string, 0, len(m.Metadata))
			for k := range m.Metadata {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				v, _ := json.Marshal(m.Metadata[k])
				fmt.Fprintf(out, "  %s: %s\n", k, v)
			}
		}
		return nil
	}
	return cmd
}

func newSnapshotVerifyCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify REF",
		Short: "Read every byte of every file and check every sha256 and part digest; writes nothing",
		Long: `Read every file of the snapshot from the store and check its size, its sha256 and
the digest of each part against the manifest. Nothing is written. Every file is
checked; each bad one is named (with the part and byte range when the manifest has
parts) and the command exits 1. A native file without manifest has no digest: only
its size can be checked.`,
		Args: cobra.ExactArgs(1),
	}
	sf := addStoreFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		opts, err := g.openOptions(sf)
		if err != nil {
			return err
		}
		start := time.Now()
		src, err := blobstore.OpenWith(ctx, args[0], opts)
		if err != nil {
			return g.redactErr(err)
		}
		defer src.Close()
		out := cmd.OutOrStdout()
		m := src.Manifest()
		var bad []string
		var failures []error
		var total int64
		buf := make([]byte, 1<<20)
		for _, f := range m.Files {
			n, sum, err := verifyFile(cmd, src, f.Name, buf)
			total += n
			if err != nil {
				if drivers.ClassOf(err) == drivers.Cancelled {
					return err
				}
				fmt.Fprintf(out, "FAIL %s: %s\n", f.Name, g.redactor.String(err.Error()))
				bad = append(bad, f.Name)
				failures = append(failures, err)
				continue
			}
			note := "sha256 " + sum
			if src.Bare() {
				note = "size only: a native file has no recorded digest"
			} else if len(f.Parts) > 0 {
				note += fmt.Sprintf(", %d parts", len(f.Parts))
			}
			fmt.Fprintf(out, "ok   %s  %s  %s\n", f.Name, humanBytes(n), note)
		}
		if len(bad) > 0 {
			class := drivers.Corruption
			for _, e := range failures {
				if c := drivers.ClassOf(e); c != drivers.Corruption {
					class = c
				}
			}
			return drivers.WithHint(drivers.Errorf(class, "snapshot %s: %d of %d files failed verification: %s", src.Ref(), len(bad), len(m.Files), strings.Join(bad, ", ")),
				"do not restore from it: use another snapshot, or re-create this one")
		}
		fmt.Fprintf(out, "verified %s: %d files, %s, in %.1fs\n", src.Ref(), len(m.Files), humanBytes(total), time.Since(start).Seconds())
		return nil
	}
	return cmd
}

// verifyFile reads one file through the verifying reader.
func verifyFile(cmd *cobra.Command, src *blobstore.Source, name string, buf []byte) (int64, string, error) {
	r, err := src.OpenFile(cmd.Context(), name)
	if err != nil {
		return 0, "", err
	}
	defer r.Close()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
	if err != nil {
		return n, "", err
	}
	sum := ""
	if s, ok := r.(interface{ SHA256() string }); ok {
		sum = s.SHA256()
	}
	return n, sum, nil
}

type packFlags struct {
	engine, engineVersion, source, to string
	from                              []string
	metadata                          []string
	metadataJSON                      string
	partSize                          string
	compress                          string
	created                           string
	overwrite                         bool
	// cluster holds --from-cluster and --keyspaces (snapshot_cassandra.go).
	cluster clusterPackFlags
}

func newSnapshotPackCmd(g *globalFlags) *cobra.Command {
	f := &packFlags{}
	cmd := &cobra.Command{
		Use:   "pack --engine E --from DIR_OR_FILE... --to REF",
		Short: "Write existing backup files (an etcd snapshot, a dump, an xbstream) as a snapshot with a manifest",
		Long: `Upload the native files of an existing backup to REF and write its manifest.json
last, so that an interrupted pack leaves a visibly incomplete snapshot. Each --from
is a file (named by its base name) or a directory (every regular file below it,
named by its path relative to the directory). Sizes, sha256 and part digests are
computed while streaming, of the bytes as stored (after --compress).

For --engine etcd with a single file and no --metadata, the file is read with
etcdutl's status: its revision and key count become the metadata a restore is
validated against, and a file that is not an etcd snapshot is refused.

A destination that already holds a manifest is refused unless --overwrite.`,
		Example: `  restore-run snapshot pack --engine etcd --from /backups/etcd.db --to s3://backups/etcd/2026-11-25 --source etcd-prod
  restore-run snapshot pack --engine mysql --from /backups/dump-2026-11-25/ --to /srv/snapshots/mysql/2026-11-25 --compress zstd --metadata gtid=0-1-42
  restore-run snapshot pack --engine cassandra --from-cluster prod-cassandra.yaml --to /srv/snapshots/cassandra/2026-11-25`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.engine, "engine", "", "database engine of the files: etcd, mysql, cassandra (required)")
	fl.StringArrayVar(&f.from, "from", nil, "a file or directory to pack (repeatable; required)")
	fl.StringVar(&f.to, "to", "", "snapshot reference to write: directory, file://, s3://, gs:// or azblob:// prefix (required)")
	fl.StringVar(&f.engineVersion, "engine-version", "", "version of the server or tool that made the files")
	fl.StringVar(&f.source, "source", "", "where the backup was taken (a host or cluster name; never a credential)")
	fl.StringArrayVar(&f.metadata, "metadata", nil, "engine metadata KEY=VALUE (repeatable; VALUE is JSON when it parses, else a string)")
	fl.StringVar(&f.metadataJSON, "metadata-json", "", "file holding the engine metadata as a JSON object (instead of --metadata)")
	fl.StringVar(&f.partSize, "part-size", "8MiB", "record a sha256 for every part of this size (e.g. 8MiB, 64MiB; 0 for none)")
	fl.StringVar(&f.compress, "compress", "none", "compress each file as stored: zstd, gzip or none")
	fl.StringVar(&f.created, "created", "", "the snapshot's creation time, RFC 3339 (default now): the time the backup was taken")
	fl.BoolVar(&f.overwrite, "overwrite", false, "write over a destination that already holds a snapshot")
	f.cluster.addFlags(fl)
	sf := addStoreFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		var missing []string
		for _, r := range []struct {
			name string
			set  bool
		}{{"--engine", f.engine != ""}, {"--from", len(f.from) > 0 || f.cluster.from != ""}, {"--to", f.to != ""}} {
			if !r.set {
				missing = append(missing, r.name)
			}
		}
		if len(missing) > 0 {
			return &flagError{errorf("required flag(s) %s not set (see restore-run snapshot pack --help)", strings.Join(missing, ", "))}
		}
		partSize, err := parseSize(f.partSize)
		if err != nil {
			return &flagError{errorf("--part-size %q: %v", f.partSize, err)}
		}
		switch f.compress {
		case "none", "zstd", "gzip":
		default:
			return &flagError{errorf("--compress %q: want zstd, gzip or none", f.compress)}
		}
		var created time.Time
		if f.created != "" {
			if created, err = time.Parse(time.RFC3339, f.created); err != nil {
				return &flagError{errorf("--created %q: want RFC 3339, e.g. 2026-11-25T17:04:05Z", f.created)}
			}
		}
		meta, err := f.parseMetadata()
		if err != nil {
			return err
		}
		if f.cluster.from != "" {
			return packCluster(cmd, g, f, sf, partSize, created)
		}
		files, err := expandFrom(f.from)
		if err != nil {
			return err
		}
		opts, err := g.openOptions(sf)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		engineVersion := f.engineVersion
		if f.engine == "etcd" && meta == nil && len(files) == 1 {
			st, err := etcdops.Status(ctx, files[0].Path)
			if err != nil {
				return drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s does not read as an etcd snapshot: %v", files[0].Path, err),
					"pack an etcd snapshot (etcdctl snapshot save), or give --metadata to pack the file as it is")
			}
			meta = map[string]any{"revision": st.Revision, "total_key": st.TotalKey}
			if engineVersion == "" {
				engineVersion = st.Version
			}
			fmt.Fprintf(out, "etcd snapshot %s: revision %d, %d keys, storage version %s\n", files[0].Path, st.Revision, st.TotalKey, dash(st.Version))
		}
		start := time.Now()
		m, err := blobstore.Pack(ctx, blobstore.PackOptions{
			Engine: f.engine, EngineVersion: engineVersion, Source: f.source, Files: files, Dest: f.to,
			Metadata: meta, PartSize: partSize, Overwrite: f.overwrite, Created: created,
			Compression: f.compress, Stores: opts.Stores, Redactor: opts.Redactor,
		})
		if err != nil {
			return g.redactErr(err)
		}
		var total int64
		for _, fl := range m.Files {
			total += fl.Size
		}
		fmt.Fprintf(out, "packed %d files (%s stored) to %s in %.1fs; manifest.json written last, created %s\n",
			len(m.Files), humanBytes(total), g.redactor.String(f.to), time.Since(start).Seconds(), m.Created.Format(time.RFC3339))
		return nil
	}
	return cmd
}

// parseMetadata reads --metadata or --metadata-json; nil when neither is given.
func (f *packFlags) parseMetadata() (map[string]any, error) {
	if f.metadataJSON != "" && len(f.metadata) > 0 {
		return nil, &flagError{errorf("give --metadata or --metadata-json, not both")}
	}
	if f.metadataJSON != "" {
		data, err := os.ReadFile(f.metadataJSON)
		if err != nil {
			return nil, &flagError{errorf("--metadata-json: %v", err)}
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil || m == nil {
			return nil, &flagError{errorf("--metadata-json %s: not a JSON object", f.metadataJSON)}
		}
		return m, nil
	}
	if len(f.metadata) == 0 {
		return nil, nil
	}
	m := map[string]any{}
	for _, kv := range f.metadata {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &flagError{errorf("--metadata %q: want KEY=VALUE", kv)}
		}
		if _, dup := m[k]; dup {
			return nil, &flagError{errorf("--metadata %s given twice", k)}
		}
		var j any
		if err := json.Unmarshal([]byte(v), &j); err == nil {
			m[k] = j
		} else {
			m[k] = v
		}
	}
	return m, nil
}

// expandFrom turns --from files and directories into the files to pack.
func expandFrom(from []string) ([]blobstore.PackFile, error) {
	var out []blobstore.PackFile
	for _, p := range from {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, &flagError{errorf("--from %s: %v", p, err)}
		}
		if !fi.IsDir() {
			out = append(out, blobstore.PackFile{Path: p, Name: filepath.Base(p)})
			continue
		}
		n := len(out)
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			fi, err := os.Stat(path) // a link to a regular file counts
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(p, path)
			if err != nil {
				return err
			}
			out = append(out, blobstore.PackFile{Path: path, Name: filepath.ToSlash(rel)})
			return nil
		})
		if err != nil {
			return nil, drivers.WithClass(drivers.Permanent, "--from "+p, err)
		}
		if len(out) == n {
			return nil, &flagError{errorf("--from %s: the directory holds no regular file", p)}
		}
	}
	return out, nil
}

// parseSize reads a byte count: 1048576, 64KiB, 8MiB, 1GiB (K, M, G, KB, MB, GB
// count in powers of 1024 too).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.n
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("want a size such as 8MiB (0 for none)")
	}
	return n * mult, nil
}
