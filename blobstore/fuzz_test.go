package blobstore

import (
	"path"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

// FuzzRefAndKeys: snapshot references parse or fail without a panic, never keep
// credentials in their redacted form, and a file name CheckFileName accepts joins
// to a key under the reference's prefix.
func FuzzRefAndKeys(f *testing.F) {
	for _, s := range [][2]string{
		{"s3://bucket/prefix/snap", "member.db"},
		{"s3://AKIA:secret@bucket/p", "a/b"},
		{"gs://b/", "x"},
		{"azblob://c/p/latest", "dump.sql.zst"},
		{"file:///srv/snap", "../x"},
		{"/srv/snapshots/a", "a//b"},
		{"s3://b/p?endpoint=http://x", "m"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ref, name string) {
		loc, err := parseRef(ref)
		if err == nil && strings.Contains(loc.redacted, "secret") && strings.Contains(ref, "secret@") {
			t.Fatalf("redacted reference %q keeps the credentials of %q", loc.redacted, ref)
		}
		if drivers.CheckFileName(name) != nil {
			return
		}
		for _, prefix := range []string{"", "p", "a/b/c"} {
			key := joinKey(prefix, name)
			if prefix != "" && !strings.HasPrefix(key, prefix+"/") {
				t.Fatalf("joinKey(%q, %q) = %q leaves the prefix", prefix, name, key)
			}
			if path.Clean(key) != key || strings.Contains(key, "..") && strings.Contains("/"+key+"/", "/../") {
				t.Fatalf("joinKey(%q, %q) = %q is not a clean key", prefix, name, key)
			}
		}
	})
}
