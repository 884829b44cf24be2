package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/builtins"
)

// docs/builtins.md is the output of `restore-run docs builtins`.
func TestBuiltinsReferenceInSync(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "builtins.md")
	got := builtinsReference(builtins.Modules())
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got) {
		t.Errorf("docs/builtins.md is out of date with the builtins' Go definitions; run\n\n  go run ./cmd/restore-run docs builtins > docs/builtins.md\n\nand commit the result. First difference:\n%s", lineDiff(string(want), string(got)))
	}
}

// The shipped scripts are formatted (restore-run fmt --check).
func TestShippedScriptsFormatted(t *testing.T) {
	files, err := starFiles([]string{filepath.Join("..", "..", "scripts")})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts found")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		formatted, err := formatStar(f, data)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if string(formatted) != string(data) {
			t.Errorf("%s is not formatted: run go run ./cmd/restore-run fmt -w %s\n%s", f, strings.TrimPrefix(filepath.ToSlash(f), "../../"), lineDiff(string(data), string(formatted)))
		}
	}
}
