package blobstore

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/restore-run/restore-run/drivers"
)

// location is a parsed snapshot (or Pack destination) reference.
type location struct {
	// redacted is the reference as given, with credentials removed.
	redacted string
	// scheme is "file" for local paths and file:// URLs, "mem", "s3", "gs" or
	// "azblob".
	scheme string
	// dir is the local filesystem path of a "file" reference.
	dir string
	// host is the bucket name of an object-store reference (s3://HOST/...).
	host string
	// bucketURL opens the bucket of an object-store reference through gocloud's URL
	// mux: scheme://host?query (credentials included; never shown).
	bucketURL string
	// prefix is the key path inside the bucket, without leading or trailing "/".
	prefix string
	// secrets are the credential strings of the reference (user info, dropped query
	// values), scrubbed from any store error text before it is shown.
	secrets []string
}

var urlRef = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// safeQueryParams are the URL query parameters known to carry no secret; Ref keeps
// them and drops every other parameter (a SAS signature, a session token, a key).
var safeQueryParams = map[string]bool{
	// fileblob
	"create_dir": true, "dir_file_mode": true, "no_tmp_dir": true, "metadata": true,
	// s3blob
	"region": true, "endpoint": true, "profile": true, "awssdk": true,
	"use_path_style": true, "s3ForcePathStyle": true, "disable_https": true,
	"disableSSL": true, "dualstack": true, "fips": true, "accelerate": true,
	"hostname_immutable": true, "anonymous": true, "ssetype": true,
	"rate_limiter_capacity": true,
	// gcsblob
	"access_id": true,
	// azureblob
	"domain": true, "protocol": true, "cdn": true, "localemu": true,
	"storage_account": true,
}

// parseRef splits a reference into its parts. It does not touch the store.
func parseRef(ref string) (*location, error) {
	if ref == "" {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "empty snapshot reference"),
			"give a snapshot directory, a native snapshot file or a file:// URL")
	}
	if !urlRef.MatchString(ref) {
		return &location{redacted: ref, scheme: "file", dir: filepath.Clean(ref)}, nil
	}
	u, err := url.Parse(ref)
	if err != nil {
		// url.Error repeats the whole URL, credentials included: do not wrap it.
		red := redactUnparsable(ref)
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot reference %s is not a valid URL", red),
			"check the URL's escaping, e.g. a '%' must be written %25")
	}
	loc := &location{scheme: strings.ToLower(u.Scheme), redacted: redactURL(u), secrets: urlSecrets(u)}
	if loc.redacted == u.String() {
		loc.redacted = ref // nothing removed: show it exactly as given
	}
	switch loc.scheme {
	case "file":
		switch u.Host {
		case "", "localhost":
			loc.dir = u.Path
		case ".":
			loc.dir = strings.TrimPrefix(u.Path, "/")
			if loc.dir == "" {
				loc.dir = "."
			}
		default:
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot reference %s names host %q: file:// URLs name local paths only", loc.redacted, u.Host),
				"write file:///absolute/path or file://./relative/path")
		}
		if loc.dir == "" {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot reference %s has no path", loc.redacted),
				"write file:///absolute/path or file://./relative/path")
		}
		loc.dir = filepath.Clean(filepath.FromSlash(loc.dir))
		return loc, nil
	case "mem", "s3", "gs", "azblob":
		if u.Host == "" {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot reference %s names no bucket", loc.redacted),
				"write "+loc.scheme+"://BUCKET/PREFIX")
		}
		loc.host = u.Host
		loc.prefix = strings.Trim(u.Path, "/")
		bu := url.URL{Scheme: loc.scheme, Host: u.Host, User: u.User, RawQuery: u.RawQuery}
		loc.bucketURL = bu.String()
		return loc, nil
	default:
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "snapshot reference %s: unsupported scheme %q", loc.redacted, u.Scheme),
			"use a local path, file://, s3://, gs:// or azblob:// (mem:// in tests)")
	}
}

