package transfer

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/testcheck"
)

const kib = 1 << 10

// fastOptions are small parts and short waits, so that tests run quickly.
func fastOptions() Options {
	return Options{
		Concurrency: 4, PartSize: MinPartSize, Window: 6,
		Retry:       RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxElapsed: 10 * time.Second},
		IdleTimeout: 200 * time.Millisecond, SyncInterval: 10 * time.Millisecond,
	}
}

func newDownloader(t *testing.T, o Options) *Downloader {
	t.Helper()
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fetchTo(t *testing.T, d *Downloader, obj *fakeObject, f drivers.File, dst string) (Result, error) {
	t.Helper()
	return d.Fetch(context.Background(), Request{Name: f.Name, File: f, Object: obj, Dst: dst})
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d, equal=%v", path, len(got), len(want), bytes.Equal(got, want))
	}
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 5000, 64 * kib, 64*kib + 1, 700*kib + 17}
	for _, size := range sizes {
		data := randBytes(size, int64(size))
		for _, partSize := range []int64{0, 10 * kib, 64 * kib, 200 * kib} {
			for _, whole := range []bool{false, true} {
				o := fastOptions()
				o.VerifyWholeFile = whole
				d := newDownloader(t, o)
				d.maxInline = 100 * kib // 200 KiB parts are split into reads
				f := manifestFile("f.bin", data, partSize)
				obj := &fakeObject{data: data}
				dst := filepath.Join(t.TempDir(), "out", "f.bin")
				res, err := fetchTo(t, d, obj, f, dst)
				if err != nil {
					t.Fatalf("size %d part %d: %v", size, partSize, err)
				}
				checkFile(t, dst, data)
				if res.SHA256 != hexSum(data) || res.Size != int64(size) || res.Fetched != int64(size) || res.Resumed != 0 {
					t.Errorf("size %d part %d: result %+v", size, partSize, res)
				}
				testcheck.Absent(t, dst+PartialSuffix, dst+JournalSuffix)

				var buf bytes.Buffer
				sres, err := d.Stream(context.Background(), Request{Name: f.Name, File: f, Object: obj}, &buf)
				if err != nil || !bytes.Equal(buf.Bytes(), data) || sres.SHA256 != hexSum(data) || sres.Written != int64(size) {
					t.Fatalf("Stream size %d part %d: err=%v equal=%v %+v", size, partSize, err, bytes.Equal(buf.Bytes(), data), sres)
				}
				r, err := d.Open(context.Background(), Request{Name: f.Name, File: f, Object: obj})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, data) || r.SHA256() != hexSum(data) {
					t.Fatalf("Open size %d part %d: err=%v", size, partSize, err)
				}
			}
		}
	}
}

func TestBareFileIsHashed(t *testing.T) {
	data := randBytes(300*kib, 3)
	d := newDownloader(t, fastOptions())
	dst := filepath.Join(t.TempDir(), "x")
	res, err := fetchTo(t, d, &fakeObject{data: data}, drivers.File{Name: "x", Size: int64(len(data))}, dst)
	if err != nil || res.SHA256 != hexSum(data) {
		t.Fatalf("err=%v sha=%s", err, res.SHA256)
	}
	checkFile(t, dst, data)
}

