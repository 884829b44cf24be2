package redact

import (
	"bytes"
	"testing"
)

func TestRedactorMasksEverySecretLongestFirst(t *testing.T) {
	r := New("hunter2", "hunter2-long", "")
	got := r.String("pw=hunter2 and pw2=hunter2-long")
	want := "pw=" + Mask + " and pw2=" + Mask
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestNilRedactorPassesThrough(t *testing.T) {
	var r *Redactor
	if got := r.String("x"); got != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestWriterMasks(t *testing.T) {
	var buf bytes.Buffer
	w := New("s3cr3t").Writer(&buf)
	n, err := w.Write([]byte("token s3cr3t\n"))
	if err != nil || n != len("token s3cr3t\n") {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if buf.String() != "token "+Mask+"\n" {
		t.Fatalf("got %q", buf.String())
	}
}
