package transfer

import (
	"context"
	"sync"
)

// FetchAll fetches every request (each with its Dst), Options.FilesAtOnce at a
// time, sharing the Downloader's concurrency, bandwidth and memory limits. It stops
// at the first error, cancelling the files in progress (their partial data is kept
// for resume as for Fetch), and returns that error with the results of the files
// that completed, in request order.
func (d *Downloader) FetchAll(ctx context.Context, reqs []Request) ([]Result, error) {
	d.progressStart()
	defer d.progressStop()
	defer d.reportStats()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(reqs))
	ok := make([]bool, len(reqs))
	var mu sync.Mutex
	var firstErr error
	next := 0
	var wg sync.WaitGroup
	for range min(d.o.FilesAtOnce, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(reqs) || firstErr != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				r, err := d.fetch(ctx, reqs[i])
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel(err)
					}
				} else {
					results[i], ok[i] = r, true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var out []Result
	for i, r := range results {
		if ok[i] {
			out = append(out, r)
		}
	}
	return out, firstErr
}
