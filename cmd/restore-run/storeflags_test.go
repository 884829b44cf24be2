package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/engine"
)

func TestStoreFlagsLayers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("stores:\n  - match: s3://backups/\n    endpoint: http://127.0.0.1:9\n"), 0o600)
	target := filepath.Join(dir, "target.yaml")
	os.WriteFile(target, []byte("engine: etcd\nstore:\n  region: target-region\n  secret_access_key: {env: SK_VAR}\n  access_key_id: {env: AK_VAR}\nmembers: []\n"), 0o600)

	parse := func(args ...string) (*storeFlags, error) {
		fl := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fl.String("target", "", "")
		sf := addStoreFlags(fl)
		return sf, fl.Parse(args)
	}
	t.Setenv("RESTORE_RUN_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "no-such-xdg"))
	sf, _ := parse("--store-config", cfg, "--target", target)
	c, err := sf.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Env == nil || len(c.Layers) != 2 || c.Layers[0].Source != "store config "+cfg || c.Layers[1].Source != "target file "+target ||
		c.Layers[1].Stores[0].Region != "target-region" {
		t.Fatalf("layers: %+v", c.Layers)
	}
	// Scratch targets and no default file: no layer.
	sf, _ = parse("--target", "scratch://etcd")
	if c, err := sf.config(); err != nil || len(c.Layers) != 0 {
		t.Fatalf("%+v %v", c, err)
	}
	// RESTORE_RUN_CONFIG, then XDG.
	t.Setenv("RESTORE_RUN_CONFIG", cfg)
	sf, _ = parse()
	if c, err := sf.config(); err != nil || len(c.Layers) != 1 {
		t.Fatalf("RESTORE_RUN_CONFIG: %+v %v", c, err)
	}
	t.Setenv("RESTORE_RUN_CONFIG", "")
	xdg := filepath.Join(dir, "xdg")
	os.MkdirAll(filepath.Join(xdg, "restore-run"), 0o755)
	os.WriteFile(filepath.Join(xdg, "restore-run", "config.yaml"), []byte("stores: []\n"), 0o600)
	t.Setenv("XDG_CONFIG_HOME", xdg)
	sf, _ = parse()
	if c, err := sf.config(); err != nil || len(c.Layers) != 1 {
		t.Fatalf("XDG: %+v %v", c, err)
	}
	// An explicit file that is missing, or bad, is a usage error.
	for _, tc := range []struct{ content, want string }{
		{"", "no-such.yaml"},
		{"stores: [{match: 's3://b/', session_token: clear}]", "in clear text"},
	} {
		p := filepath.Join(dir, "no-such.yaml")
		if tc.content != "" {
			p = filepath.Join(dir, "bad.yaml")
			os.WriteFile(p, []byte(tc.content), 0o600)
		}
		sf, _ = parse("--store-config", p)
		_, err := sf.config()
		var ue *engine.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != exitUsage || !asUsage(err, &ue) {
			t.Errorf("--store-config %s: %v (exit %d)", p, err, exitCode(err))
		}
	}
}

func asUsage(err error, ue **engine.UsageError) bool {
	e, ok := err.(*engine.UsageError)
	*ue = e
	return ok
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "8MiB": 8 << 20, "64KiB": 64 << 10, "1G": 1 << 30, "8mb": 8 << 20, "512B": 512} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "8XB", "2TiB", "abc"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
