package blobstore

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/restore-run/restore-run/transfer"
)

// TransferOptions tune downloads (see docs/downloads.md). The zero value takes the
// defaults of package transfer, measured on a 2-core machine: 8 ranged reads of
// 8 MiB in flight, 2 files at once, no bandwidth limit, resume on, no progress.
type TransferOptions struct {
	// Concurrency is the number of ranged reads in flight at once (across the files
	// of one Fetch or FetchAll).
	Concurrency int
	// PartSize is the size of each ranged read of a file without manifest parts and
	// of a streamed or decompressed file; manifest parts are read whole up to 64 MiB.
	PartSize int64
	// FilesAtOnce is how many files FetchAll downloads at the same time.
	FilesAtOnce int
	// BandwidthLimit caps the bytes per second read from the store; 0: no limit.
	BandwidthLimit int64
	// Progress is how progress is shown: transfer.ProgressNone (or ""),
	// transfer.ProgressBar (on ProgressOut) or transfer.ProgressLog (a line on the
	// call's logger every few seconds).
	Progress transfer.ProgressMode
	// ProgressOut receives the progress bar (the CLI gives stderr on a terminal).
	ProgressOut io.Writer
	// StateDir holds resume journals and completed-file records; FetchWith's
	// StateDir wins over it. Empty: journals live next to each destination
	// (DST.partial.journal) and are removed when the file completes.
	StateDir string
	// NoResume turns resume off: a failed download leaves nothing behind.
	NoResume bool
	// VerifyWholeFile also hashes the whole file when every part was verified.
	VerifyWholeFile bool
	// IdleTimeout fails (and retries) a read that delivered nothing for this long;
	// default 30 s.
	IdleTimeout time.Duration
	// Retry bounds the retries of each part; zero fields take transfer.DefaultRetry.
	Retry transfer.RetryPolicy
	// Log receives progress lines, retries and per-file summaries when a call gives
	// no logger of its own.
	Log zerolog.Logger
	// OnStats, if set, sees the counters of every download call when it ends (bytes
	// fetched and resumed, retries, throttling, stalls).
	OnStats func(transfer.Stats)
}

// FetchOptions are the per-call settings of FetchWith, FetchFiles and StreamWith.
type FetchOptions struct {
	// Decompress writes the decompressed bytes of a compressed file (the manifest's
	// compression: zstd, gzip, lz4) rather than the stored ones. The stored bytes are
	// verified first, whatever this says.
	Decompress bool
	// StateDir overrides TransferOptions.StateDir (the blob builtin gives a
	// directory in the run's work dir).
	StateDir string
	// Log, if set, replaces TransferOptions.Log for this call.
	Log *zerolog.Logger
}
