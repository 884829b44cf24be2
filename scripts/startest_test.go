package scripts_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/scripttest"
)

// TestStarlarkTests runs the shipped *_test.star files (restore-run test), from the
// repository directory and as embedded in the binary, so CI runs them.
func TestStarlarkTests(t *testing.T) {
	t.Run("scripts dir", func(t *testing.T) {
		files, err := scripttest.Find([]string{"."})
		if err != nil {
			t.Fatal(err)
		}
		runStarlarkTests(t, []engine.Source{engine.Embedded()}, files)
	})
	t.Run("embedded", func(t *testing.T) {
		files, err := scripttest.Embedded()
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatal("no *_test.star file is embedded")
		}
		runStarlarkTests(t, []engine.Source{engine.Embedded()}, files)
	})
}

func runStarlarkTests(t *testing.T, sources []engine.Source, files []scripttest.File) {
	t.Helper()
	var out bytes.Buffer
	sum := scripttest.Run(context.Background(), scripttest.Options{Sources: sources, Out: &out}, files)
	t.Log("\n" + out.String())
	if sum.Failed > 0 || sum.Broken > 0 || sum.Passed == 0 {
		t.Errorf("%d passed, %d failed, %d files did not run", sum.Passed, sum.Failed, sum.Broken)
	}
}

// Every shipped driver script has Starlark tests next to it.
func TestEveryDriverHasTests(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".star") || strings.HasSuffix(name, "_test.star") {
			continue
		}
		test := strings.TrimSuffix(name, ".star") + "_test.star"
		if _, err := os.Stat(test); err != nil {
			t.Errorf("scripts/%s has no tests: write scripts/%s (test_* functions run by restore-run test; see scripts/etcd_test.star and docs/overriding.md)", name, test)
		}
	}
}
