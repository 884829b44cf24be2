package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
)

// SupportedAPIs are the driver API versions this engine runs. A script declaring
// another api is refused.
var SupportedAPIs = []int{1}

// DefaultMaxSteps bounds the Starlark steps of one phase or one script load: far
// more than a driver needs, small enough that an endless loop stops in seconds.
const DefaultMaxSteps = 50_000_000

// fileOptions are the Starlark dialect of driver scripts: while loops and top-level
// control flow are allowed (the step limit bounds them), no recursion, no global
// reassignment.
var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true}

// Host loads scripts: it knows the script sources (for load()), the builtin modules
// scripts may call and the step limit.
type Host struct {
	Sources  []Source
	Modules  []builtins.Module
	MaxSteps uint64
	Log      zerolog.Logger

	mu  sync.Mutex
	lib map[string]*libEntry

	predeclared starlark.StringDict
}

type libEntry struct {
	globals starlark.StringDict
	err     error
	loading bool
}

// NewHost returns a Host over sources with every registered builtin module.
func NewHost(sources []Source) *Host {
	return &Host{
		Sources:  sources,
		Modules:  append(builtins.Modules(), builtins.Globals),
		MaxSteps: DefaultMaxSteps,
		Log:      zerolog.Nop(),
	}
}

// Predeclared returns the names every script sees: the builtin modules, the global
// builtins (fail), and driver, param, check, struct and json.
func (h *Host) Predeclared() starlark.StringDict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.predeclared != nil {
		return h.predeclared
	}
	d := starlark.StringDict{
		"driver": starlark.NewBuiltin("driver", builtinDriver),
		"param":  starlark.NewBuiltin("param", builtinParam),
		"check":  starlark.NewBuiltin("check", builtinCheck),
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
		"json":   starjson.Module,
	}
	for _, m := range h.Modules {
		if m.Name == "" {
			for _, f := range m.Funcs {
				d[f.Name] = f.Builtin("")
			}
			continue
		}
		d[m.Name] = m.Value()
	}
	d.Freeze()
	h.predeclared = d
	return d
}

// newLoadThread returns a thread for running a script's or module's top level.
func (h *Host) newLoadThread(name string) *starlark.Thread {
	t := &starlark.Thread{Name: name, Load: h.load}
	t.SetMaxExecutionSteps(h.maxSteps())
	t.Print = func(_ *starlark.Thread, msg string) { h.Log.Info().Str("script", name).Msg(msg) }
	return t
}

// NewThread returns a thread for Starlark code that runs outside a phase, such as
// a test file of restore-run test: the host's step limit, load() of lib/ modules,
// print() to the host's log.
func (h *Host) NewThread(name string) *starlark.Thread { return h.newLoadThread(name) }

// FileOptions returns the Starlark dialect of driver scripts (while loops and
// top-level control flow allowed).
func FileOptions() *syntax.FileOptions { return fileOptions }

func (h *Host) maxSteps() uint64 {
	if h.MaxSteps == 0 {
		return DefaultMaxSteps
	}
	return h.MaxSteps
}

// load implements load() for scripts: only modules under lib/ of a script root,
// looked up from the highest-priority source down.
func (h *Host) load(_ *starlark.Thread, module string) (starlark.StringDict, error) {
	if err := checkLibPath(module); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if e, ok := h.lib[module]; ok {
		h.mu.Unlock()
		if e.loading {
			return nil, drivers.Errorf(drivers.Script, "load cycle through %s", module)
		}
		return e.globals, e.err
	}
	if h.lib == nil {
		h.lib = map[string]*libEntry{}
	}
	e := &libEntry{loading: true}
	h.lib[module] = e
	h.mu.Unlock()

	globals, err := h.execLib(module)

	h.mu.Lock()
	e.globals, e.err, e.loading = globals, err, false
	h.mu.Unlock()
	return globals, err
}

func (h *Host) execLib(module string) (starlark.StringDict, error) {
	for i := len(h.Sources) - 1; i >= 0; i-- {
		src := h.Sources[i]
		data, err := fs.ReadFile(src.FS, module)
		if err != nil {
			continue
		}
		filename := displayName(src, module)
		thread := h.newLoadThread(filename)
		globals, err := starlark.ExecFileOptions(fileOptions, thread, filename, data, h.Predeclared())
		if err != nil {
			return nil, scriptError(filename, err)
		}
		return globals, nil
	}
	return nil, drivers.Errorf(drivers.Script, "module %s not found in any script root (%s)", module, sourceNames(h.Sources))
}

