package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// PartialSuffix is appended to a destination while it is being written.
const PartialSuffix = ".partial"

// Fetch downloads req to req.Dst: verified, atomically (through Dst+".partial"),
// with parallel ranged reads and, unless Options.NoResume, resumable. On failure
// nothing is left at Dst (a file already there is kept); the partial file and its
// journal are kept when the failure may pass (transient, throttled, cancelled) and
// the download is resumable, and removed otherwise.
func (d *Downloader) Fetch(ctx context.Context, req Request) (Result, error) {
	d.progressStart()
	defer d.progressStop()
	defer d.reportStats()
	return d.fetch(ctx, req)
}

// reportStats hands the counters to Options.OnStats at the end of a call.
func (d *Downloader) reportStats() {
	if d.o.OnStats != nil {
		d.o.OnStats(d.Stats())
	}
}

func (d *Downloader) fetch(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	res := Result{Name: req.Name, Path: req.Dst}
	j, err := d.newJob(req)
	if err != nil {
		return res, err
	}
	if req.Dst == "" {
		return res, drivers.Errorf(drivers.Permanent, "fetch %s: empty destination path", req.Name)
	}
	if ctx.Err() != nil {
		return res, cancelled(ctx, "fetch "+req.Name)
	}
	j.fc = d.c.beginFile(req.Name, j.f.Size)
	if j.decompressing() {
		res, err = j.fetchOrdered(ctx, &res)
	} else {
		res, err = j.fetchDirect(ctx, &res)
	}
	j.fc.end(err, res.Skipped)
	res.Retries = j.fc.retries.Load()
	res.Fetched = j.fc.fetched.Load()
	res.Duration = time.Since(start)
	if err == nil {
		ev := j.log.Info().Int64("bytes", res.Size).Dur("took", res.Duration).Int64("retries", res.Retries)
		if res.Resumed > 0 {
			ev = ev.Int64("resumed_bytes", res.Resumed)
		}
		if res.Skipped {
			ev = ev.Bool("already_complete", true)
		}
		if res.Written != res.Size {
			ev = ev.Int64("written", res.Written)
		}
		ev.Str("rate", rateText(res.Size-res.Resumed, res.Duration)).Msg("fetched and verified")
	}
	return res, err
}

// stateFor loads the journal of a destination written in mode, and reports whether
// the destination is already complete.
func (j *job) stateFor(dst, mode string) (*journal, string, bool) {
	hdr := j.header(dst, mode)
	if j.d.o.NoResume || !hdr.resumable() {
		return nil, "", false
	}
	jr, _ := loadJournal(journalPath(j.d.o.StateDir, j.req.Name, dst), hdr)
	if sum, ok := jr.completed(dst); ok && j.d.o.StateDir != "" {
		return jr, sum, true
	}
	jr.done = nil
	return jr, "", false
}

// finishJournal records a completed destination (state dir) or removes the journal.
func (j *job) finishJournal(jr *journal, dst, sum string) {
	if jr == nil {
		return
	}
	if j.d.o.StateDir == "" {
		jr.remove()
		return
	}
	if err := jr.markDone(dst, sum); err != nil {
		j.log.Debug().Err(err).Msg("cannot record the completed file; a rerun fetches it again")
		jr.remove()
	}
}

// keepForResume reports whether a failed download's partial data is worth keeping.
func keepForResume(err error) bool {
	switch drivers.ClassOf(err) {
	case drivers.Transient, drivers.Throttled, drivers.Cancelled:
		return true
	}
	return false
}

