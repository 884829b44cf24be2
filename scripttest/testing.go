package scripttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/targets"
)

// ---- values of the testing module ----

// driverValue is what testing.driver returns.
type driverValue struct{ d *engine.ScriptDriver }

func (d *driverValue) String() string {
	return fmt.Sprintf("<driver %s from %s>", d.d.Info().ID(), d.d.Info().Source)
}
func (d *driverValue) Type() string          { return "driver" }
func (d *driverValue) Freeze()               {}
func (d *driverValue) Truth() starlark.Bool  { return true }
func (d *driverValue) Hash() (uint32, error) { return 0, errors.New("unhashable: driver") }
func (d *driverValue) AttrNames() []string   { return []string{"engine", "name", "source", "version"} }
func (d *driverValue) Attr(name string) (starlark.Value, error) {
	i := d.d.Info()
	switch name {
	case "name":
		return starlark.String(i.Name), nil
	case "version":
		return starlark.String(i.Version.String()), nil
	case "source":
		return starlark.String(i.Source), nil
	case "engine":
		return starlark.String(i.Engine), nil
	}
	return nil, nil
}

// snapFile is one file of a snapshot spec.
type snapFile struct{ name, content, compression string }

// snapshotSpec is what testing.snapshot returns.
type snapshotSpec struct {
	files         []snapFile
	metadata      map[string]any
	engine        string
	engineVersion string
	bare          bool
	text          string
}

func (s *snapshotSpec) String() string        { return s.text }
func (s *snapshotSpec) Type() string          { return "testing.snapshot" }
func (s *snapshotSpec) Freeze()               {}
func (s *snapshotSpec) Truth() starlark.Bool  { return true }
func (s *snapshotSpec) Hash() (uint32, error) { return 0, errors.New("unhashable: testing.snapshot") }

// targetSpec is what testing.target returns.
type targetSpec struct {
	url   string         // a scratch:// URL, or
	spec  map[string]any // the content of a target file
	files map[string]string
	text  string
}

func (t *targetSpec) String() string        { return t.text }
func (t *targetSpec) Type() string          { return "testing.target" }
func (t *targetSpec) Freeze()               {}
func (t *targetSpec) Truth() starlark.Bool  { return true }
func (t *targetSpec) Hash() (uint32, error) { return 0, errors.New("unhashable: testing.target") }

// testingModule builds the testing module for the tests of one file.
func (fr *fileRun) testingModule() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "testing", Members: starlark.StringDict{
		"driver":   starlark.NewBuiltin("testing.driver", fr.builtinDriver),
		"snapshot": starlark.NewBuiltin("testing.snapshot", builtinSnapshot),
		"target":   starlark.NewBuiltin("testing.target", builtinTarget),
		"run":      starlark.NewBuiltin("testing.run", fr.builtinRun),
		"error":    starlark.NewBuiltin("testing.error", builtinError),
		"sequence": starlark.NewBuiltin("testing.sequence", builtinSequence),
	}}
}

func (fr *fileRun) builtinDriver(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "spec", &spec); err != nil {
		return nil, err
	}
	d, err := fr.resolve(spec)
	if err != nil {
		return nil, fmt.Errorf("testing.driver(%q): %w", spec, err)
	}
	return &driverValue{d}, nil
}

func builtinError(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cls, msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cls", &cls, "msg", &msg); err != nil {
		return nil, err
	}
	c, err := drivers.ParseClass(cls)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return &fakeError{cls: c, msg: msg}, nil
}

func builtinSequence(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s takes the answers as positional arguments", b.Name())
	}
	return &sequence{answers: append(starlark.Tuple(nil), args...)}, nil
}

