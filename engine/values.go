package engine

import (
	"fmt"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// makeCtx builds the ctx value a phase receives:
//
//	ctx.run_id, ctx.phase, ctx.work_dir, ctx.attempt, ctx.plan,
//	ctx.params (struct of the driver's params), ctx.state (dict kept across phases)
func makeCtx(run *drivers.Run, phase string) (starlark.Value, *starlark.Dict, error) {
	params, err := builtins.Struct(run.Params)
	if err != nil {
		return nil, nil, fmt.Errorf("params: %w", err)
	}
	if run.State == nil {
		run.State = map[string]any{}
	}
	sv, err := builtins.ToValue(run.State)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	state := sv.(*starlark.Dict)
	var names []starlark.Value
	for _, c := range run.Checkpoints {
		names = append(names, starlark.String(c))
	}
	checkpoint := starlark.NewBuiltin("ctx.checkpoint", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
			return nil, drivers.WithClass(drivers.Script, "", err)
		}
		if name == "" {
			return nil, drivers.Errorf(drivers.Script, "ctx.checkpoint: the name must not be empty")
		}
		if run.Plan {
			return starlark.None, nil
		}
		if err := saveState(run, state); err != nil {
			return nil, drivers.Errorf(drivers.Script, "ctx.checkpoint(%q): ctx.state: %v", name, err)
		}
		if !run.Reached(name) {
			run.Checkpoints = append(run.Checkpoints, name)
		}
		if run.OnCheckpoint != nil {
			if err := run.OnCheckpoint(name); err != nil {
				return nil, drivers.WithClass(drivers.Permanent, "ctx.checkpoint: write the run state", err)
			}
		}
		return starlark.None, nil
	})
	reached := starlark.NewBuiltin("ctx.reached", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
			return nil, drivers.WithClass(drivers.Script, "", err)
		}
		return starlark.Bool(run.Reached(name)), nil
	})
	ctx := starlarkstruct.FromStringDict(starlark.String("ctx"), starlark.StringDict{
		"run_id":      starlark.String(run.ID),
		"phase":       starlark.String(phase),
		"work_dir":    starlark.String(run.WorkDir),
		"attempt":     starlark.MakeInt(run.Attempt),
		"plan":        starlark.Bool(run.Plan),
		"params":      params,
		"state":       state,
		"checkpoint":  checkpoint,
		"reached":     reached,
		"checkpoints": starlark.NewList(names),
		"resumed":     starlark.Bool(run.Resumed),
	})
	return ctx, state, nil
}

// saveState copies the phase's ctx.state back into run.State.
func saveState(run *drivers.Run, state *starlark.Dict) error {
	g, err := builtins.FromValue(state)
	if err != nil {
		return fmt.Errorf("holds a value that cannot be kept between phases (use None, bool, int, float, string, list, dict): %w", err)
	}
	run.State = g.(map[string]any)
	return nil
}

// SnapshotValue is the snapshot as scripts see it:
//
//	snapshot.ref, .bare, .engine, .engine_version, .created, .source, .size,
//	.files (list of struct(name, size, sha256, compression)), .metadata (dict)
func SnapshotValue(s *drivers.Snapshot) starlark.Value {
	m := s.Manifest
	var files []starlark.Value
	for _, f := range m.Files {
		files = append(files, builtins.MustStruct(map[string]any{
			"name": f.Name, "size": f.Size, "sha256": f.SHA256, "compression": f.Compression,
		}))
	}
	meta, err := builtins.ToValue(m.Metadata)
	if err != nil || m.Metadata == nil {
		meta = starlark.NewDict(0)
	}
	created := ""
	if !m.Created.IsZero() {
		created = m.Created.UTC().Format("2006-01-02T15:04:05Z")
	}
	return starlarkstruct.FromStringDict(starlark.String("snapshot"), starlark.StringDict{
		"ref":            starlark.String(s.Ref),
		"bare":           starlark.Bool(s.Bare),
		"engine":         starlark.String(m.Engine),
		"engine_version": starlark.String(m.EngineVersion),
		"created":        starlark.String(created),
		"source":         starlark.String(m.Source),
		"size":           starlark.MakeInt64(m.TotalSize()),
		"files":          starlark.NewList(files),
		"metadata":       meta,
	})
}

// TargetValue is the target as scripts see it: target.ref, .scratch, .engine, .dirs,
// and every field of the engine's spec (e.g. target.members), maps as structs.
func TargetValue(t *drivers.Target) (starlark.Value, error) {
	if t == nil {
		return starlark.None, nil
	}
	fields := starlark.StringDict{
		"ref":     starlark.String(t.Ref),
		"scratch": starlark.Bool(t.Scratch),
		"engine":  starlark.String(t.Engine),
	}
	dirs, _ := builtins.ToValue(t.Dirs)
	if t.Dirs == nil {
		dirs = starlark.NewList(nil)
	}
	fields["dirs"] = dirs
	keys := make([]string, 0, len(t.Spec))
	for k := range t.Spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, clash := fields[k]; clash {
			return nil, fmt.Errorf("target spec field %q clashes with a built-in target field", k)
		}
		v, err := structValue(t.Spec[k])
		if err != nil {
			return nil, fmt.Errorf("target spec %s: %w", k, err)
		}
		fields[k] = v
	}
	return starlarkstruct.FromStringDict(starlark.String("target"), fields), nil
}

// structValue converts Go values like ToValue but turns maps into structs, so
// target specs read naturally (member.data_dir).
func structValue(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case map[string]any:
		sd := starlark.StringDict{}
		for k, e := range x {
			ev, err := structValue(e)
			if err != nil {
				return nil, err
			}
			sd[k] = ev
		}
		return starlarkstruct.FromStringDict(starlarkstruct.Default, sd), nil
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			ev, err := structValue(e)
			if err != nil {
				return nil, err
			}
			l[i] = ev
		}
		return starlark.NewList(l), nil
	}
	return builtins.ToValue(v)
}
