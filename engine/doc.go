// Package engine hosts driver scripts and runs restores.
//
// Discovery finds .star driver scripts in the embedded scripts and the script
// directories on disk (later sources shadow earlier ones with the same name and
// version); loading runs a script's top level once, sandboxed, to read its driver()
// declaration; a ScriptDriver adapts a loaded script to drivers.RestoreDriver, running
// each phase on its own Starlark thread with a step limit, cancellation from the
// context and backtraces in errors. The Runner drives the phases of one restore,
// with retries, rollback, plan mode, scratch teardown and a JSON run report.
package engine