// redactURL returns u as a string without user info and without query parameters
// that could carry a secret. A URL with nothing to remove is returned as written.
func redactURL(u *url.URL) string {
	q := u.Query()
	clean := u.User == nil && u.Fragment == ""
	for k := range q {
		clean = clean && safeQueryParams[k]
	}
	if clean {
		return u.String()
	}
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		kept := url.Values{}
		for k, v := range q {
			if safeQueryParams[k] {
				kept[k] = v
			}
		}
		c.RawQuery = kept.Encode()
	}
	return c.String()
}

// urlSecrets lists the credential strings of u: its user info and the values of the
// query parameters redactURL drops.
func urlSecrets(u *url.URL) []string {
	var out []string
	if u.User != nil {
		out = append(out, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	for k, vs := range u.Query() {
		if !safeQueryParams[k] {
			out = append(out, vs...)
		}
	}
	kept := out[:0]
	for _, s := range out {
		if s != "" {
			kept = append(kept, s)
		}
	}
	return kept
}

// scrub returns err with every secret of the reference replaced by "REDACTED" in its
// text, keeping its class. Store drivers sometimes repeat the URL they were given.
func (l *location) scrub(err error) error {
	if err == nil || len(l.secrets) == 0 {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range l.secrets {
		clean = strings.ReplaceAll(clean, s, "REDACTED")
		clean = strings.ReplaceAll(clean, url.QueryEscape(s), "REDACTED")
	}
	if clean == msg {
		return err
	}
	// The hint is already part of the message text.
	return &drivers.Error{Class: drivers.ClassOf(err), Err: errors.New(clean)}
}

// redactUnparsable keeps only the scheme and host of a reference that url.Parse
// refused, dropping anything that may be user info or a query.
func redactUnparsable(ref string) string {
	i := strings.Index(ref, "://")
	scheme, rest := ref[:i], ref[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.LastIndex(rest, "@"); j >= 0 {
		rest = rest[j+1:]
	}
	return scheme + "://" + rest + "/..."
}

// where names an object for messages: a local path or a redacted URL.
func (l *location) where(key string) string {
	if l.scheme == "file" {
		if key == "" {
			return l.dir
		}
		return filepath.Join(l.dir, filepath.FromSlash(key))
	}
	return l.scheme + "://" + l.host + "/" + key
}

// joinKey joins a bucket prefix and a name into an object key.
func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// localOptions are the fileblob options for snapshot directories: no ".attrs"
// sidecar files, temporary files next to their destination (a rename across mounts
// would fail), directories 0o755.
func localOptions(create bool) *fileblob.Options {
	return &fileblob.Options{
		Metadata:    fileblob.MetadataDontWrite,
		NoTempDir:   true,
		DirFileMode: 0o755,
		CreateDir:   create,
	}
}

// openLocalBucket opens the directory dir as a bucket.
func openLocalBucket(dir string, create bool) (*blob.Bucket, error) {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return fileblob.OpenBucket(dir, localOptions(false))
}

// memBuckets are the in-process buckets behind mem:// references, by name. They live
// as long as the process so that a Pack and a later Open see the same objects.
var memBuckets = struct {
	sync.Mutex
	m map[string]*blob.Bucket
}{m: map[string]*blob.Bucket{}}

func memBucket(name string) *blob.Bucket {
	memBuckets.Lock()
	defer memBuckets.Unlock()
	b, ok := memBuckets.m[name]
	if !ok {
		b = memblob.OpenBucket(&memblob.Options{NoMD5: true})
		memBuckets.m[name] = b
	}
	return b
}

// openObjectBucket opens the bucket of a non-local reference. owned reports whether
// the caller must close it (the shared mem:// buckets stay open).
func openObjectBucket(ctx context.Context, loc *location, opts OpenOptions) (b *blob.Bucket, owned bool, err error) {
	switch loc.scheme {
	case "mem":
		return memBucket(loc.host), false, nil
	case "s3", "gs", "azblob":
		b, err := openStore(ctx, loc, opts.Stores, opts.Redactor)
		if err != nil {
			return nil, false, err
		}
		return b, true, nil
	}
	return nil, false, drivers.Errorf(drivers.Permanent, "snapshot reference %s: unsupported scheme %q", loc.redacted, loc.scheme)
}
