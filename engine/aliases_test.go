package engine

import "go.starlark.net/starlark"

type (
	starlarkTuple = starlark.Tuple
	starlarkKV    = starlark.Tuple
	starlarkValue = starlark.Value
)

var starlarkNone = starlark.None