func builtinSnapshot(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		files         *starlark.List
		metadata      *starlark.Dict
		engineName    starlark.Value = starlark.None
		engineVersion string
		bare          bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "files?", &files, "metadata?", &metadata,
		"engine?", &engineName, "engine_version?", &engineVersion, "bare?", &bare); err != nil {
		return nil, err
	}
	s := &snapshotSpec{engineVersion: engineVersion, bare: bare, metadata: map[string]any{}}
	if e, ok := starlark.AsString(engineName); ok {
		s.engine = e
	}
	if files == nil {
		s.files = []snapFile{{name: "snapshot.db"}}
	} else {
		for i := 0; i < files.Len(); i++ {
			g, err := builtins.FromValue(files.Index(i))
			if err != nil {
				return nil, fmt.Errorf("%s: files[%d]: %v", b.Name(), i, err)
			}
			switch x := g.(type) {
			case string:
				s.files = append(s.files, snapFile{name: x})
			case map[string]any:
				f := snapFile{}
				f.name, _ = x["name"].(string)
				f.content, _ = x["content"].(string)
				f.compression, _ = x["compression"].(string)
				for k := range x {
					if k != "name" && k != "content" && k != "compression" {
						return nil, fmt.Errorf("%s: files[%d]: unknown key %q (name, content, compression)", b.Name(), i, k)
					}
				}
				if f.name == "" {
					return nil, fmt.Errorf("%s: files[%d] has no name", b.Name(), i)
				}
				s.files = append(s.files, f)
			default:
				return nil, fmt.Errorf("%s: files[%d] must be a name or a dict, not %s", b.Name(), i, files.Index(i).Type())
			}
		}
	}
	if len(s.files) == 0 {
		return nil, fmt.Errorf("%s: a snapshot needs at least one file", b.Name())
	}
	if bare && len(s.files) != 1 {
		return nil, fmt.Errorf("%s: a bare snapshot is one file", b.Name())
	}
	if metadata != nil {
		g, err := builtins.FromValue(metadata)
		if err != nil {
			return nil, fmt.Errorf("%s: metadata: %v", b.Name(), err)
		}
		s.metadata = g.(map[string]any)
	}
	s.text = "testing.snapshot" + argsText(args, kwargs)
	return s, nil
}

