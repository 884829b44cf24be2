package etcdops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	clientsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/restore-run/restore-run/drivers"
)

// DefaultInitialClusterToken is the cluster token Restore and StartMember use when
// none is given; it is etcd's own default.
const DefaultInitialClusterToken = "etcd-cluster"

// SnapshotStatus describes an etcd snapshot file.
type SnapshotStatus struct {
	// Hash is etcdutl's CRC-32C over every bucket of the file. It is not comparable
	// with Client.HashKV, which hashes the MVCC keys with another algorithm.
	Hash uint32
	// Revision is the newest MVCC revision stored in the file.
	Revision int64
	// TotalKey counts the live keys (etcd >= 3.6 tools; older tools counted revisions).
	TotalKey int
	// TotalSize is the size of the bbolt database in bytes (without the sha256 trailer).
	TotalSize int64
	// Version is the storage version recorded in the file (e.g. "3.6.0"); empty for
	// snapshots written by etcd < 3.6.
	Version string
	// HasChecksum is true when the file ends with a sha256 trailer, as files written by
	// `etcdctl snapshot save` (and Save) do; a raw copy of member/snap/db has none.
	HasChecksum bool
}

// checksumSize is the size of the sha256 trailer of a saved snapshot.
const checksumSize = sha256.Size

// hasChecksum mirrors etcd's rule: a saved snapshot is a bbolt file (a multiple of
// 512 bytes) followed by a 32-byte sha256 of those bytes.
func hasChecksum(size int64) bool { return size%512 == checksumSize }

// Status inspects the snapshot file at path without modifying it. When the file has
// a sha256 trailer (size % 512 == 32, as written by `etcdctl snapshot save` and
// Save) it verifies it first and returns a Corruption error naming the file and both
// digests on mismatch. It then checks that the file is an etcd bbolt database
// (Corruption "PATH is not an etcd snapshot: ..." otherwise) and returns etcdutl's
// snapshot status.
//
// The checksum pass stops when ctx is done; etcdutl's scan cannot be interrupted,
// so on cancellation Status returns at once and leaves that scan to finish in the
// background (it only reads the file). A file locked by a running etcd (its live
// member/snap/db) is refused rather than waited for.
func Status(ctx context.Context, path string) (SnapshotStatus, error) {
	return inspect(ctx, path, true)
}

// inspect is Status with the checksum verification optional (Restore with
// SkipHashCheck).
func inspect(ctx context.Context, path string, verifySum bool) (SnapshotStatus, error) {
	op := "etcd snapshot status " + path
	if path == "" {
		return SnapshotStatus{}, drivers.Errorf(drivers.Permanent, "etcd snapshot status: empty path; give the path of a snapshot file")
	}
	if err := cancelled(ctx, op); err != nil {
		return SnapshotStatus{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return SnapshotStatus{}, drivers.Errorf(drivers.Permanent, "%s: file does not exist; check the path", op)
		}
		return SnapshotStatus{}, drivers.WithClass(drivers.Permanent, op, err)
	}
	if !fi.Mode().IsRegular() {
		return SnapshotStatus{}, drivers.Errorf(drivers.Permanent, "%s: not a regular file (mode %s); give the path of a snapshot file, not a data dir", op, fi.Mode())
	}
	st := SnapshotStatus{HasChecksum: hasChecksum(fi.Size())}
	if st.HasChecksum && verifySum {
		if err := verifyChecksum(ctx, path, fi.Size()); err != nil {
			return SnapshotStatus{}, err
		}
	}
	if err := checkEtcdBolt(ctx, path); err != nil {
		return SnapshotStatus{}, err
	}

	type result struct {
		st  snapshot.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("reading the database panicked: %v", p)
			}
			done <- r
		}()
		r.st, r.err = snapshot.NewV3(zap.NewNop()).Status(path)
	}()
	select {
	case <-ctx.Done():
		return SnapshotStatus{}, cancelled(ctx, op)
	case r := <-done:
		if r.err != nil {
			return SnapshotStatus{}, drivers.Errorf(drivers.Corruption, "%s is not an etcd snapshot or is damaged: %w; fetch or save it again", path, r.err)
		}
		st.Hash = r.st.Hash
		st.Revision = r.st.Revision
		st.TotalKey = r.st.TotalKey
		st.TotalSize = r.st.TotalSize
		st.Version = r.st.Version
		return st, nil
	}
}

