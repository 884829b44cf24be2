package engine

import (
	"errors"
	"io/fs"
	"sort"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// Catalog is the result of discovery: the registry of drivers, the scripts that
// failed to load, and which scripts shadow which.
type Catalog struct {
	Registry *drivers.Registry
	Problems []Problem
	Shadows  []Shadow
}

// Problem is a script that could not be loaded.
type Problem struct {
	File string
	Err  error
}

// Shadow records that a later source replaced a driver of the same name and
// version.
type Shadow struct {
	ID     string // name@version
	Winner string // source of the active script
	Loser  string // source of the shadowed one
}

// Discover loads every driver script (*.star at the top of each source, except
// *_test.star) in source order. Later sources shadow earlier ones.
func (h *Host) Discover() *Catalog {
	c := &Catalog{Registry: drivers.NewRegistry()}
	for _, src := range h.Sources {
		entries, err := fs.ReadDir(src.FS, ".")
		if err != nil {
			c.Problems = append(c.Problems, Problem{File: src.Name, Err: drivers.WithClass(drivers.Script, "read script dir "+src.Name, err)})
			continue
		}
		var names []string
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".star") || strings.HasSuffix(n, "_test.star") {
				continue
			}
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d, err := h.LoadScript(src, n)
			if err != nil {
				c.Problems = append(c.Problems, Problem{File: displayName(src, n), Err: err})
				h.Log.Warn().Str("script", displayName(src, n)).Err(err).Msg("script not loaded")
				continue
			}
			if old := c.Registry.Register(d); old != nil {
				s := Shadow{ID: d.Info().ID(), Winner: d.Info().Source, Loser: old.Info().Source}
				c.Shadows = append(c.Shadows, s)
				h.Log.Info().Str("driver", s.ID).Str("source", s.Winner).Str("shadows", s.Loser).Msg("script shadows an earlier one")
			}
		}
	}
	return c
}

// Resolve returns the driver spec names (NAME or NAME@CONSTRAINT). A script that
// failed to load and whose file is named for this driver (NAME.star, NAME-*.star)
// makes resolution fail with that script's error rather than silently falling back
// to another version.
func (c *Catalog) Resolve(spec string) (drivers.RestoreDriver, error) {
	s, err := drivers.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, p := range c.Problems {
		base := p.File[strings.LastIndexAny(p.File, "/:")+1:]
		stem := strings.TrimSuffix(base, ".star")
		if stem == s.Name || strings.HasPrefix(stem, s.Name+"-") || strings.HasPrefix(stem, s.Name+"@") {
			errs = append(errs, p.Err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c.Registry.ResolveSpec(s)
}