func builtinTarget(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec starlark.Value
	var files *starlark.Dict
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "spec", &spec, "files?", &files); err != nil {
		return nil, err
	}
	t := &targetSpec{files: map[string]string{}, text: "testing.target" + argsText(args, kwargs)}
	switch x := spec.(type) {
	case starlark.String:
		if !strings.HasPrefix(string(x), "scratch://") {
			return nil, fmt.Errorf("%s: %q: give a scratch:// URL or the target file's content as a dict", b.Name(), string(x))
		}
		t.url = string(x)
	case *starlark.Dict:
		g, err := builtins.FromValue(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
		t.spec = g.(map[string]any)
	default:
		return nil, fmt.Errorf("%s: spec must be a scratch:// URL or a dict, not %s", b.Name(), spec.Type())
	}
	if files != nil {
		for _, item := range files.Items() {
			k, ok1 := starlark.AsString(item[0])
			v, ok2 := starlark.AsString(item[1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: files maps relative paths to contents (strings)", b.Name())
			}
			if filepath.IsAbs(k) || strings.Contains(k, "..") {
				return nil, fmt.Errorf("%s: files: %q must be a relative path inside the target dir", b.Name(), k)
			}
			t.files[k] = v
		}
	}
	return t, nil
}

func argsText(args starlark.Tuple, kwargs []starlark.Tuple) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s = %s", kv[0].(starlark.String), kv[1]))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// ---- testing.run ----

func (fr *fileRun) builtinRun(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		dv       *driverValue
		snapV    starlark.Value = starlark.None
		targetV  starlark.Value = starlark.None
		params   *starlark.Dict
		fakes    *starlark.Dict
		mode                    = "restore"
		phaseV   starlark.Value = starlark.None
		stateArg *starlark.Dict
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "driver", &dv, "snapshot?", &snapV, "target?", &targetV,
		"params?", &params, "fakes?", &fakes, "mode?", &mode, "phase?", &phaseV, "state?", &stateArg); err != nil {
		return nil, err
	}
	tc := testOf(thread)
	if tc == nil {
		return nil, fmt.Errorf("%s may only be called from a test function", b.Name())
	}
	info := dv.d.Info()

	snap := &snapshotSpec{files: []snapFile{{name: "snapshot.db"}}, metadata: map[string]any{}}
	if snapV != starlark.None {
		s, ok := snapV.(*snapshotSpec)
		if !ok {
			return nil, fmt.Errorf("%s: snapshot must be a testing.snapshot(...), not %s", b.Name(), snapV.Type())
		}
		snap = s
	}
	target := &targetSpec{url: "scratch://" + info.Engine}
	switch x := targetV.(type) {
	case starlark.NoneType:
	case *targetSpec:
		target = x
	case starlark.String:
		if !strings.HasPrefix(string(x), "scratch://") {
			return nil, fmt.Errorf("%s: target %q: give a scratch:// URL or testing.target({...})", b.Name(), string(x))
		}
		target = &targetSpec{url: string(x)}
	default:
		return nil, fmt.Errorf("%s: target must be a scratch:// URL or testing.target(...), not %s", b.Name(), targetV.Type())
	}
	phase := ""
	if s, ok := starlark.AsString(phaseV); ok {
		phase = s
		valid := false
		for _, p := range append(append([]string{}, drivers.Phases...), drivers.PhaseCommit, drivers.PhaseRollback) {
			valid = valid || p == phase
		}
		if !valid {
			return nil, fmt.Errorf("%s: phase %q is not one of download, prepare, execute, validate, commit, rollback", b.Name(), phase)
		}
	} else if phaseV != starlark.None {
		return nil, fmt.Errorf("%s: phase must be a string", b.Name())
	}
	switch mode {
	case "restore", "validate", "plan":
	default:
		return nil, fmt.Errorf("%s: mode %q is not one of restore, validate, plan", b.Name(), mode)
	}
	strParams, err := paramStrings(params)
	if err != nil {
		return nil, fmt.Errorf("%s: params: %v", b.Name(), err)
	}
	rs := &runState{fakes: map[string]starlark.Value{}, seqPos: map[*sequence]int{}, counts: map[string]int{}, steps: fr.host.MaxSteps}
	if fakes != nil {
		for _, item := range fakes.Items() {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("%s: fakes keys are builtin names like \"etcd.status\", not %s", b.Name(), item[0].Type())
			}
			if err := fr.checkFakeName(k); err != nil {
				return nil, fmt.Errorf("%s: fakes: %v", b.Name(), err)
			}
			rs.fakes[k] = item[1]
		}
	}

	tc.runs++
	base := filepath.Join(tc.dir, fmt.Sprintf("run%d", tc.runs))
	o := &runOutcome{base: base, work: filepath.Join(base, "work"), targetRoot: filepath.Join(base, "target")}
	for _, d := range []string{o.work, o.targetRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	snapRef, err := writeSnapshot(base, snap, info.Engine)
	if err != nil {
		return nil, fmt.Errorf("%s: snapshot: %v", b.Name(), err)
	}
	targetRef, err := writeTarget(o, target, info.Engine)
	if err != nil {
		return nil, fmt.Errorf("%s: target: %v", b.Name(), err)
	}
	if target.url != "" {
		o.targetRoot = filepath.Join(o.work, "scratch")
	}

	ctx := context.WithValue(fr.ctx, runKey{}, rs)
	if phase != "" {
		var state map[string]any
		if stateArg != nil {
			g, err := builtins.FromValue(stateArg)
			if err != nil {
				return nil, fmt.Errorf("%s: state: %v", b.Name(), err)
			}
			state = g.(map[string]any)
		}
		err = fr.runPhase(ctx, o, rs, dv.d, phase, snapRef, targetRef, strParams, state)
	} else {
		err = fr.runAll(ctx, o, rs, dv.d, engine.Mode(mode), snapRef, targetRef, strParams)
	}
	var usage *engine.UsageError
	if err != nil && o.rep == nil || errors.As(err, &usage) {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	res, err := o.value(rs, err)
	tc.last = o.summary
	if err != nil {
		return nil, err
	}
	// A missing fake or a bug in the script is the test's problem, never an
	// expected outcome: stop here with what the script did.
	if len(rs.unfaked) > 0 {
		u := rs.unfaked[0]
		where := ""
		if u.pos != "" {
			where = fmt.Sprintf(" (called at %s in %s)", u.pos, u.phase)
		}
		return nil, fmt.Errorf("%s is not faked in this test%s: add it to the fakes of testing.run, e.g. fakes = {%q: ...}", u.builtin, where, u.builtin)
	}
	if o.class == drivers.Script {
		msg := fmt.Sprintf("the %s driver failed with a script error: %s", info.ID(), o.message)
		if o.backtrace != "" {
			msg += "\n" + o.backtrace
		}
		return nil, errors.New(msg)
	}
	return res, nil
}

// checkFakeName refuses a fake for a builtin that does not exist or that always
// runs for real.
func (fr *fileRun) checkFakeName(name string) error {
	mod, fn, ok := strings.Cut(name, ".")
	if !ok {
		if name == "fail" {
			return fmt.Errorf("fail cannot be faked")
		}
		return fmt.Errorf("%q: name a builtin as module.function, e.g. \"etcd.status\"", name)
	}
	var all []string
	for _, m := range fr.host.Modules {
		for _, f := range m.Funcs {
			if m.Name != "" {
				all = append(all, m.Name+"."+f.Name)
			}
		}
		if m.Name == mod {
			if _, found := m.Func(fn); found {
				return nil
			}
		}
	}
	msg := fmt.Sprintf("no builtin %s", name)
	if near := builtins.Nearest(name, all); near != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", near)
	}
	return errors.New(msg)
}