// ctxReader stops reading once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifyChecksum checks that the last 32 bytes of the file at path are the sha256
// of the bytes before them.
func verifyChecksum(ctx context.Context, path string, size int64) error {
	op := "etcd snapshot status " + path
	f, err := os.Open(path)
	if err != nil {
		return drivers.WithClass(drivers.Permanent, op, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx, io.LimitReader(f, size-checksumSize)}, make([]byte, 1<<20)); err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx, op)
		}
		return drivers.WithClass(drivers.Transient, op, fmt.Errorf("reading the file: %w", err))
	}
	want := make([]byte, checksumSize)
	if _, err := io.ReadFull(f, want); err != nil {
		return drivers.WithClass(drivers.Transient, op, fmt.Errorf("reading the sha256 trailer: %w", err))
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return drivers.Errorf(drivers.Corruption,
			"snapshot %s fails its checksum: sha256 of its first %d bytes is %s but its trailer records %s; the file is damaged (or not an etcd snapshot): fetch or save it again",
			path, size-checksumSize, hex.EncodeToString(got), hex.EncodeToString(want))
	}
	return nil
}

// checkEtcdBolt opens path read-only as a bbolt database and checks that it holds
// etcd's key and meta buckets. It gives up quickly on a file locked by a running
// etcd (etcdutl would wait forever) and turns bbolt panics into errors.
func checkEtcdBolt(ctx context.Context, path string) (err error) {
	op := "etcd snapshot status " + path
	notEtcd := func(reason error) error {
		return drivers.Errorf(drivers.Corruption, "%s is not an etcd snapshot: %w; give a file written by `etcdctl snapshot save` or a member's member/snap/db", path, reason)
	}
	defer func() {
		if p := recover(); p != nil {
			err = notEtcd(fmt.Errorf("reading it as a bbolt database panicked: %v", p))
		}
	}()
	timeout := 500 * time.Millisecond
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), 10*time.Millisecond))
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			if ctx.Err() != nil {
				return cancelled(ctx, op)
			}
			return drivers.Errorf(drivers.Permanent, "%s: the file is locked by another process (a running etcd member?); stop that member, or save a snapshot from it with `etcdctl snapshot save`, and inspect that instead", op)
		}
		return notEtcd(err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for _, b := range []backend.Bucket{schema.Key, schema.Meta} {
			if tx.Bucket(b.Name()) == nil {
				return notEtcd(fmt.Errorf("it is a bbolt database without etcd's %q bucket", b.Name()))
			}
		}
		return nil
	})
}

// RestoreConfig configures Restore. Several members of one new cluster restore the
// same snapshot with the same InitialCluster and InitialClusterToken, each with its
// own Name, DataDir and PeerURLs.
type RestoreConfig struct {
	// SnapshotPath is the snapshot file to restore.
	SnapshotPath string
	// Name is this member's name; it must appear in InitialCluster.
	Name string
	// DataDir is the member's data dir to create. It must not exist or be empty.
	DataDir string
	// WALDir, when set, puts the WAL outside DataDir. It must not exist or be empty.
	WALDir string
	// PeerURLs are the member's advertised peer URLs (at least one).
	PeerURLs []string
	// InitialCluster is "name=peerURL,..." for every member of the new cluster;
	// empty means a one-member cluster of Name at PeerURLs.
	InitialCluster string
	// InitialClusterToken identifies the new cluster; empty means
	// DefaultInitialClusterToken.
	InitialClusterToken string
	// RevisionBump raises the latest revision by this much so that revisions never go
	// backwards for clients (e.g. Kubernetes watch caches). Requires MarkCompacted.
	RevisionBump uint64
	// MarkCompacted marks the bumped revision compacted, so watchers re-list instead
	// of silently missing events. Requires RevisionBump.
	MarkCompacted bool
	// SkipHashCheck restores a file without (or with an unverified) sha256 trailer,
	// e.g. a copy of a member's member/snap/db.
	SkipHashCheck bool
}

