package cassops

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// sstableFile matches an SSTable component file name: VERSION-ID-FORMAT-Component,
// e.g. nb-1-big-Data.db, oa-3gw7_0kaa_1xnpc2l1u1nnm0qyps-big-Statistics.db,
// da-2-bti-Partitions.db.
var sstableFile = regexp.MustCompile(`^([a-z]{2})-([0-9a-z_]+)-(big|bti)-(.+)$`)

// SSTableName splits an SSTable component file name into its descriptor
// (VERSION-ID-FORMAT) and component; ok is false for other files.
func SSTableName(name string) (version, id, format, component string, ok bool) {
	m := sstableFile.FindStringSubmatch(name)
	if m == nil {
		return "", "", "", "", false
	}
	return m[1], m[2], m[3], m[4], true
}

// TableFiles is one node's files of one table in a snapshot.
type TableFiles struct {
	Node     string   `json:"node"`
	Keyspace string   `json:"keyspace"`
	Table    string   `json:"table"`
	Dir      string   `json:"dir"`
	SSTables int      `json:"sstables"`
	Bytes    int64    `json:"bytes"`
	Formats  []string `json:"formats"`
}

// Layout is a downloaded Cassandra snapshot, checked.
type Layout struct {
	Root    string       `json:"root"`
	Tables  []TableFiles `json:"tables"`
	Formats []string     `json:"formats"`
	Bytes   int64        `json:"bytes"`
}

// cassandraManifest is the manifest.json nodetool snapshot writes per table.
type cassandraManifest struct {
	Files []string `json:"files"`
}

// Inspect checks a downloaded snapshot under root against its metadata, before
// anything is loaded: every node has every table's directory with Cassandra's
// manifest.json and schema.cql; every file that manifest lists is there; every
// SSTable has every component its TOC.txt names; every Data.db matches its
// Digest.crc32; the SSTable versions fit the recorded storage compatibility
// mode. Any failure is a corruption error naming the file.
func Inspect(root string, m *Metadata) (*Layout, error) {
	lay := &Layout{Root: root}
	formats := map[string]bool{}
	for _, n := range m.Nodes {
		for _, kt := range m.Tables() {
			ks, table, _ := strings.Cut(kt, ".")
			dir := filepath.Join(root, filepath.FromSlash(TableDir(n.Name, ks, table)))
			tf, err := inspectTable(dir)
			if err != nil {
				return nil, err
			}
			tf.Node, tf.Keyspace, tf.Table, tf.Dir = n.Name, ks, table, dir
			for _, f := range tf.Formats {
				formats[f] = true
			}
			lay.Bytes += tf.Bytes
			lay.Tables = append(lay.Tables, *tf)
		}
	}
	for f := range formats {
		lay.Formats = append(lay.Formats, f)
	}
	sort.Strings(lay.Formats)
	for _, f := range lay.Formats {
		if err := FormatFitsMode(f, m.StorageCompatibilityMode); err != nil {
			return nil, drivers.WithClass(drivers.Corruption, "snapshot", err)
		}
	}
	return lay, nil
}

// FormatFitsMode checks that SSTables of version v can be read by a node in
// storage compatibility mode mode: 5.0's own versions ("o*" for big, "d*" for
// BTI) are refused by a node in CASSANDRA_4 mode; 4.x's "n*" are read in every
// mode.
func FormatFitsMode(v, mode string) error {
	if mode == ModeCassandra4 && (strings.HasPrefix(v, "o") || strings.HasPrefix(v, "d")) {
		return fmt.Errorf("SSTables of version %q are Cassandra 5.0's own format, which a node in storage_compatibility_mode CASSANDRA_4 refuses", v)
	}
	return nil
}

