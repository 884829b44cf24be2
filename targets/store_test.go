package targets

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreSection(t *testing.T) {
	text := goodEtcd + `
store:
  match: s3://backups/
  endpoint: http://127.0.0.1:7070
  secret_access_key: {env: RR_TEST_SK}
  access_key_id: {env: RR_TEST_AK}
`
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// The engine's checks never see the section, and its secrets stay references.
	tg, err := ParseFile(path)
	if err != nil {
		t.Fatalf("a target file with store: must parse: %v", err)
	}
	if _, ok := tg.Spec["store"]; ok || len(tg.SecretValues()) != 0 {
		t.Errorf("store section leaked into the spec or secrets: %+v", tg.Spec)
	}
	raw, err := StoreSection(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["endpoint"] != "http://127.0.0.1:7070" || !strings.Contains(string(raw), "RR_TEST_SK") {
		t.Errorf("StoreSection = %s (%v)", raw, err)
	}
	none := filepath.Join(t.TempDir(), "n.yaml")
	os.WriteFile(none, []byte(goodEtcd), 0o600)
	if raw, err := StoreSection(none); err != nil || raw != nil {
		t.Errorf("no section: %s %v", raw, err)
	}
}
