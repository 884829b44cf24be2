package blobstore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

// jsonFields returns the JSON field names of a struct type, from its json tags.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestManifestSchemaMatchesDrivers keeps docs/manifest.schema.json from drifting away
// from drivers.Manifest and drivers.File.
func TestManifestSchemaMatchesDrivers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "manifest.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("manifest.schema.json is not valid JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", schema["$schema"])
	}
	defs, _ := schema["$defs"].(map[string]any)
	file, _ := defs["file"].(map[string]any)
	if file == nil {
		t.Fatal(`schema has no $defs.file`)
	}
	for _, tc := range []struct {
		where string
		obj   map[string]any
		typ   reflect.Type
	}{
		{"top level", schema, reflect.TypeOf(drivers.Manifest{})},
		{"$defs.file", file, reflect.TypeOf(drivers.File{})},
	} {
		props, _ := tc.obj["properties"].(map[string]any)
		if got, want := keys(props), jsonFields(tc.typ); !reflect.DeepEqual(got, want) {
			t.Errorf("%s properties %v, %s has JSON fields %v", tc.where, got, tc.typ, want)
		}
		if tc.obj["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false (ParseManifest refuses unknown fields)", tc.where)
		}
		req, _ := tc.obj["required"].([]any)
		for _, r := range req {
			if _, ok := props[r.(string)]; !ok {
				t.Errorf("%s requires unknown property %v", tc.where, r)
			}
		}
		// Fields without omitempty are always written, so they are required.
		for i := 0; i < tc.typ.NumField(); i++ {
			f := tc.typ.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || strings.Contains(opts, "omitempty") {
				continue
			}
			found := false
			for _, r := range req {
				found = found || r == name
			}
			if !found && name != "metadata" {
				t.Errorf("%s: %q has no omitempty but is not required", tc.where, name)
			}
		}
	}

	sha, _ := defs["sha256"].(map[string]any)
	if sha["pattern"] != "^[0-9a-f]{64}$" {
		t.Errorf("sha256 pattern = %v", sha["pattern"])
	}
	fprops := file["properties"].(map[string]any)
	enum, _ := fprops["compression"].(map[string]any)["enum"].([]any)
	var got []string
	for _, e := range enum {
		got = append(got, e.(string))
	}
	if strings.Join(got, ",") != ",none,zstd,gzip,lz4" {
		t.Errorf("compression enum = %q", got)
	}
	for _, c := range got { // every value the schema allows, ParseManifest accepts
		m := exampleManifest(t)
		m.Files[0].Compression = c
		if err := m.Check(); err != nil {
			t.Errorf("compression %q: %v", c, err)
		}
	}
	if format := schema["properties"].(map[string]any)["format"].(map[string]any)["const"]; format != drivers.ManifestFormat {
		t.Errorf("format const = %v, want %s", format, drivers.ManifestFormat)
	}
}

// exampleManifest returns the complete example of docs/manifest.md, parsed by
// drivers.ParseManifest.
func exampleManifest(t *testing.T) *drivers.Manifest {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "manifest.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/manifest.md has no ```json example")
	}
	m, err := drivers.ParseManifest(block[1])
	if err != nil {
		t.Fatalf("the example in docs/manifest.md does not parse: %v", err)
	}
	return m
}

func TestManifestDocExampleParses(t *testing.T) {
	m := exampleManifest(t)
	if m.Engine != "etcd" || m.Metadata["revision"] == nil || m.Metadata["total_key"] == nil {
		t.Errorf("example should show etcd metadata revision and total_key: %+v", m.Metadata)
	}
	if f := m.Files[0]; f.PartSize == 0 || len(f.Parts) == 0 {
		t.Errorf("example should show parts: %+v", f)
	}
}
