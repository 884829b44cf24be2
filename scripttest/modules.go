// Package scripttest runs the Starlark tests of driver scripts (`restore-run
// test`): *_test.star files whose top-level test_* functions load a driver, run
// its phases with fake builtins that record calls and return scripted answers,
// and check the outcome with the assert module.
//
// A test file sees everything a driver script sees, plus two modules:
//
//	assert   eq, ne, true, false, contains, fails
//	testing  driver, run, snapshot, target, error, sequence
//
// Builtins that only touch the run's files (fs, blob, log, time.now, fail) run for
// real inside a temporary work dir; time.sleep returns at once; every other
// builtin (etcd, service, sql, ...) must be faked, and a call of one that is not
// fails the test naming it.
package scripttest

import (
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// Modules documents the assert and testing modules for the generated reference
// and for `restore-run check` of test files. Their Impl is nil: the functions
// themselves are built per test file.
func Modules() []builtins.Module { return []builtins.Module{assertDoc, testingDoc} }

var assertDoc = builtins.Module{
	Name: "assert",
	Doc: "Checks in test functions. A failed check stops the test and points at its " +
		"file:line with the backtrace.",
	Funcs: []builtins.Func{
		{Name: "eq", Params: `got, want, msg=""`, Returns: "None",
			Doc: "Fails unless got == want: `assert.eq(res.error_class, \"validation\")` prints `expected \"validation\", got \"permanent\"`."},
		{Name: "ne", Params: `got, unwanted, msg=""`, Returns: "None", Doc: "Fails if got == unwanted."},
		{Name: "true", Params: `cond, msg=""`, Returns: "None", Doc: "Fails unless cond is true (non-empty, non-zero, not None)."},
		{Name: "false", Params: `cond, msg=""`, Returns: "None", Doc: "Fails unless cond is false."},
		{Name: "contains", Params: `container, item, msg=""`, Returns: "None",
			Doc: "Fails unless `item in container`: an element of a list, a key of a dict, a substring of a string."},
		{Name: "fails", Params: `fn, pattern=""`, Returns: "string (the error message)",
			Doc: "Calls fn() and fails unless it fails with an error whose message matches the regular expression pattern. " +
				"Use it for calls that must be refused: `assert.fails(lambda: testing.run(d, params = {\"nope\": 1}), \"unknown param\")`."},
	},
}

var testingDoc = builtins.Module{
	Name: "testing",
	Doc: "Loads a driver and runs it with fake builtins. A run's work dir and target dirs are " +
		"temporary; the builtins that touch only those (fs, blob, log, time.now, fail) run for real, " +
		"time.sleep returns at once, and every other builtin must be given a fake in fakes= or the " +
		"test fails naming it. Paths in the recorded calls and in res.files read `$WORKDIR/...` and " +
		"`$TARGET/...`, and the run id reads `RUN`.",
	Funcs: []builtins.Func{
		{Name: "driver", Params: "spec", Returns: "driver",
			Doc: "The driver to test, found like --driver: `\"etcd\"`, `\"etcd@1\"`, `\"etcd@=1.0.0\"`, from the embedded " +
				"scripts, the script directories, --scripts and the test file's own directory (which wins). " +
				"A spec ending in .star loads that file, relative to the test file. A script that does not load fails the test with its error."},
		{Name: "snapshot", Params: `files=["snapshot.db"], metadata={}, engine=None, engine_version="", bare=False`,
			Returns: "snapshot spec",
			Doc: "A snapshot to restore, made in a temp dir when the run starts. files lists names, or dicts " +
				"{\"name\": ..., \"content\": ..., \"compression\": ...}; the content is a placeholder unless given " +
				"(fake etcd.snapshot_status and the like never read it). engine defaults to the driver's. " +
				"bare=True makes a single native file without a manifest."},
		{Name: "target", Params: `spec, files={}`, Returns: "target spec",
			Doc: "A target: a scratch URL (`\"scratch://etcd?members=3\"`) or the content of a target file as a dict " +
				"(engine defaults to the driver's). In a dict, relative paths in fields named *_dir or *dir are made " +
				"absolute under the run's temporary target dir ($TARGET), so `\"data_dir\": \"m1.etcd\"` is safe. files " +
				"creates files under $TARGET before the run: `{\"m1.etcd/OLD\": \"old data\"}`."},
		{Name: "run", Params: `driver, snapshot=None, target=None, params={}, fakes={}, mode="restore", phase=None, state={}`,
			Returns: "struct(ok, result, error, error_class, backtrace, phases, checks, failed_checks, calls, calls_to, rolled_back, state, details, files, run_id)",
			Doc: "Runs the driver the way `restore-run restore` does (mode=\"restore\"), or \"validate\" or \"plan\", " +
				"or only one phase (phase=\"validate\", with ctx.state = state). snapshot defaults to testing.snapshot(), " +
				"target to scratch://ENGINE. params are given as values (`{\"bump_revision\": 1000}`) and parsed like --param. " +
				"fakes maps \"module.function\" to its answer: a value returned as is; testing.error(...) to fail; " +
				"testing.sequence(...) for one answer per call; or a function, called with the builtin's arguments " +
				"that it names as parameters (`def status(endpoint): ...`). In plan mode WRITE builtins are planned, not faked.\n\n" +
				"The result: ok (the run succeeded); result (success, failed, planned, cancelled); error and error_class " +
				"(\"\" on success); phases like [\"download:ok\", \"execute:failed\", \"rollback:ok\"]; checks " +
				"(struct(name, ok, detail, expected, actual)) and failed_checks (their names); calls, every builtin call in order " +
				"as struct(builtin, phase, args, text, pos, error, error_class) with args a struct of every parameter " +
				"by name and text like `service.stop({\"start\": [...]})`; calls_to(\"fs.move\", ...) filters them; rolled_back; " +
				"state (ctx.state at the end); details (what execute returned); files ({path: content} under $TARGET). " +
				"A run that fails with class script (a bug in the script, a wrong builtin argument, an unfaked builtin) " +
				"fails the test at once, with the script's backtrace.",
			Errors: []drivers.Class{drivers.Script}},
		{Name: "error", Params: `cls, msg`, Returns: "fake error",
			Doc: "A fake answer that makes the builtin fail with an error of class cls (transient, throttled, permanent, " +
				"corruption, validation, cancelled) and message msg."},
		{Name: "sequence", Params: `*answers`, Returns: "fake answer",
			Doc: "Answers in turn, one per call, the last one repeating: " +
				"`testing.sequence(None, testing.error(\"permanent\", \"unit failed\"))` fails the second call."},
	},
}
