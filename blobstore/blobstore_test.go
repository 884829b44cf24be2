package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/testcheck"
)

// --- helpers ---------------------------------------------------------------------

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

type testFile struct {
	name string
	data []byte
}

// packTo packs files into dest and returns the manifest.
func packTo(t *testing.T, dest string, partSize int64, files ...testFile) *drivers.Manifest {
	t.Helper()
	src := t.TempDir()
	var pf []PackFile
	for i, f := range files {
		p := writeFile(t, filepath.Join(src, "in", string(rune('a'+i)), filepath.Base(f.name)), f.data)
		pf = append(pf, PackFile{Path: p, Name: f.name})
	}
	m, err := Pack(context.Background(), PackOptions{
		Engine: "etcd", EngineVersion: "3.6.16", Source: "test-host",
		Files: pf, Dest: dest, PartSize: partSize,
		Metadata: map[string]any{"revision": 42, "total_key": 7},
	})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return m
}

// packed makes a snapshot directory holding one 5000-byte file member.db.
func packed(t *testing.T, partSize int64) (dir string, data []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "snap")
	data = randBytes(5000, 1)
	packTo(t, dir, partSize, testFile{"member.db", data})
	return dir, data
}

func open(t *testing.T, ref string) *Source {
	t.Helper()
	s, err := Open(context.Background(), ref)
	if err != nil {
		t.Fatalf("Open(%s): %v", ref, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// --- round trip ------------------------------------------------------------------

func TestPackOpenFetchRoundTrip(t *testing.T) {
	for _, partSize := range []int64{0, 1024} {
		t.Run("part_size="+strconv.FormatInt(partSize, 10), func(t *testing.T) {
			ctx := context.Background()
			files := []testFile{
				{"member.db", randBytes(5000, 1)}, // not a multiple of 1024
				{"exact.bin", randBytes(2048, 2)}, // a multiple of 1024
				{"small.bin", randBytes(10, 3)},   // smaller than one part
				{"sub/dir/empty", nil},            // empty, in a subdirectory
			}
			dest := filepath.Join(t.TempDir(), "snaps", "s1")
			m := packTo(t, dest, partSize, files...)

			if m.Format != drivers.ManifestFormat || m.Engine != "etcd" || m.Created.IsZero() || m.Created.Location() != time.UTC {
				t.Errorf("manifest header: %+v", m)
			}
			for i, f := range m.Files {
				want := files[i]
				if f.Name != want.name || f.Size != int64(len(want.data)) || f.SHA256 != hexSum(want.data) {
					t.Errorf("file %d: %+v", i, f)
				}
				if partSize == 0 || len(want.data) == 0 {
					if f.PartSize != 0 || f.Parts != nil {
						t.Errorf("%s: unexpected parts %+v", f.Name, f)
					}
					continue
				}
				n := (len(want.data) + int(partSize) - 1) / int(partSize)
				if f.PartSize != partSize || len(f.Parts) != n {
					t.Fatalf("%s: part_size %d, %d parts, want %d", f.Name, f.PartSize, len(f.Parts), n)
				}
				for j := range f.Parts {
					end := min(int64(j+1)*partSize, int64(len(want.data)))
					if f.Parts[j] != hexSum(want.data[int64(j)*partSize:end]) {
						t.Errorf("%s part %d digest wrong", f.Name, j)
					}
				}
			}
			// Only the files and the manifest: no .attrs sidecars, no temp files.
			var stored []string
			filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					rel, _ := filepath.Rel(dest, p)
					stored = append(stored, filepath.ToSlash(rel))
				}
				return nil
			})
			if strings.Join(stored, ",") != "exact.bin,manifest.json,member.db,small.bin,sub/dir/empty" {
				t.Errorf("stored objects: %v", stored)
			}

			for _, ref := range []string{dest, "file://" + filepath.ToSlash(dest), filepath.Join(dest, "manifest.json")} {
				s := open(t, ref)
				if s.Bare() || s.Ref() != ref {
					t.Errorf("%s: bare=%v ref=%q", ref, s.Bare(), s.Ref())
				}
				got := s.Manifest()
				if len(got.Files) != len(m.Files) || !got.Created.Equal(m.Created) || got.Metadata["revision"] != float64(42) {
					t.Errorf("%s: manifest read back differs: %+v", ref, got)
				}
				snap := s.Snapshot()
				if snap.Ref != ref || snap.Bare || snap.Manifest != got {
					t.Errorf("Snapshot() = %+v", snap)
				}
				if err := s.CheckObjects(ctx); err != nil {
					t.Errorf("CheckObjects: %v", err)
				}
			}

			s := open(t, dest)
			out := t.TempDir()
			for _, f := range files {
				dst := filepath.Join(out, "new-parent", filepath.FromSlash(f.name))
				res, err := s.Fetch(ctx, f.name, dst)
				if err != nil {
					t.Fatalf("Fetch %s: %v", f.name, err)
				}
				got, err := os.ReadFile(dst)
				if err != nil || !bytes.Equal(got, f.data) {
					t.Fatalf("%s: fetched bytes differ (err=%v)", f.name, err)
				}
				if res.Name != f.name || res.Path != dst || res.Size != int64(len(f.data)) || res.SHA256 != hexSum(f.data) || res.Duration <= 0 {
					t.Errorf("FetchResult = %+v", res)
				}
				testcheck.Absent(t, dst+PartialSuffix)

				r, err := s.OpenFile(ctx, f.name)
				if err != nil {
					t.Fatal(err)
				}
				streamed, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(streamed, f.data) {
					t.Fatalf("OpenFile %s: err=%v, equal=%v", f.name, err, bytes.Equal(streamed, f.data))
				}
				if sum := r.(interface{ SHA256() string }).SHA256(); sum != hexSum(f.data) {
					t.Errorf("reader SHA256() = %q", sum)
				}
				r.Close()
			}

			all, err := s.FetchAll(ctx, filepath.Join(out, "all"))
			if err != nil || len(all) != len(files) {
				t.Fatalf("FetchAll: %v (%d results)", err, len(all))
			}
			for _, f := range files {
				if got, _ := os.ReadFile(filepath.Join(out, "all", filepath.FromSlash(f.name))); !bytes.Equal(got, f.data) {
					t.Errorf("FetchAll %s differs", f.name)
				}
			}
		})
	}
}

