package main

import (
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/transfer"
)

// transferFlags are the flags that tune downloads (docs/downloads.md).
type transferFlags struct {
	concurrency    int
	partSize       string
	bandwidthLimit string
	filesAtOnce    int
	progress       string
	noResume       bool
	stallTimeout   string
}

func addTransferFlags(fl *pflag.FlagSet) *transferFlags {
	f := &transferFlags{}
	fl.IntVar(&f.concurrency, "concurrency", transfer.DefaultConcurrency, "ranged reads in flight at once, across the files being downloaded")
	fl.StringVar(&f.partSize, "part-size", "8MiB", "size of each ranged read of a file without manifest parts, and of the read-ahead buffers of a streamed or decompressed file (64KiB to 1GiB)")
	fl.StringVar(&f.bandwidthLimit, "bandwidth-limit", "0", "cap on the bytes per second read from the store, e.g. 200MiB (0: no limit)")
	fl.IntVar(&f.filesAtOnce, "files-at-once", transfer.DefaultFilesAtOnce, "files downloaded at the same time")
	fl.StringVar(&f.progress, "progress", "auto", "download progress: bar (on stderr), log (a line every 5 s), none, or auto (bar on a terminal, else log)")
	fl.StringVar(&f.stallTimeout, "stall-timeout", "30s", "a ranged read that delivers no byte for this long is a stalled connection: it is cancelled and retried")
	fl.BoolVar(&f.noResume, "no-resume", false, "do not keep partial downloads to resume (by default a rerun with the same --workdir fetches only what is missing)")
	return f
}

func (f *transferFlags) options() (blobstore.TransferOptions, error) {
	var o blobstore.TransferOptions
	if f.concurrency < 1 || f.concurrency > 256 {
		return o, &flagError{errorf("--concurrency %d: want 1 to 256", f.concurrency)}
	}
	if f.filesAtOnce < 1 || f.filesAtOnce > 256 {
		return o, &flagError{errorf("--files-at-once %d: want 1 to 256", f.filesAtOnce)}
	}
	ps, err := parseBytes(f.partSize)
	if err != nil || ps < transfer.MinPartSize || ps > transfer.MaxPartSize {
		return o, &flagError{errorf("--part-size %q: want a size from 64KiB to 1GiB, e.g. 8MiB", f.partSize)}
	}
	bw, err := parseBytes(strings.TrimSuffix(strings.TrimSpace(f.bandwidthLimit), "/s"))
	if err != nil || (bw > 0 && bw < 64<<10) {
		return o, &flagError{errorf("--bandwidth-limit %q: want bytes per second, at least 64KiB, e.g. 200MiB or 100MB (0: no limit)", f.bandwidthLimit)}
	}
	o.Concurrency, o.PartSize, o.BandwidthLimit, o.FilesAtOnce, o.NoResume = f.concurrency, ps, bw, f.filesAtOnce, f.noResume
	if f.stallTimeout != "" {
		d, err := time.ParseDuration(f.stallTimeout)
		if err != nil || d < 100*time.Millisecond {
			return o, &flagError{errorf("--stall-timeout %q: want a duration of at least 100ms, e.g. 30s", f.stallTimeout)}
		}
		o.IdleTimeout = d
	}
	switch f.progress {
	case "auto":
		if term.IsTerminal(int(os.Stderr.Fd())) {
			o.Progress, o.ProgressOut = transfer.ProgressBar, os.Stderr
		} else {
			o.Progress = transfer.ProgressLog
		}
	case "bar":
		o.Progress, o.ProgressOut = transfer.ProgressBar, os.Stderr
	case "log":
		o.Progress = transfer.ProgressLog
	case "none":
		o.Progress = transfer.ProgressNone
	default:
		return o, &flagError{errorf("--progress %q: want auto, bar, log or none", f.progress)}
	}
	return o, nil
}

// parseSize reads a byte count: a number with an optional unit. KiB, MiB, GiB, TiB
// (and K, M, G, T) are powers of 1024; KB, MB, GB, TB powers of 1000; B or nothing
// is bytes. Case does not matter; a fraction is allowed ("1.5GiB").
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, errorf("%q is not a size", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1 << 10,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1 << 20,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1 << 30,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, errorf("%q: unknown unit %q", s, unit)
	}
	v *= mult
	if v > math.MaxInt64/2 {
		return 0, errorf("%q is too large", s)
	}
	return int64(v), nil
}
