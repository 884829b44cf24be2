package builtins

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"go.starlark.net/starlark"
	"golang.org/x/sys/unix"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/internal/atomicfile"
)

// maxRead bounds fs.read: scripts read small metadata files, not data.
const maxRead = 16 << 20

func init() {
	Register(Module{
		Name: "fs",
		Doc: "Files and directories, confined to the run's work dir and the target's declared " +
			"dirs. Relative paths are relative to the work dir. Nothing is ever overwritten: " +
			"fs.move refuses an existing destination.",
		Funcs: []Func{
			{Name: "exists", Idempotent: true, Effect: Read, Params: "path", Returns: "bool", Doc: "Whether anything (file, directory, symlink) exists at path.",
				Impl: fsExists},
			{Name: "stat", Idempotent: true, Effect: Read, Params: "path", Returns: "struct(exists, is_dir, size, mode)",
				Doc: "What is at path; size of a directory is the total size of the files under it.", Impl: fsStat},
			{Name: "list", Idempotent: true, Effect: Read, Params: "path", Returns: "list of names, sorted",
				Doc: "The names of the entries of directory path, sorted; not recursive.", Impl: fsList},
			{Name: "read", Idempotent: true, Effect: Read, Params: "path", Returns: "string",
				Doc: "The content of a small file (at most 16 MiB).", Impl: fsRead},
			{Name: "disk_free", Idempotent: true, Effect: Read, Params: "path", Returns: "int (bytes)",
				Doc:  "Bytes available to unprivileged users on the filesystem holding path (or its nearest existing parent).",
				Impl: fsDiskFree},
			{Name: "join", Idempotent: true, Effect: Read, Params: "*parts", Returns: "string", Doc: "Joins path elements with / and cleans the result: fs.join(m.data_dir, \"member\", \"snap\"). Touches nothing.",
				Impl: fsJoin, NoRecord: true},
			{Name: "mkdir", Idempotent: true, Effect: Write, Params: "path", Returns: "path",
				Doc: "Creates directory path and its missing parents (mode 0700); fine if it exists.", Impl: fsMkdir, Plan: planPathArg("fs.mkdir")},
			{Name: "write", Idempotent: true, Effect: Write, Params: "path, content", Returns: "path",
				Doc: "Writes content to the file path atomically (a temp file renamed into place), creating its parent directories; replaces an existing file.", Impl: fsWrite, Plan: planPathArg("fs.write", "path", "content")},
			{Name: "move", Effect: Write, Params: "src, dst", Returns: "dst",
				Doc:    "Renames src to dst on the same filesystem (a target's data dir may be moved aside); refuses if dst exists.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Script}, Impl: fsMove, Plan: planArg("fs.move", []string{"src", "dst"}, 1)},
			{Name: "remove", Idempotent: true, Effect: Write, Params: "path", Returns: "bool (whether something was removed)",
				Doc: "Removes path and everything under it; refuses a root itself (the work dir or a declared target dir). Fine if nothing is there.", Impl: fsRemove},
			{Name: "chown", Effect: Write, Params: "path, user", Returns: "int (entries changed)",
				Doc:  "Gives path and everything under it to the OS user (and its group), e.g. a restored MySQL data dir to mysql; symlinks are not followed.",
				Impl: fsChown},
			{Name: "rmdir", Idempotent: true, Effect: Write, Params: "path", Returns: "bool (whether it was removed)",
				Doc:  "Removes an empty directory (a declared target dir too, since it holds nothing); refuses the work dir and a non-empty directory.",
				Impl: fsRmdir},
		},
	})
}

func onePath(fn string, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (string, error) {
	var p string
	if err := Unpack(fn, args, kwargs, "path", &p); err != nil {
		return "", err
	}
	return env.CheckPath(p)
}

func fsExists(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.exists", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	_, err = os.Lstat(p)
	return starlark.Bool(err == nil), nil
}

func fsStat(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.stat", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Struct(map[string]any{"exists": false, "is_dir": false, "size": 0, "mode": ""})
	}
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "stat "+p, err)
	}
	size := fi.Size()
	if fi.IsDir() {
		size = 0
		err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					size += info.Size()
				}
			}
			return nil
		})
		if err != nil {
			return nil, drivers.WithClass(drivers.ClassOf(err), "stat "+p, err)
		}
	}
	return Struct(map[string]any{"exists": true, "is_dir": fi.IsDir(), "size": size, "mode": fi.Mode().String()})
}

