package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/restore-run/restore-run/drivers"
)

// LatestName is the last element of a reference that means "the newest complete
// snapshot under the parent prefix".
const LatestName = "latest"

// MaxFileSize is the largest file a manifest may list (64 TiB). A manifest listing
// more is refused when it is opened, before anything is downloaded: no database
// restore-run handles has such files, and a size like 1 PiB means the manifest is
// wrong or was tampered with.
const MaxFileSize = 64 << 40

// MaxSnapshotSize is the largest total a manifest may list (256 TiB).
const MaxSnapshotSize = 256 << 40

// SnapshotInfo describes one snapshot found under a prefix.
type SnapshotInfo struct {
	// Name is the snapshot's last path element (its sub-prefix under the listed one).
	Name string `json:"name"`
	// Ref is the snapshot's reference, credentials removed.
	Ref string `json:"ref"`
	// Complete is true when manifest.json exists and parses.
	Complete bool `json:"complete"`
	// Problem says why a snapshot is not complete: no manifest.json (an upload
	// that did not finish), or a manifest that does not parse.
	Problem string `json:"problem,omitempty"`
	// Manifest is the parsed manifest of a complete snapshot.
	Manifest *drivers.Manifest `json:"manifest,omitempty"`
}

// Size is the total stored size of the snapshot's files (0 when incomplete).
func (i SnapshotInfo) Size() int64 {
	var n int64
	if i.Manifest != nil {
		for _, f := range i.Manifest.Files {
			n += f.Size
		}
	}
	return n
}

// checkSizes refuses a manifest whose sizes no real snapshot has.
func checkSizes(where string, m *drivers.Manifest) error {
	var total int64
	for _, f := range m.Files {
		if f.Size > MaxFileSize {
			return drivers.WithHint(drivers.Errorf(drivers.Permanent,
				"%s: file %q claims %d bytes (%s), more than restore-run accepts for one file (%s): the manifest is wrong or was tampered with",
				where, f.Name, f.Size, humanSize(f.Size), humanSize(MaxFileSize)),
				"do not restore from it: use another snapshot, or re-create this one")
		}
		total += f.Size
		if total > MaxSnapshotSize {
			return drivers.WithHint(drivers.Errorf(drivers.Permanent,
				"%s: the files claim more than %s in total (reached at file %q): the manifest is wrong or was tampered with",
				where, humanSize(MaxSnapshotSize), f.Name),
				"do not restore from it: use another snapshot, or re-create this one")
		}
	}
	return nil
}

// CheckFits refuses, before anything is downloaded, to fetch the named files (all
// of them when none is named) into dir when the file system holding dir has less
// free space than their total size. The error names the largest file.
func (s *Source) CheckFits(dir string, names ...string) error {
	var total, largest int64
	var largestName string
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, f := range s.manifest.Files {
		if len(names) > 0 && !want[f.Name] {
			continue
		}
		total += f.Size
		if f.Size >= largest {
			largest, largestName = f.Size, f.Name
		}
	}
	free, err := freeSpace(dir)
	if err != nil {
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, "check free space under "+dir, err), "check that "+dir+" exists")
	}
	if total > free {
		return drivers.WithHint(drivers.Errorf(drivers.Permanent,
			"snapshot %s needs %d bytes (%s; largest file %q, %s) but %s has only %s free",
			s.loc.redacted, total, humanSize(total), largestName, humanSize(largest), dir, humanSize(free)),
			"free space, or give a work dir on a larger file system (--workdir)")
	}
	return nil
}