func TestWrongStoredSizeIsCorruption(t *testing.T) {
	data := randBytes(5000, 1)
	f := manifestFile("m", data, 1024)
	d := newDownloader(t, fastOptions())
	dst := filepath.Join(t.TempDir(), "m")
	for _, obj := range []*fakeObject{{data: data[:4900]}, {data: append(append([]byte(nil), data...), 'x')}} {
		_, err := fetchTo(t, d, obj, f, dst)
		testcheck.Class(t, err, drivers.Corruption, "size mismatch", "expected 5000 bytes")
		_, err = d.Stream(context.Background(), Request{Name: "m", File: f, Object: obj}, io.Discard)
		testcheck.Class(t, err, drivers.Corruption, "size mismatch")
		_, err = d.Open(context.Background(), Request{Name: "m", File: f, Object: obj})
		testcheck.Class(t, err, drivers.Corruption, "size mismatch")
		testcheck.Absent(t, dst, dst+PartialSuffix)
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	data := randBytes(640*kib+3, 5)
	for _, tc := range []struct {
		name  string
		fault *fault
		check func(t *testing.T, s Stats)
	}{
		{"reset mid-body", &fault{resetAfter: 20 * kib}, nil},
		{"truncated body", &fault{shortAfter: 7 * kib}, nil},
		{"stalled connection", &fault{stall: true, stallAfter: 3 * kib}, func(t *testing.T, s Stats) {
			if s.Stalls == 0 {
				t.Error("no stall counted")
			}
		}},
		{"503 slow down", &fault{status: 503, retryAfter: 30 * time.Millisecond}, func(t *testing.T, s Stats) {
			if s.Throttled == 0 {
				t.Error("no throttling counted")
			}
		}},
		{"500", &fault{status: 500}, nil},
		{"flipped byte in flight", &fault{doFlip: true, flip: 100 * kib}, func(t *testing.T, s Stats) {
			if s.ChecksumRetries == 0 {
				t.Error("no checksum retry counted")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"file", "stream"} {
				// Every third read fails, once each; a flip hits the first read of its byte.
				flipped := false
				obj := &fakeObject{data: data, faults: func(call int, off, n int64) *fault {
					if tc.fault.doFlip {
						if !flipped && off <= tc.fault.flip && tc.fault.flip < off+n {
							flipped = true
							return tc.fault
						}
						return nil
					}
					if call%3 == 0 && call < 12 {
						return tc.fault
					}
					return nil
				}}
				f := manifestFile("f", data, 64*kib)
				if tc.name == "truncated body" {
					f = manifestFile("f", data, 0) // partless: ranges of PartSize
				}
				d := newDownloader(t, fastOptions())
				var err error
				var res Result
				var out bytes.Buffer
				dst := filepath.Join(t.TempDir(), "f")
				start := time.Now()
				if mode == "file" {
					res, err = fetchTo(t, d, obj, f, dst)
				} else {
					res, err = d.Stream(context.Background(), Request{Name: "f", File: f, Object: obj}, &out)
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if mode == "file" {
					checkFile(t, dst, data)
				} else if !bytes.Equal(out.Bytes(), data) {
					t.Fatalf("stream bytes differ")
				}
				s := d.Stats()
				if s.Retries == 0 || res.Retries == 0 {
					t.Errorf("%s: no retry counted: %+v", mode, s)
				}
				if tc.check != nil {
					tc.check(t, s)
				}
				if time.Since(start) > 5*time.Second {
					t.Errorf("%s took %s", mode, time.Since(start))
				}
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	data := randBytes(10*kib, 1)
	obj := &fakeObject{data: data, faults: func(call int, _, _ int64) *fault {
		if call == 0 {
			return &fault{status: 429, retryAfter: 300 * time.Millisecond}
		}
		return nil
	}}
	d := newDownloader(t, fastOptions())
	start := time.Now()
	if _, err := fetchTo(t, d, obj, manifestFile("f", data, 0), filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("retried after %s, before the Retry-After of 300ms", el)
	}
}

func TestPermanentErrorsFailFast(t *testing.T) {
	data := randBytes(300*kib, 2)
	for _, tc := range []struct {
		name   string
		fault  *fault
		class  drivers.Class
		expect []string
	}{
		{"403", &fault{status: 403}, drivers.Permanent, []string{`"f"`, "HTTP 403"}},
		{"404", &fault{status: 404}, drivers.Permanent, []string{"HTTP 404"}},
		{"corrupt part", &fault{doFlip: true, flip: 70 * kib}, drivers.Corruption, []string{`"f"`, "part 1 (bytes 65536-131071)", "sha256 mismatch", "read twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &fakeObject{data: data, faults: func(int, int64, int64) *fault { return tc.fault }}
			d := newDownloader(t, fastOptions())
			dst := filepath.Join(t.TempDir(), "f")
			start := time.Now()
			_, err := fetchTo(t, d, obj, manifestFile("f", data, 64*kib), dst)
			testcheck.Class(t, err, tc.class, tc.expect...)
			if time.Since(start) > time.Second {
				t.Errorf("took %s to fail", time.Since(start))
			}
			testcheck.Absent(t, dst, dst+PartialSuffix, dst+JournalSuffix)
			_, err = d.Stream(context.Background(), Request{Name: "f", File: manifestFile("f", data, 64*kib), Object: obj}, io.Discard)
			testcheck.Class(t, err, tc.class, tc.expect...)
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	data := randBytes(10*kib, 2)
	obj := &fakeObject{data: data, faults: func(int, int64, int64) *fault { return &fault{status: 503} }}
	o := fastOptions()
	o.Retry.MaxAttempts = 3
	d := newDownloader(t, o)
	_, err := fetchTo(t, d, obj, manifestFile("f", data, 0), filepath.Join(t.TempDir(), "f"))
	testcheck.Class(t, err, drivers.Throttled, "gave up after 3 failed attempts", "HTTP 503")
	if obj.calls != 3 {
		t.Errorf("%d reads, want 3", obj.calls)
	}
}

func TestWholeFileMismatchWithoutParts(t *testing.T) {
	data := randBytes(200*kib, 2)
	f := manifestFile("f", data, 0)
	f.SHA256 = hexSum([]byte("other"))
	d := newDownloader(t, fastOptions())
	dst := filepath.Join(t.TempDir(), "f")
	_, err := fetchTo(t, d, &fakeObject{data: data}, f, dst)
	testcheck.Class(t, err, drivers.Corruption, "sha256 mismatch", f.SHA256, hexSum(data))
	testcheck.Absent(t, dst, dst+PartialSuffix, dst+JournalSuffix)

	// A stream delivers every byte, then fails instead of reaching EOF.
	r, err := d.Open(context.Background(), Request{Name: "f", File: f, Object: &fakeObject{data: data}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	testcheck.Class(t, err, drivers.Corruption, "sha256 mismatch")
	if len(got) != len(data) {
		t.Errorf("delivered %d bytes before the error", len(got))
	}
}

func TestStreamDeliversOnlyVerifiedParts(t *testing.T) {
	data := randBytes(300*kib, 2)
	obj := &fakeObject{data: data, faults: func(int, int64, int64) *fault { return &fault{doFlip: true, flip: 150 * kib} }}
	d := newDownloader(t, fastOptions())
	var out bytes.Buffer
	_, err := d.Stream(context.Background(), Request{Name: "f", File: manifestFile("f", data, 64*kib), Object: obj}, &out)
	testcheck.Class(t, err, drivers.Corruption, "part 2")
	if out.Len() > 128*kib {
		t.Errorf("delivered %d bytes: more than the parts before the bad one", out.Len())
	}
}

func TestResumeAfterFailure(t *testing.T) {
	for _, partSize := range []int64{64 * kib, 0} {
		data := randBytes(1024*kib+5, 9)
		f := manifestFile("f", data, partSize)
		dst := filepath.Join(t.TempDir(), "f")
		// The first run fails for good (throttled, out of retries) after half the reads.
		var failing atomic.Bool
		failing.Store(false)
		obj := &fakeObject{data: data, faults: func(call int, off, n int64) *fault {
			if off >= 512*kib {
				return &fault{status: 503}
			}
			return nil
		}}
		o := fastOptions()
		o.Retry.MaxAttempts = 2
		_, err := fetchTo(t, newDownloader(t, o), obj, f, dst)
		testcheck.Class(t, err, drivers.Throttled)
		if _, err := os.Stat(dst + JournalSuffix); err != nil {
			t.Fatalf("journal: %v", err)
		}
		testcheck.Absent(t, dst)

		obj2 := &fakeObject{data: data}
		res, err := fetchTo(t, newDownloader(t, fastOptions()), obj2, f, dst)
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, data)
		// What the first run completed before it failed (up to 512 KiB, less what
		// was cancelled in flight) is not fetched again.
		if res.Resumed < 256*kib || res.Resumed > 512*kib || obj2.fetched.Load() != int64(len(data))-res.Resumed {
			t.Errorf("part size %d: resumed %d, fetched %d of %d", partSize, res.Resumed, obj2.fetched.Load(), len(data))
		}
		testcheck.Absent(t, dst+PartialSuffix, dst+JournalSuffix)
	}
}

func TestResumeRefusesAChangedPartial(t *testing.T) {
	data := randBytes(512*kib, 9)
	f := manifestFile("f", data, 0) // no parts: only the whole-file sha256 can tell
	dst := filepath.Join(t.TempDir(), "f")
	obj := &fakeObject{data: data, faults: func(call int, off, n int64) *fault {
		if off >= 256*kib {
			return &fault{status: 403}
		}
		return nil
	}}
	o := fastOptions()
	_, err := fetchTo(t, newDownloader(t, o), obj, f, dst)
	testcheck.Class(t, err, drivers.Permanent)
	// A permanent failure removes the partial data: nothing to resume.
	testcheck.Absent(t, dst+PartialSuffix, dst+JournalSuffix)

	// Cancel a run half way: the partial data stays; then damage it.
	ctx, cancel := context.WithCancel(context.Background())
	obj = &fakeObject{data: data, faults: func(call int, off, n int64) *fault {
		if off >= 256*kib {
			cancel()
		}
		return nil
	}}
	_, err = newDownloader(t, o).Fetch(ctx, Request{Name: "f", File: f, Object: obj, Dst: dst})
	testcheck.Class(t, err, drivers.Cancelled)
	b, _ := os.ReadFile(dst + PartialSuffix)
	if len(b) != len(data) {
		t.Fatalf("partial has %d bytes", len(b))
	}
	// Damage a byte the journal says was written.
	jb, _ := os.ReadFile(dst + JournalSuffix)
	var off, n int64
	for _, l := range strings.Split(string(jb), "\n") {
		if _, err := fmt.Sscanf(l, "r %d %d", &off, &n); err == nil {
			break
		}
	}
	if n == 0 {
		t.Fatalf("the journal records no range:\n%s", jb)
	}
	pf, _ := os.OpenFile(dst+PartialSuffix, os.O_RDWR, 0)
	pf.WriteAt([]byte{^b[off+10]}, off+10)
	pf.Close()

	obj2 := &fakeObject{data: data}
	res, err := fetchTo(t, newDownloader(t, o), obj2, f, dst)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)
	if res.Resumed != 0 || obj2.fetched.Load() < int64(len(data)) {
		t.Errorf("resumed %d, fetched %d: the damaged partial should have been fetched again", res.Resumed, obj2.fetched.Load())
	}
}

func TestStateDirSkipsCompletedFiles(t *testing.T) {
	data := randBytes(200*kib, 4)
	f := manifestFile("dir/f", data, 64*kib)
	o := fastOptions()
	o.StateDir = filepath.Join(t.TempDir(), "state")
	dst := filepath.Join(t.TempDir(), "dir", "f")
	if _, err := fetchTo(t, newDownloader(t, o), &fakeObject{data: data}, f, dst); err != nil {
		t.Fatal(err)
	}
	testcheck.Absent(t, dst+JournalSuffix)
	obj := &fakeObject{data: data}
	res, err := fetchTo(t, newDownloader(t, o), obj, f, dst)
	if err != nil || !res.Skipped || obj.fetched.Load() != 0 || res.SHA256 != hexSum(data) {
		t.Fatalf("second fetch: err=%v %+v fetched %d", err, res, obj.fetched.Load())
	}
	// A changed destination is fetched again.
	os.WriteFile(dst, []byte("changed"), 0o644)
	res, err = fetchTo(t, newDownloader(t, o), obj, f, dst)
	if err != nil || res.Skipped {
		t.Fatalf("after a change: err=%v %+v", err, res)
	}
	checkFile(t, dst, data)
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch kind {
	case "zstd":
		zw, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case "gzip":
		w = gzip.NewWriter(&b)
	case "lz4":
		w = lz4.NewWriter(&b)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func TestDecompression(t *testing.T) {
	plain := bytes.Repeat(randBytes(3000, 1), 200) // compressible
	for _, kind := range []string{"zstd", "gzip", "lz4"} {
		t.Run(kind, func(t *testing.T) {
			stored := compress(t, kind, plain)
			f := manifestFile("f."+kind, stored, 0)
			f.Compression = kind
			if len(stored) > 2*MinPartSize {
				f = manifestFile("f."+kind, stored, MinPartSize)
				f.Compression = kind
			}
			d := newDownloader(t, fastOptions())
			obj := &fakeObject{data: stored}
			dst := filepath.Join(t.TempDir(), "f")
			res, err := d.Fetch(context.Background(), Request{Name: f.Name, File: f, Object: obj, Dst: dst, Decompress: true})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, plain)
			if res.Written != int64(len(plain)) || res.Size != int64(len(stored)) || res.SHA256 != hexSum(stored) {
				t.Errorf("result %+v", res)
			}
			var out bytes.Buffer
			if _, err := d.Stream(context.Background(), Request{Name: f.Name, File: f, Object: obj, Decompress: true}, &out); err != nil || !bytes.Equal(out.Bytes(), plain) {
				t.Fatalf("stream: %v", err)
			}
			// Without Decompress the stored bytes are written.
			if _, err := d.Fetch(context.Background(), Request{Name: f.Name, File: f, Object: obj, Dst: dst}); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, stored)

			// Stored bytes that match the manifest but do not decompress.
			junk := randBytes(5000, 3)
			jf := manifestFile("junk", junk, 0)
			jf.Compression = kind
			dst2 := filepath.Join(t.TempDir(), "junk")
			_, err = d.Fetch(context.Background(), Request{Name: "junk", File: jf, Object: &fakeObject{data: junk}, Dst: dst2, Decompress: true})
			testcheck.Class(t, err, drivers.Corruption, "do not decompress as "+kind)
			testcheck.Absent(t, dst2, dst2+PartialSuffix)

			// Corrupt stored bytes fail as corruption before decompression matters.
			bad := append([]byte(nil), stored...)
			bad[len(bad)/2] ^= 1
			_, err = d.Fetch(context.Background(), Request{Name: f.Name, File: f, Object: &fakeObject{data: bad}, Dst: dst2, Decompress: true})
			testcheck.Class(t, err, drivers.Corruption)
			if f.Parts != nil && !strings.Contains(err.Error(), "part") {
				t.Errorf("error %q does not name the part", err)
			}
			testcheck.Absent(t, dst2, dst2+PartialSuffix)
		})
	}
}

func TestTrailingDataAfterCompressedStream(t *testing.T) {
	plain := randBytes(1000, 1)
	stored := append(compress(t, "gzip", plain), []byte("trailing junk")...)
	f := manifestFile("f", stored, 0)
	f.Compression = "gzip"
	d := newDownloader(t, fastOptions())
	_, err := d.Stream(context.Background(), Request{Name: "f", File: f, Object: &fakeObject{data: stored}, Decompress: true}, io.Discard)
	testcheck.Class(t, err, drivers.Corruption)
}

func TestBandwidthLimit(t *testing.T) {
	data := randBytes(512*kib, 1)
	o := fastOptions()
	o.BandwidthLimit = 2 << 20
	d := newDownloader(t, o)
	start := time.Now()
	if _, err := fetchTo(t, d, &fakeObject{data: data}, manifestFile("f", data, 64*kib), filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
	// After the first burst, the rest flows at the limit.
	want := time.Duration(float64(len(data)-d.lim.Burst()) / float64(o.BandwidthLimit) * 0.9 * float64(time.Second))
	if el := time.Since(start); el < want {
		t.Errorf("512 KiB at 2 MiB/s took %s, want at least %s", el, want)
	}
}

func TestFetchAll(t *testing.T) {
	dir := t.TempDir()
	var reqs []Request
	var datas [][]byte
	for i := range 5 {
		data := randBytes(100*kib+i, int64(i))
		datas = append(datas, data)
		f := manifestFile("f"+string(rune('a'+i)), data, 32*kib)
		reqs = append(reqs, Request{Name: f.Name, File: f, Object: &fakeObject{data: data}, Dst: filepath.Join(dir, f.Name)})
	}
	o := fastOptions()
	o.FilesAtOnce = 3
	d := newDownloader(t, o)
	res, err := d.FetchAll(context.Background(), reqs)
	if err != nil || len(res) != 5 {
		t.Fatalf("FetchAll: %v, %d results", err, len(res))
	}
	for i, r := range reqs {
		checkFile(t, r.Dst, datas[i])
		if res[i].Name != r.Name {
			t.Errorf("result %d is %s", i, res[i].Name)
		}
	}
	if s := d.Stats(); s.FilesDone != 5 || s.BytesDone != s.Bytes || s.Files != 5 {
		t.Errorf("stats %+v", s)
	}

	// One corrupt file fails the whole call with its error.
	reqs[2].Object = &fakeObject{data: datas[2], faults: func(int, int64, int64) *fault { return &fault{doFlip: true, flip: 5} }}
	for _, r := range reqs {
		os.Remove(r.Dst)
	}
	_, err = newDownloader(t, o).FetchAll(context.Background(), reqs)
	testcheck.Class(t, err, drivers.Corruption, `"fc"`, "part 0")
}

func TestProgressBarAndLog(t *testing.T) {
	data := randBytes(256*kib, 1)
	var bar bytes.Buffer
	o := fastOptions()
	o.Progress, o.ProgressOut = ProgressBar, &syncBuffer{b: &bar}
	o.BandwidthLimit = 512 * kib // about half a second: a few redraws
	d := newDownloader(t, o)
	if _, err := fetchTo(t, d, &fakeObject{data: data}, manifestFile("member.db", data, 64*kib), filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
	out := bar.String()
	if !strings.Contains(out, "member.db") || !strings.Contains(out, "100%") || !strings.Contains(out, "/s") || !strings.Contains(out, "ETA") {
		t.Errorf("bar output: %q", out)
	}
}

type syncBuffer struct {
	mu atomic.Bool
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	for !s.mu.CompareAndSwap(false, true) {
	}
	defer s.mu.Store(false)
	return s.b.Write(p)
}

func TestCancelKeepsResumeState(t *testing.T) {
	data := randBytes(512*kib, 1)
	f := manifestFile("f", data, 64*kib)
	dst := filepath.Join(t.TempDir(), "f")
	ctx, cancel := context.WithCancel(context.Background())
	obj := &fakeObject{data: data, faults: func(call int, off, n int64) *fault {
		if call == 4 {
			cancel()
		}
		return nil
	}}
	_, err := newDownloader(t, fastOptions()).Fetch(ctx, Request{Name: "f", File: f, Object: obj, Dst: dst})
	testcheck.Class(t, err, drivers.Cancelled)
	testcheck.Absent(t, dst)
	for _, p := range []string{dst + PartialSuffix, dst + JournalSuffix} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// NoResume leaves nothing.
	o := fastOptions()
	o.NoResume = true
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	dst2 := filepath.Join(t.TempDir(), "g")
	obj.calls = 0
	_, err = newDownloader(t, o).Fetch(ctx, Request{Name: "f", File: f, Object: obj, Dst: dst2})
	testcheck.Class(t, err, drivers.Cancelled)
	testcheck.Absent(t, dst2, dst2+PartialSuffix, dst2+JournalSuffix)
}
