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
