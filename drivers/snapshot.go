package drivers

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// ManifestFormat is the value of Manifest.Format this engine writes and reads.
const ManifestFormat = "restore-run/v1"

// ManifestName is the object name of a snapshot's manifest inside its prefix.
const ManifestName = "manifest.json"

// Manifest describes a snapshot: a prefix in a blob store holding manifest.json and
// the files it lists. docs/manifest.md and docs/manifest.schema.json document it.
type Manifest struct {
	Format        string    `json:"format"`
	Engine        string    `json:"engine"`
	EngineVersion string    `json:"engine_version,omitempty"`
	Created       time.Time `json:"created"`
	Source        string    `json:"source,omitempty"`
	Files         []File    `json:"files"`
	// Metadata is engine specific (etcd: revision, total_key; mysql: binlog position).
	Metadata map[string]any `json:"metadata,omitempty"`
}

// File is one object of a snapshot. Size and SHA256 describe the bytes as stored
// (after compression), so a download verifies exactly what it fetched.
type File struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	Compression string `json:"compression,omitempty"` // "", "none", "zstd", "gzip", "lz4"
	// PartSize, when set, splits the stored object into parts of this many bytes
	// (the last may be shorter) whose digests are listed in Parts, so each part can be
	// fetched and verified on its own.
	PartSize int64    `json:"part_size,omitempty"`
	Parts    []string `json:"parts,omitempty"`
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseManifest decodes and checks a manifest. Unknown fields are refused so that a
// typo does not silently drop a checksum.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, Errorf(Corruption, "manifest is not valid JSON of format %s: %w", ManifestFormat, err)
	}
	if dec.More() {
		return nil, Errorf(Corruption, "manifest has trailing data after the JSON object")
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check verifies the manifest's fields: format, engine, and every file's name, size,
// digest and parts.
func (m *Manifest) Check() error {
	bad := func(format string, args ...any) error {
		return Errorf(Corruption, "manifest: "+format, args...)
	}
	if m.Format != ManifestFormat {
		return bad("format is %q, this restore-run reads %q", m.Format, ManifestFormat)
	}
	if m.Engine == "" {
		return bad("engine is empty")
	}
	if len(m.Files) == 0 {
		return bad("lists no files")
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if err := CheckFileName(f.Name); err != nil {
			return bad("files[%d]: %v", i, err)
		}
		if seen[f.Name] {
			return bad("file %q is listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return bad("file %q has negative size", f.Name)
		}
		if !hexSHA256.MatchString(f.SHA256) {
			return bad("file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256)
		}
		switch f.Compression {
		case "", "none", "zstd", "gzip", "lz4":
		default:
			return bad("file %q: unknown compression %q (none, zstd, gzip, lz4)", f.Name, f.Compression)
		}
		if f.PartSize < 0 || (f.PartSize == 0) != (len(f.Parts) == 0) {
			return bad("file %q: part_size and parts must be given together", f.Name)
		}
		if f.PartSize > 0 {
			want := (f.Size + f.PartSize - 1) / f.PartSize
			if f.Size == 0 {
				want = 0
			}
			if int64(len(f.Parts)) != want {
				return bad("file %q: %d parts listed, size %d / part_size %d needs %d", f.Name, len(f.Parts), f.Size, f.PartSize, want)
			}
			for j, p := range f.Parts {
				if !hexSHA256.MatchString(p) {
					return bad("file %q part %d: sha256 %q is not 64 lowercase hex digits", f.Name, j, p)
				}
			}
		}
	}
	return nil
}

// CheckFileName refuses names that could escape a directory when joined to it:
// absolute paths, "..", empty elements and backslashes.
func CheckFileName(name string) error {
	if name == "" {
		return fmt.Errorf("empty file name")
	}
	if strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
		return fmt.Errorf("file name %q must be a relative slash-separated path", name)
	}
	if path.Clean(name) != name {
		return fmt.Errorf("file name %q is not clean (no '.', '..', '//' or trailing '/')", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return fmt.Errorf("file name %q leaves the snapshot with '..'", name)
		}
		if el == "." {
			// path.Clean keeps a lone "." : it names the directory itself.
			return fmt.Errorf("file name %q names the directory itself, not a file", name)
		}
	}
	if name == ManifestName {
		return fmt.Errorf("file name %q is reserved for the manifest", name)
	}
	return nil
}

// File returns the manifest entry called name.
func (m *Manifest) File(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// TotalSize is the sum of the stored sizes of every file.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Snapshot is a snapshot as the engine found it: its reference and its manifest.
type Snapshot struct {
	// Ref is the reference as given by the user, with any credentials removed.
	Ref string `json:"ref"`
	// Manifest lists the snapshot's files. For a bare file (Bare is true) the engine
	// synthesizes one with a single file, no digest and an empty Engine.
	Manifest *Manifest `json:"-"`
	// Bare is true when Ref names a single native file (e.g. from `etcdctl snapshot
	// save`) rather than a prefix with a manifest.
	Bare bool `json:"bare"`
}