func TestPackRefusesExistingSnapshotUnlessOverwrite(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "snap")
	packTo(t, dest, 0, testFile{"member.db", []byte("one")})
	p := writeFile(t, filepath.Join(t.TempDir(), "member.db"), []byte("two"))
	opts := PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: dest}
	_, err := Pack(context.Background(), opts)
	testcheck.Class(t, err, drivers.Permanent, "already holds a snapshot")

	opts.Overwrite = true
	if _, err := Pack(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	s := open(t, dest)
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := s.Fetch(context.Background(), "member.db", dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "two" {
		t.Errorf("got %q after overwrite", got)
	}
}

func TestPackRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "a.db"), []byte("x"))
	notDir := writeFile(t, filepath.Join(dir, "plain"), []byte("x"))
	for _, tc := range []struct {
		name string
		opts PackOptions
		want string
	}{
		{"no engine", PackOptions{Files: []PackFile{{Path: p}}, Dest: filepath.Join(dir, "d1")}, "no engine"},
		{"no files", PackOptions{Engine: "etcd", Dest: filepath.Join(dir, "d2")}, "no files"},
		{"no dest", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}}, "no destination"},
		{"missing local file", PackOptions{Engine: "etcd", Files: []PackFile{{Path: filepath.Join(dir, "nope")}}, Dest: filepath.Join(dir, "d3")}, "nope"},
		{"duplicate", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}, {Path: p}}, Dest: filepath.Join(dir, "d4")}, "two files"},
		{"escaping name", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p, Name: "../x"}}, Dest: filepath.Join(dir, "d5")}, ".."},
		{"manifest name", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p, Name: "manifest.json"}}, Dest: filepath.Join(dir, "d6")}, "reserved"},
		{"dest is a file", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: notDir}, "not a directory"},
		{"negative part size", PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: filepath.Join(dir, "d7"), PartSize: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pack(ctx, tc.opts)
			testcheck.Class(t, err, drivers.Permanent, tc.want)
		})
	}
	// Nothing was created for refused inputs.
	testcheck.Absent(t, filepath.Join(dir, "d3"), filepath.Join(dir, "d4"), filepath.Join(dir, "d5"))
}

