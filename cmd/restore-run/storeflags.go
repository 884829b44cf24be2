package main

import (
	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/blobstore"
)

// storeFlags are the flags that configure object-store access. (Filled in by the
// S3 work.)
type storeFlags struct{}

func addStoreFlags(fl *pflag.FlagSet) *storeFlags { return &storeFlags{} }

func (f *storeFlags) config() (blobstore.StoreConfig, error) { return blobstore.StoreConfig{}, nil }
