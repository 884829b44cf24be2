package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/restore-run/restore-run/internal/atomicfile"
)

// The resume journal of one destination. Its first line is a JSON header naming
// what is being downloaded (the manifest entry, the destination, the mode and the
// partial file's inode); every later line records work that is durable:
//
//	p IDX          manifest part IDX is in the partial file and verified
//	r OFF LEN      bytes OFF..OFF+LEN-1 of a file without parts are in the partial file
//	done {JSON}    the file is complete at its destination (only with a state dir)
//
// A line is appended only after the partial file was fdatasync'd, and the journal is
// fsync'd after appending, so a crash (kill -9, power loss) never leaves a line
// describing bytes that are not on disk. A torn last line is ignored. A header that
// does not match the current download discards the journal and the partial file.

const journalVersion = 1

// JournalSuffix is appended to a destination to name its journal when no state
// directory is given.
const JournalSuffix = ".partial.journal"

type journalHeader struct {
	V        int    `json:"v"`
	Name     string `json:"name"`
	Dst      string `json:"dst"`
	Mode     string `json:"mode"` // "stored" or "decompressed"
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256,omitempty"`
	PartSize int64  `json:"part_size,omitempty"`
	Parts    string `json:"parts,omitempty"`   // sha256 of the part digests
	Version  string `json:"version,omitempty"` // the object's version, for files without sha256
	Inode    uint64 `json:"inode,omitempty"`   // of the partial file
}

// doneRecord identifies a completed destination file.
type doneRecord struct {
	Size  int64  `json:"size"`
	Inode uint64 `json:"inode"`
	Mtime int64  `json:"mtime_ns"`
	Ctime int64  `json:"ctime_ns"`
	SHA   string `json:"sha256"`
}

