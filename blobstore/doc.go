// Package blobstore opens snapshot references and moves snapshot files between a blob
// store and the local disk, verifying every byte against the manifest.
//
// A snapshot reference is one of:
//
//   - a local path or a file:// URL (file:///abs/dir, file://./relative/dir);
//   - s3://BUCKET/PREFIX (AWS and S3-compatible stores, AWS SDK v2), gs://BUCKET/PREFIX
//     and azblob://CONTAINER/PREFIX, reached as OpenOptions.Stores says: endpoint,
//     region, path style and credentials from the environment, a store config file
//     and a target file's store: section, secrets by reference (docs/stores.md);
//   - mem://NAME/PREFIX, an in-process memory store shared by every Open and Pack of
//     the same process (for tests and rehearsals).
//
// A reference whose last element is "latest" names the newest complete snapshot
// under its parent (ResolveLatest); List lists the snapshots under a prefix.
//
// The reference names either a snapshot prefix holding manifest.json (see
// docs/manifest.md) or a single "bare" native file, such as the output of
// `etcdctl snapshot save`. Open resolves it into a Source; Source.Fetch copies one file
// to local disk atomically, checking size, sha256 and per-part digests as it streams;
// Source.OpenFile streams a file through the same checks; Pack writes a snapshot and
// its manifest (the manifest last).
//
// Every error this package returns carries a drivers.Class (Classify maps raw store
// errors): Permanent for a missing snapshot, object or bucket, refused credentials
// or bad input; Corruption for bytes that do
// not match the manifest and for a manifest that does not parse; Transient for I/O
// errors of the store; Throttled when the store asks us to slow down; Cancelled when
// the context is done. References are shown with credentials removed (Source.Ref).
//
// The package is pure Go and knows nothing of Starlark; the blob builtin is a thin
// layer over it.
package blobstore
