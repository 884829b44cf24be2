package scripttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// File is one *_test.star file to run.
type File struct {
	// Source is the script source the file is in: its directory, or the embedded
	// scripts. testing.driver finds drivers there first.
	Source engine.Source
	// Path is the file's path inside Source.
	Path string
}

// Name is how the file is shown: its path on disk, or embedded:NAME.
func (f File) Name() string {
	if f.Source.Dir == "" {
		return f.Source.Name + ":" + f.Path
	}
	return filepath.Join(f.Source.Dir, filepath.FromSlash(f.Path))
}

// Options configure a test run.
type Options struct {
	// Sources are where testing.driver looks for drivers, lowest priority first;
	// each test file's own source is added last.
	Sources []engine.Source
	// MaxSteps is the Starlark step limit of each test function and each phase.
	MaxSteps uint64
	// Run, if set, selects the test functions to run by name.
	Run *regexp.Regexp
	// Out receives the results, one line per test.
	Out io.Writer
	// Log receives the runs' logs (default: discarded).
	Log zerolog.Logger
}

// Summary counts the results of a test run.
type Summary struct {
	Passed, Failed int
	// Files that could not be run at all (they do not load).
	Broken int
}

// Find returns the *_test.star files named by args: files, or directories whose
// *_test.star files are taken (not recursively).
func Find(args []string) ([]File, error) {
	var out []File
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if !strings.HasSuffix(a, ".star") {
				return nil, fmt.Errorf("%s is not a .star file", a)
			}
			out = append(out, File{Source: engine.DirSource(filepath.Dir(a)), Path: filepath.Base(a)})
			continue
		}
		src := engine.DirSource(a)
		names, err := testFiles(src.FS)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s holds no *_test.star files", a)
		}
		for _, n := range names {
			out = append(out, File{Source: src, Path: n})
		}
	}
	return out, nil
}

// Embedded returns the *_test.star files embedded in the binary.
func Embedded() ([]File, error) {
	src := engine.Embedded()
	names, err := testFiles(src.FS)
	if err != nil {
		return nil, err
	}
	var out []File
	for _, n := range names {
		out = append(out, File{Source: src, Path: n})
	}
	return out, nil
}

func testFiles(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), "_test.star") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Run runs every test of files and prints one line per test to opts.Out, like go
// test: `ok   test_name (12ms)` or `FAIL test_name: file:line:col: message` with the
// backtrace below.
func Run(ctx context.Context, opts Options, files []File) Summary {
	var sum Summary
	for _, f := range files {
		s := runFile(ctx, opts, f)
		sum.Passed += s.Passed
		sum.Failed += s.Failed
		sum.Broken += s.Broken
	}
	return sum
}

// fileRun is the state of one test file: its host (with dispatching builtins)
// and its drivers.
type fileRun struct {
	ctx  context.Context
	file File
	host *engine.Host
	log  zerolog.Logger

	once sync.Once
	cat  *engine.Catalog
}

// testCtx is the state of one test function.
type testCtx struct {
	dir  string
	runs int
	last string // summary of the last testing.run
}

const localTest = "restore-run.scripttest"

func testOf(thread *starlark.Thread) *testCtx {
	tc, _ := thread.Local(localTest).(*testCtx)
	return tc
}