// paramStrings turns params given as Starlark values into --param strings.
func paramStrings(d *starlark.Dict) (map[string]string, error) {
	out := map[string]string{}
	if d == nil {
		return out, nil
	}
	for _, item := range d.Items() {
		k, ok := starlark.AsString(item[0])
		if !ok {
			return nil, fmt.Errorf("keys must be strings")
		}
		switch v := item[1].(type) {
		case starlark.String:
			out[k] = string(v)
		case starlark.Bool, starlark.Int, starlark.Float:
			out[k] = strings.ToLower(v.String())
		default:
			g, err := builtins.FromValue(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", k, err)
			}
			data, err := json.Marshal(g)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", k, err)
			}
			out[k] = string(data)
		}
	}
	return out, nil
}

// writeSnapshot makes the snapshot of a run under base and returns its reference.
func writeSnapshot(base string, s *snapshotSpec, driverEngine string) (string, error) {
	src := filepath.Join(base, "snapshot-files")
	var files []blobstore.PackFile
	for _, f := range s.files {
		if err := drivers.CheckFileName(f.name); err != nil {
			return "", err
		}
		content := f.content
		if content == "" {
			content = "placeholder content of snapshot file " + f.name + "\n"
		}
		p := filepath.Join(src, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return "", err
		}
		files = append(files, blobstore.PackFile{Path: p, Name: f.name})
	}
	if s.bare {
		return files[0].Path, nil
	}
	eng := s.engine
	if eng == "" {
		eng = driverEngine
	}
	dest := filepath.Join(base, "snapshot")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: eng, EngineVersion: s.engineVersion, Files: files, Dest: dest, Metadata: s.metadata}); err != nil {
		return "", err
	}
	// Compression is a property of the manifest entry: set it after packing.
	if err := setCompression(dest, s.files); err != nil {
		return "", err
	}
	return dest, nil
}

func setCompression(dest string, files []snapFile) error {
	compressed := false
	for _, f := range files {
		compressed = compressed || f.compression != ""
	}
	if !compressed {
		return nil
	}
	p := filepath.Join(dest, drivers.ManifestName)
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	entries, _ := m["files"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		for _, f := range files {
			if em["name"] == f.name && f.compression != "" {
				em["compression"] = f.compression
			}
		}
	}
	data, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o600)
}

