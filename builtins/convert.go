package builtins

import (
	"fmt"
	"math"
	"sort"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// ToValue converts a Go value made of nil, bools, numbers, strings, slices and
// string-keyed maps into Starlark. Maps become dicts with sorted keys.
func ToValue(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return x, nil
	case bool:
		return starlark.Bool(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int32:
		return starlark.MakeInt64(int64(x)), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case uint32:
		return starlark.MakeUint64(uint64(x)), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			// JSON numbers arrive as float64; whole ones read better as ints.
			return starlark.MakeInt64(int64(x)), nil
		}
		return starlark.Float(x), nil
	case string:
		return starlark.String(x), nil
	case []byte:
		return starlark.String(x), nil
	case time.Time:
		return starlark.String(x.UTC().Format(time.RFC3339Nano)), nil
	case time.Duration:
		return starlark.Float(x.Seconds()), nil
	case []string:
		l := make([]starlark.Value, len(x))
		for i, s := range x {
			l[i] = starlark.String(s)
		}
		return starlark.NewList(l), nil
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			ev, err := ToValue(e)
			if err != nil {
				return nil, err
			}
			l[i] = ev
		}
		return starlark.NewList(l), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			ev, err := ToValue(x[k])
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), ev); err != nil {
				return nil, err
			}
		}
		return d, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return ToValue(m)
	}
	return nil, fmt.Errorf("cannot convert Go %T to a Starlark value", v)
}

// Struct converts a map into a Starlark struct (fields read as s.name). Nested maps
// stay dicts unless they are themselves converted with Struct first.
func Struct(fields map[string]any) (*starlarkstruct.Struct, error) {
	sd := make(starlark.StringDict, len(fields))
	for k, v := range fields {
		sv, err := ToValue(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		sd[k] = sv
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, sd), nil
}

// MustStruct is Struct for maps of known-convertible values.
func MustStruct(fields map[string]any) *starlarkstruct.Struct {
	s, err := Struct(fields)
	if err != nil {
		panic(err)
	}
	return s
}

// FromValue converts a Starlark value into Go: None→nil, bool, int64, float64,
// string, []any, map[string]any (from dicts with string keys and from structs).
func FromValue(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		i, ok := x.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %s is too large", x)
		}
		return i, nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case starlark.Bytes:
		return string(x), nil
	case *starlark.List:
		out := make([]any, x.Len())
		for i := 0; i < x.Len(); i++ {
			e, err := FromValue(x.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case starlark.Tuple:
		out := make([]any, len(x))
		for i, e := range x {
			ge, err := FromValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = ge
		}
		return out, nil
	case *starlark.Dict:
		out := make(map[string]any, x.Len())
		for _, item := range x.Items() {
			k, ok := item[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", item[0])
			}
			ev, err := FromValue(item[1])
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", k, err)
			}
			out[string(k)] = ev
		}
		return out, nil
	case *starlarkstruct.Struct:
		sd := starlark.StringDict{}
		x.ToStringDict(sd)
		out := make(map[string]any, len(sd))
		for k, e := range sd {
			ev, err := FromValue(e)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
			out[k] = ev
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert Starlark %s to a plain value", v.Type())
}
