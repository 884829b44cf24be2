package blobstore

import (
	"context"
	"io"
	"strconv"
	"sync"

	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/transfer"
)

// The download pipeline (package transfer) reads a Source's objects through
// bucketObject; Fetch, FetchAll, FetchFiles, Stream and OpenFile run on it.

// pipeline is one download call: its Downloader and the bucket its reads go to.
type pipeline struct {
	s *Source
	d *transfer.Downloader

	mu    sync.Mutex
	data  *blob.Bucket
	owned bool // close data at the end of the call
}

func (p *pipeline) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owned && p.data != nil {
		p.data.Close()
	}
	p.data, p.owned = nil, false
}

// transferOptions turns the Source's TransferOptions and a call's FetchOptions into
// the pipeline's options.
func (s *Source) transferOptions(opts FetchOptions) transfer.Options {
	t := s.opts.Transfer
	o := transfer.Options{
		Concurrency: t.Concurrency, PartSize: t.PartSize, FilesAtOnce: t.FilesAtOnce, BandwidthLimit: t.BandwidthLimit,
		Retry: t.Retry, IdleTimeout: t.IdleTimeout, Classify: Classify, VerifyWholeFile: t.VerifyWholeFile,
		NoResume: t.NoResume, StateDir: t.StateDir, Progress: t.Progress, ProgressOut: t.ProgressOut, Log: t.Log,
	}
	if opts.StateDir != "" {
		o.StateDir = opts.StateDir
	}
	if opts.Log != nil {
		o.Log = *opts.Log
	}
	o.OnStats = func(st transfer.Stats) {
		s.stats.add(st)
		if t.OnStats != nil {
			t.OnStats(st)
		}
	}
	return o
}

// pipeline returns a Downloader for one call.
func (s *Source) pipeline(ctx context.Context, opts FetchOptions) (*pipeline, error) {
	d, err := transfer.New(s.transferOptions(opts))
	if err != nil {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "transfer options: %v", err),
			"check --concurrency, --part-size and --bandwidth-limit")
	}
	if s.bucket == nil {
		return nil, drivers.Errorf(drivers.Permanent, "snapshot %s: source is closed", s.loc.redacted)
	}
	return &pipeline{s: s, d: d}, nil
}

// dataBucket returns the bucket the call reads objects from. For s3:// it is a
// second connection whose client makes a single attempt per request, so that the
// pipeline's per-part retries (with their backoff, Retry-After and counting) are the
// only ones; metadata calls of the Source keep the client's own retries.
func (p *pipeline) dataBucket(ctx context.Context) (*blob.Bucket, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.data != nil {
		return p.data, nil
	}
	s := p.s
	if s.loc.scheme != "s3" {
		p.data = s.bucket
		return p.data, nil
	}
	o := s.opts
	o.Stores.MaxAttempts = 1
	// openStore refuses a location that already holds secrets (it adds the ones it
	// resolves): open from a copy; s.loc has them already for scrubbing.
	loc := *s.loc
	loc.secrets = nil
	b, owned, err := openObjectBucket(ctx, &loc, o)
	if err != nil {
		return nil, err
	}
	p.data, p.owned = b, owned
	return b, nil
}

// request describes file f (object key) to the pipeline.
func (p *pipeline) request(ctx context.Context, op string, f drivers.File, key, dst string, decompress bool) transfer.Request {
	s := p.s
	var obj transfer.Object = &bucketObject{p: p, key: key}
	if s.opts.WrapObject != nil {
		obj = s.opts.WrapObject(f.Name, obj)
	}
	return transfer.Request{
		Name: f.Name, File: f, Dst: dst, Decompress: decompress,
		Object:  obj,
		Corrupt: s.corrupt(f.Name),
		StoreErr: func(err error, class drivers.Class) error {
			e := s.storeErr(ctx, op, f.Name, key, err)
			if class.Retryable() && drivers.ClassOf(e) != class {
				e = drivers.WithClass(class, "", e)
			}
			return e
		},
		LocalErr: func(_, path string, err error) error { return localError(ctx, op, path, err) },
	}
}

// bucketObject is one object of a Source, as the pipeline reads it.
type bucketObject struct {
	p   *pipeline
	key string

	mu    sync.Mutex
	attrs *blob.Attributes
}

// Size reads the object's attributes (once) and returns its size.
func (o *bucketObject) Size(ctx context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attrs == nil {
		b, err := o.p.dataBucket(ctx)
		if err != nil {
			return 0, err
		}
		a, err := b.Attributes(ctx, o.key)
		if err != nil {
			return 0, err
		}
		o.attrs = a
	}
	return o.attrs.Size, nil
}

// Version identifies the object's content for resuming a file that has no digest:
// its ETag, modification time and size.
func (o *bucketObject) Version() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attrs == nil || (o.attrs.ETag == "" && o.attrs.ModTime.IsZero()) {
		return ""
	}
	return o.attrs.ETag + "/" + o.attrs.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z") + "/" + strconv.FormatInt(o.attrs.Size, 10)
}

func (o *bucketObject) NewRangeReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	b, err := o.p.dataBucket(ctx)
	if err != nil {
		return nil, err
	}
	return b.NewRangeReader(ctx, o.key, off, n, nil)
}

// transferTotals adds up the counters of a Source's download calls.
type transferTotals struct {
	mu sync.Mutex
	t  transfer.Stats
}

func (t *transferTotals) add(s transfer.Stats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := &t.t
	a.Files += s.Files
	a.FilesDone += s.FilesDone
	a.FilesSkipped += s.FilesSkipped
	a.FilesFailed += s.FilesFailed
	a.Bytes += s.Bytes
	a.BytesDone += s.BytesDone
	a.BytesFetched += s.BytesFetched
	a.BytesResumed += s.BytesResumed
	a.BytesWritten += s.BytesWritten
	a.Retries += s.Retries
	a.Throttled += s.Throttled
	a.Stalls += s.Stalls
	a.ChecksumRetries += s.ChecksumRetries
	a.Elapsed += s.Elapsed
}

// TransferStats returns the counters of every download this Source made: bytes
// fetched and resumed, files, retries, throttling, stalls and checksum retries
// (Active is empty; Elapsed adds up the calls).
func (s *Source) TransferStats() transfer.Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.t
}