// Restore creates one member's data dir from a snapshot through etcdutl. It refuses
// a DataDir (or WALDir) that exists and is not empty, a RevisionBump without
// MarkCompacted (the library would silently ignore it) and the reverse, and a file
// without a sha256 trailer unless SkipHashCheck is set. Before restoring it inspects
// the file like Status, so a damaged file gives a Corruption error and leaves
// nothing behind; on any failure Restore removes what it created.
//
// ctx is checked before the file is verified and before the restore starts; the
// restore itself (copying the database and writing the WAL) cannot be interrupted.
func Restore(ctx context.Context, cfg RestoreConfig) error {
	op := "restore member " + cfg.Name
	if cfg.Name == "" {
		op = "restore member"
	}
	bad := func(format string, args ...any) error {
		return drivers.Errorf(drivers.Permanent, "%s: "+format, append([]any{op}, args...)...)
	}
	switch {
	case cfg.SnapshotPath == "":
		return bad("SnapshotPath is empty; give the snapshot file to restore")
	case cfg.Name == "":
		return bad("Name is empty; give the member's name as listed in InitialCluster")
	case cfg.DataDir == "":
		return bad("DataDir is empty; give a new directory for the member's data")
	case len(cfg.PeerURLs) == 0:
		return bad("PeerURLs is empty; give the member's peer URL, e.g. http://10.0.0.1:2380")
	case cfg.RevisionBump > 0 && !cfg.MarkCompacted:
		return bad("RevisionBump %d without MarkCompacted would be silently ignored by etcdutl; set MarkCompacted too (or drop the bump)", cfg.RevisionBump)
	case cfg.MarkCompacted && cfg.RevisionBump == 0:
		return bad("MarkCompacted without RevisionBump has no effect; give a RevisionBump (e.g. 1000000000) or drop MarkCompacted")
	case cfg.RevisionBump > math.MaxInt64/2:
		return bad("RevisionBump %d is too large; revisions are int64 (use e.g. 1000000000)", cfg.RevisionBump)
	}
	initialCluster := cfg.InitialCluster
	if initialCluster == "" {
		parts := make([]string, len(cfg.PeerURLs))
		for i, u := range cfg.PeerURLs {
			parts[i] = cfg.Name + "=" + u
		}
		initialCluster = strings.Join(parts, ",")
	}
	members, err := types.NewURLsMap(initialCluster)
	if err != nil {
		return bad("InitialCluster %q is not a list of name=peerURL: %v", initialCluster, err)
	}
	if _, ok := members[cfg.Name]; !ok {
		return bad("Name %q is not in InitialCluster %q; list every member as name=peerURL, this one included", cfg.Name, initialCluster)
	}
	token := cfg.InitialClusterToken
	if token == "" {
		token = DefaultInitialClusterToken
	}
	if err := cancelled(ctx, op); err != nil {
		return err
	}

	dataDir, err := prepareDir(op, "data dir", cfg.DataDir)
	if err != nil {
		return err
	}
	var walDir *targetDir
	if cfg.WALDir != "" {
		if walDir, err = prepareDir(op, "WAL dir", cfg.WALDir); err != nil {
			return err
		}
	}

	st, err := inspect(ctx, cfg.SnapshotPath, !cfg.SkipHashCheck)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !st.HasChecksum && !cfg.SkipHashCheck {
		return bad("snapshot %s has no sha256 trailer (a copy of member/snap/db?) so its integrity cannot be checked; set SkipHashCheck to restore it anyway", cfg.SnapshotPath)
	}
	if err := cancelled(ctx, op); err != nil {
		return err
	}

	// etcdutl refuses an existing WAL dir even when empty; it recreates it.
	if walDir != nil && walDir.existed {
		if err := os.Remove(walDir.path); err != nil {
			return drivers.WithClass(drivers.Permanent, op, fmt.Errorf("removing the empty WAL dir %s before restoring: %w", walDir.path, err))
		}
	}
	libErr := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("etcdutl panicked: %v", p)
			}
		}()
		return snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
			SnapshotPath:        cfg.SnapshotPath,
			Name:                cfg.Name,
			OutputDataDir:       cfg.DataDir,
			OutputWALDir:        cfg.WALDir,
			PeerURLs:            cfg.PeerURLs,
			InitialCluster:      initialCluster,
			InitialClusterToken: token,
			SkipHashCheck:       cfg.SkipHashCheck,
			RevisionBump:        cfg.RevisionBump,
			MarkCompacted:       cfg.MarkCompacted,
		})
	}()
	if libErr == nil {
		return nil
	}
	dataDir.undo()
	if walDir != nil {
		walDir.undo()
	}
	switch msg := libErr.Error(); {
	case strings.Contains(msg, "expected sha256"):
		return drivers.Errorf(drivers.Corruption, "%s: snapshot %s changed or is damaged: %w; fetch it again", op, cfg.SnapshotPath, libErr)
	case strings.Contains(msg, "initial-cluster") || strings.Contains(msg, "URL") || strings.Contains(msg, "url"):
		return drivers.Errorf(drivers.Permanent, "%s: %w; check Name, PeerURLs and InitialCluster (Name must appear in InitialCluster with the same peer URLs)", op, libErr)
	default:
		return drivers.WithClass(drivers.Permanent, op, libErr)
	}
}

