package builtins

import (
	"context"
	"io"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
)

func init() {
	Register(Module{
		Name: "blob",
		Doc: "The run's snapshot in its blob store. Every byte fetched is checked against " +
			"the manifest's size and sha256 (per part when the manifest has parts).",
		Funcs: []Func{
			{Name: "fetch", Effect: Write, Params: "name, dest=None", Returns: "local path",
				Doc:    "Downloads snapshot file name to dest (default: WORKDIR/download/NAME), verified.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Transient, drivers.Cancelled},
				Impl:   blobFetch, Plan: blobFetchPlan},
			{Name: "fetch_all", Effect: Write, Params: "dest_dir=None", Returns: "dict name -> local path",
				Doc:    "Downloads every file of the snapshot under dest_dir (default: WORKDIR/download), verified.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Transient, drivers.Cancelled},
				Impl:   blobFetchAll, Plan: blobFetchAllPlan},
			{Name: "read", Effect: Read, Params: "name", Returns: "string",
				Doc:    "Reads a small snapshot file (at most 16 MiB) into memory, verified.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Transient},
				Impl:   blobRead},
		},
	})
}

func fetchDest(env *Env, name, dest string) (string, error) {
	if err := drivers.CheckFileName(name); err != nil {
		return "", drivers.WithClass(drivers.Script, "blob.fetch", err)
	}
	f, ok := env.Snapshot.Manifest.File(name)
	if !ok {
		return "", drivers.Errorf(drivers.Script, "blob.fetch: the snapshot has no file %q (files: %s)", name, fileNames(env.Snapshot.Manifest))
	}
	if f.Compression != "" && f.Compression != "none" {
		// Handing compressed bytes to a restore tool would surface as a misleading
		// "corrupt snapshot" error later; say what is missing instead.
		return "", drivers.Errorf(drivers.Permanent, "blob.fetch: file %q is %s-compressed, and this restore-run cannot decompress snapshot files yet; store it uncompressed", name, f.Compression)
	}
	if dest == "" {
		dest = filepath.Join(env.WorkDir(), "download", filepath.FromSlash(name))
	}
	return env.CheckPath(dest)
}

func fileNames(m *drivers.Manifest) string {
	s := ""
	for i, f := range m.Files {
		if i > 0 {
			s += ", "
		}
		if i == 10 {
			return s + "..."
		}
		s += f.Name
	}
	return s
}

func unpackFetch(args starlark.Tuple, kwargs []starlark.Tuple) (name, dest string, err error) {
	var destV starlark.Value = starlark.None
	if err := Unpack("blob.fetch", args, kwargs, "name", &name, "dest?", &destV); err != nil {
		return "", "", err
	}
	if s, ok := starlark.AsString(destV); ok {
		dest = s
	}
	return name, dest, nil
}

func blobFetch(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	name, dest, err := unpackFetch(args, kwargs)
	if err != nil {
		return nil, err
	}
	dst, err := fetchDest(env, name, dest)
	if err != nil {
		return nil, err
	}
	res, err := env.Source.Fetch(ctx, name, dst)
	if err != nil {
		return nil, err
	}
	env.Log.Info().Str("file", name).Int64("bytes", res.Size).Dur("took", res.Duration).Msg("fetched and verified")
	return starlark.String(res.Path), nil
}

func blobFetchPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	name, dest, err := unpackFetch(args, kwargs)
	if err != nil {
		return nil, err
	}
	dst, err := fetchDest(env, name, dest)
	if err != nil {
		return nil, err
	}
	return starlark.String(dst), nil
}

func fetchAll(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple, plan bool) (starlark.Value, error) {
	var dirV starlark.Value = starlark.None
	if err := Unpack("blob.fetch_all", args, kwargs, "dest_dir?", &dirV); err != nil {
		return nil, err
	}
	dir := filepath.Join(env.WorkDir(), "download")
	if s, ok := starlark.AsString(dirV); ok {
		dir = s
	}
	out := map[string]any{}
	for _, f := range env.Snapshot.Manifest.Files {
		dst, err := fetchDest(env, f.Name, filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil {
			return nil, err
		}
		if !plan {
			res, err := env.Source.Fetch(ctx, f.Name, dst)
			if err != nil {
				return nil, err
			}
			env.Log.Info().Str("file", f.Name).Int64("bytes", res.Size).Dur("took", res.Duration).Msg("fetched and verified")
		}
		out[f.Name] = dst
	}
	return ToValue(out)
}

func blobFetchAll(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return fetchAll(ctx, env, args, kwargs, false)
}

func blobFetchAllPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return fetchAll(ctx, env, args, kwargs, true)
}

func blobRead(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := Unpack("blob.read", args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	if _, ok := env.Snapshot.Manifest.File(name); !ok {
		return nil, drivers.Errorf(drivers.Script, "blob.read: the snapshot has no file %q (files: %s)", name, fileNames(env.Snapshot.Manifest))
	}
	r, err := env.Source.OpenFile(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxRead+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRead {
		return nil, drivers.Errorf(drivers.Script, "blob.read %s: larger than 16 MiB; use blob.fetch", name)
	}
	return starlark.String(data), nil
}