// --- corruption ------------------------------------------------------------------

func TestFetchFlippedByteIsCorruption(t *testing.T) {
	dir, data := packed(t, 0)
	flipByte(t, filepath.Join(dir, "member.db"), 1234)
	s := open(t, dir)
	out := t.TempDir()
	dst := filepath.Join(out, "member.db")
	_, err := s.Fetch(context.Background(), "member.db", dst)
	wrong := append([]byte(nil), data...)
	wrong[1234] ^= 0x01
	testcheck.Class(t, err, drivers.Corruption, `"member.db"`, "sha256 mismatch", hexSum(data), hexSum(wrong),
		"corrupt or was changed after it was written", dir)
	testcheck.Absent(t, dst, dst+PartialSuffix)

	// A file already at dst is left as it was.
	writeFile(t, dst, []byte("previous"))
	_, err = s.Fetch(context.Background(), "member.db", dst)
	testcheck.Class(t, err, drivers.Corruption)
	if got, _ := os.ReadFile(dst); string(got) != "previous" {
		t.Errorf("dst was changed to %d bytes", len(got))
	}
	testcheck.Absent(t, dst+PartialSuffix)
}

func TestFetchFlippedByteWithPartsNamesThePart(t *testing.T) {
	dir, _ := packed(t, 1024)
	flipByte(t, filepath.Join(dir, "member.db"), 2500)
	s := open(t, dir)
	dst := filepath.Join(t.TempDir(), "member.db")
	_, err := s.Fetch(context.Background(), "member.db", dst)
	part2 := s.Manifest().Files[0].Parts[2]
	testcheck.Class(t, err, drivers.Corruption, `"member.db"`, "part 2", "bytes 2048-3071", part2, "corrupt or was changed")
	testcheck.Absent(t, dst, dst+PartialSuffix)

	// The last, shorter part is checked too.
	dir, _ = packed(t, 1024)
	flipByte(t, filepath.Join(dir, "member.db"), 4999)
	s = open(t, dir)
	_, err = s.Fetch(context.Background(), "member.db", dst)
	testcheck.Class(t, err, drivers.Corruption, "part 4", "bytes 4096-4999")
	testcheck.Absent(t, dst, dst+PartialSuffix)
}

func TestFetchWrongSizeIsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(path string, data []byte) error
	}{
		{"truncated", func(p string, d []byte) error { return os.Truncate(p, int64(len(d)-100)) }},
		{"longer", func(p string, d []byte) error { return os.WriteFile(p, append(d, 'x'), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, data := packed(t, 1024)
			if err := tc.change(filepath.Join(dir, "member.db"), data); err != nil {
				t.Fatal(err)
			}
			s := open(t, dir)
			dst := filepath.Join(t.TempDir(), "member.db")
			_, err := s.Fetch(context.Background(), "member.db", dst)
			testcheck.Class(t, err, drivers.Corruption, `"member.db"`, "size mismatch", "expected 5000 bytes", "corrupt or was changed")
			testcheck.Absent(t, dst, dst+PartialSuffix)
			testcheck.Class(t, s.CheckObjects(context.Background()), drivers.Corruption, "size mismatch")
			_, err = s.OpenFile(context.Background(), "member.db")
			testcheck.Class(t, err, drivers.Corruption, "size mismatch")
		})
	}
}

func TestVerifierSizeChecksWhileStreaming(t *testing.T) {
	data := randBytes(100, 9)
	f := drivers.File{Name: "x", Size: 100, SHA256: hexSum(data)}
	fail := func(format string, args ...any) error { return drivers.Errorf(drivers.Corruption, format, args...) }

	v := newVerifier(f, fail)
	if err := v.write(data[:60]); err != nil {
		t.Fatal(err)
	}
	_, err := v.finish() // the store returned EOF early
	testcheck.Class(t, err, drivers.Corruption, "expected 100 bytes, actual 60")

	v = newVerifier(f, fail)
	v.write(data)
	testcheck.Class(t, v.write([]byte{1}), drivers.Corruption, "has more") // the store returned more
}