// checkLibPath refuses load() of anything but a clean relative path under lib/.
func checkLibPath(module string) error {
	ok := strings.HasPrefix(module, "lib/") && strings.HasSuffix(module, ".star") &&
		path.Clean(module) == module && !strings.Contains(module, "..") && !strings.ContainsAny(module, "\\:")
	if !ok {
		return drivers.Errorf(drivers.Script, "load(%q) refused: scripts may only load helper modules under lib/ of a script root, e.g. load(\"lib/checks.star\", \"expect_equal\")", module)
	}
	return nil
}

func sourceNames(srcs []Source) string {
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// displayName is the file name shown in positions and backtraces.
func displayName(src Source, p string) string {
	if src.Dir == "" {
		return src.Name + ":" + p
	}
	return path.Join(src.Dir, p)
}

// LoadScript compiles and runs the top level of the driver script at p in src and
// returns it as a driver. Syntax errors, undefined names, a missing or invalid
// driver() declaration, an unsupported api and malformed phase functions are all
// refused with errors of class Script that name file:line:col.
func (h *Host) LoadScript(src Source, p string) (*ScriptDriver, error) {
	data, err := fs.ReadFile(src.FS, p)
	if err != nil {
		return nil, drivers.WithClass(drivers.Script, "read script", err)
	}
	return h.LoadSource(src, p, data)
}

// LoadSource is LoadScript for script text already read.
func (h *Host) LoadSource(src Source, p string, data []byte) (*ScriptDriver, error) {
	filename := displayName(src, p)
	pre := h.Predeclared()
	f, prog, err := starlark.SourceProgramOptions(fileOptions, filename, data, pre.Has)
	if err != nil {
		return nil, scriptError(filename, err)
	}
	thread := h.newLoadThread(filename)
	decl := &declaration{}
	thread.SetLocal(localDecl, decl)
	globals, err := prog.Init(thread, pre)
	if err != nil {
		return nil, scriptError(filename, err)
	}
	globals.Freeze()
	if !decl.called {
		return nil, drivers.Errorf(drivers.Script, "%s: no driver(name=..., version=..., api=...) declaration at the top level", filename)
	}
	if !supportedAPI(decl.api) {
		return nil, drivers.Errorf(drivers.Script, "%s: driver %s@%s asks for api %d, but this restore-run supports api %s; use a restore-run release that supports it or port the script",
			decl.pos, decl.name, decl.version, decl.api, apiList())
	}
	sum := sha256.Sum256(data)
	d := &ScriptDriver{
		host:     h,
		filename: filename,
		text:     data,
		globals:  globals,
		info: drivers.Info{
			Name:    decl.name,
			Version: decl.version,
			API:     decl.api,
			Engine:  decl.engine,
			Doc:     decl.doc,
			Params:  decl.params,
			Source:  filename,
			SHA256:  hex.EncodeToString(sum[:]),
		},
		policy: decl.policy,
	}
	if d.info.Doc == "" {
		d.info.Doc = docstring(f)
	}
	if d.info.Engine == "" {
		d.info.Engine = d.info.Name
	}
	if err := d.checkPhases(); err != nil {
		return nil, err
	}
	return d, nil
}

func supportedAPI(api int) bool {
	for _, a := range SupportedAPIs {
		if a == api {
			return true
		}
	}
	return false
}

func apiList() string {
	var s []string
	for _, a := range SupportedAPIs {
		s = append(s, fmt.Sprint(a))
	}
	return strings.Join(s, ", ")
}

// docstring returns the text of a leading string literal statement, if any.
func docstring(f *syntax.File) string {
	if len(f.Stmts) == 0 {
		return ""
	}
	if es, ok := f.Stmts[0].(*syntax.ExprStmt); ok {
		if lit, ok := es.X.(*syntax.Literal); ok && lit.Token == syntax.STRING {
			if s, ok := lit.Value.(string); ok {
				return strings.TrimSpace(s)
			}
		}
	}
	return ""
}