// writeTarget returns the --target of a run: the scratch URL, or a target file
// written from the spec with relative dirs made absolute under the target root.
func writeTarget(o *runOutcome, t *targetSpec, driverEngine string) (string, error) {
	for rel, content := range t.files {
		p := filepath.Join(o.targetRoot, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	if t.url != "" {
		return t.url, nil
	}
	spec := absDirs(t.spec, "", o.targetRoot).(map[string]any)
	if _, ok := spec["engine"]; !ok {
		spec["engine"] = driverEngine
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(o.base, "target.yaml")
	return p, os.WriteFile(p, data, 0o600)
}

// absDirs copies v, making relative paths in fields named *dir absolute under root.
func absDirs(v any, key, root string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = absDirs(e, k, root)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = absDirs(e, key, root)
		}
		return out
	case string:
		if strings.HasSuffix(key, "dir") && x != "" && !filepath.IsAbs(x) {
			return filepath.Join(root, filepath.FromSlash(x))
		}
	}
	return v
}

// runOutcome is what a testing.run did.
type runOutcome struct {
	base, work, targetRoot string
	rep                    *engine.Report
	runID                  string
	phases                 []string
	checks                 []drivers.Check
	details                map[string]any
	state                  map[string]any
	rolledBack             bool
	result                 string
	message, backtrace     string
	class                  drivers.Class
	summary                string
}

func testRetry() engine.RetryPolicy {
	p := engine.DefaultRetry()
	for name, b := range p.Phases {
		b.BaseDelay, b.MaxDelay = time.Millisecond, time.Millisecond
		p.Phases[name] = b
	}
	p.Call.BaseDelay, p.Call.MaxDelay = time.Millisecond, time.Millisecond
	return p
}

// runAll runs the driver through engine.Runner, as restore-run restore/plan/validate would.
func (fr *fileRun) runAll(ctx context.Context, o *runOutcome, rs *runState, d *engine.ScriptDriver, mode engine.Mode, snapRef, targetRef string, params map[string]string) error {
	cat := &engine.Catalog{Registry: drivers.NewRegistry()}
	cat.Registry.Register(d)
	rep, err := (&engine.Runner{Catalog: cat}).Run(ctx, engine.Options{
		Mode: mode, Driver: d.Info().Name + "@=" + d.Info().Version.String(), Snapshot: snapRef, Target: targetRef,
		Params: params, WorkDir: o.work, Retry: testRetry(), Log: fr.log, OnCall: rs.onCall,
	})
	if rep == nil {
		return err
	}
	var usage *engine.UsageError
	if errors.As(err, &usage) {
		// A mistake in how the run was asked for (unknown param, bad target),
		// as restore-run would exit 2 for.
		return err
	}
	o.rep = rep
	o.runID, o.result, o.rolledBack = rep.RunID, rep.Result, rep.RolledBack
	for _, p := range rep.Phases {
		o.phases = append(o.phases, p.Name+":"+p.Result)
	}
	o.checks, o.details = rep.Checks, rep.Details
	rs.mu.Lock()
	if rs.run != nil {
		o.state = rs.run.State
	}
	rs.mu.Unlock()
	if err != nil {
		o.message, o.class, o.backtrace = err.Error(), drivers.ClassOf(err), engine.BacktraceOf(err)
	}
	return nil
}

// runPhase runs one phase function with the given ctx.state.
func (fr *fileRun) runPhase(ctx context.Context, o *runOutcome, rs *runState, d *engine.ScriptDriver, phase, snapRef, targetRef string, strParams map[string]string, state map[string]any) error {
	params, err := engine.ResolveParams(d.Info(), strParams)
	if err != nil {
		return err
	}
	src, err := blobstore.Open(ctx, snapRef)
	if err != nil {
		return err
	}
	defer src.Close()
	snap := src.Snapshot()
	target, err := targets.Parse(targetRef, filepath.Join(o.work, "scratch"))
	if err != nil {
		return err
	}
	if state == nil {
		state = map[string]any{}
	}
	run := &drivers.Run{ID: engine.NewRunID(), WorkDir: o.work, Params: params, State: state, Attempt: 1}
	env := &builtins.Env{Run: run, Snapshot: snap, Source: src, Target: target, Log: fr.log, Redactor: redact.New(), OnCall: rs.onCall}
	pctx := builtins.NewContext(ctx, env)
	defer env.RunCleanups(context.WithoutCancel(ctx))
	o.runID = run.ID
	o.rep = &engine.Report{RunID: run.ID}
	switch phase {
	case drivers.PhaseDownload:
		err = d.Download(pctx, run, snap)
	case drivers.PhasePrepare:
		err = d.Prepare(pctx, run, snap, target)
	case drivers.PhaseExecute:
		var res *drivers.RestoreResult
		res, err = d.Execute(pctx, run, snap, target)
		if res != nil {
			o.details = res.Details
		}
	case drivers.PhaseValidate:
		var res *drivers.ValidationResult
		res, err = d.Validate(pctx, run, snap, target)
		if res != nil {
			o.checks = res.Checks
			if failed := res.Failed(); err == nil && len(failed) > 0 {
				var names []string
				for _, c := range failed {
					names = append(names, c.Name)
				}
				err = drivers.Errorf(drivers.Validation, "%d of %d validation checks failed: %s", len(failed), len(res.Checks), strings.Join(names, "; "))
			}
		}
	case drivers.PhaseCommit:
		err = d.Commit(pctx, run, snap, target)
	case drivers.PhaseRollback:
		err = d.Rollback(pctx, run, snap, target)
	}
	o.state = run.State
	o.result = "success"
	ph := phase + ":ok"
	if err != nil {
		o.result = "failed"
		ph = phase + ":failed"
		o.message, o.class, o.backtrace = err.Error(), drivers.ClassOf(err), engine.BacktraceOf(err)
	}
	o.phases = []string{ph}
	return nil
}

// result builds the Starlark value testing.run returns.
func (o *runOutcome) value(rs *runState, runErr error) (starlark.Value, error) {
	norm := o.normalizer()
	phases := make([]starlark.Value, len(o.phases))
	for i, p := range o.phases {
		phases[i] = starlark.String(p)
	}
	var checks, failedChecks []starlark.Value
	for _, c := range o.checks {
		checks = append(checks, builtins.MustStruct(map[string]any{"name": c.Name, "ok": c.OK, "detail": norm.Replace(c.Detail), "expected": c.Expected, "actual": c.Actual, "pos": c.Pos}))
		if !c.OK {
			failedChecks = append(failedChecks, starlark.String(c.Name))
		}
	}
	rs.mu.Lock()
	var calls []starlark.Value
	for _, c := range rs.calls {
		calls = append(calls, c.value(norm))
	}
	rs.mu.Unlock()
	callList := starlark.NewList(calls)
	callsTo := starlark.NewBuiltin("calls_to", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(kwargs) > 0 {
			return nil, fmt.Errorf("calls_to takes builtin names, e.g. calls_to(\"fs.move\", \"service.stop\")")
		}
		want := map[string]bool{}
		for _, a := range args {
			s, ok := starlark.AsString(a)
			if !ok {
				return nil, fmt.Errorf("calls_to: %s is not a builtin name", a)
			}
			want[s] = true
		}
		var out []starlark.Value
		for _, c := range calls {
			name, _ := c.(*starlarkstruct.Struct).Attr("builtin")
			if s, _ := starlark.AsString(name); want[s] {
				out = append(out, c)
			}
		}
		return starlark.NewList(out), nil
	})
	state := o.state
	if state == nil {
		state = map[string]any{}
	}
	stateV, err := builtins.ToValue(normalizeAny(state, norm))
	if err != nil {
		return nil, err
	}
	detailsV, err := builtins.ToValue(normalizeAny(o.details, norm))
	if err != nil || o.details == nil {
		detailsV = starlark.NewDict(0)
	}
	files, err := readFiles(o.targetRoot, norm)
	if err != nil {
		return nil, err
	}
	o.summary = fmt.Sprintf("phases %s", strings.Join(o.phases, " "))
	if o.message != "" {
		o.summary += fmt.Sprintf("; error (%s): %s", o.class, norm.Replace(o.message))
	}
	ok := runErr == nil && o.message == ""
	return starlarkstruct.FromStringDict(starlark.String("result"), starlark.StringDict{
		"ok":            starlark.Bool(ok),
		"result":        starlark.String(o.result),
		"error":         starlark.String(norm.Replace(o.message)),
		"error_class":   starlark.String(o.class),
		"backtrace":     starlark.String(norm.Replace(o.backtrace)),
		"phases":        starlark.NewList(phases),
		"checks":        starlark.NewList(checks),
		"failed_checks": starlark.NewList(failedChecks),
		"calls":         callList,
		"calls_to":      callsTo,
		"rolled_back":   starlark.Bool(o.rolledBack),
		"state":         stateV,
		"details":       detailsV,
		"files":         files,
		"run_id":        starlark.String(o.runID),
	}), nil
}

