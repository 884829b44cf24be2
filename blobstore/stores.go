package blobstore

// StoreConfig configures object-store access. (Filled in by the S3 work.)
type StoreConfig struct{}