func fsList(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.list", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "list "+p, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return ToValue(names)
}

func fsRead(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.read", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "read "+p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRead+1))
	if err != nil {
		return nil, drivers.WithClass(drivers.Transient, "read "+p, err)
	}
	if len(data) > maxRead {
		return nil, drivers.Errorf(drivers.Script, "read %s: file is larger than 16 MiB; fs.read is for small metadata files", p)
	}
	return starlark.String(data), nil
}

func fsDiskFree(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.disk_free", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "statfs "+p, err)
	}
	return starlark.MakeUint64(st.Bavail * uint64(st.Bsize)), nil
}

func fsJoin(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, drivers.Errorf(drivers.Script, "fs.join takes no keyword arguments")
	}
	parts := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "fs.join: argument %d is %s, want string", i+1, a.Type())
		}
		parts[i] = s
	}
	return starlark.String(filepath.Join(parts...)), nil
}

func fsMkdir(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.mkdir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p, 0o700); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "mkdir "+p, err)
	}
	return starlark.String(p), nil
}

func fsWrite(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p, content string
	if err := Unpack("fs.write", args, kwargs, "path", &p, "content", &content); err != nil {
		return nil, err
	}
	p, err := env.CheckPath(p)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "write "+p, err)
	}
	if err := atomicfile.Write(p, []byte(content), 0o600, 0o700); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "fs.write", err)
	}
	return starlark.String(p), nil
}

func fsMove(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var src, dst string
	if err := Unpack("fs.move", args, kwargs, "src", &src, "dst", &dst); err != nil {
		return nil, err
	}
	src, err := env.CheckPath(src)
	if err != nil {
		return nil, err
	}
	if dst, err = env.CheckPath(dst); err != nil {
		return nil, err
	}
	if filepath.Clean(src) == filepath.Clean(env.WorkDir()) {
		return nil, drivers.Errorf(drivers.Script, "fs.move: %s is the run's work dir and cannot be moved", src)
	}
	if _, err := os.Lstat(src); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "move "+src, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, drivers.Errorf(drivers.Permanent, "move %s: destination %s already exists; fs.move never overwrites (remove it first if it is safe to)", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "move "+src, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "move "+src+" to "+dst, err)
	}
	return starlark.String(dst), nil
}

func fsRemove(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.remove", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if env.IsRoot(p) {
		return nil, drivers.Errorf(drivers.Script, "fs.remove: %s is a root (the work dir or a declared target dir) and cannot be removed", p)
	}
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return starlark.False, nil
	}
	if err := os.RemoveAll(p); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "remove "+p, err)
	}
	return starlark.True, nil
}

func fsRmdir(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("fs.rmdir", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if filepath.Clean(p) == filepath.Clean(env.WorkDir()) {
		return nil, drivers.Errorf(drivers.Script, "fs.rmdir: %s is the run's work dir", p)
	}
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return starlark.False, nil
	}
	// os.Remove on a directory removes it only when empty.
	if err := os.Remove(p); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "rmdir "+p+" (it must be empty)", err)
	}
	return starlark.True, nil
}

// planPathArg returns a plan function giving back the (checked) path argument, so a
// planned mkdir or write returns what the real one would.
func planPathArg(fn string, names ...string) Impl {
	if len(names) == 0 {
		names = []string{"path"}
	}
	return planArg(fn, names, 0)
}

// planArg returns a plan function that unpacks string arguments called names and
// gives back the checked path in names[idx].
func planArg(fn string, names []string, idx int) Impl {
	return func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		vals := make([]string, len(names))
		pairs := make([]any, 0, 2*len(names))
		for i, n := range names {
			pairs = append(pairs, n, &vals[i])
		}
		if err := Unpack(fn, args, kwargs, pairs...); err != nil {
			return nil, err
		}
		p, err := env.CheckPath(vals[idx])
		if err != nil {
			return nil, err
		}
		return starlark.String(p), nil
	}
}