// normalizer replaces what differs from run to run: the work dir, the target dir
// and the run id.
func (o *runOutcome) normalizer() *strings.Replacer {
	pairs := []string{}
	if o.targetRoot != "" && !strings.HasPrefix(o.targetRoot, o.work) {
		pairs = append(pairs, o.targetRoot, "$TARGET")
	}
	pairs = append(pairs, o.work, "$WORKDIR")
	if o.runID != "" {
		pairs = append(pairs, o.runID, "RUN")
	}
	return strings.NewReplacer(pairs...)
}

func normalizeAny(v any, norm *strings.Replacer) any {
	switch x := v.(type) {
	case string:
		return norm.Replace(x)
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalizeAny(e, norm)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeAny(e, norm)
		}
		return out
	}
	return v
}

func normalizeValue(v starlark.Value, norm *strings.Replacer) starlark.Value {
	switch x := v.(type) {
	case starlark.String:
		return starlark.String(norm.Replace(string(x)))
	case *starlark.List:
		out := make([]starlark.Value, x.Len())
		for i := range out {
			out[i] = normalizeValue(x.Index(i), norm)
		}
		return starlark.NewList(out)
	case starlark.Tuple:
		out := make(starlark.Tuple, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e, norm)
		}
		return out
	case *starlark.Dict:
		out := starlark.NewDict(x.Len())
		for _, item := range x.Items() {
			out.SetKey(item[0], normalizeValue(item[1], norm))
		}
		return out
	case *starlarkstruct.Struct:
		sd := starlark.StringDict{}
		x.ToStringDict(sd)
		for k, e := range sd {
			sd[k] = normalizeValue(e, norm)
		}
		return starlarkstruct.FromStringDict(x.Constructor(), sd)
	}
	return v
}

