// Package e2e holds end-to-end tests: the restore-run binary, built once per test
// run, restoring real snapshots into real servers (in-process etcd members, etcd
// processes, Debian's etcd 3.4 for old snapshots). The README's test command installs
// every server these tests need; a missing one fails the test, it never skips it.
// `go test -short` skips this package for a quick unit-test loop.
package e2e