type journal struct {
	path string
	hdr  journalHeader

	mu      sync.Mutex
	f       *os.File // open for appending, nil until created
	pending []string
	// loaded state
	parts  map[int]bool
	ranges [][2]int64
	done   *doneRecord
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// journalPath returns where the journal of dst lives.
func journalPath(stateDir, name, dst string) string {
	if stateDir == "" {
		return dst + JournalSuffix
	}
	abs, err := filepath.Abs(dst)
	if err != nil {
		abs = dst
	}
	sum := sha256.Sum256([]byte(abs))
	base := unsafeName.ReplaceAllString(name, "_")
	if len(base) > 80 {
		base = base[len(base)-80:]
	}
	return filepath.Join(stateDir, base+"-"+hex.EncodeToString(sum[:6])+".journal")
}

// header returns the journal header that identifies this job's download.
func (j *job) header(dst, mode string) journalHeader {
	h := journalHeader{V: journalVersion, Name: j.req.Name, Dst: dst, Mode: mode, Size: j.f.Size, SHA256: j.f.SHA256}
	if j.parts {
		h.PartSize = j.f.PartSize
		s := sha256.Sum256([]byte(strings.Join(j.f.Parts, ",")))
		h.Parts = hex.EncodeToString(s[:])
	}
	if h.SHA256 == "" {
		if v, ok := j.req.Object.(Versioned); ok {
			h.Version = v.Version()
		}
	}
	return h
}

// resumable reports whether a download with this header can be resumed safely: its
// bytes are identified by a digest or an object version.
func (h journalHeader) resumable() bool { return h.SHA256 != "" || h.Version != "" }

func (h journalHeader) sameAs(o journalHeader) bool {
	h.Inode, o.Inode = 0, 0
	return h == o
}

// loadJournal reads the journal at path if it matches want; a missing, unreadable
// or mismatching journal gives an empty one (and ok=false).
func loadJournal(path string, want journalHeader) (jr *journal, ok bool) {
	jr = &journal{path: path, hdr: want, parts: map[int]bool{}}
	data, err := os.ReadFile(path)
	if err != nil {
		return jr, false
	}
	lines := bytes.Split(data, []byte("\n"))
	var hdr journalHeader
	if len(lines) == 0 || json.Unmarshal(lines[0], &hdr) != nil || !hdr.sameAs(want) {
		return jr, false
	}
	jr.hdr = hdr
	// The last element is "" after a final newline, or a torn line: only complete
	// lines count.
	for _, l := range lines[1 : len(lines)-1] {
		fields := strings.Fields(string(l))
		switch {
		case len(fields) == 2 && fields[0] == "p":
			if p, err := strconv.Atoi(fields[1]); err == nil && p >= 0 {
				jr.parts[p] = true
			}
		case len(fields) == 3 && fields[0] == "r":
			a, err1 := strconv.ParseInt(fields[1], 10, 64)
			b, err2 := strconv.ParseInt(fields[2], 10, 64)
			if err1 == nil && err2 == nil && a >= 0 && b > 0 && a+b <= hdr.Size {
				jr.ranges = append(jr.ranges, [2]int64{a, b})
			}
		case len(fields) >= 2 && fields[0] == "done":
			var d doneRecord
			if json.Unmarshal([]byte(strings.TrimPrefix(string(l), "done ")), &d) == nil {
				jr.done = &d
			}
		}
	}
	return jr, true
}

// covered reports whether [off, off+n) is inside one recorded range.
func (jr *journal) covered(off, n int64) bool {
	for _, r := range jr.ranges {
		if r[0] <= off && off+n <= r[0]+r[1] {
			return true
		}
	}
	return false
}

// create starts a new journal file with the header (inode set by the caller),
// replacing any old one.
func (jr *journal) create() error {
	if err := os.MkdirAll(filepath.Dir(jr.path), 0o700); err != nil {
		return err
	}
	hdr, err := json.Marshal(jr.hdr)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(jr.path, append(hdr, '\n'), 0o600, 0o700); err != nil {
		return err
	}
	return jr.openAppend()
}

func (jr *journal) openAppend() error {
	f, err := os.OpenFile(jr.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	jr.f = f
	return nil
}

// add queues a line, written at the next commit.
func (jr *journal) add(line string) {
	jr.mu.Lock()
	jr.pending = append(jr.pending, line)
	jr.mu.Unlock()
}

// commit makes the queued lines durable: the data file first (fdatasync), then the
// lines, then the journal (fsync).
func (jr *journal) commit(data *os.File) error {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	if len(jr.pending) == 0 || jr.f == nil {
		return nil
	}
	if data != nil {
		if err := fdatasync(data); err != nil {
			return err
		}
	}
	var b strings.Builder
	for _, l := range jr.pending {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := jr.f.WriteString(b.String()); err != nil {
		return err
	}
	jr.pending = jr.pending[:0]
	return jr.f.Sync()
}

// markDone rewrites the journal as the header and a done record for dst.
func (jr *journal) markDone(dst, sum string) error {
	rec, err := statRecord(dst)
	if err != nil {
		return err
	}
	rec.SHA = sum
	jr.closeFile()
	b, _ := json.Marshal(rec)
	hdr, _ := json.Marshal(jr.hdr)
	return atomicfile.Write(jr.path, fmt.Appendf(nil, "%s\ndone %s\n", hdr, b), 0o600, 0o700)
}

// completed reports whether the journal records dst as complete and dst is still
// the file that was completed.
func (jr *journal) completed(dst string) (string, bool) {
	if jr.done == nil {
		return "", false
	}
	rec, err := statRecord(dst)
	if err != nil {
		return "", false
	}
	rec.SHA = jr.done.SHA
	return rec.SHA, rec == *jr.done
}

func (jr *journal) closeFile() {
	jr.mu.Lock()
	if jr.f != nil {
		jr.f.Close()
		jr.f = nil
	}
	jr.mu.Unlock()
}

// remove deletes the journal.
func (jr *journal) remove() {
	jr.closeFile()
	os.Remove(jr.path)
}

func statRecord(path string) (doneRecord, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return doneRecord{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return doneRecord{}, fmt.Errorf("%s: not a regular file", path)
	}
	return doneRecord{Size: fi.Size(), Inode: st.Ino, Mtime: fi.ModTime().UnixNano(), Ctime: st.Ctim.Nano()}, nil
}

func inodeOf(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// preallocate reserves size bytes for f (failing early on a full disk) and sets its
// length; a filesystem without fallocate gets a sparse file.
func preallocate(f *os.File, size int64) error {
	if size > 0 {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			return nil
		}
		if errors.Is(err, syscall.ENOSPC) {
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
	}
	return f.Truncate(size)
}
