package transfer

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"

	"github.com/restore-run/restore-run/drivers"
)

// Defaults, chosen by measurement on a 2-core machine (docs/benchmarks.md): past 8
// parallel reads of 8 MiB neither a loopback S3 server nor a local directory got
// faster, and a larger part only raised the memory of ordered (streamed or
// decompressed) downloads.
const (
	DefaultConcurrency  = 8
	DefaultPartSize     = 8 << 20
	DefaultFilesAtOnce  = 2
	DefaultIdleTimeout  = 30 * time.Second
	DefaultSyncInterval = 2 * time.Second
	// MinPartSize and MaxPartSize bound Options.PartSize.
	MinPartSize = 64 << 10
	MaxPartSize = 1 << 30
	// maxInlinePart is the largest manifest part a direct (to file) download fetches
	// as one ranged read, verifying it as it streams. Larger parts are split into
	// PartSize reads and verified by reading the part back from the file.
	maxInlinePart = 64 << 20
	// copyBufferSize is the size of each read from the store.
	copyBufferSize = 1 << 20
)

// Options tune a Downloader. The zero value is usable: every zero field takes its
// default.
type Options struct {
	// Concurrency is the number of ranged reads in flight at once, across every file
	// of the Downloader. Default DefaultConcurrency.
	Concurrency int
	// PartSize is the size of each ranged read of a file whose manifest entry has no
	// parts, and of the reads of an ordered (streamed or decompressed) download. A
	// manifest part is never split across reads unless it is larger than PartSize
	// (ordered) or 64 MiB (to a file). Default DefaultPartSize.
	PartSize int64
	// FilesAtOnce is how many files FetchAll downloads at the same time. Default
	// DefaultFilesAtOnce.
	FilesAtOnce int
	// Window is the number of PartSize buffers an ordered download may hold (fetched
	// ahead of the consumer); it bounds the memory of ordered downloads at
	// Window × PartSize per Downloader. Default Concurrency + 2: every connection
	// busy while the consumer holds one buffer and one waits for it.
	Window int
	// BandwidthLimit caps the bytes per second read from the store, across every
	// file of the Downloader. 0: no limit.
	BandwidthLimit int64
	// Retry bounds the retries of each part.
	Retry RetryPolicy
	// IdleTimeout fails a read that delivered no byte for this long (a stalled
	// connection); the read is retried. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Classify gives the class of a store error and how long the store asked us to
	// wait (Retry-After), 0 if it did not. Nil: DefaultClassify.
	Classify func(err error) (drivers.Class, time.Duration)
	// VerifyWholeFile also computes and checks the whole-file sha256 of a file whose
	// parts are all verified. It is off by default: the parts cover every byte, and
	// the sequential whole-file hash caps throughput (docs/downloads.md). A file
	// without parts, or without a manifest sha256, is always hashed whole.
	VerifyWholeFile bool
	// Resume keeps a journal of verified parts so that a later download of the same
	// file to the same destination fetches only what is missing. Default true; set
	// NoResume to turn it off.
	NoResume bool
	// StateDir holds the resume journals and the records of completed files. Empty:
	// the journal is DST.partial.journal, next to the destination, and is removed
	// once the file is complete (so a completed file is fetched again by a rerun).
	StateDir string
	// SyncInterval is how often verified parts are made durable (the partial file
	// fdatasync'd, then the journal appended and fsync'd). A crash loses at most
	// this much verified work. Default DefaultSyncInterval.
	SyncInterval time.Duration
	// Progress says how progress is shown: ProgressNone (default), ProgressBar (a
	// redrawn line on ProgressOut), ProgressLog (a log line every LogEvery).
	Progress ProgressMode
	// ProgressOut receives the progress bar. Default: no bar.
	ProgressOut io.Writer
	// LogEvery is the interval of progress log lines. Default 5 s.
	LogEvery time.Duration
	// Log receives progress lines, retries and per-file summaries.
	Log zerolog.Logger
	// OnStats, if set, is called with the Downloader's counters when a Fetch,
	// FetchAll or Stream call ends.
	OnStats func(Stats)
}

// RetryPolicy bounds the retries of one part: exponential backoff with full jitter
// from BaseDelay, capped at MaxDelay, for at most MaxAttempts consecutive failures
// without progress and at most MaxElapsed in all. A Retry-After from the store
// lengthens the wait, never shortens it.
type RetryPolicy struct {
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	MaxElapsed  time.Duration
}

// DefaultRetry is the retry policy of a zero Options.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: 10, BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second, MaxElapsed: 5 * time.Minute}
}

// backoff returns the wait before retry number n (1-based): a uniformly random
// duration in [0, min(MaxDelay, BaseDelay × 2^(n-1))] ("full jitter").
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	if d > p.MaxDelay {
		d = p.MaxDelay
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// ProgressMode selects how progress is shown.
type ProgressMode string

// Progress modes.
const (
	ProgressNone ProgressMode = "none"
	ProgressBar  ProgressMode = "bar"
	ProgressLog  ProgressMode = "log"
)

// withDefaults returns o with every zero field set to its default, or an error for
// a value out of range.
func (o Options) withDefaults() (Options, error) {
	if o.Concurrency < 0 || o.FilesAtOnce < 0 || o.Window < 0 || o.BandwidthLimit < 0 || o.PartSize < 0 {
		return o, errors.New("transfer options must not be negative")
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize || o.PartSize > MaxPartSize {
		return o, fmt.Errorf("part size %d is out of range (%d to %d bytes)", o.PartSize, MinPartSize, MaxPartSize)
	}
	if o.FilesAtOnce == 0 {
		o.FilesAtOnce = DefaultFilesAtOnce
	}
	if o.Window == 0 {
		o.Window = o.Concurrency + 2
	}
	def := DefaultRetry()
	if o.Retry.MaxAttempts <= 0 {
		o.Retry.MaxAttempts = def.MaxAttempts
	}
	if o.Retry.BaseDelay <= 0 {
		o.Retry.BaseDelay = def.BaseDelay
	}
	if o.Retry.MaxDelay <= 0 {
		o.Retry.MaxDelay = def.MaxDelay
	}
	if o.Retry.MaxElapsed <= 0 {
		o.Retry.MaxElapsed = def.MaxElapsed
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Classify == nil {
		o.Classify = DefaultClassify
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 5 * time.Second
	}
	if o.Progress == "" {
		o.Progress = ProgressNone
	}
	switch o.Progress {
	case ProgressNone, ProgressBar, ProgressLog:
	default:
		return o, fmt.Errorf("progress mode %q: want none, bar or log", o.Progress)
	}
	return o, nil
}
