package drivers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseManifest: any bytes parse or fail without a panic; a manifest that
// parses names only files that cannot escape a directory, and survives a JSON
// round trip unchanged.
func FuzzParseManifest(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("..", "testdata", "etcd", "quickstart", "manifest.json")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"format":"restore-run/v1","engine":"mysql","created":"2026-11-25T10:00:00Z","files":[{"name":"a/b.sql.zst","size":10,"sha256":"` + strings.Repeat("ab", 32) + `","compression":"zstd","parts":[{"size":10,"sha256":"` + strings.Repeat("cd", 32) + `"}]}]}`))
	f.Add([]byte(`{"format":"restore-run/v1","engine":"etcd","files":[{"name":"../x","size":1,"sha256":""}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			if err := CheckFileName(file.Name); err != nil {
				t.Fatalf("parsed a manifest whose file %q is refused by CheckFileName: %v", file.Name, err)
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal a parsed manifest: %v", err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("a parsed manifest does not parse again: %v\n%s", err, out)
		}
		out2, _ := json.Marshal(m2)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", out, out2)
		}
	})
}

// FuzzCheckFileName: a name CheckFileName accepts stays inside any directory it
// is joined to.
func FuzzCheckFileName(f *testing.F) {
	for _, s := range []string{"member.db", "a/b/c.sql", "../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", ".", "manifest.json", "a/./b", "..", "x/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckFileName(name) != nil {
			return
		}
		dir := "/work/download"
		joined := filepath.Join(dir, filepath.FromSlash(name))
		rel, err := filepath.Rel(dir, joined)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || rel == "." || filepath.IsAbs(rel) {
			t.Fatalf("accepted name %q escapes %s: %s", name, dir, joined)
		}
		if strings.ContainsRune(name, 0) {
			t.Fatalf("accepted a name with NUL: %q", name)
		}
	})
}
