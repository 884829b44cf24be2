package blobstore

import "github.com/restore-run/restore-run/redact"

// OpenOptions configure how a snapshot reference is opened and its files fetched.
type OpenOptions struct {
	// Stores says how to reach object stores (s3://, gs://, azblob://): endpoints,
	// regions, credentials by reference.
	Stores StoreConfig
	// Transfer tunes downloads: concurrency, part size, bandwidth, resume, progress.
	Transfer TransferOptions
	// Redactor, if set, learns every store secret so logs and errors mask it.
	Redactor *redact.Redactor
}
