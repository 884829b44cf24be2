// Package cassops holds the Cassandra operations the engine's cql and cassandra
// builtins call, and the snapshot packer behind `snapshot pack --engine cassandra
// --from-cluster`:
//
//   - Home: the folder of Cassandra 5.0 jars (cassandra-all and its runtime
//     dependencies) the launcher and the tools run from, on the machine's JDK 17;
//   - Node: a Cassandra node started from those jars (CassandraDaemon), with its
//     own cassandra.yaml, stopped with SIGTERM and killed on timeout;
//   - Nodetool and Loader: nodetool (org.apache.cassandra.tools.NodeTool, over the
//     node's JMX port) and sstableloader (org.apache.cassandra.tools.BulkLoader);
//   - Session: CQL through github.com/gocql/gocql, with consistency levels, paging,
//     schema agreement, row counts and sampled-partition digests;
//   - Layout: a restore-run Cassandra snapshot on disk (per node, per table:
//     SSTables, Cassandra's manifest.json and schema.cql), checked before use;
//   - Pack: nodetool snapshot on every node of a live cluster, then blobstore.Pack.
//
// The package knows nothing of Starlark. Every error it returns carries a
// drivers.Class: Transient for unavailable nodes, timeouts and refused
// connections, Cancelled for context cancellation, Corruption for snapshot files
// that fail their own checks, Permanent for refused operations and bad input.
package cassops
