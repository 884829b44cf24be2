package scripts_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// runEmbedded runs the embedded script of driver through engine.Runner with the
// builtin modules replaced by fakes (the harness's modules function), and fast
// retries of download and validate. It may be called from another goroutine than
// the test's.
func runEmbedded(driver string, fakes func([]builtins.Module) []builtins.Module, o engine.Options) (*engine.Report, error) {
	h := engine.NewHost([]engine.Source{engine.Embedded()})
	h.Modules = fakes(h.Modules)
	cat := h.Discover()
	if len(cat.Problems) > 0 {
		return nil, fmt.Errorf("embedded scripts do not load: %v", cat.Problems)
	}
	o.Driver = driver
	o.Retry = engine.RetryPolicy{Attempts: map[string]int{drivers.PhaseDownload: 3, drivers.PhaseValidate: 3}, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	return (&engine.Runner{Catalog: cat}).Run(context.Background(), o)
}

// runFaked is runEmbedded for the test's goroutine: the work dir defaults to one
// kept under t.TempDir (tests look at it), and a run without a report fails the
// test.
func runFaked(t *testing.T, driver string, fakes func([]builtins.Module) []builtins.Module, o engine.Options) (*engine.Report, error) {
	t.Helper()
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(t.TempDir(), "work")
	}
	rep, err := runEmbedded(driver, fakes, o)
	if rep == nil {
		t.Fatalf("run returned no report: %v", err)
	}
	return rep, err
}

// fakeModules returns mods with every function of the modules named in answers
// replaced, through Module.WithImpl, by impl of its answer: the central wrapper
// still records, classifies and skips writes in plan mode. WithImpl drops the real
// Plan function; it is put back so that plan runs go through the real planning
// code (which only unpacks arguments and checks paths), as in production. A
// function without an answer fails the test, except the ones named in real
// (qualified names), which stay real.
func fakeModules[A any](t testing.TB, mods []builtins.Module, answers map[string]map[string]A, real map[string]bool, impl func(qualified, params string, ans A) builtins.Impl) []builtins.Module {
	t.Helper()
	out := append([]builtins.Module(nil), mods...)
	replaced := 0
	for i, m := range out {
		fakes, ok := answers[m.Name]
		if !ok {
			continue
		}
		fm := m
		for _, fn := range m.Funcs {
			q := m.Name + "." + fn.Name
			if real[q] {
				continue
			}
			ans, ok := fakes[fn.Name]
			if !ok {
				t.Fatalf("builtin %s has no fake: add one to the harness", q)
			}
			fm = fm.WithImpl(fn.Name, impl(q, fn.Params, ans))
		}
		for j := range fm.Funcs {
			fm.Funcs[j].Plan = m.Funcs[j].Plan
		}
		out[i] = fm
		replaced++
	}
	if replaced != len(answers) {
		t.Fatalf("replaced %d modules, want %d: a faked module is not registered", replaced, len(answers))
	}
	return out
}
