package main

import (
	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/blobstore"
)

// transferFlags are the flags that tune downloads. (Filled in by the download
// pipeline work.)
type transferFlags struct{}

func addTransferFlags(fl *pflag.FlagSet) *transferFlags { return &transferFlags{} }

func (f *transferFlags) options() (blobstore.TransferOptions, error) {
	return blobstore.TransferOptions{}, nil
}