func TestOpenFileVerifiesAtEOF(t *testing.T) {
	ctx := context.Background()
	dir, data := packed(t, 0)
	s := open(t, dir)

	// Clean data reads fine.
	r, err := s.OpenFile(ctx, "member.db")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("clean read: err=%v equal=%v", err, bytes.Equal(got, data))
	}

	// A flipped byte: every byte is delivered, then the Read reaching EOF fails.
	flipByte(t, filepath.Join(dir, "member.db"), 10)
	r, err = s.OpenFile(ctx, "member.db")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	buf := make([]byte, 1000)
	for {
		k, err := r.Read(buf)
		n += k
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			t.Fatal("Read returned io.EOF for corrupt data")
		}
		testcheck.Class(t, err, drivers.Corruption, `"member.db"`, "sha256 mismatch", hexSum(data))
		break
	}
	if n != len(data) {
		t.Errorf("read %d bytes before the error, want %d", n, len(data))
	}
	// The error sticks.
	if _, err := r.Read(buf); drivers.ClassOf(err) != drivers.Corruption {
		t.Errorf("second Read after corruption: %v", err)
	}
}

func TestOpenFileWithPartsFailsAtBadPart(t *testing.T) {
	dir, _ := packed(t, 1024)
	flipByte(t, filepath.Join(dir, "member.db"), 100)
	s := open(t, dir)
	r, err := s.OpenFile(context.Background(), "member.db")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	testcheck.Class(t, err, drivers.Corruption, "part 0", "bytes 0-1023")
	if len(got) >= 5000 {
		t.Errorf("read all %d bytes before failing", len(got))
	}
}

// --- references --------------------------------------------------------------------

func TestBareFile(t *testing.T) {
	ctx := context.Background()
	data := randBytes(3000, 4)
	path := writeFile(t, filepath.Join(t.TempDir(), "backups", "etcd.db"), data)
	for _, ref := range []string{path, "file://" + filepath.ToSlash(path)} {
		s := open(t, ref)
		if !s.Bare() || s.Ref() != ref {
			t.Fatalf("%s: bare=%v ref=%q", ref, s.Bare(), s.Ref())
		}
		m := s.Manifest()
		want := drivers.File{Name: "etcd.db", Size: 3000}
		if m.Format != drivers.ManifestFormat || m.Engine != "" || len(m.Files) != 1 || m.Files[0].Name != want.Name ||
			m.Files[0].Size != want.Size || m.Files[0].SHA256 != "" || m.Files[0].Parts != nil {
			t.Fatalf("synthesized manifest: %+v", m)
		}
		if snap := s.Snapshot(); !snap.Bare || snap.Ref != ref || snap.Manifest != m {
			t.Errorf("Snapshot() = %+v", snap)
		}
		dst := filepath.Join(t.TempDir(), "member.db")
		res, err := s.Fetch(ctx, "etcd.db", dst)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) || res.SHA256 != hexSum(data) {
			t.Errorf("bare fetch differs")
		}
		_, err = s.Fetch(ctx, "other.db", dst)
		testcheck.Class(t, err, drivers.Permanent, `no file "other.db"`)
	}
	// A truncated bare file is still caught by its size.
	s := open(t, path)
	os.Truncate(path, 10)
	_, err := s.Fetch(ctx, "etcd.db", filepath.Join(t.TempDir(), "x"))
	testcheck.Class(t, err, drivers.Corruption, "size mismatch")
}

func TestOpenMissingRef(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "snapshot")
	for _, ref := range []string{missing, "file://" + filepath.ToSlash(missing), "mem://empty-bucket/nothing/here"} {
		_, err := Open(context.Background(), ref)
		testcheck.Class(t, err, drivers.Permanent, "snapshot "+ref+" not found")
	}
}

func TestOpenDirWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "member.db"), []byte("data"))
	_, err := Open(context.Background(), dir)
	testcheck.Class(t, err, drivers.Permanent, dir+" has no manifest.json: a snapshot is a directory with manifest.json or a single native file (e.g. from etcdctl snapshot save)")
	_, err = Open(context.Background(), t.TempDir()) // empty directory
	testcheck.Class(t, err, drivers.Permanent, "has no manifest.json")
}

