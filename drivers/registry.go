package drivers

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
)

// Registry holds drivers keyed by name and version. Several versions of one driver
// coexist; registering a name and version that is already present shadows the earlier
// one (a DBA's override of an embedded script), and the shadowed entry stays listed.
type Registry struct {
	mu      sync.Mutex
	entries []*Entry
}

// Entry is one registered driver.
type Entry struct {
	Driver RestoreDriver
	// ShadowedBy is the Source of the driver that replaced this one, or "".
	ShadowedBy string
}

// Info is shorthand for e.Driver.Info().
func (e *Entry) Info() Info { return e.Driver.Info() }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds d. If a driver with the same name and version is already active it
// becomes shadowed, and Register returns it so the caller can report the shadowing.
func (r *Registry) Register(d RestoreDriver) (shadowed *Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := d.Info()
	for _, e := range r.entries {
		ei := e.Info()
		if e.ShadowedBy == "" && ei.Name == info.Name && ei.Version.Equal(info.Version) {
			e.ShadowedBy = info.Source
			shadowed = e
		}
	}
	r.entries = append(r.entries, &Entry{Driver: d})
	return shadowed
}

// List returns every entry, active and shadowed, sorted by name, then version
// (highest first), then registration order.
func (r *Registry) List() []*Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]*Entry(nil), r.entries...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Info(), out[j].Info()
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Version.GreaterThan(b.Version)
	})
	return out
}

// Spec is a parsed driver reference: a name and an optional version constraint.
type Spec struct {
	Name       string
	Constraint string // as written, "" for any version
	c          *semver.Constraints
}

func (s Spec) String() string {
	if s.Constraint == "" {
		return s.Name
	}
	return s.Name + "@" + s.Constraint
}

// ParseSpec parses NAME or NAME@CONSTRAINT, where CONSTRAINT is a semantic version
// constraint: "1" (any 1.x), "^1.2", "~1.2", "=1.2.0", ">=1.1, <2".
func ParseSpec(s string) (Spec, error) {
	name, cons, hasAt := strings.Cut(strings.TrimSpace(s), "@")
	if name == "" {
		return Spec{}, Errorf(Permanent, "driver reference %q has no name (write NAME or NAME@VERSION, e.g. etcd@^1.0)", s)
	}
	spec := Spec{Name: name}
	if hasAt {
		if cons == "" {
			return Spec{}, Errorf(Permanent, "driver reference %q has an empty version after '@' (e.g. %s@1 or %s@=1.0.0)", s, name, name)
		}
		c, err := semver.NewConstraint(cons)
		if err != nil {
			return Spec{}, Errorf(Permanent, "driver reference %q: bad version constraint %q: %v (e.g. %s@1, %s@^1.2, %s@=1.2.0)", s, cons, err, name, name, name)
		}
		spec.Constraint, spec.c = cons, c
	}
	return spec, nil
}

// Resolve returns the active driver with the highest version that matches spec
// (NAME or NAME@CONSTRAINT). An unknown name or an unmatched constraint fails with
// the list of what is available.
func (r *Registry) Resolve(spec string) (RestoreDriver, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return r.ResolveSpec(s)
}

// ResolveSpec is Resolve for an already parsed spec. Shadowed drivers are reachable
// only when no active driver matches and the constraint is exact (=X.Y.Z); then the
// last registered active one of that version wins, which is always the active one.
func (r *Registry) ResolveSpec(s Spec) (RestoreDriver, error) {
	var versions []string
	var best RestoreDriver
	for _, e := range r.List() {
		info := e.Info()
		if info.Name != s.Name || e.ShadowedBy != "" {
			continue
		}
		versions = append(versions, info.Version.String())
		if s.c != nil && !s.c.Check(info.Version) {
			continue
		}
		if best == nil || info.Version.GreaterThan(best.Info().Version) {
			best = e.Driver
		}
	}
	if best != nil {
		return best, nil
	}
	if len(versions) == 0 {
		return nil, Errorf(Permanent, "unknown driver %q (available: %s; list them with `restore-run drivers`)", s.Name, r.available())
	}
	return nil, Errorf(Permanent, "no version of driver %q matches %q (available: %s)", s.Name, s.Constraint, strings.Join(versions, ", "))
}

func (r *Registry) available() string {
	seen := map[string]bool{}
	var ids []string
	for _, e := range r.List() {
		if e.ShadowedBy == "" && !seen[e.Info().ID()] {
			seen[e.Info().ID()] = true
			ids = append(ids, e.Info().ID())
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// String summarises the registry for debugging.
func (r *Registry) String() string { return fmt.Sprintf("registry(%s)", r.available()) }
