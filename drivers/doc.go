// Package drivers is the restore contract: the RestoreDriver interface, the values
// its phases exchange (snapshots and their manifest, targets, results, validation
// checks), the error taxonomy every builtin attaches to its errors, and a registry of
// drivers keyed by name and semantic version.
//
// It is pure Go and knows nothing of Starlark: the engine package adapts .star
// scripts to RestoreDriver, and a driver written in Go would register the same way.
package drivers