func TestOpenBadManifestIsCorruption(t *testing.T) {
	good := `{"format":"restore-run/v1","engine":"etcd","created":"2026-01-02T03:04:05Z","files":[{"name":"member.db","size":4,"sha256":"` + hexSum([]byte("data")) + `"}]}`
	for _, tc := range []struct{ name, manifest, want string }{
		{"unknown field", strings.Replace(good, `"engine"`, `"colour":"blue","engine"`, 1), "colour"},
		{"unknown file field", strings.Replace(good, `"size"`, `"sha265":"x","size"`, 1), "sha265"},
		{"bad sha", strings.Replace(good, hexSum([]byte("data")), strings.ToUpper(hexSum([]byte("data"))), 1), "not 64 lowercase hex"},
		{"not json", "{", "not valid JSON"},
		{"escaping name", strings.Replace(good, `"member.db"`, `"../../etc/evil"`, 1), ".."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "manifest.json"), []byte(tc.manifest))
			writeFile(t, filepath.Join(dir, "member.db"), []byte("data"))
			_, err := Open(context.Background(), dir)
			testcheck.Class(t, err, drivers.Corruption, filepath.Join(dir, "manifest.json"), tc.want)
		})
	}
	// The good one opens.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "manifest.json"), []byte(good))
	writeFile(t, filepath.Join(dir, "member.db"), []byte("data"))
	open(t, dir)
}

func TestFetchNeverWritesOutsideDst(t *testing.T) {
	ctx := context.Background()
	dir, _ := packed(t, 0)
	s := open(t, dir)
	out := t.TempDir()
	dst := filepath.Join(out, "sub", "dst")
	for _, name := range []string{"../member.db", "/etc/passwd", "a/../member.db", "manifest.json", "nope"} {
		_, err := s.Fetch(ctx, name, dst)
		testcheck.Class(t, err, drivers.Permanent)
		_, err = s.OpenFile(ctx, name)
		testcheck.Class(t, err, drivers.Permanent)
	}
	testcheck.Absent(t, filepath.Join(out, "sub"))

	// A manifest bypassing ParseManifest still cannot make Fetch or FetchAll escape.
	s.manifest.Files = append(s.manifest.Files, drivers.File{Name: "../escape", Size: 1})
	_, err := s.Fetch(ctx, "../escape", dst)
	testcheck.Class(t, err, drivers.Permanent, "..")
	_, err = s.FetchAll(ctx, filepath.Join(out, "all"))
	testcheck.Class(t, err, drivers.Permanent, "..")
	testcheck.Absent(t, filepath.Join(out, "escape"), filepath.Join(out, "sub"))
}

func TestFetchAllRefusesSymlinks(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "snap")
	packTo(t, dest, 0, testFile{"data/member.db", []byte("x")})
	s := open(t, dest)
	out, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(out, "data")); err != nil {
		t.Skip("no symlinks:", err)
	}
	_, err := s.FetchAll(context.Background(), out)
	testcheck.Class(t, err, drivers.Permanent, "symbolic link")
	testcheck.Absent(t, filepath.Join(elsewhere, "member.db"))
}

func TestMissingObjectIsPermanent(t *testing.T) {
	dir, _ := packed(t, 0)
	os.Remove(filepath.Join(dir, "member.db"))
	s := open(t, dir)
	dst := filepath.Join(t.TempDir(), "member.db")
	_, err := s.Fetch(context.Background(), "member.db", dst)
	testcheck.Class(t, err, drivers.Permanent, `file "member.db" is listed in the manifest`, filepath.Join(dir, "member.db"), "re-create")
	testcheck.Absent(t, dst, dst+PartialSuffix)
	testcheck.Class(t, s.CheckObjects(context.Background()), drivers.Permanent, "member.db")
}

func TestPermissionDeniedIsPermanent(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	dir, _ := packed(t, 0)
	obj := filepath.Join(dir, "member.db")
	os.Chmod(obj, 0)
	defer os.Chmod(obj, 0o644)
	s := open(t, dir)
	_, err := s.Fetch(context.Background(), "member.db", filepath.Join(t.TempDir(), "x"))
	testcheck.Class(t, err, drivers.Permanent, "permission denied", obj, "grant")
}

