package cassops

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/restore-run/restore-run/drivers"
)

// Metadata is the engine metadata of a Cassandra snapshot (the manifest's
// "metadata" object; docs/manifest.md lists its keys).
type Metadata struct {
	// ClusterName is the source cluster's name.
	ClusterName string `json:"cluster_name"`
	// CassandraVersion is the source nodes' release_version.
	CassandraVersion string `json:"cassandra_version"`
	// StorageCompatibilityMode is the source's SSTable format mode (CASSANDRA_4,
	// UPGRADING, NONE); 4.x clusters have none and record CASSANDRA_4.
	StorageCompatibilityMode string `json:"storage_compatibility_mode"`
	// SSTableFormats are the SSTable versions found in the files (nb, oa, da).
	SSTableFormats []string `json:"sstable_formats"`
	// Partitioner is the source's partitioner class.
	Partitioner string `json:"partitioner"`
	// SnapshotTag is the `nodetool snapshot -t` tag the files were taken with.
	SnapshotTag string `json:"snapshot_tag"`
	// SamplePoints is how many tokens each table's partition sample probes.
	SamplePoints int `json:"sample_points"`
	// Nodes are the source's nodes, in file order (nodes/NAME/...).
	Nodes []NodeMeta `json:"nodes"`
	// Keyspaces holds each snapshotted keyspace, by name.
	Keyspaces map[string]KeyspaceMeta `json:"keyspaces"`
}

// NodeMeta is one source node.
type NodeMeta struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	HostID  string   `json:"host_id"`
	DC      string   `json:"dc"`
	Rack    string   `json:"rack"`
	Tokens  []string `json:"tokens"` // decimal strings: JSON numbers would lose precision
}

// KeyspaceMeta is one keyspace: its CREATE KEYSPACE statement (schema.cql has
// none), its replication and its tables.
type KeyspaceMeta struct {
	Create      string               `json:"create"`
	Replication map[string]string    `json:"replication"`
	Tables      map[string]TableMeta `json:"tables"`
}

// TableMeta is one table: its id, columns, live row count and partition sample,
// as read from the source cluster around the snapshot.
type TableMeta struct {
	ID      string   `json:"id"`
	Columns []Column `json:"columns"`
	Rows    int64    `json:"rows"`
	Sample  Sample   `json:"sample"`
}

// Map returns m as the generic map a manifest holds.
func (m *Metadata) Map() (map[string]any, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	err = json.Unmarshal(data, &out)
	return out, err
}

// MetadataFromMap reads a manifest's metadata and checks that it describes a
// Cassandra snapshot restore-run can restore. A problem is a corruption error:
// the manifest does not say what the files are.
func MetadataFromMap(raw map[string]any) (*Metadata, error) {
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, drivers.WithClass(drivers.Corruption, "cassandra snapshot metadata", err)
	}
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, drivers.WithClass(drivers.Corruption, "cassandra snapshot metadata", err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check verifies that the metadata names what a restore needs.
func (m *Metadata) Check() error {
	bad := func(format string, args ...any) error {
		return drivers.Errorf(drivers.Corruption, "cassandra snapshot metadata: "+format+" (was the snapshot made by `restore-run snapshot pack --engine cassandra --from-cluster`?)", args...)
	}
	switch {
	case len(m.Nodes) == 0:
		return bad("no nodes")
	case len(m.Keyspaces) == 0:
		return bad("no keyspaces")
	case m.Partitioner == "":
		return bad("no partitioner")
	case m.StorageCompatibilityMode == "":
		return bad("no storage_compatibility_mode")
	}
	names := map[string]bool{}
	for i, n := range m.Nodes {
		if n.Name == "" || names[n.Name] {
			return bad("nodes[%d] has an empty or repeated name", i)
		}
		names[n.Name] = true
		if len(n.Tokens) == 0 {
			return bad("node %s has no tokens", n.Name)
		}
	}
	for ks, k := range m.Keyspaces {
		if k.Create == "" {
			return bad("keyspace %s has no CREATE KEYSPACE statement", ks)
		}
		for t, tm := range k.Tables {
			if len(tm.Columns) == 0 {
				return bad("table %s.%s has no columns", ks, t)
			}
		}
	}
	return nil
}

// Tables returns every "keyspace.table" of the metadata, sorted.
func (m *Metadata) Tables() []string {
	var out []string
	for ks, k := range m.Keyspaces {
		for t := range k.Tables {
			out = append(out, ks+"."+t)
		}
	}
	sort.Strings(out)
	return out
}

// KeyspaceNames returns the keyspaces, sorted.
func (m *Metadata) KeyspaceNames() []string {
	var out []string
	for ks := range m.Keyspaces {
		out = append(out, ks)
	}
	sort.Strings(out)
	return out
}

// TableDir is the snapshot file prefix of one node's table: nodes/NODE/KS/TABLE.
func TableDir(node, keyspace, table string) string {
	return fmt.Sprintf("nodes/%s/%s/%s", node, keyspace, table)
}
