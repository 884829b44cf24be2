package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// ResolveParams applies the user's KEY=VALUE params to the driver's declared ones:
// defaults for the rest, values parsed by the declared type, unknown keys refused
// with the list of known ones.
func ResolveParams(info drivers.Info, given map[string]string) (map[string]any, error) {
	out := map[string]any{}
	byName := map[string]drivers.Param{}
	for _, p := range info.Params {
		out[p.Name] = p.Default
		byName[p.Name] = p
	}
	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := byName[k]
		if !ok {
			return nil, usageErrorf("unknown param %q for driver %s (known: %s; see `restore-run drivers show %s`)", k, info.ID(), paramNames(info), info.Name)
		}
		v, err := parseParam(p, given[k])
		if err != nil {
			return nil, usageErrorf("param %s=%q: %v", k, given[k], err)
		}
		out[k] = v
	}
	return out, nil
}

func paramNames(info drivers.Info) string {
	if len(info.Params) == 0 {
		return "none"
	}
	var names []string
	for _, p := range info.Params {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func parseParam(p drivers.Param, s string) (any, error) {
	switch p.Type {
	case "int":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want an integer")
		}
		return n, nil
	case "float":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("want a number")
		}
		return f, nil
	case "bool":
		switch strings.ToLower(s) {
		case "true", "yes", "1", "on":
			return true, nil
		case "false", "no", "0", "off":
			return false, nil
		}
		return nil, fmt.Errorf("want true or false")
	case "list":
		if strings.HasPrefix(strings.TrimSpace(s), "[") {
			var l []any
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				return nil, fmt.Errorf("want a JSON list or comma-separated values: %v", err)
			}
			return l, nil
		}
		var l []any
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				l = append(l, e)
			}
		}
		return l, nil
	case "dict":
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, fmt.Errorf("want a JSON object: %v", err)
		}
		return m, nil
	}
	return s, nil
}

// UsageError marks a mistake in how restore-run was called or configured (exit
// code 2), as opposed to a restore that failed.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: drivers.Errorf(drivers.Permanent, format, args...)}
}

// Usage marks err as a usage or configuration error.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}