// freeSpace returns the bytes available to this user on the file system of dir (or
// of its nearest existing parent).
func freeSpace(dir string) (int64, error) {
	p, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(p, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		if !errors.Is(err, syscall.ENOENT) || filepath.Dir(p) == p {
			return 0, err
		}
		p = filepath.Dir(p)
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// isLatest reports whether the reference's last element is "latest".
func isLatest(loc *location) bool {
	if loc.scheme == "file" {
		return filepath.Base(loc.dir) == LatestName
	}
	return loc.prefix != "" && path.Base(loc.prefix) == LatestName
}

// sibling returns ref with its last path element replaced by name.
func sibling(ref, name string) string {
	if !urlRef.MatchString(ref) {
		return filepath.Join(filepath.Dir(filepath.Clean(ref)), name)
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	p := strings.TrimRight(u.Path, "/")
	u.Path = path.Join(path.Dir(p), name)
	u.RawPath = ""
	return u.String()
}

// parentOf returns the reference of the prefix holding ref's last element.
func parentOf(ref string) string {
	if !urlRef.MatchString(ref) {
		return filepath.Dir(filepath.Clean(ref))
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	u.Path = path.Dir(strings.TrimRight(u.Path, "/"))
	if u.Path == "." {
		u.Path = ""
	}
	u.RawPath = ""
	return u.String()
}

// ResolveLatest returns the reference of the newest complete snapshot directly under
// the parent of ref (whose last element is "latest"), by manifest created time (the
// greater name on a tie). Snapshots without a manifest (unfinished uploads) or with
// one that does not parse are skipped. It is a Permanent error, listing what was
// found, when there is none. A reference that is not "latest" is returned as is.
func ResolveLatest(ctx context.Context, ref string, opts OpenOptions) (string, error) {
	loc, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	if !isLatest(loc) {
		return ref, nil
	}
	l, err := resolveLatest(ctx, ref, loc, opts)
	if err != nil {
		return "", err
	}
	return l.redacted, nil
}

// resolveLatest resolves a "latest" reference. A reference that names something
// itself (a directory, an object, a prefix called latest) is taken literally.
func resolveLatest(ctx context.Context, ref string, loc *location, opts OpenOptions) (*location, error) {
	parent := parentOf(ref)
	ploc, err := parseRef(parent)
	if err != nil {
		return nil, err
	}
	ls, err := openLister(ctx, ploc, opts)
	if err != nil {
		return nil, err
	}
	defer ls.close()
	if lit, err := ls.exists(ctx, LatestName); err != nil {
		return nil, err
	} else if lit {
		return loc, nil
	}
	infos, err := ls.scan(ctx, parent)
	if err != nil {
		return nil, err
	}
	sortInfos(infos)
	if len(infos) > 0 && infos[0].Complete {
		l, err := parseRef(sibling(ref, infos[0].Name))
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	var found []string
	for _, i := range infos {
		found = append(found, i.Name+" ("+i.Problem+")")
	}
	what := "nothing"
	if len(found) > 0 {
		what = strings.Join(found, ", ")
	}
	return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s: no complete snapshot under %s to be the latest: found %s", loc.redacted, ploc.redacted, what),
		"pack a snapshot under "+ploc.redacted+" (restore-run snapshot pack), or name one; restore-run snapshot ls "+ploc.redacted+" lists them")
}

// List returns the snapshots directly under the prefix ref, newest first (complete
// ones by manifest created time, then incomplete ones by name). A prefix that holds
// manifest.json itself is listed as that one snapshot. A prefix that holds nothing
// is a Permanent "not found" error.
func List(ctx context.Context, ref string, opts OpenOptions) ([]SnapshotInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(ctx, "list snapshots")
	}
	loc, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	if loc.scheme == "file" {
		fi, err := os.Stat(loc.dir)
		switch {
		case err != nil && isNotExist(err):
			return nil, notFound(loc, "no directory at "+loc.dir)
		case err != nil:
			return nil, classify(ctx, "list "+loc.redacted, loc.dir, err)
		case !fi.IsDir():
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s is a file, not a prefix of snapshots", loc.redacted),
				"restore-run snapshot inspect shows a single snapshot or native file")
		}
	}
	ls, err := openLister(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	defer ls.close()
	info, err := ls.read(ctx, "", ref)
	if err != nil {
		return nil, err
	}
	if info.Complete || info.Problem != noManifestProblem {
		info.Name = path.Base(filepath.ToSlash(strings.TrimRight(loc.redacted, "/")))
		return []SnapshotInfo{info}, nil
	}
	infos, err := ls.scan(ctx, ref)
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		any, err := ls.any(ctx)
		if err != nil {
			return nil, err
		}
		if !any {
			return nil, notFound(loc, "nothing under "+loc.where(ls.prefix))
		}
	}
	sortInfos(infos)
	return infos, nil
}

// sortInfos orders snapshots newest first: complete ones by created time (the
// greater name first on a tie), then the others by name.
func sortInfos(infos []SnapshotInfo) {
	sort.SliceStable(infos, func(a, b int) bool {
		x, y := infos[a], infos[b]
		if x.Complete != y.Complete {
			return x.Complete
		}
		if x.Complete && !x.Manifest.Created.Equal(y.Manifest.Created) {
			return x.Manifest.Created.After(y.Manifest.Created)
		}
		if x.Complete {
			return x.Name > y.Name
		}
		return x.Name < y.Name
	})
}

const noManifestProblem = "no manifest.json"

// lister reads the snapshots under one prefix of a bucket.
type lister struct {
	loc    *location
	bucket *blob.Bucket
	owned  bool
	prefix string // key prefix, without trailing "/"
}

func openLister(ctx context.Context, loc *location, opts OpenOptions) (*lister, error) {
	if loc.scheme == "file" {
		if _, err := os.Stat(loc.dir); err != nil && isNotExist(err) {
			return nil, notFound(loc, "no directory at "+loc.dir)
		}
		b, err := openLocalBucket(loc.dir, false)
		if err != nil {
			return nil, classify(ctx, "list "+loc.redacted, loc.dir, err)
		}
		return &lister{loc: loc, bucket: b, owned: true}, nil
	}
	b, owned, err := openObjectBucket(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	return &lister{loc: loc, bucket: b, owned: owned, prefix: loc.prefix}, nil
}

func (l *lister) close() {
	if l.owned {
		l.bucket.Close()
	}
}

// exists reports whether the child name is a directory, an object or a prefix.
func (l *lister) exists(ctx context.Context, name string) (bool, error) {
	if l.loc.scheme == "file" {
		_, err := os.Stat(filepath.Join(l.loc.dir, name))
		if err == nil {
			return true, nil
		}
		if isNotExist(err) {
			return false, nil
		}
		return false, classify(ctx, "list "+l.loc.redacted, filepath.Join(l.loc.dir, name), err)
	}
	key := joinKey(l.prefix, name)
	ok, err := l.bucket.Exists(ctx, key)
	if err != nil {
		return false, l.loc.scrub(classify(ctx, "list "+l.loc.redacted, l.loc.where(key), err))
	}
	if ok {
		return true, nil
	}
	_, err = l.bucket.List(&blob.ListOptions{Prefix: key + "/"}).Next(ctx)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, io.EOF):
		return false, nil
	default:
		return false, l.loc.scrub(classify(ctx, "list "+l.loc.redacted, l.loc.where(key), err))
	}
}

// any reports whether anything at all is under the prefix.
func (l *lister) any(ctx context.Context) (bool, error) {
	p := ""
	if l.prefix != "" {
		p = l.prefix + "/"
	}
	_, err := l.bucket.List(&blob.ListOptions{Prefix: p}).Next(ctx)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, io.EOF):
		return false, nil
	default:
		return false, l.loc.scrub(classify(ctx, "list "+l.loc.redacted, l.loc.where(l.prefix), err))
	}
}

