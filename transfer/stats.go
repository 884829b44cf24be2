package transfer

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters of a Downloader since it was created. Every byte count is
// of stored bytes (as in the manifest, before decompression) unless said otherwise.
type Stats struct {
	// Files is the number of files asked for; FilesDone of them completed
	// (FilesSkipped because a previous run had completed them), FilesFailed failed.
	Files, FilesDone, FilesSkipped, FilesFailed int64
	// Bytes is the stored size of the files asked for.
	Bytes int64
	// BytesDone is how much of Bytes is done: fetched into place, or taken from a
	// previous attempt.
	BytesDone int64
	// BytesFetched is what was read from the store, including bytes read again
	// after a retry.
	BytesFetched int64
	// BytesResumed is what a journal or a completed-file record let us skip.
	BytesResumed int64
	// BytesWritten is what was written to destinations (decompressed size).
	BytesWritten int64
	// Retries counts retried reads; Throttled, Stalls and ChecksumRetries count
	// those among them caused by a throttling answer, a stalled connection and a part
	// that did not match its digest.
	Retries, Throttled, Stalls, ChecksumRetries int64
	// Elapsed is the time since the Downloader started its first transfer.
	Elapsed time.Duration
	// Active are the files in progress, in the order they started.
	Active []FileProgress
}

// FileProgress is the progress of one file.
type FileProgress struct {
	Name    string
	Size    int64 // stored bytes
	Done    int64 // stored bytes done
	Retries int64
	started time.Time
}

// counters are the live counters behind Stats.
type counters struct {
	files, filesDone, filesSkipped, filesFailed atomic.Int64
	bytes, bytesDone, fetched, resumed, written atomic.Int64
	retries, throttled, stalls, checksumRetries atomic.Int64
	startOnce                                   sync.Once
	start                                       atomic.Pointer[time.Time]
	mu                                          sync.Mutex
	active                                      map[*fileCounters]struct{}
}

// fileCounters are the counters of one file in progress.
type fileCounters struct {
	c       *counters
	name    string
	size    int64
	done    atomic.Int64
	fetched atomic.Int64
	retries atomic.Int64
	started time.Time
}

func (c *counters) started() {
	c.startOnce.Do(func() {
		now := time.Now()
		c.start.Store(&now)
	})
}

// beginFile registers a file in progress.
func (c *counters) beginFile(name string, size int64) *fileCounters {
	c.started()
	f := &fileCounters{c: c, name: name, size: size, started: time.Now()}
	c.files.Add(1)
	c.bytes.Add(size)
	c.mu.Lock()
	if c.active == nil {
		c.active = map[*fileCounters]struct{}{}
	}
	c.active[f] = struct{}{}
	c.mu.Unlock()
	return f
}

// endFile unregisters a file; err is its outcome.
func (f *fileCounters) end(err error, skipped bool) {
	c := f.c
	c.mu.Lock()
	delete(c.active, f)
	c.mu.Unlock()
	switch {
	case err != nil:
		c.filesFailed.Add(1)
	case skipped:
		c.filesSkipped.Add(1)
		c.filesDone.Add(1)
	default:
		c.filesDone.Add(1)
	}
}

// addDone counts n stored bytes as done (negative to undo bytes that must be
// fetched again).
func (f *fileCounters) addDone(n int64) {
	f.done.Add(n)
	f.c.bytesDone.Add(n)
}

func (f *fileCounters) addRetry() {
	f.retries.Add(1)
	f.c.retries.Add(1)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Files: c.files.Load(), FilesDone: c.filesDone.Load(), FilesSkipped: c.filesSkipped.Load(), FilesFailed: c.filesFailed.Load(),
		Bytes: c.bytes.Load(), BytesDone: c.bytesDone.Load(), BytesFetched: c.fetched.Load(), BytesResumed: c.resumed.Load(),
		BytesWritten: c.written.Load(),
		Retries:      c.retries.Load(), Throttled: c.throttled.Load(), Stalls: c.stalls.Load(), ChecksumRetries: c.checksumRetries.Load(),
	}
	if st := c.start.Load(); st != nil {
		s.Elapsed = time.Since(*st)
	}
	c.mu.Lock()
	for f := range c.active {
		s.Active = append(s.Active, FileProgress{Name: f.name, Size: f.size, Done: f.done.Load(), Retries: f.retries.Load(), started: f.started})
	}
	c.mu.Unlock()
	sort.Slice(s.Active, func(i, j int) bool {
		if !s.Active[i].started.Equal(s.Active[j].started) {
			return s.Active[i].started.Before(s.Active[j].started)
		}
		return s.Active[i].Name < s.Active[j].Name
	})
	return s
}