func runFile(ctx context.Context, opts Options, f File) Summary {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	start := time.Now()
	sources := append([]engine.Source{}, opts.Sources...)
	if len(sources) == 0 || sources[len(sources)-1].Name != f.Source.Name {
		sources = append(sources, f.Source)
	}
	host := engine.NewHost(sources)
	if opts.MaxSteps > 0 {
		host.MaxSteps = opts.MaxSteps
	}
	host.Modules = wrapModules(host.Modules)
	host.Log = opts.Log
	fr := &fileRun{ctx: ctx, file: f, host: host, log: opts.Log}

	name := f.Name()
	fmt.Fprintf(out, "=== %s\n", name)
	data, err := fs.ReadFile(f.Source.FS, f.Path)
	if err != nil {
		fmt.Fprintf(out, "FAIL %s: %v\n", name, err)
		return Summary{Broken: 1}
	}
	pre := starlark.StringDict{}
	for k, v := range host.Predeclared() {
		pre[k] = v
	}
	pre["assert"] = assertModule()
	pre["testing"] = fr.testingModule()
	thread := host.NewThread(name)
	globals, err := starlark.ExecFileOptions(engine.FileOptions(), thread, displayName(f), data, pre)
	if err != nil {
		fmt.Fprintf(out, "FAIL %s: the test file does not load:\n%s\n", name, indent(errorText(err)))
		return Summary{Broken: 1}
	}
	globals.Freeze()

	type test struct {
		name string
		fn   *starlark.Function
	}
	var tests []test
	for n, v := range globals {
		fn, ok := v.(*starlark.Function)
		if !ok || !strings.HasPrefix(n, "test_") {
			continue
		}
		tests = append(tests, test{n, fn})
	}
	sort.Slice(tests, func(i, j int) bool { return tests[i].fn.Position().Line < tests[j].fn.Position().Line })
	var sum Summary
	for _, t := range tests {
		if opts.Run != nil && !opts.Run.MatchString(t.name) {
			continue
		}
		tstart := time.Now()
		err, last := fr.runTest(t.name, t.fn, out)
		took := time.Since(tstart).Round(time.Millisecond)
		if err == nil {
			sum.Passed++
			fmt.Fprintf(out, "ok   %s (%s)\n", t.name, took)
			continue
		}
		sum.Failed++
		text := errorText(err)
		var f *failure
		if last != "" && errors.As(err, &f) {
			text += "\nlast testing.run: " + last
		}
		fmt.Fprintf(out, "FAIL %s: %s\n", t.name, indentRest(text))
	}
	status := "ok  "
	if sum.Failed > 0 {
		status = "FAIL"
	}
	if len(tests) == 0 {
		fmt.Fprintf(out, "FAIL %s: no test_* functions\n", name)
		return Summary{Broken: 1}
	}
	fmt.Fprintf(out, "%s %s: %d passed, %d failed (%s)\n", status, name, sum.Passed, sum.Failed, time.Since(start).Round(time.Millisecond))
	return sum
}

// displayName is the name positions in the test file are reported with.
func displayName(f File) string {
	if f.Source.Dir == "" {
		return f.Source.Name + ":" + f.Path
	}
	return path.Join(f.Source.Dir, f.Path)
}

// runTest runs one test function on a fresh thread with the step limit.
func (fr *fileRun) runTest(name string, fn *starlark.Function, out io.Writer) (err error, last string) {
	if fn.NumParams() > 0 {
		return fmt.Errorf("%s: a test function takes no parameters", fn.Position()), ""
	}
	dir, err := os.MkdirTemp("", "restore-run-test-")
	if err != nil {
		return err, ""
	}
	defer os.RemoveAll(dir)
	tc := &testCtx{dir: dir}
	thread := fr.host.NewThread(name)
	thread.SetLocal(localTest, tc)
	thread.Print = func(_ *starlark.Thread, msg string) { fmt.Fprintf(out, "    %s: %s\n", name, msg) }
	stop := context.AfterFunc(fr.ctx, func() { thread.Cancel("interrupted") })
	defer stop()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	_, err = starlark.Call(thread, fn, nil, nil)
	return err, tc.last
}

// resolve finds the driver spec names, like --driver, in the file's sources; a
// spec ending in .star loads that file relative to the test file.
func (fr *fileRun) resolve(spec string) (*engine.ScriptDriver, error) {
	if strings.HasSuffix(spec, ".star") {
		p := path.Clean(path.Join(path.Dir(fr.file.Path), spec))
		return fr.host.LoadScript(fr.file.Source, p)
	}
	fr.once.Do(func() { fr.cat = fr.host.Discover() })
	d, err := fr.cat.Resolve(spec)
	if err != nil {
		return nil, err
	}
	sd, ok := d.(*engine.ScriptDriver)
	if !ok {
		return nil, fmt.Errorf("driver %s is not a script", spec)
	}
	return sd, nil
}

// errorText renders a test failure: position and message first, then the
// backtrace when there is more than the failing line.
func errorText(err error) string {
	var ev *starlark.EvalError
	if !errors.As(err, &ev) {
		var se *engine.ScriptError
		if errors.As(err, &se) {
			return se.Error()
		}
		return err.Error()
	}
	msg := ev.Msg
	if c := ev.Unwrap(); c != nil {
		msg = c.Error()
		if d, ok := c.(*drivers.Error); ok && d.Class == drivers.Script {
			msg = d.Error()
		}
	}
	pos := ""
	for i := len(ev.CallStack) - 1; i >= 0; i-- {
		if p := ev.CallStack[i].Pos; p.IsValid() && p.Filename() != "<builtin>" {
			pos = p.String()
			break
		}
	}
	text := msg
	if pos != "" {
		text = pos + ": " + msg
	}
	if len(ev.CallStack) > 2 {
		text += "\n" + ev.CallStack.String()
	}
	return strings.TrimRight(text, "\n")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// indentRest indents every line but the first.
func indentRest(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
