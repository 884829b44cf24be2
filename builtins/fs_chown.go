package builtins

import (
	"context"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

// fsChown implements fs.chown(path, user): a restored data dir must belong to
// the server's OS user before the server starts on it.
func fsChown(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p, name string
	if err := Unpack("fs.chown", args, kwargs, "path", &p, "user", &name); err != nil {
		return nil, err
	}
	p, err := env.CheckPath(p)
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "fs.chown: no OS user %q: %v", name, err), "set os_user in the target file")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	n := 0
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return nil, drivers.WithClass(drivers.ClassOf(err), "fs.chown "+p, err)
	}
	return starlark.MakeInt(n), nil
}
