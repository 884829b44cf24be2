// Package testcheck holds the assertions several packages' tests share: the class
// and message of an error, and files that must not exist.
package testcheck

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

// Class fails the test unless err has class c and its message contains every one
// of contains.
func Class(t testing.TB, err error, c drivers.Class, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got nil", c)
	}
	if got := drivers.ClassOf(err); got != c {
		t.Fatalf("want class %s, got %s: %v", c, got, err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// Absent fails the test for each of paths that exists (a dangling symlink counts).
func Absent(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s should not exist (err=%v)", p, err)
		}
	}
}