// children returns the names of the sub-prefixes (directories) under the prefix.
func (l *lister) children(ctx context.Context) ([]string, error) {
	var out []string
	if l.loc.scheme == "file" {
		ents, err := os.ReadDir(l.loc.dir)
		if err != nil {
			return nil, classify(ctx, "list "+l.loc.redacted, l.loc.dir, err)
		}
		for _, e := range ents {
			fi, err := os.Stat(filepath.Join(l.loc.dir, e.Name())) // follows links
			if err == nil && fi.IsDir() {
				out = append(out, e.Name())
			}
		}
		return out, nil
	}
	p := ""
	if l.prefix != "" {
		p = l.prefix + "/"
	}
	it := l.bucket.List(&blob.ListOptions{Prefix: p, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, l.loc.scrub(classify(ctx, "list "+l.loc.redacted, l.loc.where(l.prefix), err))
		}
		if obj.IsDir {
			name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, p), "/")
			if name != "" {
				out = append(out, name)
			}
		}
	}
}

// scan reads every child of the prefix; ref is the prefix's reference.
func (l *lister) scan(ctx context.Context, ref string) ([]SnapshotInfo, error) {
	names, err := l.children(ctx)
	if err != nil {
		return nil, err
	}
	infos := make([]SnapshotInfo, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			infos[i], errs[i] = l.read(ctx, name, childRef(ref, name))
			infos[i].Name = name
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return infos, nil
}

func childRef(ref, name string) string {
	if !urlRef.MatchString(ref) {
		return filepath.Join(ref, name)
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/" + name
	u.RawPath = ""
	return u.String()
}

// read reads the manifest of child name ("" for the prefix itself).
func (l *lister) read(ctx context.Context, name, ref string) (SnapshotInfo, error) {
	info := SnapshotInfo{Name: name}
	if r, err := parseRef(ref); err == nil {
		info.Ref = r.redacted
	}
	base := l.prefix
	if name != "" {
		base = joinKey(l.prefix, name)
	}
	key := joinKey(base, drivers.ManifestName)
	where := l.loc.where(key)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := l.bucket.NewReader(rctx, key, nil)
	if err != nil {
		if isNotExist(err) && storeProblem(err) != problemNoBucket && ctx.Err() == nil {
			info.Problem = noManifestProblem
			return info, nil
		}
		return info, l.loc.scrub(classify(ctx, "read "+where, where, err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return info, l.loc.scrub(classify(ctx, "read "+where, where, err))
	}
	if len(data) > MaxManifestSize {
		info.Problem = "manifest.json is too large"
		return info, nil
	}
	m, err := drivers.ParseManifest(data)
	if err == nil {
		err = checkSizes(where, m)
	}
	if err != nil {
		info.Problem = "bad manifest.json: " + err.Error()
		return info, nil
	}
	info.Complete, info.Manifest = true, m
	return info, nil
}
