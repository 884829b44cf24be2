package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/s3test"
	"github.com/restore-run/restore-run/internal/testcheck"
	"github.com/restore-run/restore-run/redact"
)

// The tests of this file run against a real S3 server (versitygw, internal/s3test).

// s3env is a test's S3 server, a bucket and the options that reach it with the
// keys given by reference to (fake) environment variables.
type s3env struct {
	srv    *s3test.Server
	bucket string
	opts   OpenOptions
	env    map[string]string
}

func newS3(t *testing.T) *s3env {
	t.Helper()
	srv := s3test.Start(t)
	e := &s3env{srv: srv, bucket: "backups",
		env: map[string]string{"TEST_AK": srv.AccessKey, "TEST_SK": srv.SecretKey}}
	srv.CreateBucket(t, e.bucket)
	e.opts = OpenOptions{Redactor: redact.New(), Stores: StoreConfig{
		Env: e.lookup,
		Layers: []StoreLayer{{Source: "test config", Stores: []StoreEntry{{
			Match: "s3://", Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: ptr(true),
			AccessKeyID: &SecretRef{Env: "TEST_AK"}, SecretAccessKey: &SecretRef{Env: "TEST_SK"},
		}}}},
	}}
	return e
}

func ptr[T any](v T) *T { return &v }

func (e *s3env) lookup(k string) (string, bool) { v, ok := e.env[k]; return v, ok }

func (e *s3env) ref(prefix string) string { return "s3://" + e.bucket + "/" + prefix }

func (e *s3env) pack(t *testing.T, prefix string, created time.Time, opts PackOptions, files ...testFile) *drivers.Manifest {
	t.Helper()
	src := t.TempDir()
	for i, f := range files {
		p := writeFile(t, filepath.Join(src, string(rune('a'+i)), filepath.Base(f.name)), f.data)
		opts.Files = append(opts.Files, PackFile{Path: p, Name: f.name})
	}
	if opts.Engine == "" {
		opts.Engine = "etcd"
	}
	opts.Dest, opts.Stores, opts.Redactor, opts.Created = e.ref(prefix), e.opts.Stores, e.opts.Redactor, created
	m, err := Pack(context.Background(), opts)
	if err != nil {
		t.Fatalf("Pack to %s: %v", opts.Dest, err)
	}
	return m
}

func (e *s3env) open(t *testing.T, ref string) *Source {
	t.Helper()
	s, err := OpenWith(context.Background(), ref, e.opts)
	if err != nil {
		t.Fatalf("OpenWith(%s): %v", ref, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// noSecrets fails the test if text holds a key of the server.
func (e *s3env) noSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{e.srv.SecretKey, e.srv.AccessKey} {
		if strings.Contains(text, s) {
			t.Errorf("%s leaks a credential: %s", what, text)
		}
	}
}

func TestS3PackOpenFetch(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	files := []testFile{
		{"member.db", randBytes(300_000, 1)},
		{"sub/dir/small.bin", randBytes(10, 2)},
		{"empty", nil},
	}
	m := e.pack(t, "etcd/s1", time.Time{}, PackOptions{PartSize: 64 << 10, Metadata: map[string]any{"revision": 5}}, files...)
	if keys := e.srv.Keys(t, e.bucket, "etcd/s1/"); strings.Join(keys, ",") != "etcd/s1/empty,etcd/s1/manifest.json,etcd/s1/member.db,etcd/s1/sub/dir/small.bin" {
		t.Errorf("stored keys: %v", keys)
	}
	if e.opts.Redactor.String(e.srv.SecretKey) != redact.Mask {
		t.Error("the redactor did not learn the secret key")
	}
	for _, ref := range []string{e.ref("etcd/s1"), e.ref("etcd/s1/"), e.ref("etcd/s1/manifest.json")} {
		s := e.open(t, ref)
		if s.Bare() || s.Ref() != ref || len(s.Manifest().Files) != 3 || s.Manifest().Files[0].SHA256 != m.Files[0].SHA256 {
			t.Fatalf("%s: bare=%v ref=%q manifest=%+v", ref, s.Bare(), s.Ref(), s.Manifest())
		}
		if err := s.CheckObjects(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s := e.open(t, e.ref("etcd/s1"))
	out := t.TempDir()
	res, err := s.FetchAll(ctx, out)
	if err != nil || len(res) != 3 {
		t.Fatalf("FetchAll: %v (%d)", err, len(res))
	}
	for _, f := range files {
		if got, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.name))); !bytes.Equal(got, f.data) {
			t.Errorf("%s differs", f.name)
		}
	}
	r, err := s.OpenFile(ctx, "member.db")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, files[0].data) {
		t.Fatalf("OpenFile: %v", err)
	}

	// A bare object.
	e.srv.PutObject(t, e.bucket, "loose/etcd.db", files[0].data)
	b := e.open(t, e.ref("loose/etcd.db"))
	if !b.Bare() || b.Manifest().Files[0].Size != int64(len(files[0].data)) {
		t.Fatalf("bare: %+v", b.Manifest())
	}
	// Overwrite is refused unless asked.
	_, err = Pack(ctx, PackOptions{Engine: "etcd", Files: []PackFile{{Path: writeFile(t, filepath.Join(t.TempDir(), "x"), []byte("x"))}}, Dest: e.ref("etcd/s1"), Stores: e.opts.Stores})
	testcheck.Class(t, err, drivers.Permanent, "already holds a snapshot")
}

