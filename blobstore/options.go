package blobstore

import (
	"github.com/restore-run/restore-run/redact"
	"github.com/restore-run/restore-run/transfer"
)

// OpenOptions configure how a snapshot reference is opened and its files fetched.
type OpenOptions struct {
	// Stores says how to reach object stores (s3://, gs://, azblob://): endpoints,
	// regions, credentials by reference.
	Stores StoreConfig
	// Transfer tunes downloads: concurrency, part size, bandwidth, resume, progress.
	Transfer TransferOptions
	// Redactor, if set, learns every store secret so logs and errors mask it.
	Redactor *redact.Redactor
	// WrapObject, if set, wraps every object the download pipeline reads (its
	// size and its ranged reads), given the snapshot file's name. Drills inject
	// store faults with it (a slow, failing or corrupting store); the manifest
	// and listings are read directly.
	WrapObject func(name string, o transfer.Object) transfer.Object
}