func TestCancelled(t *testing.T) {
	dir, _ := packed(t, 0)
	s := open(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := Open(ctx, dir)
	testcheck.Class(t, err, drivers.Cancelled)

	dst := filepath.Join(t.TempDir(), "member.db")
	_, err = s.Fetch(ctx, "member.db", dst)
	testcheck.Class(t, err, drivers.Cancelled)
	testcheck.Absent(t, dst, dst+PartialSuffix)

	_, err = s.OpenFile(ctx, "member.db")
	testcheck.Class(t, err, drivers.Cancelled)

	p := writeFile(t, filepath.Join(t.TempDir(), "a.db"), []byte("x"))
	_, err = Pack(ctx, PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: filepath.Join(t.TempDir(), "d")})
	testcheck.Class(t, err, drivers.Cancelled)

	// Cancelled in the middle of a stream.
	ctx, cancel = context.WithCancel(context.Background())
	r, err := s.OpenFile(ctx, "member.db")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(r)
	testcheck.Class(t, err, drivers.Cancelled)
}

func TestCancelledWhileFetchingKeepsResumeState(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "snap")
	data := randBytes(3*copyBufferSize+5, 7)
	packTo(t, dest, 64<<10, testFile{"big.db", data})
	for _, noResume := range []bool{false, true} {
		s, err := OpenWith(context.Background(), dest, OpenOptions{Transfer: TransferOptions{NoResume: noResume, Concurrency: 2, PartSize: 64 << 10}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		dst := filepath.Join(t.TempDir(), "big.db")
		// Cancel as soon as the .partial file appears.
		go func() {
			for ctx.Err() == nil {
				if _, err := os.Stat(dst + PartialSuffix); err == nil {
					cancel()
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}()
		_, err = s.Fetch(ctx, "big.db", dst)
		cancel()
		if err == nil {
			s.Close()
			t.Skip("fetch finished before the cancellation landed")
		}
		testcheck.Class(t, err, drivers.Cancelled)
		testcheck.Absent(t, dst)
		if noResume {
			// Without resume nothing is left behind.
			testcheck.Absent(t, dst+PartialSuffix, dst+JournalSuffix)
		} else {
			// The partial data and its journal stay for the next attempt, which
			// completes the file.
			for _, p := range []string{dst + PartialSuffix, dst + JournalSuffix} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			if _, err := s.Fetch(context.Background(), "big.db", dst); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Error("the resumed fetch differs")
			}
			testcheck.Absent(t, dst+PartialSuffix, dst+JournalSuffix)
		}
		s.Close()
	}
}

// --- URLs, redaction, mem:// --------------------------------------------------------

func TestRefRedaction(t *testing.T) {
	dir, _ := packed(t, 0)
	ref := "file://alice:hunter2@localhost" + filepath.ToSlash(dir) + "?token=s3cr3t&metadata=skip"
	s := open(t, ref)
	for _, secret := range []string{"alice", "hunter2", "s3cr3t", "token"} {
		if strings.Contains(s.Ref(), secret) || strings.Contains(s.Snapshot().Ref, secret) {
			t.Errorf("Ref() %q leaks %q", s.Ref(), secret)
		}
	}
	if !strings.Contains(s.Ref(), "metadata=skip") || !strings.Contains(s.Ref(), filepath.ToSlash(dir)) {
		t.Errorf("Ref() %q lost non-secret parts", s.Ref())
	}

	_, err := Open(context.Background(), "mem://bob:pa55word@nobucket/x?sig=abcdef123&region=eu-west-1")
	testcheck.Class(t, err, drivers.Permanent, "not found", "region=eu-west-1")
	for _, secret := range []string{"pa55word", "abcdef123", "bob"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks %q", err, secret)
		}
	}
	// A reference with nothing secret is shown exactly as written.
	for _, ref := range []string{"mem://b/x?region=eu&endpoint=http://minio:9000", "file://./rel/dir", "snaps/s1"} {
		loc, err := parseRef(ref)
		if err != nil {
			t.Errorf("parseRef(%q): %v", ref, err)
		} else if loc.redacted != ref {
			t.Errorf("parseRef(%q): redacted to %q", ref, loc.redacted)
		}
	}
	_, err = Open(context.Background(), "s3://user:pw@bucket/%zz")
	testcheck.Class(t, err, drivers.Permanent)
	if strings.Contains(err.Error(), "pw") {
		t.Errorf("error %q leaks the password", err)
	}
}

func TestUnsupportedRefs(t *testing.T) {
	for _, ref := range []string{"s3://bucket/snaps/s1", "gs://bucket/x", "ftp://host/x", "file://otherhost/x", ""} {
		_, err := Open(context.Background(), ref)
		testcheck.Class(t, err, drivers.Permanent)
	}
}

func TestMemStore(t *testing.T) {
	ctx := context.Background()
	data := randBytes(2500, 5)
	// mem:// buckets live as long as the process: a fresh name per run (-count=N).
	bucket := "test-mem-store-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	m := packTo(t, "mem://"+bucket+"/snaps/s1", 1000, testFile{"member.db", data})
	if len(m.Files[0].Parts) != 3 {
		t.Fatalf("parts: %+v", m.Files[0])
	}
	for _, ref := range []string{"mem://" + bucket + "/snaps/s1", "mem://" + bucket + "/snaps/s1/", "mem://" + bucket + "/snaps/s1/manifest.json"} {
		s := open(t, ref)
		if s.Bare() {
			t.Fatalf("%s: bare", ref)
		}
		dst := filepath.Join(t.TempDir(), "member.db")
		if _, err := s.Fetch(ctx, "member.db", dst); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("%s: bytes differ", ref)
		}
	}

	// A single object is a bare file; a prefix without manifest.json is refused.
	b := memBucket(bucket)
	if err := b.WriteAll(ctx, "loose/etcd.db", data, nil); err != nil {
		t.Fatal(err)
	}
	s := open(t, "mem://"+bucket+"/loose/etcd.db")
	if !s.Bare() || s.Manifest().Files[0].Name != "etcd.db" || s.Manifest().Files[0].Size != 2500 {
		t.Fatalf("bare mem object: %+v", s.Manifest())
	}
	if _, err := s.Fetch(ctx, "etcd.db", filepath.Join(t.TempDir(), "x")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, "mem://"+bucket+"/loose")
	testcheck.Class(t, err, drivers.Permanent, "has no manifest.json")

	// Corruption in an object store is found the same way.
	corrupt := append([]byte(nil), data...)
	corrupt[1500] ^= 1
	if err := b.WriteAll(ctx, "snaps/s1/member.db", corrupt, nil); err != nil {
		t.Fatal(err)
	}
	s = open(t, "mem://"+bucket+"/snaps/s1")
	_, err = s.Fetch(ctx, "member.db", filepath.Join(t.TempDir(), "x"))
	testcheck.Class(t, err, drivers.Corruption, "part 1", "bytes 1000-1999", "mem://"+bucket+"/snaps/s1")
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	perm := &os.PathError{Op: "open", Path: "/snap/member.db", Err: fs.ErrPermission}
	testcheck.Class(t, classify(ctx, "fetch member.db", "/snap/member.db", perm), drivers.Permanent, "permission denied on /snap/member.db")
	if h := drivers.HintOf(classify(ctx, "op", "/snap/member.db", perm)); !strings.Contains(h, "grant") {
		t.Errorf("permission hint = %q", h)
	}
	missing := &os.PathError{Op: "open", Path: "/snap/x", Err: fs.ErrNotExist}
	testcheck.Class(t, classify(ctx, "op", "/snap/x", missing), drivers.Permanent, "/snap/x not found")
	testcheck.Class(t, classify(ctx, "op", "/snap/x", io.ErrUnexpectedEOF), drivers.Transient)
	testcheck.Class(t, classify(ctx, "op", "/snap/x", drivers.Errorf(drivers.Corruption, "bad")), drivers.Corruption)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	// Whatever the store said, a done context makes it Cancelled.
	testcheck.Class(t, classify(cctx, "op", "/snap/x", io.ErrUnexpectedEOF), drivers.Cancelled)
}

func TestClosedSource(t *testing.T) {
	dir, _ := packed(t, 0)
	s := open(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := s.Fetch(context.Background(), "member.db", filepath.Join(t.TempDir(), "x"))
	testcheck.Class(t, err, drivers.Permanent, "closed")
}
