// Package etcdops holds the etcd operations the engine's etcd builtins call:
// inspecting and restoring snapshot files (through etcdutl), running in-process
// etcd members (through the embed package) for scratch targets and tests, and the
// client v3 calls used to validate a restored cluster.
//
// The package knows nothing of Starlark. Every error it returns carries a
// drivers.Class (see drivers.ClassOf): Transient for connection failures, timeouts
// and unavailable members, Cancelled for context cancellation, Corruption for files
// that are not etcd snapshots or fail their checksum, and Permanent for bad
// arguments and refused operations.
//
// It is pinned to the etcd 3.6 line (go.etcd.io/etcd/*/v3 v3.6.x): etcd 3.7 removes
// the Experimental* fields of embed.Config.
package etcdops
