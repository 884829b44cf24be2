package engine

import (
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// This file describes, for the generated reference (`restore-run docs builtins`)
// and for `restore-run check`, the names the engine itself gives every script:
// driver, param, check, struct and json, and the ctx, snapshot and target values a
// phase receives. The functions are implemented in declare.go and by go.starlark.net;
// these descriptions carry no implementation and must match those signatures (the
// engine tests call each one with its declared parameters).

// EngineFuncs documents the global functions the engine predeclares besides the
// builtins' own (fail): their Impl is nil.
var EngineFuncs = []builtins.Func{
	{
		Name:    "driver",
		Params:  `name, version, api, params={}, engine="", doc="", retry={}, timeouts={}`,
		Returns: "None",
		Doc: "Declares the script's driver; called exactly once, at the top level. " +
			"name is the lowercase name used with --driver; version a semantic version like \"1.0.1\" " +
			"(several versions coexist and --driver NAME@CONSTRAINT picks one); api the engine API the " +
			"script is written for (this restore-run runs api 1). params maps each param name to its " +
			"default, or to param(default, doc); the default's type is the param's type. engine names " +
			"the snapshots and targets the driver accepts (default: name). doc defaults to the script's docstring. " +
			"retry overrides the config file's retry policy: per phase a number of attempts or " +
			"{\"attempts\": N, \"base_delay\": S, \"max_delay\": S, \"deadline\": S} (seconds, or strings like \"10m\"), " +
			"and \"calls\" for idempotent builtin calls. timeouts sets deadlines: \"run\" and per phase, e.g. " +
			"{\"run\": \"6h\", \"execute\": \"2h\"}. The command line (--timeout, --phase-timeout) still wins (docs/reliability.md).",
		Errors: []drivers.Class{drivers.Script},
	},
	{
		Name:    "param",
		Params:  `default, doc=""`,
		Returns: "a param declaration, for driver(params={...})",
		Doc: "A driver parameter with its default and the text `restore-run drivers show` prints. " +
			"The default's type (bool, int, float, string or None, list, dict) decides how " +
			"`--param KEY=VALUE` is parsed.",
		Errors: []drivers.Class{drivers.Script},
	},
	{
		Name:    "check",
		Params:  `name, ok, detail="", expected=None, actual=None`,
		Returns: "struct(name, ok, detail, expected, actual)",
		Doc: "One validation check, for the list validate() returns. The run fails with class validation " +
			"when any check is not ok. expected and actual are shown in the summary and the report " +
			"(strings as they are, other values in Starlark syntax).",
		Errors: []drivers.Class{drivers.Script},
	},
	{
		Name:    "struct",
		Params:  `**fields`,
		Returns: "struct",
		Doc:     "An immutable record whose fields read as s.name, e.g. struct(name = \"m1\", port = 2379).",
	},
}

// JSONModule documents the json module of go.starlark.net that scripts see as json.
var JSONModule = builtins.Module{
	Name: "json",
	Doc:  "JSON encoding and decoding (go.starlark.net's json module).",
	Funcs: []builtins.Func{
		{Name: "encode", Params: "x", Returns: "string",
			Doc: "Encodes None, bools, numbers, strings, lists, tuples, dicts with string keys and structs as compact JSON."},
		{Name: "decode", Params: "x, default=None", Returns: "value",
			Doc: "Decodes a JSON string: objects become dicts, arrays lists. With default, invalid JSON returns default instead of failing."},
		{Name: "encode_indent", Params: `x, *, prefix="", indent="\t"`, Returns: "string",
			Doc: "Like encode, indented for people to read."},
		{Name: "indent", Params: `str, *, prefix="", indent="\t"`, Returns: "string",
			Doc: "Re-indents a JSON string."},
	},
}

// ValueDoc documents a value the engine passes to phase functions.
type ValueDoc struct {
	Name   string
	Doc    string
	Fields []FieldDoc
}

// FieldDoc is one field of a ValueDoc.
type FieldDoc struct {
	Name, Type, Doc string
}

// PhaseValues documents ctx, snapshot and target (see makeCtx, SnapshotValue and
// TargetValue).
var PhaseValues = []ValueDoc{
	{
		Name: "ctx",
		Doc:  "The run, as the phase sees it. A new ctx is made for every phase; only ctx.state carries values from one phase to the next.",
		Fields: []FieldDoc{
			{"run_id", "string", "Unique per run, e.g. 20261125T172455Z-1a2b3c; use it to name staging dirs."},
			{"phase", "string", "The current phase: download, prepare, execute, validate, commit or rollback."},
			{"work_dir", "string", "The run's private directory; relative paths in fs.* resolve here."},
			{"attempt", "int", "1, then 2, ... when the engine retries the phase after a transient or throttled error."},
			{"plan", "bool", "True in `restore-run plan`: WRITE builtins are recorded, not run."},
			{"params", "struct", "The driver's params, resolved from defaults and --param: ctx.params.bump_revision."},
			{"state", "dict", "Kept from one phase to the next (rollback reads what execute recorded). Holds only None, bool, int, float, string, list and dict. With a kept --workdir it is saved in the run state at each phase end and each checkpoint."},
			{"checkpoint(name)", "function", "Records that the run reached name (and saves ctx.state with it) in WORKDIR/.restore-run/run.json, fsync'd, so that `restore-run resume` can re-enter the phase after it. Use names unique in the run, e.g. \"etcd:staged\". In plan mode it records nothing on disk."},
			{"reached(name)", "function", "Whether ctx.checkpoint(name) was recorded in this run: by an earlier attempt, or before the interruption of a resumed run."},
			{"checkpoints", "list of string", "The checkpoint names recorded so far, in order."},
			{"resumed", "bool", "True when `restore-run resume` continues this run after an interruption: the phase may find its own partial work (re-enter it by what is on disk and by ctx.reached)."},
		},
	},
	{
		Name: "snapshot",
		Doc:  "The snapshot being restored, from its manifest (docs/manifest.md). A bare native file has one file entry and no digest, engine or metadata.",
		Fields: []FieldDoc{
			{"ref", "string", "The snapshot reference as given, credentials removed."},
			{"bare", "bool", "True for a single native file without a manifest."},
			{"engine", "string", "The engine the manifest names (\"\" for a bare file)."},
			{"engine_version", "string", "The version of the engine that made the snapshot, if known."},
			{"created", "string", "When the snapshot was taken, RFC 3339 UTC (\"\" if unknown)."},
			{"source", "string", "Where the snapshot was taken, as the manifest says."},
			{"size", "int", "Total stored bytes of every file."},
			{"files", "list of struct(name, size, sha256, compression)", "The snapshot's files in manifest order."},
			{"metadata", "dict", "Engine-specific metadata, e.g. etcd's revision and total_key."},
		},
	},
	{
		Name: "target",
		Doc:  "Where the snapshot is restored: a scratch target or a target file (docs/targets.md). Both have the same shape, so one script handles both.",
		Fields: []FieldDoc{
			{"ref", "string", "The --target reference."},
			{"scratch", "bool", "True for a scratch:// target the run creates and tears down."},
			{"engine", "string", "The target's engine."},
			{"dirs", "list of string", "The directories the run may write besides its work dir."},
			{"(spec fields)", "", "Every field of the engine's target spec, maps as structs: target.members[0].data_dir, target.initial_cluster. Secrets appear as their reference, never their value."},
		},
	},
}
