package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/engine"
	"github.com/restore-run/restore-run/targets"
)

// storeFlags are the flags that configure object-store access: --store-config.
// The settings come from the environment, then the store config file, then the
// store: section of a --target file, each overriding the one before (see
// docs/stores.md).
type storeFlags struct {
	configPath string
	fl         *pflag.FlagSet
	// targetRef is the target of a command without --target (resume).
	targetRef string
}

func addStoreFlags(fl *pflag.FlagSet) *storeFlags {
	f := &storeFlags{fl: fl}
	fl.StringVar(&f.configPath, "config", "", "the config file (YAML): stores: (endpoints, regions, credentials by reference; docs/stores.md), retry: and timeouts: (docs/reliability.md) "+
		"(default $RESTORE_RUN_CONFIG, else $XDG_CONFIG_HOME/restore-run/config.yaml if it exists)")
	fl.StringVar(&f.configPath, "store-config", "", "the config file; the older name of --config")
	return f
}

// configFile returns the store config file to read and whether it was named
// explicitly (a missing explicit file is an error; a missing default is not).
func (f *storeFlags) configFile() (path string, explicit bool) {
	if f.configPath != "" {
		return f.configPath, true
	}
	if p := os.Getenv("RESTORE_RUN_CONFIG"); p != "" {
		return p, true
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "restore-run", "config.yaml"), false
}

// config returns the store configuration: the environment, the config file and,
// for a command with --target naming a target file, its store: section. A bad file
// is a configuration error (exit 2).
func (f *storeFlags) config() (blobstore.StoreConfig, error) {
	cfg := blobstore.StoreConfig{Env: os.LookupEnv}
	if path, explicit := f.configFile(); path != "" {
		_, err := os.Stat(path)
		switch {
		case err == nil:
			layer, err := blobstore.LoadStoreConfig(path)
			if err != nil {
				return cfg, engine.Usage(err)
			}
			cfg.Layers = append(cfg.Layers, layer)
		case explicit || !errors.Is(err, fs.ErrNotExist):
			_, err := blobstore.LoadStoreConfig(path) // the read error, named
			return cfg, engine.Usage(err)
		}
	}
	target := f.targetRef
	if tf := f.fl.Lookup("target"); tf != nil {
		target = tf.Value.String()
	}
	{
		if target != "" && !strings.Contains(target, "://") {
			if _, err := os.Stat(target); err == nil {
				section, err := targets.StoreSection(target)
				if err != nil {
					return cfg, nil // the run reports the target file's own problems
				}
				layer, err := blobstore.ParseStoreSection("target file "+target, section)
				if err != nil {
					return cfg, engine.Usage(err)
				}
				cfg.Layers = append(cfg.Layers, layer)
			}
		}
	}
	return cfg, nil
}
