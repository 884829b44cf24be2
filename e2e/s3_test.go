package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/s3test"
)

// The tests of this file run the binary against a real S3 server (versitygw, see
// internal/s3test): snapshots are packed into it, listed, inspected, verified and
// restored from it. The keys reach the binary only through AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY in its environment; the endpoint comes from a
// --store-config file.

// s3Setup is a running S3 server with a bucket, the credentials in the
// environment of every binary the test starts, and a store config file.
type s3Setup struct {
	srv    *s3test.Server
	bucket string
	config string // --store-config file
}

func newS3Setup(t *testing.T) *s3Setup {
	t.Helper()
	srv := s3test.Start(t)
	s := &s3Setup{srv: srv, bucket: "backups", config: filepath.Join(t.TempDir(), "stores.yaml")}
	srv.CreateBucket(t, s.bucket)
	// Every s3:// reference goes to the test server: nothing may reach AWS.
	cfg := fmt.Sprintf("stores:\n  - match: s3://\n    endpoint: %s\n    region: %s\n    path_style: true\n", srv.Endpoint, srv.Region)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// cli and startCLI pass the test's environment on to the binary.
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "RESTORE_RUN_S3_ENDPOINT", "AWS_REGION", "RESTORE_RUN_CONFIG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	return s
}

func (s *s3Setup) ref(prefix string) string { return "s3://" + s.bucket + "/" + prefix }

// noSecrets fails the test if any text holds the server's keys.
func (s *s3Setup) noSecrets(t *testing.T, texts map[string]string) {
	t.Helper()
	for what, text := range texts {
		for name, secret := range map[string]string{"secret key": s.srv.SecretKey, "access key": s.srv.AccessKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains the %s", what, name)
			}
		}
	}
}

// pack runs `restore-run snapshot pack` of file to prefix.
func (s *s3Setup) pack(t *testing.T, file, prefix, created string) result {
	t.Helper()
	return cli(t, time.Minute, "snapshot", "pack", "--engine", "etcd", "--from", file, "--to", s.ref(prefix),
		"--source", "e2e source", "--created", created, "--part-size", "256KiB", "--store-config", s.config).mustSucceed(t)
}

// TestS3PackInspectVerifyRestore packs an etcd snapshot into S3 with the binary,
// lists, inspects and verifies it, restores it into three scratch members and
// compares every key, and checks that the secret key appears nowhere.
func TestS3PackInspectVerifyRestore(t *testing.T) {
	s := newS3Setup(t)
	snap := saveFilledSnapshot(t)
	packed := s.pack(t, snap.path, "etcd/2026-11-24", "2026-11-24T09:00:00Z")
	if !strings.Contains(packed.Stdout, fmt.Sprintf("revision %d, %d keys", snap.revision, snap.status.TotalKey)) {
		t.Errorf("pack did not report the snapshot's revision and keys:\n%s", packed.Stdout)
	}
	if keys := s.srv.Keys(t, s.bucket, "etcd/2026-11-24/"); strings.Join(keys, ",") != "etcd/2026-11-24/etcd.db,etcd/2026-11-24/manifest.json" {
		t.Errorf("objects in the store: %v", keys)
	}

	ls := cli(t, time.Minute, "snapshot", "ls", s.ref("etcd"), "--store-config", s.config).mustSucceed(t)
	if !strings.Contains(ls.Stdout, "2026-11-24  2026-11-24T09:00:00Z  etcd") || !strings.Contains(ls.Stdout, "complete") {
		t.Errorf("snapshot ls:\n%s", ls.Stdout)
	}

	insp := cli(t, time.Minute, "snapshot", "inspect", s.ref("etcd/2026-11-24"), "--store-config", s.config).mustSucceed(t)
	for _, want := range []string{"engine    etcd", "created   2026-11-24T09:00:00Z", "source    e2e source", "etcd.db", fmt.Sprintf("revision: %d", snap.revision), "3 x 256.0 KiB"} {
		if !strings.Contains(insp.Stdout, want) {
			t.Errorf("snapshot inspect does not show %q:\n%s", want, insp.Stdout)
		}
	}
	js := cli(t, time.Minute, "snapshot", "inspect", "--json", s.ref("etcd/2026-11-24"), "--store-config", s.config).mustSucceed(t)
	m, err := drivers.ParseManifest([]byte(js.Stdout))
	if err != nil {
		t.Fatalf("inspect --json is not a manifest: %v\n%s", err, js.Stdout)
	}
	st, _ := os.Stat(snap.path)
	if m.Engine != "etcd" || len(m.Files) != 1 || m.Files[0].Size != st.Size() || len(m.Files[0].Parts) == 0 || fmt.Sprint(m.Metadata["total_key"]) != fmt.Sprint(snap.status.TotalKey) {
		t.Errorf("manifest: %+v", m)
	}

	ver := cli(t, time.Minute, "snapshot", "verify", s.ref("etcd/2026-11-24"), "--store-config", s.config).mustSucceed(t)
	if !strings.Contains(ver.Stdout, "ok   etcd.db") || !strings.Contains(ver.Stdout, m.Files[0].SHA256) {
		t.Errorf("snapshot verify:\n%s", ver.Stdout)
	}

	// The restore, at debug level so that every log line the store code writes is seen.
	ref := s.ref("etcd/2026-11-24")
	r := startCLI(t, "restore", "--driver", "etcd", "--snapshot", ref, "--target", "scratch://etcd?members=3",
		"--store-config", s.config, "--keep", "--log-level", "debug")
	eps := r.waitReady(t, 2*time.Minute)
	dumpEach(t, eps, snap.keys)
	if code, _ := r.interruptAndWait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT on a kept target, want 0\n%s", code, r.output())
	}
	rep := r.report(t)
	checkSuccessReport(t, rep, ref, eps)
	reportText, err := os.ReadFile(r.reportPath)
	if err != nil {
		t.Fatal(err)
	}
	s.noSecrets(t, map[string]string{
		"the report": string(reportText), "stdout": r.stdout.String(), "stderr": r.stderr.String(),
		"pack": packed.Stdout + packed.Stderr, "ls": ls.Stdout + ls.Stderr, "inspect": insp.Stdout + insp.Stderr + js.Stdout, "verify": ver.Stdout + ver.Stderr,
	})
}