// fetchDirect writes the stored bytes at their offsets in the partial file.
func (j *job) fetchDirect(ctx context.Context, res *Result) (Result, error) {
	d, dst, f := j.d, j.req.Dst, j.f
	op := "fetch " + j.req.Name
	tmp := dst + PartialSuffix
	// A file without a digest is identified by its object's version, which the
	// size check reads: that check comes first.
	if f.SHA256 == "" {
		if err := j.checkStoredSize(ctx); err != nil {
			return *res, err
		}
	}
	jr, sum, complete := j.stateFor(dst, "stored")
	if complete {
		res.SHA256, res.Size, res.Written, res.Resumed, res.Skipped = sum, f.Size, f.Size, f.Size, true
		j.fc.addDone(f.Size)
		d.c.resumed.Add(f.Size)
		return *res, nil
	}
	if f.SHA256 != "" {
		if err := j.checkStoredSize(ctx); err != nil {
			return *res, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return *res, j.req.LocalErr(op, dst, err)
	}

	for fresh := false; ; fresh = true {
		r, err := j.directAttempt(ctx, jr, tmp, fresh)
		var again *restartError
		if errors.As(err, &again) && !fresh {
			j.log.Warn().Msg(again.Error() + "; fetching the whole file again")
			j.fc.addDone(-j.fc.done.Load())
			continue
		}
		if err != nil {
			if jr == nil || !keepForResume(err) {
				os.Remove(tmp)
				if jr != nil {
					jr.remove()
				}
			}
			return *res, err
		}
		r.Name, r.Path = res.Name, res.Path
		if ctx.Err() != nil {
			// Cancelled once every byte was in: without resume, nothing may stay.
			if jr == nil {
				os.Remove(tmp)
			}
			return *res, cancelled(ctx, op)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return *res, j.req.LocalErr(op, dst, err)
		}
		atomicfile.SyncDir(filepath.Dir(dst))
		j.finishJournal(jr, dst, r.SHA256)
		d.c.written.Add(f.Size - r.Resumed)
		return r, nil
	}
}

// restartError asks for a download from scratch: a resumed file failed its
// whole-file check, so the partial data kept may be what is wrong.
type restartError struct{ msg string }

func (e *restartError) Error() string { return e.msg }

// directAttempt runs one download into tmp, resuming from the journal unless fresh.
func (j *job) directAttempt(ctx context.Context, jr *journal, tmp string, fresh bool) (Result, error) {
	d, f := j.d, j.f
	op := "fetch " + j.req.Name
	res := Result{Size: f.Size, Written: f.Size}

	// The partial file: the one the journal describes, or a new one.
	var out *os.File
	if jr != nil && !fresh && len(jr.parts)+len(jr.ranges) > 0 {
		if o, err := os.OpenFile(tmp, os.O_RDWR, 0); err == nil {
			fi, serr := o.Stat()
			if serr == nil && fi.Mode().IsRegular() && fi.Size() == f.Size && inodeOf(o) == jr.hdr.Inode {
				out = o
			} else {
				o.Close()
			}
		}
	}
	if out == nil {
		o, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return res, j.req.LocalErr(op, tmp, err)
		}
		out = o
		if err := preallocate(out, f.Size); err != nil {
			out.Close()
			return res, j.req.LocalErr(op, tmp, err)
		}
		if jr != nil {
			jr.parts, jr.ranges = map[int]bool{}, nil
			jr.hdr.Inode = inodeOf(out)
			if err := jr.create(); err != nil {
				j.log.Debug().Err(err).Msg("cannot write the resume journal; this download will not be resumable")
				jr = nil
			}
		}
	}
	closed := false
	defer func() {
		if !closed {
			out.Close()
		}
		if jr != nil {
			jr.closeFile()
		}
	}()
	if jr != nil && jr.f == nil {
		if err := jr.openAppend(); err != nil {
			jr = nil
		}
	}

	units := j.layout(d.o.PartSize, max(d.maxInline, d.o.PartSize))
	needWhole := !j.parts || f.SHA256 == "" || d.o.VerifyWholeFile
	unitDone := make([]chan struct{}, len(units))
	resumed := make([]bool, len(units))
	for i, u := range units {
		unitDone[i] = make(chan struct{})
		if jr != nil && ((u.part >= 0 && jr.parts[u.part]) || (u.part < 0 && jr.covered(u.off, u.n))) {
			resumed[i] = true
			res.Resumed += u.n
		}
	}
	if res.Resumed > 0 {
		j.fc.addDone(res.Resumed)
		d.c.resumed.Add(res.Resumed)
		j.log.Info().Int64("resumed_bytes", res.Resumed).Int64("bytes", f.Size).Msg("resuming a partial download")
	}
	// pending counts the units left of each split part.
	pending := map[int]*atomic.Int32{}
	partUnits := map[int][]int{}
	for i, u := range units {
		if u.part >= 0 && !u.whole && !resumed[i] {
			if pending[u.part] == nil {
				pending[u.part] = &atomic.Int32{}
			}
			pending[u.part].Add(1)
			partUnits[u.part] = append(partUnits[u.part], i)
		}
	}

	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel(err)
	}
	sink := func(p []byte, at int64) error {
		_, err := out.WriteAt(p, at)
		return err
	}

	// The journal is committed every SyncInterval while the download runs.
	commitDone := make(chan struct{})
	stopCommit := make(chan struct{})
	if jr != nil {
		go func() {
			defer close(commitDone)
			t := time.NewTicker(d.o.SyncInterval)
			defer t.Stop()
			for {
				select {
				case <-stopCommit:
					return
				case <-t.C:
					if err := jr.commit(out); err != nil {
						j.log.Debug().Err(err).Msg("journal commit failed")
					}
				}
			}
		}()
	} else {
		close(commitDone)
	}

	// The whole-file hasher reads the file back in order as units land, a bounded
	// distance behind the fetchers.
	var lead chan struct{}
	var wholeSum string
	var hashErr error
	hashDone := make(chan struct{})
	if needWhole {
		lead = make(chan struct{}, d.o.Window)
		go func() {
			defer close(hashDone)
			h := sha256.New()
			bp := d.copy.Get().(*[]byte)
			defer d.copy.Put(bp)
			for i, u := range units {
				select {
				case <-unitDone[i]:
				case <-gctx.Done():
					return
				}
				if err := hashFileRange(gctx, h, out, u.off, u.n, *bp); err != nil {
					if gctx.Err() == nil {
						hashErr = j.req.LocalErr(op, tmp, err)
						fail(hashErr)
					}
					return
				}
				if !resumed[i] {
					<-lead
				}
			}
			wholeSum = hex.EncodeToString(h.Sum(nil))
		}()
	} else {
		close(hashDone)
	}

	var wg sync.WaitGroup