// value renders a recorded call for tests.
func (c *callRec) value(norm *strings.Replacer) starlark.Value {
	args := starlark.StringDict{}
	for k, v := range c.args {
		args[k] = normalizeValue(v, norm)
	}
	text := norm.Replace(c.text)
	if text == "" {
		text = c.builtin + "(...)"
	}
	return starlarkstruct.FromStringDict(starlark.String("call"), starlark.StringDict{
		"builtin":     starlark.String(c.builtin),
		"phase":       starlark.String(c.phase),
		"args":        starlarkstruct.FromStringDict(starlarkstruct.Default, args),
		"text":        starlark.String(text),
		"pos":         starlark.String(c.pos),
		"error":       starlark.String(norm.Replace(c.err)),
		"error_class": starlark.String(c.class),
	})
}

// readFiles returns {relative path: content} of the files under root, paths
// normalized; contents over 4 KiB are cut.
func readFiles(root string, norm *strings.Replacer) (*starlark.Dict, error) {
	d := starlark.NewDict(0)
	var paths []string
	contents := map[string]string{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(data) > 4096 {
			data = append(data[:4096:4096], "..."...)
		}
		key := norm.Replace(filepath.ToSlash(rel))
		paths = append(paths, key)
		contents[key] = string(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	for _, p := range paths {
		d.SetKey(starlark.String(p), starlark.String(contents[p]))
	}
	return d, nil
}