func inspectTable(dir string) (*TableFiles, error) {
	corrupt := func(format string, args ...any) error {
		return drivers.Errorf(drivers.Corruption, "snapshot table dir %s: "+format, append([]any{dir}, args...)...)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, corrupt("missing (the snapshot lacks this node's copy of the table)")
	}
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "read "+dir, err)
	}
	have := map[string]int64{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			fi, err := e.Info()
			if err != nil {
				return nil, drivers.WithClass(drivers.Permanent, "stat "+dir, err)
			}
			have[e.Name()] = fi.Size()
		}
	}
	for _, f := range []string{"manifest.json", "schema.cql"} {
		if _, ok := have[f]; !ok {
			return nil, corrupt("no %s (every table of a nodetool snapshot has one)", f)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "read manifest.json", err)
	}
	var cm cassandraManifest
	if err := json.Unmarshal(data, &cm); err != nil {
		return nil, corrupt("manifest.json is not valid JSON: %v", err)
	}
	for _, f := range cm.Files {
		if strings.Contains(f, "/") {
			continue // secondary index SSTables (.INDEX/...): rebuilt, not restored
		}
		if _, ok := have[f]; !ok {
			return nil, corrupt("manifest.json lists %s, which the snapshot lacks", f)
		}
	}
	tf := &TableFiles{}
	formats := map[string]bool{}
	descriptors := map[string]map[string]bool{}
	for name, size := range have {
		v, id, format, comp, ok := SSTableName(name)
		if !ok {
			continue
		}
		d := v + "-" + id + "-" + format
		if descriptors[d] == nil {
			descriptors[d] = map[string]bool{}
		}
		descriptors[d][comp] = true
		formats[v] = true
		tf.Bytes += size
	}
	for d, comps := range descriptors {
		if !comps["Data.db"] {
			return nil, corrupt("SSTable %s has no Data.db", d)
		}
		if !comps["TOC.txt"] {
			return nil, corrupt("SSTable %s has no TOC.txt", d)
		}
		toc, err := os.ReadFile(filepath.Join(dir, d+"-TOC.txt"))
		if err != nil {
			return nil, drivers.WithClass(drivers.Permanent, "read TOC", err)
		}
		for _, c := range strings.Fields(string(toc)) {
			if !comps[c] {
				return nil, corrupt("SSTable %s lacks %s, which its TOC.txt lists", d, c)
			}
		}
		if comps["Digest.crc32"] {
			if err := checkDigest(dir, d); err != nil {
				return nil, err
			}
		}
		tf.SSTables++
	}
	for f := range formats {
		tf.Formats = append(tf.Formats, f)
	}
	sort.Strings(tf.Formats)
	return tf, nil
}

// checkDigest compares the CRC32 of DESCRIPTOR-Data.db with DESCRIPTOR-Digest.crc32.
func checkDigest(dir, d string) error {
	want, err := os.ReadFile(filepath.Join(dir, d+"-Digest.crc32"))
	if err != nil {
		return drivers.WithClass(drivers.Permanent, "read digest", err)
	}
	wantN, err := strconv.ParseUint(strings.TrimSpace(string(want)), 10, 32)
	if err != nil {
		return drivers.Errorf(drivers.Corruption, "%s: %s-Digest.crc32 does not hold a CRC32 (%q)", dir, d, tail(string(want), 40))
	}
	f, err := os.Open(filepath.Join(dir, d+"-Data.db"))
	if err != nil {
		return drivers.WithClass(drivers.Permanent, "read data", err)
	}
	defer f.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, f); err != nil {
		return drivers.WithClass(drivers.Permanent, "read "+f.Name(), err)
	}
	if got := h.Sum32(); uint64(got) != wantN {
		return drivers.Errorf(drivers.Corruption, "%s: %s-Data.db has CRC32 %d but its Digest.crc32 says %d: the SSTable is damaged", dir, d, got, wantN)
	}
	return nil
}

// Merge gathers the SSTables of several directories of one table into dst
// (created, mode 0755), renumbering them 1, 2, ... so that SSTables of different
// nodes with the same generation do not collide. Files are hard-linked when dst
// is on the same filesystem, else copied (mode 0644, readable by a Cassandra
// running as another user). It returns how many SSTables dst holds.
func Merge(dst string, srcs []string) (int, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, drivers.WithClass(drivers.Permanent, "stage "+dst, err)
	}
	existing, err := os.ReadDir(dst)
	if err != nil {
		return 0, drivers.WithClass(drivers.Permanent, "stage "+dst, err)
	}
	if len(existing) > 0 {
		return 0, drivers.Errorf(drivers.Permanent, "stage %s: the directory is not empty", dst)
	}
	gen := 0
	for _, src := range srcs {
		entries, err := os.ReadDir(src)
		if err != nil {
			return 0, drivers.WithClass(drivers.Permanent, "stage from "+src, err)
		}
		byDesc := map[string][]string{}
		var descs []string
		for _, e := range entries {
			v, id, format, _, ok := SSTableName(e.Name())
			if !ok || !e.Type().IsRegular() {
				continue
			}
			d := v + "-" + id + "-" + format
			if byDesc[d] == nil {
				descs = append(descs, d)
			}
			byDesc[d] = append(byDesc[d], e.Name())
		}
		sort.Strings(descs)
		for _, d := range descs {
			gen++
			for _, name := range byDesc[d] {
				v, _, format, comp, _ := SSTableName(name)
				to := filepath.Join(dst, fmt.Sprintf("%s-%d-%s-%s", v, gen, format, comp))
				if err := linkOrCopy(filepath.Join(src, name), to); err != nil {
					return 0, err
				}
			}
		}
	}
	return gen, nil
}

func linkOrCopy(from, to string) error {
	if err := os.Link(from, to); err == nil {
		// Readable by a Cassandra that runs as another user.
		return drivers.WithClass(drivers.Permanent, "stage "+to, os.Chmod(to, 0o644))
	}
	in, err := os.Open(from)
	if err != nil {
		return drivers.WithClass(drivers.Permanent, "stage "+from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return drivers.WithClass(drivers.Permanent, "stage "+to, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return drivers.WithClass(drivers.Permanent, "stage "+to, err)
	}
	return drivers.WithClass(drivers.Permanent, "stage "+to, out.Close())
}
