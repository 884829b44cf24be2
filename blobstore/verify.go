package blobstore

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/restore-run/restore-run/drivers"
)

// digester computes the sha256 of a stream and, when partSize > 0, of each
// consecutive partSize-byte part of it (the last part may be shorter).
type digester struct {
	partSize int64
	n        int64 // bytes written so far
	whole    hash.Hash
	part     hash.Hash // nil without parts
	partN    int64     // bytes in the current part
	idx      int       // index of the current part
	// onPart is called with each finished part: its index, first byte offset,
	// length and hex digest. A non-nil error stops the stream.
	onPart func(idx int, start, length int64, sum string) error
}

func newDigester(partSize int64, onPart func(idx int, start, length int64, sum string) error) *digester {
	d := &digester{partSize: partSize, whole: sha256.New(), onPart: onPart}
	if partSize > 0 {
		d.part = sha256.New()
	}
	return d
}

// write hashes p, finishing every part it completes.
func (d *digester) write(p []byte) error {
	d.whole.Write(p)
	d.n += int64(len(p))
	for d.part != nil && len(p) > 0 {
		room := d.partSize - d.partN
		chunk := int64(len(p))
		if chunk > room {
			chunk = room
		}
		d.part.Write(p[:chunk])
		d.partN += chunk
		p = p[chunk:]
		if d.partN == d.partSize {
			if err := d.endPart(); err != nil {
				return err
			}
		}
	}
	return nil
}

// endPart finishes the current part if it holds any bytes.
func (d *digester) endPart() error {
	if d.part == nil || d.partN == 0 {
		return nil
	}
	sum := hex.EncodeToString(d.part.Sum(nil))
	start := int64(d.idx) * d.partSize
	length := d.partN
	idx := d.idx
	d.part.Reset()
	d.partN = 0
	d.idx++
	if d.onPart != nil {
		return d.onPart(idx, start, length, sum)
	}
	return nil
}

// sum returns the hex sha256 of everything written.
func (d *digester) sum() string { return hex.EncodeToString(d.whole.Sum(nil)) }

// verifier checks a stream of stored bytes against a manifest entry: never more than
// Size bytes, each part's digest as soon as the part is complete, and at the end the
// exact size and the whole-file sha256 (when the manifest has one).
type verifier struct {
	file drivers.File
	d    *digester
	fail func(format string, args ...any) error // builds the Corruption error
}

func newVerifier(f drivers.File, fail func(format string, args ...any) error) *verifier {
	v := &verifier{file: f, fail: fail}
	var partSize int64
	if f.PartSize > 0 && len(f.Parts) > 0 {
		partSize = f.PartSize
	}
	v.d = newDigester(partSize, v.checkPart)
	return v
}

// checkPart compares a finished part with the manifest.
func (v *verifier) checkPart(idx int, start, length int64, sum string) error {
	if idx >= len(v.file.Parts) {
		return v.fail("part %d (bytes %d-%d) is not listed in the manifest (it lists %d parts)", idx, start, start+length-1, len(v.file.Parts))
	}
	if want := v.file.Parts[idx]; sum != want {
		return v.fail("part %d (bytes %d-%d) sha256 mismatch: expected %s, actual %s", idx, start, start+length-1, want, sum)
	}
	return nil
}

// checkStoredSize compares the size the store reports for the object with the
// manifest before any byte is read.
func (v *verifier) checkStoredSize(stored int64) error {
	if stored != v.file.Size {
		return v.fail("size mismatch: expected %d bytes, the stored object has %d", v.file.Size, stored)
	}
	return nil
}

// write feeds bytes read from the store.
func (v *verifier) write(p []byte) error {
	if v.d.n+int64(len(p)) > v.file.Size {
		return v.fail("size mismatch: expected %d bytes, the stored object has more", v.file.Size)
	}
	if err := v.d.write(p); err != nil {
		return err
	}
	if v.d.n == v.file.Size {
		return v.d.endPart() // the last, shorter part is complete
	}
	return nil
}

// finish is called at EOF; it returns the hex sha256 of the stream.
func (v *verifier) finish() (string, error) {
	if v.d.n != v.file.Size {
		return "", v.fail("size mismatch: expected %d bytes, actual %d (truncated)", v.file.Size, v.d.n)
	}
	if err := v.d.endPart(); err != nil {
		return "", err
	}
	sum := v.d.sum()
	if v.file.SHA256 != "" && sum != v.file.SHA256 {
		return "", v.fail("sha256 mismatch: expected %s, actual %s", v.file.SHA256, sum)
	}
	return sum, nil
}