// TestS3Latest packs two snapshots (the newer one first, under an earlier name) and
// an unfinished upload, and checks that latest is the newest complete one, for
// inspect and for a restore.
func TestS3Latest(t *testing.T) {
	s := newS3Setup(t)
	snap := smallSnapshot(t)
	s.pack(t, snap.path, "etcd/b-older", "2026-11-20T00:00:00Z")
	s.pack(t, snap.path, "etcd/a-newer", "2026-11-21T00:00:00Z")
	s.srv.PutObject(t, s.bucket, "etcd/z-unfinished/etcd.db", []byte("half an upload"))

	ls := cli(t, time.Minute, "snapshot", "ls", s.ref("etcd"), "--store-config", s.config).mustSucceed(t)
	lines := strings.Split(strings.TrimSpace(ls.Stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "a-newer ") || !strings.HasPrefix(lines[2], "b-older ") ||
		!strings.HasPrefix(lines[3], "z-unfinished ") || !strings.Contains(lines[3], "incomplete: no manifest.json") {
		t.Errorf("snapshot ls, newest first, unfinished last:\n%s", ls.Stdout)
	}
	insp := cli(t, time.Minute, "snapshot", "inspect", s.ref("etcd/latest"), "--store-config", s.config).mustSucceed(t)
	if !strings.Contains(insp.Stdout, "snapshot  "+s.ref("etcd/a-newer")) || !strings.Contains(insp.Stdout, "2026-11-21T00:00:00Z") {
		t.Errorf("latest is not a-newer:\n%s", insp.Stdout)
	}
	res := cli(t, 2*time.Minute, "restore", "--driver", "etcd", "--snapshot", s.ref("etcd/latest"), "--target", "scratch://etcd", "--store-config", s.config).mustSucceed(t)
	if res.Report == nil || res.Report.Snapshot.Ref != s.ref("etcd/a-newer") {
		t.Errorf("the report names %+v, want the resolved %s", res.Report, s.ref("etcd/a-newer"))
	}

	// No complete snapshot: exit 1, listing what is there.
	s.srv.PutObject(t, s.bucket, "mysql/s1/dump.sql", []byte("half"))
	cli(t, time.Minute, "snapshot", "inspect", s.ref("mysql/latest"), "--store-config", s.config).
		mustFail(t, 1, "no complete snapshot under "+s.ref("mysql"), "s1 (no manifest.json)")
}

// TestS3VerifyTampered changes one byte of a stored object: verify exits 1 naming
// the file and the part, and a restore fails in the download phase.
func TestS3VerifyTampered(t *testing.T) {
	s := newS3Setup(t)
	snap := smallSnapshot(t)
	s.pack(t, snap.path, "etcd/s1", "2026-11-20T00:00:00Z")
	data := s.srv.GetObject(t, s.bucket, "etcd/s1/etcd.db")
	data[len(data)/2] ^= 0xff
	s.srv.PutObject(t, s.bucket, "etcd/s1/etcd.db", data)

	res := cli(t, time.Minute, "snapshot", "verify", s.ref("etcd/s1"), "--store-config", s.config).mustFail(t, 1, "failed verification: etcd.db")
	if !strings.Contains(res.Stdout, "FAIL etcd.db") || !strings.Contains(res.Stdout, "sha256 mismatch") || !strings.Contains(res.Stdout, "part ") {
		t.Errorf("verify does not name the file and part:\n%s", res.Stdout)
	}
	rres := cli(t, 2*time.Minute, "restore", "--driver", "etcd", "--snapshot", s.ref("etcd/s1"), "--target", "scratch://etcd", "--store-config", s.config)
	rres.mustFail(t, 1, "etcd.db")
	if rep := rres.Report; rep == nil || len(rep.Phases) == 0 || rep.Phases[0].Name != "download" || rep.Phases[0].ErrorClass != string(drivers.Corruption) {
		t.Errorf("want a corruption failure in the download phase, report %+v", rep)
	}
	s.noSecrets(t, map[string]string{"verify": res.Stdout + res.Stderr, "restore": rres.Stdout + rres.Stderr})
}

// TestS3BadCredentialsAndConfig: wrong keys, a missing bucket and a broken store
// config are clear errors that show no secret.
func TestS3BadCredentialsAndConfig(t *testing.T) {
	s := newS3Setup(t)
	snap := smallSnapshot(t)
	s.pack(t, snap.path, "etcd/s1", "2026-11-20T00:00:00Z")

	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-"+s.srv.SecretKey[:8])
	ls := cli(t, time.Minute, "snapshot", "ls", s.ref("etcd"), "--store-config", s.config).mustFail(t, 1, "access denied", "check the credentials")
	rres := cli(t, time.Minute, "restore", "--driver", "etcd", "--snapshot", s.ref("etcd/s1"), "--target", "scratch://etcd", "--store-config", s.config).
		mustFail(t, 1, "access denied to "+s.ref("etcd/s1"), "check the credentials")
	for _, out := range []string{ls.Stderr, rres.Stderr, rres.Stdout} {
		if strings.Contains(out, "not-the-secret-") {
			t.Errorf("output shows the (wrong) secret key:\n%s", out)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.srv.SecretKey)

	cli(t, time.Minute, "snapshot", "ls", "s3://no-such-bucket/etcd", "--store-config", s.config).mustFail(t, 1, `bucket "no-such-bucket"`, "does not exist")
	cli(t, time.Minute, "snapshot", "inspect", s.ref("etcd"), "--store-config", s.config).mustFail(t, 1, "has no manifest.json")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("stores:\n  - match: s3://\n    secret_access_key: hunter2hunter2\n    access_key_id: x\n"), 0o600)
	res := cli(t, time.Minute, "snapshot", "ls", s.ref("etcd"), "--store-config", bad).mustFail(t, 2, "secret_access_key is given in clear text")
	if strings.Contains(res.Stderr, "hunter2hunter2") {
		t.Errorf("the error repeats the clear secret:\n%s", res.Stderr)
	}
	cli(t, time.Minute, "snapshot", "ls", s.ref("etcd"), "--store-config", filepath.Join(t.TempDir(), "missing.yaml")).mustFail(t, 2, "missing.yaml")

	// Without the store config there is no endpoint: AWS itself would be asked, so
	// the test points the endpoint at the server through the environment instead.
	t.Setenv("RESTORE_RUN_S3_ENDPOINT", s.srv.Endpoint)
	cli(t, time.Minute, "snapshot", "ls", s.ref("etcd")).mustSucceed(t)
}

// TestS3PackCompressedJSON packs with zstd and reads the listing as JSON.
func TestS3PackCompressedJSON(t *testing.T) {
	s := newS3Setup(t)
	snap := smallSnapshot(t)
	cli(t, time.Minute, "snapshot", "pack", "--engine", "etcd", "--from", snap.path, "--to", s.ref("etcd/z"), "--compress", "zstd",
		"--metadata", "revision=1", "--metadata", "total_key=2", "--store-config", s.config).mustSucceed(t)
	res := cli(t, time.Minute, "snapshot", "ls", "--json", s.ref("etcd"), "--store-config", s.config).mustSucceed(t)
	var rows []struct {
		Name     string
		Complete bool
		Size     int64
		Files    int
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rows); err != nil || len(rows) != 1 || !rows[0].Complete || rows[0].Files != 1 {
		t.Fatalf("ls --json: %v\n%s", err, res.Stdout)
	}
	st, _ := os.Stat(snap.path)
	if rows[0].Size <= 0 || rows[0].Size >= st.Size() {
		t.Errorf("stored size %d of a %d-byte etcd snapshot: not compressed?", rows[0].Size, st.Size())
	}
	insp := cli(t, time.Minute, "snapshot", "inspect", s.ref("etcd/z"), "--store-config", s.config).mustSucceed(t)
	if !strings.Contains(insp.Stdout, "zstd") || !strings.Contains(insp.Stdout, "revision: 1") {
		t.Errorf("inspect:\n%s", insp.Stdout)
	}
	cli(t, time.Minute, "snapshot", "verify", s.ref("etcd/z"), "--store-config", s.config).mustSucceed(t)
}