func TestS3PackCompressed(t *testing.T) {
	e := newS3(t)
	var data []byte
	for i := 0; len(data) < 300_000; i++ { // compresses, but not to nothing
		data = fmt.Appendf(data, "/registry/pods/ns-%d/pod-%d {\"rev\": %d, \"node\": \"n%d\"}\n", i%17, i, i*7919%100003, i*31%97)
	}
	for _, c := range []string{"zstd", "gzip"} {
		t.Run(c, func(t *testing.T) {
			m := e.pack(t, "c/"+c, time.Time{}, PackOptions{Compression: c, PartSize: 4096}, testFile{"member.db", data})
			f := m.Files[0]
			stored := e.srv.GetObject(t, e.bucket, "c/"+c+"/member.db")
			if f.Compression != c || f.Size != int64(len(stored)) || f.SHA256 != hexSum(stored) || f.Size >= int64(len(data))*3/4 {
				t.Fatalf("manifest entry %+v for %d stored bytes", f, len(stored))
			}
			if len(f.Parts) != int((f.Size+4095)/4096) || f.Parts[0] != hexSum(stored[:4096]) {
				t.Errorf("parts do not describe the stored bytes: %d parts", len(f.Parts))
			}
			var plain []byte
			var err error
			if c == "zstd" {
				d, _ := zstd.NewReader(bytes.NewReader(stored))
				plain, err = io.ReadAll(d)
				d.Close()
			} else {
				z, zerr := gzip.NewReader(bytes.NewReader(stored))
				if zerr != nil {
					t.Fatal(zerr)
				}
				plain, err = io.ReadAll(z)
			}
			if err != nil || !bytes.Equal(plain, data) {
				t.Fatalf("decompressed bytes differ (err=%v)", err)
			}
			// The stored bytes verify against the manifest.
			s := e.open(t, e.ref("c/"+c))
			if _, err := s.Fetch(context.Background(), "member.db", filepath.Join(t.TempDir(), "m.zst")); err != nil {
				t.Fatal(err)
			}
		})
	}
	_, err := Pack(context.Background(), PackOptions{Engine: "etcd", Compression: "lzma", Files: []PackFile{{Path: "x"}}, Dest: e.ref("c/bad")})
	testcheck.Class(t, err, drivers.Permanent, "lzma")
}