dispatch:
	for i, u := range units {
		if resumed[i] {
			close(unitDone[i])
			continue
		}
		if lead != nil {
			select {
			case lead <- struct{}{}:
			case <-gctx.Done():
				break dispatch
			}
		}
		if err := d.acquire(gctx); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := j.fetchUnit(gctx, u, sink, nil)
			d.release()
			var landed []int
			if err == nil {
				switch {
				case u.part < 0:
					j.journalAdd(jr, "r "+strconv.FormatInt(u.off, 10)+" "+strconv.FormatInt(u.n, 10))
					landed = []int{i}
				case u.whole:
					j.journalAdd(jr, "p "+strconv.Itoa(u.part))
					landed = []int{i}
				case pending[u.part].Add(-1) == 0:
					// The last read of a split part: the part is checked as a whole
					// before any of its reads counts as landed.
					if err = j.verifySplitPart(gctx, out, u.part, sink); err == nil {
						j.journalAdd(jr, "p "+strconv.Itoa(u.part))
						landed = partUnits[u.part]
					}
				}
			}
			if err != nil {
				fail(err)
				return
			}
			for _, k := range landed {
				close(unitDone[k])
			}
		}()
	}
	wg.Wait()
	<-hashDone
	close(stopCommit)
	<-commitDone
	if jr != nil {
		// Whatever happened, what was verified is made durable for a rerun.
		if err := jr.commit(out); err != nil {
			j.log.Debug().Err(err).Msg("journal commit failed")
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = cancelled(ctx, op)
	}
	if firstErr != nil {
		if isCancelled(firstErr) && ctx.Err() != nil {
			firstErr = cancelled(ctx, op)
		}
		return res, firstErr
	}

	res.SHA256 = f.SHA256
	if needWhole {
		if f.SHA256 != "" && wholeSum != f.SHA256 {
			if res.Resumed > 0 && !fresh {
				return res, &restartError{fmt.Sprintf("the resumed file's sha256 is %s, not %s", wholeSum, f.SHA256)}
			}
			return res, j.req.Corrupt("sha256 mismatch: expected %s, actual %s", f.SHA256, wholeSum)
		}
		res.SHA256 = wholeSum
	}
	if err := out.Sync(); err != nil {
		return res, j.req.LocalErr(op, tmp, err)
	}
	closed = true
	if err := out.Close(); err != nil {
		return res, j.req.LocalErr(op, tmp, err)
	}
	return res, nil
}

// journalAdd queues a journal line if there is a journal.
func (j *job) journalAdd(jr *journal, line string) {
	if jr != nil {
		jr.add(line)
	}
}

// verifySplitPart checks a part fetched as several reads by reading it back from
// the file; a mismatch reads the part again as one verified read, once.
func (j *job) verifySplitPart(ctx context.Context, out *os.File, p int, sink func([]byte, int64) error) error {
	off, n := j.partRange(p)
	h := sha256.New()
	bp := j.d.copy.Get().(*[]byte)
	err := hashFileRange(ctx, h, out, off, n, *bp)
	j.d.copy.Put(bp)
	if err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx, "verify "+j.req.Name)
		}
		return j.req.LocalErr("verify "+j.req.Name, out.Name(), err)
	}
	if hex.EncodeToString(h.Sum(nil)) == j.f.Parts[p] {
		return nil
	}
	j.d.c.checksumRetries.Add(1)
	j.fc.addRetry()
	j.fc.addDone(-n)
	j.retryLog().Int("part", p).Msg("part does not match its digest; reading it again")
	if err := j.d.acquire(ctx); err != nil {
		return cancelled(ctx, "fetch "+j.req.Name)
	}
	defer j.d.release()
	h = sha256.New()
	if err := j.fetchRange(ctx, off, n, h, sink, nil); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != j.f.Parts[p] {
		return j.req.Corrupt("%s sha256 mismatch: expected %s, actual %s (read twice)", partText(p, off, n), j.f.Parts[p], sum)
	}
	return nil
}

// hashFileRange feeds bytes [off, off+n) of f to h.
func hashFileRange(ctx context.Context, h hash.Hash, f *os.File, off, n int64, buf []byte) error {
	for n > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k := min(int64(len(buf)), n)
		m, err := f.ReadAt(buf[:k], off)
		h.Write(buf[:m])
		off += int64(m)
		n -= int64(m)
		if err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			return err
		}
	}
	return nil
}

// rateText formats n bytes over d as a rate.
func rateText(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return sizeText(int64(float64(n)/d.Seconds())) + "/s"
}

// sizeText formats a byte count with a binary unit.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}