// targetDir is a directory Restore is about to fill.
type targetDir struct {
	path    string
	existed bool // it existed (empty) before the restore
}

// prepareDir checks that path does not exist or is an empty directory.
func prepareDir(op, what, path string) (*targetDir, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return &targetDir{path: path}, nil
	}
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, op, fmt.Errorf("checking %s %s: %w", what, path, err))
	}
	if !fi.IsDir() {
		return nil, drivers.Errorf(drivers.Permanent, "%s: %s %s exists and is not a directory; restore into a new directory", op, what, path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, op, fmt.Errorf("reading %s %s: %w", what, path, err))
	}
	if len(entries) > 0 {
		return nil, drivers.Errorf(drivers.Permanent, "%s: %s %s already exists and is not empty; restore into a new directory", op, what, path)
	}
	return &targetDir{path: path, existed: true}, nil
}

// undo removes what a failed restore left in the directory.
func (d *targetDir) undo() {
	if !d.existed {
		_ = os.RemoveAll(d.path)
		return
	}
	entries, _ := os.ReadDir(d.path)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(d.path, e.Name()))
	}
	_ = os.MkdirAll(d.path, 0o700) // a WAL dir Restore removed before restoring
}

// Save streams a snapshot from the etcd member at endpoint into path, in the format
// of `etcdctl snapshot save` (the bbolt database followed by its sha256), through
// clientv3's snapshot.SaveWithVersion. The file is written to path+".part" and
// renamed, so an existing path is replaced only by a complete snapshot. Save then
// verifies the file's checksum.
//
// version is the storage version the server reports with the snapshot (e.g.
// "3.6.0"; empty for etcd < 3.6), not the server's binary version: use
// Client.Status for that.
func Save(ctx context.Context, endpoint, path string) (version string, err error) {
	op := fmt.Sprintf("save etcd snapshot from %s to %s", endpoint, path)
	switch {
	case endpoint == "":
		return "", drivers.Errorf(drivers.Permanent, "save etcd snapshot: empty endpoint; give one member's client URL, e.g. http://127.0.0.1:2379")
	case path == "":
		return "", drivers.Errorf(drivers.Permanent, "save etcd snapshot: empty path; give the file to write")
	}
	if err := cancelled(ctx, op); err != nil {
		return "", err
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return "", drivers.Errorf(drivers.Permanent, "%s: directory %s does not exist; create it first", op, filepath.Dir(path))
	}
	// SaveWithVersion waits for a connection as long as ctx allows: probe first so an
	// unreachable member fails within DefaultDialTimeout.
	c, err := Dial(ctx, []string{endpoint})
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	_ = c.Close()

	version, err = clientsnapshot.SaveWithVersion(ctx, zap.NewNop(), clientv3.Config{
		Endpoints:            []string{endpoint},
		DialTimeout:          DefaultDialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
	}, path)
	if err != nil {
		msg := err.Error()
		switch {
		case ctx.Err() != nil:
			return "", drivers.WithClass(drivers.Cancelled, op, err)
		case strings.Contains(msg, "could not open"):
			return "", drivers.WithClass(drivers.Permanent, op, err)
		case strings.Contains(msg, "sha256 checksum not found"):
			return "", drivers.WithClass(drivers.Transient, op, fmt.Errorf("%w: the stream ended early; retry", err))
		default:
			return "", classifyRPC(ctx, op, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", drivers.WithClass(drivers.Permanent, op, err)
	}
	if err := verifyChecksum(ctx, path, fi.Size()); err != nil {
		if drivers.ClassOf(err) == drivers.Corruption {
			_ = os.Remove(path)
			return "", drivers.WithClass(drivers.Transient, op, fmt.Errorf("the snapshot was damaged in transit and was removed; retry: %w", err))
		}
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return version, nil
}
