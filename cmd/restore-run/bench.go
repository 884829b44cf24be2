package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/transfer"
)

// The bench command measures the download pipeline against the tools it replaces,
// side by side in one run, and prints ratios (docs/benchmarks.md):
//
//  1. file://, verify+write: the pipeline vs `cp` then `sha256sum`;
//  2. s3:// on loopback (versitygw): the pipeline vs one sequential GET hashed
//     with sha256 and written to a file;
//  3. a zstd-compressed object: verify+decompress+write vs `zstd -dc | sha256sum`;
//  4. peak RSS (VmHWM) of a child process downloading a small and a large object.

type benchFlags struct {
	size, small string
	dir         string
	runs        int
	only        string
	versitygw   string
	sweep       bool
	keep        bool
	connLimit   string
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the download pipeline against cp+sha256sum, a single S3 GET and zstd -dc",
		Long: `Measure the download pipeline side by side with the tools it replaces, in one run,
and print the ratios (see docs/benchmarks.md):

  file   file:// object, verify+write, vs cp then sha256sum of the same file
  s3     s3:// object on a loopback versitygw, vs one sequential GET hashed with sha256
  zstd   zstd-compressed object, verify+decompress+write, vs zstd -dc | sha256sum
  rss    peak RSS of a child process fetching a --small and a --size object

It writes about 5 × --size bytes under --dir. The s3 benchmark needs versitygw
(./test.sh installs it into third_party/bin). Transfer flags tune the pipeline.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.size, "size", "2GiB", "object size")
	fl.StringVar(&f.small, "small", "200MiB", "the smaller object size of the rss benchmark")
	fl.StringVar(&f.dir, "dir", "", "directory for the objects and copies (default: a temporary directory, removed)")
	fl.IntVar(&f.runs, "runs", 3, "runs of each measurement; the median is reported")
	fl.StringVar(&f.only, "only", "file,s3,zstd,rss", "benchmarks to run, comma-separated")
	fl.StringVar(&f.versitygw, "versitygw", "", "versitygw binary (default $RESTORE_RUN_VERSITYGW or third_party/bin/versitygw)")
	fl.BoolVar(&f.sweep, "sweep", false, "also measure the s3 pipeline over concurrency × part size (to choose defaults)")
	fl.BoolVar(&f.keep, "keep", false, "keep --dir's contents")
	fl.StringVar(&f.connLimit, "conn-limit", "80MiB", "also run the s3 benchmark through a proxy capping each connection at this many bytes per second (the single-stream ceiling of a real S3 connection; 0: skip)")
	tf := addTransferFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		topts, err := tf.options()
		if err != nil {
			return err
		}
		topts.Progress, topts.ProgressOut = transfer.ProgressNone, nil
		return runBench(cmd.Context(), cmd.OutOrStdout(), f, topts)
	}
	cmd.AddCommand(newBenchChildCmd())
	return cmd
}

// bench is one benchmark run's state.
type bench struct {
	ctx   context.Context
	out   io.Writer
	f     *benchFlags
	topts blobstore.TransferOptions
	dir   string
	size  int64
	small int64
	only  map[string]bool
}

func runBench(ctx context.Context, out io.Writer, f *benchFlags, topts blobstore.TransferOptions) error {
	size, err := parseBytes(f.size)
	if err != nil || size < 1<<20 {
		return &flagError{errorf("--size %q: want at least 1MiB", f.size)}
	}
	small, err := parseBytes(f.small)
	if err != nil || small < 1<<20 || small > size {
		return &flagError{errorf("--small %q: want at least 1MiB and at most --size", f.small)}
	}
	if f.runs < 1 {
		return &flagError{errorf("--runs %d: want at least 1", f.runs)}
	}
	b := &bench{ctx: ctx, out: out, f: f, topts: topts, size: size, small: small, only: map[string]bool{}}
	for _, s := range strings.Split(f.only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "file", "s3", "zstd", "rss":
			b.only[s] = true
		default:
			return &flagError{errorf("--only %q: want file, s3, zstd or rss", s)}
		}
	}
	b.dir = f.dir
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "restore-run-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(b.dir)
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	b.machine()
	if b.only["file"] || b.only["rss"] {
		if err := b.benchFile(); err != nil {
			return err
		}
	}
	if b.only["zstd"] {
		if err := b.benchZstd(); err != nil {
			return err
		}
	}
	if b.only["s3"] {
		if err := b.benchS3(); err != nil {
			return err
		}
	}
	if b.only["rss"] {
		if err := b.benchRSS(); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

// machine prints what the figures were measured on.
func (b *bench) machine() {
	model := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if fs := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(fs) >= 2 {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			mem = sizeText(kb << 10)
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		defer b.printf("load average at the start: %s (other work on the machine skews every figure)\n\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	o := b.topts
	b.printf("machine: %d CPUs (%s), %s RAM, %s %s/%s; objects under %s\n", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, b.dir)
	b.printf("pipeline: concurrency %d, part size %s, files at once %d; %d runs each, median; warm page cache\n",
		o.Concurrency, sizeText(o.PartSize), o.FilesAtOnce, b.f.runs)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	default:
		return strconv.FormatInt(n, 10) + " B"
	}
}

// measure runs fn f.runs times and returns the median duration.
func (b *bench) measure(fn func() error) (time.Duration, error) {
	var ds []time.Duration
	for range b.f.runs {
		syscall.Sync() // start each run without the previous one's writeback
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

// row prints one measurement, and its ratio to base (>1: faster than base).
func (b *bench) row(name string, bytes int64, d, base time.Duration) {
	rate := float64(bytes) / d.Seconds() / (1 << 20)
	ratio := ""
	if base > 0 {
		ratio = fmt.Sprintf("  %.2fx the baseline's speed", base.Seconds()/d.Seconds())
	}
	b.printf("  %-44s %8.2f s %8.0f MiB/s%s\n", name, d.Seconds(), rate, ratio)
}

// writeRandom writes n random bytes to path.
func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 4<<20)
	for n > 0 {
		k := min(int64(len(buf)), n)
		r.Read(buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n -= k
	}
	return f.Close()
}

// writeCompressible writes n bytes that compress about 3:1 with zstd: lines of a
// key-value dump with random numbers, and a random 4 KiB block in every 64 KiB.
func writeCompressible(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	r := rand.New(rand.NewPCG(1, 2))
	cr := rand.NewChaCha8([32]byte{9})
	var line []byte
	noise := make([]byte, 4<<10)
	var written int64
	for written < n {
		if written%(64<<10) < 100 {
			cr.Read(noise)
			k := min(int64(len(noise)), n-written)
			w.Write(noise[:k])
			written += k
			continue
		}
		line = append(line[:0], "/registry/pods/ns-"...)
		line = strconv.AppendUint(line, r.Uint64N(50), 10)
		line = append(line, "/pod-"...)
		line = strconv.AppendUint(line, r.Uint64N(1e9), 16)
		line = append(line, ` {"rev": `...)
		line = strconv.AppendUint(line, r.Uint64N(1e12), 10)
		line = append(line, `, "node": "node-`...)
		line = strconv.AppendUint(line, r.Uint64N(200), 10)
		line = append(line, `", "phase": "Running"}`+"\n"...)
		k := min(int64(len(line)), n-written)
		w.Write(line[:k])
		written += k
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runCmd(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// pack writes a local snapshot of one file and returns its directory.
func (b *bench) pack(name, src string, partSize int64, compression string, dest string, stores blobstore.StoreConfig) error {
	_, err := blobstore.Pack(b.ctx, blobstore.PackOptions{Engine: "etcd", Files: []blobstore.PackFile{{Path: src, Name: name}},
		Dest: dest, PartSize: partSize, Compression: compression, Overwrite: true, Stores: stores})
	return err
}

// fetch runs the pipeline once: ref's file name to dst, removed afterwards.
func (b *bench) fetch(ref string, opts blobstore.OpenOptions, name, dst string, fo blobstore.FetchOptions) error {
	s, err := blobstore.OpenWith(b.ctx, ref, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	os.Remove(dst)
	_, err = s.FetchWith(b.ctx, name, dst, fo)
	os.Remove(dst)
	return err
}

// stream runs the pipeline once into io.Discard.
func (b *bench) stream(ref string, opts blobstore.OpenOptions, name string, decompress bool) error {
	s, err := blobstore.OpenWith(b.ctx, ref, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Stream(b.ctx, name, io.Discard, decompress)
	return err
}

// benchFile is benchmark 1 (and the local snapshots of the rss benchmark).
func (b *bench) benchFile() error {
	src := filepath.Join(b.dir, "object.bin")
	b.printf("preparing a %s random object...\n", sizeText(b.size))
	if err := writeRandom(src, b.size); err != nil {
		return err
	}
	for _, p := range []struct {
		dir  string
		part int64
	}{{"snap-parts", 8 << 20}, {"snap-whole", 0}} {
		if err := b.pack("object.bin", src, p.part, "", filepath.Join(b.dir, p.dir), blobstore.StoreConfig{}); err != nil {
			return err
		}
	}
	os.Remove(src)
	if !b.only["file"] {
		return nil
	}
	stored := filepath.Join(b.dir, "snap-parts", "object.bin")
	dst := filepath.Join(b.dir, "copy.bin")
	b.printf("\n1. file://, %s object, verify+write\n", sizeText(b.size))
	base, err := b.measure(func() error {
		os.Remove(dst)
		defer os.Remove(dst)
		if err := runCmd("cp", stored, dst); err != nil {
			return err
		}
		return runCmd("sha256sum", dst)
	})
	if err != nil {
		return err
	}
	b.row("baseline: cp, then sha256sum of the copy", b.size, base, 0)
	durable, err := b.measure(func() error {
		os.Remove(dst)
		defer os.Remove(dst)
		if err := runCmd("cp", stored, dst); err != nil {
			return err
		}
		if err := runCmd("sync", dst); err != nil {
			return err
		}
		return runCmd("sha256sum", dst)
	})
	if err != nil {
		return err
	}
	b.row("baseline: cp, sync (fsync), sha256sum", b.size, durable, base)
	for _, v := range []struct {
		name, snap string
		whole      bool
	}{
		{"pipeline, 8 MiB manifest parts", "snap-parts", false},
		{"pipeline, parts + whole-file sha256 too", "snap-parts", true},
		{"pipeline, no manifest parts (whole sha256)", "snap-whole", false},
	} {
		o := b.topts
		o.VerifyWholeFile = v.whole
		d, err := b.measure(func() error {
			return b.fetch(filepath.Join(b.dir, v.snap), blobstore.OpenOptions{Transfer: o}, "object.bin", dst, blobstore.FetchOptions{})
		})
		if err != nil {
			return err
		}
		b.row(v.name, b.size, d, base)
	}
	b.printf("  verify only (nothing written):\n")
	vbase, err := b.measure(func() error { return runCmd("sha256sum", stored) })
	if err != nil {
		return err
	}
	b.row("baseline: sha256sum", b.size, vbase, 0)
	for _, v := range []struct {
		name, snap string
		whole      bool
	}{
		{"pipeline stream, 8 MiB parts", "snap-parts", false},
		{"pipeline stream, parts + whole sha256", "snap-parts", true},
		{"pipeline stream, no parts (whole sha256)", "snap-whole", false},
	} {
		o := b.topts
		o.VerifyWholeFile = v.whole
		d, err := b.measure(func() error {
			return b.stream(filepath.Join(b.dir, v.snap), blobstore.OpenOptions{Transfer: o}, "object.bin", false)
		})
		if err != nil {
			return err
		}
		b.row(v.name, b.size, d, vbase)
	}
	b.printf("  (the pipeline fsyncs its output before renaming it into place; cp alone does not)\n")
	return nil
}

// benchZstd is benchmark 3.
func (b *bench) benchZstd() error {
	plain := filepath.Join(b.dir, "plain.bin")
	b.printf("\npreparing a %s compressible object and its zstd snapshot...\n", sizeText(b.size))
	if err := writeCompressible(plain, b.size); err != nil {
		return err
	}
	snap := filepath.Join(b.dir, "snap-zstd")
	if err := b.pack("plain.bin", plain, 8<<20, "zstd", snap, blobstore.StoreConfig{}); err != nil {
		return err
	}
	os.Remove(plain)
	stored := filepath.Join(snap, "plain.bin")
	fi, err := os.Stat(stored)
	if err != nil {
		return err
	}
	b.printf("\n3. zstd object: %s stored, %s decompressed\n", sizeText(fi.Size()), sizeText(b.size))
	base, err := b.measure(func() error {
		return runCmd("sh", "-c", "zstd -dc -- \"$1\" | sha256sum", "sh", stored)
	})
	if err != nil {
		return err
	}
	b.row("baseline: zstd -dc | sha256sum", b.size, base, 0)
	dst := filepath.Join(b.dir, "plain.out")
	d, err := b.measure(func() error {
		return b.fetch(snap, blobstore.OpenOptions{Transfer: b.topts}, "plain.bin", dst, blobstore.FetchOptions{Decompress: true})
	})
	if err != nil {
		return err
	}
	b.row("pipeline: verify + decompress + write file", b.size, d, base)
	d, err = b.measure(func() error { return b.stream(snap, blobstore.OpenOptions{Transfer: b.topts}, "plain.bin", true) })
	if err != nil {
		return err
	}
	b.row("pipeline: verify + decompress, streamed", b.size, d, base)
	return nil
}

// versitygw is a loopback S3 server for the s3 benchmark.
type versitygw struct {
	cmd              *exec.Cmd
	endpoint, ak, sk string
	dir              string
}

func (b *bench) startVersitygw() (*versitygw, error) {
	bin := b.f.versitygw
	if bin == "" {
		bin = os.Getenv("RESTORE_RUN_VERSITYGW")
	}
	if bin == "" {
		bin = filepath.Join("third_party", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the s3 benchmark needs versitygw: %v (run ./test.sh once, or give --versitygw)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	v := &versitygw{endpoint: "http://" + addr, ak: "BENCHKEY", sk: "benchsecret0123456789", dir: filepath.Join(b.dir, "s3root")}
	if err := os.MkdirAll(filepath.Join(v.dir, "bench"), 0o755); err != nil {
		return nil, err
	}
	v.cmd = exec.Command(bin, "--port", addr, "--region", "us-east-1", "--quiet", "posix", v.dir)
	v.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+v.ak, "ROOT_SECRET_ACCESS_KEY="+v.sk)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := v.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(v.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			v.stop()
			return nil, fmt.Errorf("versitygw did not answer on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v, nil
}

func (v *versitygw) stop() {
	if v.cmd.Process != nil {
		v.cmd.Process.Signal(syscall.SIGTERM)
		v.cmd.Wait()
	}
}

func (v *versitygw) stores() blobstore.StoreConfig {
	yes := true
	env := map[string]string{"BENCH_AK": v.ak, "BENCH_SK": v.sk}
	return blobstore.StoreConfig{
		Env: func(k string) (string, bool) { s, ok := env[k]; return s, ok },
		Layers: []blobstore.StoreLayer{{Source: "bench", Stores: []blobstore.StoreEntry{{
			Match: "s3://", Endpoint: v.endpoint, Region: "us-east-1", PathStyle: &yes,
			AccessKeyID: &blobstore.SecretRef{Env: "BENCH_AK"}, SecretAccessKey: &blobstore.SecretRef{Env: "BENCH_SK"},
		}}}},
	}
}

func (v *versitygw) client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(v.endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(v.ak, v.sk, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// sequentialGet is the single-stream baseline: one GET, hashed with sha256 and
// written to dst, fsynced.
func (v *versitygw) sequentialGet(ctx context.Context, key, dst, want string) error {
	out, err := v.client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	h := sha256.New()
	var w io.Writer = h
	if dst != "" {
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer os.Remove(dst)
		defer f.Close()
		w = io.MultiWriter(f, h)
		defer f.Sync()
	}
	if _, err := io.CopyBuffer(w, out.Body, make([]byte, 1<<20)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		return fmt.Errorf("sequential GET: sha256 %s, want %s", got, want)
	}
	return nil
}

// benchS3 is benchmark 2.
func (b *bench) benchS3() error {
	v, err := b.startVersitygw()
	if err != nil {
		return err
	}
	defer v.stop()
	src := filepath.Join(b.dir, "s3-object.bin")
	b.printf("\npreparing a %s random object in a loopback versitygw...\n", sizeText(b.size))
	if err := writeRandom(src, b.size); err != nil {
		return err
	}
	stores := v.stores()
	for _, p := range []struct {
		prefix string
		part   int64
	}{{"parts", 8 << 20}, {"whole", 0}} {
		if err := b.pack("object.bin", src, p.part, "", "s3://bench/"+p.prefix, stores); err != nil {
			return err
		}
	}
	os.Remove(src)
	s, err := blobstore.OpenWith(b.ctx, "s3://bench/parts", blobstore.OpenOptions{Stores: stores})
	if err != nil {
		return err
	}
	want := s.Manifest().Files[0].SHA256
	s.Close()

	dst := filepath.Join(b.dir, "s3-copy.bin")
	b.printf("\n2. s3:// on loopback (versitygw), %s object, verify+write (fsynced)\n", sizeText(b.size))
	base, err := b.measure(func() error { return v.sequentialGet(b.ctx, "parts/object.bin", dst, want) })
	if err != nil {
		return err
	}
	b.row("baseline: one sequential GET + sha256", b.size, base, 0)
	for _, c := range []struct {
		name, ref string
		conc      int
	}{
		{"pipeline, 8 MiB manifest parts", "s3://bench/parts", 0},
		{"pipeline, no manifest parts", "s3://bench/whole", 0},
		{"pipeline, concurrency 1 (sequential parts)", "s3://bench/parts", 1},
	} {
		o := b.topts
		if c.conc > 0 {
			o.Concurrency = c.conc
		}
		d, err := b.measure(func() error {
			return b.fetch(c.ref, blobstore.OpenOptions{Stores: stores, Transfer: o}, "object.bin", dst, blobstore.FetchOptions{})
		})
		if err != nil {
			return err
		}
		b.row(c.name, b.size, d, base)
	}
	b.printf("  to a consumer (nothing written):\n")
	sbase, err := b.measure(func() error { return v.sequentialGet(b.ctx, "parts/object.bin", "", want) })
	if err != nil {
		return err
	}
	b.row("baseline: one sequential GET + sha256", b.size, sbase, 0)
	for _, c := range []struct {
		name, ref string
		conc      int
	}{
		{"pipeline stream, 8 MiB manifest parts", "s3://bench/parts", 0},
		{"pipeline stream, no manifest parts", "s3://bench/whole", 0},
	} {
		o := b.topts
		d, err := b.measure(func() error {
			return b.stream(c.ref, blobstore.OpenOptions{Stores: stores, Transfer: o}, "object.bin", false)
		})
		if err != nil {
			return err
		}
		b.row(c.name, b.size, d, sbase)
	}
	if limit, _ := parseBytes(b.f.connLimit); limit > 0 {
		if err := b.benchS3Capped(v, limit, want); err != nil {
			return err
		}
	}
	if b.f.sweep {
		b.printf("\n  sweep: pipeline stream of s3://bench/whole (ranged reads of PART), one run each\n")
		for _, ps := range []int64{2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20} {
			for _, conc := range []int{1, 2, 4, 8, 16} {
				o := b.topts
				o.Concurrency, o.PartSize = conc, ps
				start := time.Now()
				if err := b.stream("s3://bench/whole", blobstore.OpenOptions{Stores: stores, Transfer: o}, "object.bin", false); err != nil {
					return err
				}
				b.row(fmt.Sprintf("part %s, concurrency %d", sizeText(ps), conc), b.size, time.Since(start), sbase)
			}
		}
	}
	return nil
}

// benchS3Capped repeats the s3 stream measurements through a proxy that caps each
// connection's download rate, as a real S3 connection is capped (about 80 MB/s):
// what parallel ranged reads are for.
func (b *bench) benchS3Capped(v *versitygw, limit int64, want string) error {
	p, err := startCappedProxy(strings.TrimPrefix(v.endpoint, "http://"), limit)
	if err != nil {
		return err
	}
	defer p.Close()
	capped := *v
	capped.endpoint = "http://" + p.Addr().String()
	stores := capped.stores()
	b.printf("  through a proxy capping each connection at %s/s (to a consumer):\n", sizeText(limit))
	base, err := b.measure(func() error { return capped.sequentialGet(b.ctx, "parts/object.bin", "", want) })
	if err != nil {
		return err
	}
	b.row("baseline: one sequential GET + sha256", b.size, base, 0)
	for _, c := range []struct {
		name, ref string
	}{
		{"pipeline stream, 8 MiB manifest parts", "s3://bench/parts"},
		{"pipeline stream, no manifest parts", "s3://bench/whole"},
	} {
		d, err := b.measure(func() error {
			return b.stream(c.ref, blobstore.OpenOptions{Stores: stores, Transfer: b.topts}, "object.bin", false)
		})
		if err != nil {
			return err
		}
		b.row(c.name, b.size, d, base)
	}
	dst := filepath.Join(b.dir, "s3-copy.bin")
	d, err := b.measure(func() error {
		return b.fetch("s3://bench/parts", blobstore.OpenOptions{Stores: stores, Transfer: b.topts}, "object.bin", dst, blobstore.FetchOptions{})
	})
	if err != nil {
		return err
	}
	b.row("pipeline fetch to file (fsynced), parts", b.size, d, base)
	return nil
}

// startCappedProxy forwards loopback TCP connections to addr, capping what each
// connection receives from addr at limit bytes per second.
func startCappedProxy(addr string, limit int64) (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				lim := rate.NewLimiter(rate.Limit(limit), 256<<10)
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						lim.WaitN(context.Background(), n)
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return l, nil
}

// benchRSS is benchmark 4: peak RSS of a child process fetching a small and a
// large object, with the default options.
func (b *bench) benchRSS() error {
	small := filepath.Join(b.dir, "small.bin")
	if err := writeRandom(small, b.small); err != nil {
		return err
	}
	for _, p := range []struct {
		dir  string
		part int64
	}{{"small-parts", 8 << 20}, {"small-whole", 0}} {
		if err := b.pack("object.bin", small, p.part, "", filepath.Join(b.dir, p.dir), blobstore.StoreConfig{}); err != nil {
			return err
		}
	}
	os.Remove(small)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	b.printf("\n4. peak RSS (VmHWM) of a child process, default options\n")
	for _, mode := range []struct {
		name, small, large, flag string
	}{
		{"fetch to file, manifest parts", "small-parts", "snap-parts", "file"},
		{"fetch to file, no parts (whole sha256)", "small-whole", "snap-whole", "file"},
		{"stream to a consumer", "small-parts", "snap-parts", "stream"},
	} {
		var rss [2]int64
		for i, snap := range []string{mode.small, mode.large} {
			cmd := exec.Command(exe, "bench", "child", "--ref", filepath.Join(b.dir, snap), "--name", "object.bin",
				"--dst", filepath.Join(b.dir, "rss.out"), "--mode", mode.flag)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			os.Remove(filepath.Join(b.dir, "rss.out"))
			if err != nil {
				return fmt.Errorf("rss child: %v", err)
			}
			if rss[i], err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
				return fmt.Errorf("rss child printed %q", out)
			}
		}
		diff := float64(rss[1]-rss[0]) / float64(rss[0]) * 100
		b.printf("  %-40s %s: %6.1f MiB   %s: %6.1f MiB   %+5.1f%%\n", mode.name, sizeText(b.small), float64(rss[0])/(1<<20),
			sizeText(b.size), float64(rss[1])/(1<<20), diff)
	}
	return nil
}

// newBenchChildCmd is the hidden child of the rss benchmark: one download, then it
// prints its peak RSS in bytes.
func newBenchChildCmd() *cobra.Command {
	var ref, name, dst, mode string
	cmd := &cobra.Command{
		Use: "child", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := blobstore.Open(ctx, ref)
			if err != nil {
				return err
			}
			defer s.Close()
			switch mode {
			case "file":
				_, err = s.Fetch(ctx, name, dst)
			case "stream":
				_, err = s.Stream(ctx, name, io.Discard, true)
			default:
				err = errors.New("unknown mode " + mode)
			}
			if err != nil {
				return err
			}
			hwm, err := vmHWM()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), hwm)
			return nil
		},
	}
	cmd.Flags().StringVar(&ref, "ref", "", "")
	cmd.Flags().StringVar(&name, "name", "", "")
	cmd.Flags().StringVar(&dst, "dst", "", "")
	cmd.Flags().StringVar(&mode, "mode", "file", "")
	return cmd
}

// vmHWM returns the peak resident set size of this process, in bytes.
func vmHWM() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fs := strings.Fields(l)
			kb, err := strconv.ParseInt(fs[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