func TestS3LatestAndList(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e.pack(t, "etcd/2026-11-20", t0, PackOptions{}, testFile{"member.db", []byte("old")})
	e.pack(t, "etcd/2026-11-22", t0.Add(48*time.Hour), PackOptions{}, testFile{"member.db", []byte("newest")})
	e.pack(t, "etcd/a-late-name", t0.Add(24*time.Hour), PackOptions{}, testFile{"member.db", []byte("middle")})
	// An interrupted upload (no manifest) and a damaged manifest are never latest.
	e.srv.PutObject(t, e.bucket, "etcd/zzz-unfinished/member.db", []byte("partial"))
	e.srv.PutObject(t, e.bucket, "etcd/zzz-damaged/manifest.json", []byte("{not json"))
	e.srv.PutObject(t, e.bucket, "etcd/zzz-damaged/member.db", []byte("x"))

	s := e.open(t, e.ref("etcd/latest"))
	if s.Ref() != e.ref("etcd/2026-11-22") || !s.Manifest().Created.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("latest resolved to %s (created %s)", s.Ref(), s.Manifest().Created)
	}
	got, err := ResolveLatest(ctx, e.ref("etcd/latest/"), e.opts)
	if err != nil || got != e.ref("etcd/2026-11-22") {
		t.Fatalf("ResolveLatest = %q, %v", got, err)
	}

	infos, err := List(ctx, e.ref("etcd"), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	if strings.Join(names, ",") != "2026-11-22,a-late-name,2026-11-20,zzz-damaged,zzz-unfinished" {
		t.Fatalf("List order: %v", names)
	}
	if !infos[0].Complete || infos[0].Size() != 6 || infos[0].Ref != e.ref("etcd/2026-11-22") || infos[0].Manifest.Engine != "etcd" {
		t.Errorf("first: %+v", infos[0])
	}
	if infos[3].Complete || !strings.Contains(infos[3].Problem, "bad manifest.json") || infos[4].Complete || !strings.Contains(infos[4].Problem, "no manifest.json") {
		t.Errorf("incomplete ones: %+v %+v", infos[3], infos[4])
	}
	// A snapshot prefix lists as itself.
	one, err := List(ctx, e.ref("etcd/2026-11-20"), e.opts)
	if err != nil || len(one) != 1 || one[0].Name != "2026-11-20" || !one[0].Complete {
		t.Fatalf("List of a snapshot: %+v, %v", one, err)
	}
	_, err = List(ctx, e.ref("nothing-here"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, "not found")

	// No complete snapshot: the error lists what was found.
	e.srv.PutObject(t, e.bucket, "mysql/s1/dump.sql", []byte("partial"))
	_, err = OpenWith(ctx, e.ref("mysql/latest"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, "no complete snapshot under "+e.ref("mysql"), "s1 (no manifest.json")
	_, err = OpenWith(ctx, e.ref("empty/latest"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, "found nothing")

	// Pack refuses "latest" as a destination.
	_, err = Pack(ctx, PackOptions{Engine: "etcd", Files: []PackFile{{Path: "x"}}, Dest: e.ref("etcd/latest"), Stores: e.opts.Stores})
	testcheck.Class(t, err, drivers.Permanent, "reserved")
}

func TestLocalLatest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range []string{"b-old", "a-new"} {
		p := writeFile(t, filepath.Join(t.TempDir(), "member.db"), []byte(name))
		if _, err := Pack(ctx, PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: filepath.Join(root, name), Created: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "c-incomplete", "member.db"), []byte("x"))
	s := open(t, filepath.Join(root, "latest"))
	if s.Ref() != filepath.Join(root, "a-new") {
		t.Fatalf("latest = %s", s.Ref())
	}
	s = open(t, "file://"+filepath.ToSlash(root)+"/latest")
	if s.Ref() != "file://"+filepath.ToSlash(root)+"/a-new" {
		t.Fatalf("file:// latest = %s", s.Ref())
	}
	infos, err := List(ctx, root, OpenOptions{})
	if err != nil || len(infos) != 3 || infos[0].Name != "a-new" || infos[2].Complete {
		t.Fatalf("List: %+v %v", infos, err)
	}
	// A directory really named latest is taken as it is.
	if err := os.Symlink(filepath.Join(root, "b-old"), filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	s = open(t, filepath.Join(root, "latest"))
	if s.Ref() != filepath.Join(root, "latest") || s.Manifest().Files[0].Name != "member.db" || !s.Manifest().Created.Equal(t0) {
		t.Fatalf("literal latest: %s %v", s.Ref(), s.Manifest().Created)
	}
}

// --- bad input ---------------------------------------------------------------------

func TestS3WrongCredentials(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	e.pack(t, "etcd/s1", time.Time{}, PackOptions{}, testFile{"member.db", []byte("data")})
	for name, env := range map[string]map[string]string{
		"wrong secret":     {"TEST_AK": e.srv.AccessKey, "TEST_SK": "wrong-" + e.srv.SecretKey[:10]},
		"unknown key id":   {"TEST_AK": "AKNOSUCHKEY0000", "TEST_SK": e.srv.SecretKey},
		"wrong everything": {"TEST_AK": "AKNOSUCHKEY0000", "TEST_SK": "nope-nope-nope"},
	} {
		t.Run(name, func(t *testing.T) {
			e.env = env
			defer func() { e.env = map[string]string{"TEST_AK": e.srv.AccessKey, "TEST_SK": e.srv.SecretKey} }()
			_, err := OpenWith(ctx, e.ref("etcd/s1"), e.opts)
			testcheck.Class(t, err, drivers.Permanent, "access denied to "+e.ref("etcd/s1"), "check the credentials")
			e.noSecrets(t, "error", err.Error())
			for _, v := range env {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q shows a credential %q", err, v)
				}
			}
			_, err = List(ctx, e.ref("etcd"), e.opts)
			testcheck.Class(t, err, drivers.Permanent, "check the credentials")
			_, err = OpenWith(ctx, e.ref("etcd/latest"), e.opts)
			testcheck.Class(t, err, drivers.Permanent, "check the credentials")
			p := writeFile(t, filepath.Join(t.TempDir(), "m"), []byte("x"))
			_, err = Pack(ctx, PackOptions{Engine: "etcd", Files: []PackFile{{Path: p}}, Dest: e.ref("etcd/s2"), Stores: e.opts.Stores})
			testcheck.Class(t, err, drivers.Permanent, "check the credentials")
		})
	}
	if keys := e.srv.Keys(t, e.bucket, "etcd/s2"); len(keys) != 0 {
		t.Errorf("a refused pack wrote %v", keys)
	}
}

func TestS3NoCredentialsNoQuery(t *testing.T) {
	ctx := context.Background()
	// No keys anywhere, environment not read: refused before any request.
	for _, ref := range []string{"s3://bucket/x", "gs://bucket/x", "azblob://container/x"} {
		_, err := OpenWith(ctx, ref, OpenOptions{})
		testcheck.Class(t, err, drivers.Permanent, "no ")
		if drivers.HintOf(err) == "" || !strings.Contains(drivers.HintOf(err), "docs/stores.md") {
			t.Errorf("%s: hint %q", ref, drivers.HintOf(err))
		}
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"AZURE_STORAGE_ACCOUNT": "acct"}[k]
		return v, ok
	}
	_, err := OpenWith(ctx, "azblob://container/x", OpenOptions{Stores: StoreConfig{Env: env}})
	testcheck.Class(t, err, drivers.Permanent, "no credentials for azblob://container")
	_, err = OpenWith(ctx, "s3://bucket/x?region=eu&endpoint=http://x", OpenOptions{})
	testcheck.Class(t, err, drivers.Permanent, "take no credentials or query options")
	_, err = OpenWith(ctx, "s3://bucket/x", OpenOptions{Stores: StoreConfig{Layers: []StoreLayer{{Source: "cfg", Stores: []StoreEntry{{
		Match: "s3://bucket/", AccessKeyID: &SecretRef{Env: "RESTORE_RUN_TEST_UNSET_VAR"}, SecretAccessKey: &SecretRef{Env: "RESTORE_RUN_TEST_UNSET_VAR"}}}}}}})
	testcheck.Class(t, err, drivers.Permanent, "cfg", "RESTORE_RUN_TEST_UNSET_VAR is not set")
}

func TestS3MissingBucketAndManifest(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	_, err := OpenWith(ctx, "s3://no-such-bucket/etcd/s1", e.opts)
	testcheck.Class(t, err, drivers.Permanent, `bucket "no-such-bucket"`, "does not exist")
	_, err = List(ctx, "s3://no-such-bucket/etcd", e.opts)
	testcheck.Class(t, err, drivers.Permanent, `bucket "no-such-bucket"`)
	_, err = OpenWith(ctx, "s3://no-such-bucket/etcd/latest", e.opts)
	testcheck.Class(t, err, drivers.Permanent, `bucket "no-such-bucket"`)

	e.srv.PutObject(t, e.bucket, "half/member.db", []byte("x"))
	_, err = OpenWith(ctx, e.ref("half"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, e.ref("half")+" has no manifest.json")
	_, err = OpenWith(ctx, e.ref("nothing"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, "not found")
}

// handManifest writes a manifest.json by hand under prefix.
func (e *s3env) handManifest(t *testing.T, prefix string, files ...map[string]any) {
	t.Helper()
	m := map[string]any{"format": drivers.ManifestFormat, "engine": "etcd", "created": "2026-11-25T17:04:05Z", "files": files}
	data, _ := json.Marshal(m)
	e.srv.PutObject(t, e.bucket, prefix+"/manifest.json", data)
}

func TestS3ManifestDoesNotMatchObjects(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	data := randBytes(10_000, 3)
	e.pack(t, "s", time.Time{}, PackOptions{PartSize: 4096}, testFile{"member.db", data})
	work := t.TempDir()
	dst := filepath.Join(work, "member.db")

	// Same size, one byte changed: the part and the file are named.
	bad := append([]byte(nil), data...)
	bad[5000] ^= 1
	e.srv.PutObject(t, e.bucket, "s/member.db", bad)
	s := e.open(t, e.ref("s"))
	_, err := s.Fetch(ctx, "member.db", dst)
	testcheck.Class(t, err, drivers.Corruption, `"member.db"`, "part 1", "bytes 4096-8191", "corrupt or was changed")
	testcheck.Absent(t, dst, dst+PartialSuffix)

	// Another size.
	e.srv.PutObject(t, e.bucket, "s/member.db", data[:9000])
	testcheck.Class(t, s.CheckObjects(ctx), drivers.Corruption, "size mismatch", "expected 10000 bytes")
	_, err = s.Fetch(ctx, "member.db", dst)
	testcheck.Class(t, err, drivers.Corruption, "size mismatch")
	testcheck.Absent(t, dst, dst+PartialSuffix)

	// A listed object that is not there.
	e.srv.DeleteObject(t, e.bucket, "s/member.db")
	_, err = s.Fetch(ctx, "member.db", dst)
	testcheck.Class(t, err, drivers.Permanent, `"member.db"`, "does not exist")
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("the work dir holds %v", ents)
	}
}

func TestS3HandWrittenManifests(t *testing.T) {
	ctx := context.Background()
	e := newS3(t)
	sum := hexSum([]byte("x"))
	work := t.TempDir()
	outside := filepath.Dir(work)
	before, _ := os.ReadDir(outside)

	e.handManifest(t, "escape", map[string]any{"name": "../evil", "size": 1, "sha256": sum})
	e.srv.PutObject(t, e.bucket, "evil", []byte("x"))
	_, err := OpenWith(ctx, e.ref("escape"), e.opts)
	if err == nil || drivers.ClassOf(err).Retryable() || !strings.Contains(err.Error(), "../evil") {
		t.Fatalf("a name escaping with ../ must be refused naming it: %v", err)
	}

	e.handManifest(t, "huge", map[string]any{"name": "member.db", "size": int64(1) << 50, "sha256": sum})
	_, err = OpenWith(ctx, e.ref("huge"), e.opts)
	testcheck.Class(t, err, drivers.Permanent, `file "member.db" claims 1125899906842624 bytes (1.0 PiB)`, "more than restore-run accepts")

	// Big but possible: opened, then refused against the free disk space.
	e.handManifest(t, "big", map[string]any{"name": "member.db", "size": int64(60) << 40, "sha256": sum})
	s := e.open(t, e.ref("big"))
	testcheck.Class(t, s.CheckFits(work), drivers.Permanent, `largest file "member.db"`, "60.0 TiB", "free")

	after, _ := os.ReadDir(outside)
	if len(after) != len(before) {
		t.Errorf("something was written next to the work dir: %d entries, then %d", len(before), len(after))
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("the work dir holds %v", ents)
	}
}
