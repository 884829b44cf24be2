// Package transfer downloads the files of a snapshot: parallel ranged reads of each
// object, several files at once, every byte verified against the manifest (per part
// as it arrives, and the whole file when it has no parts), decompressed (zstd,
// gzip, lz4) when asked, straight into the destination file or into a consumer's
// io.Writer, with bounded memory.
//
// A Fetch to a file writes each part at its offset in DST.partial as it arrives
// (no buffering beyond one read buffer per connection), records verified parts in a
// journal, and renames the partial file to DST once everything checked; a rerun
// after a crash fetches only the parts the journal does not list. An ordered
// download (Stream, Open, or a decompressing Fetch) fetches up to Options.Window
// parts ahead into memory buffers and delivers them in order.
//
// Every read is retried per part on transient and throttled errors (exponential
// backoff with full jitter, Retry-After honoured, a per-read idle timeout against
// stalled connections), and a part that does not match its digest is read once
// more before the download fails with a Corruption error naming the part.
//
// The package is pure Go: it knows drivers.File and drivers.Class, and reads
// through the small Object interface (blobstore adapts gocloud buckets to it).
// docs/downloads.md describes the pipeline, resume and tuning.
package transfer
