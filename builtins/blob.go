package builtins

import (
	"context"
	"io"
	"path/filepath"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/drivers"
)

// fetchErrors are the classes a download can fail with.
var fetchErrors = []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Transient, drivers.Throttled, drivers.Cancelled}

func init() {
	Register(Module{
		Name: "blob",
		Doc: "The run's snapshot in its blob store. Every byte fetched is checked against " +
			"the manifest's size and sha256 (per part when the manifest has parts) before it " +
			"is decompressed or used. Downloads run in parallel, are retried per part and " +
			"resume after an interrupted run that kept its --workdir (docs/downloads.md).",
		Funcs: []Func{
			{Name: "fetch", Idempotent: true, Effect: Write, Params: "name, dest=None, decompress=True", Returns: "local path",
				Doc: "Downloads snapshot file name to dest (default: WORKDIR/download/NAME), verified. " +
					"A compressed file (manifest compression zstd, gzip or lz4) is written decompressed " +
					"unless decompress=False, which writes the stored bytes.",
				Errors: fetchErrors, Impl: blobFetch, Plan: blobFetchPlan},
			{Name: "fetch_all", Idempotent: true, Effect: Write, Params: "dest_dir=None, decompress=True", Returns: "dict name -> local path",
				Doc: "Downloads every file of the snapshot under dest_dir (default: WORKDIR/download), " +
					"several at once, verified, decompressed unless decompress=False.",
				Errors: fetchErrors, Impl: blobFetchAll, Plan: blobFetchAllPlan},
			{Name: "read", Idempotent: true, Effect: Read, Params: "name", Returns: "string",
				Doc:    "Reads a small snapshot file (at most 16 MiB) into memory, verified (the stored bytes, not decompressed).",
				Errors: []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Transient, drivers.Throttled},
				Impl:   blobRead},
		},
	})
}

// pipelineSource is a snapshot source that runs the download pipeline's options: a
// *blobstore.Source. Test fakes may implement only SnapshotSource.
type pipelineSource interface {
	FetchFiles(ctx context.Context, files []blobstore.FileRequest, opts blobstore.FetchOptions) ([]blobstore.FetchResult, error)
}

// transferStateDir is where downloads keep their resume journals and records of
// completed files: inside the run's work dir, so that a rerun with the same
// --workdir resumes, and nothing is written beside the downloaded files.
func transferStateDir(env *Env) string {
	return filepath.Join(env.WorkDir(), ".restore-run", "transfer")
}

func fetchDest(env *Env, name, dest string) (string, error) {
	if err := drivers.CheckFileName(name); err != nil {
		return "", drivers.WithClass(drivers.Script, "blob.fetch", err)
	}
	if _, ok := env.Snapshot.Manifest.File(name); !ok {
		return "", drivers.Errorf(drivers.Script, "blob.fetch: the snapshot has no file %q (files: %s)", name, fileNames(env.Snapshot.Manifest))
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

func unpackFetch(args starlark.Tuple, kwargs []starlark.Tuple) (name, dest string, decompress bool, err error) {
	var destV starlark.Value = starlark.None
	decompress = true
	if err := Unpack("blob.fetch", args, kwargs, "name", &name, "dest?", &destV, "decompress?", &decompress); err != nil {
		return "", "", false, err
	}
	if s, ok := starlark.AsString(destV); ok {
		dest = s
	}
	return name, dest, decompress, nil
}

// fetchFiles downloads files (all at once through the pipeline when the source
// runs it).
func fetchFiles(ctx context.Context, env *Env, files []blobstore.FileRequest, decompress bool) error {
	if ps, ok := env.Source.(pipelineSource); ok {
		log := env.Log
		_, err := ps.FetchFiles(ctx, files, blobstore.FetchOptions{Decompress: decompress, StateDir: transferStateDir(env), Log: &log})
		return err
	}
	for _, fr := range files {
		if f, _ := env.Snapshot.Manifest.File(fr.Name); decompress && f.Compression != "" && f.Compression != "none" {
			return drivers.Errorf(drivers.Permanent, "blob.fetch: file %q is %s-compressed and this snapshot source cannot decompress; use decompress=False", fr.Name, f.Compression)
		}
		res, err := env.Source.Fetch(ctx, fr.Name, fr.Dst)
		if err != nil {
			return err
		}
		env.Log.Info().Str("file", fr.Name).Int64("bytes", res.Size).Dur("took", res.Duration).Msg("fetched and verified")
	}
	return nil
}

func blobFetch(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	name, dest, decompress, err := unpackFetch(args, kwargs)
	if err != nil {
		return nil, err
	}
	dst, err := fetchDest(env, name, dest)
	if err != nil {
		return nil, err
	}
	if err := fetchFiles(ctx, env, []blobstore.FileRequest{{Name: name, Dst: dst}}, decompress); err != nil {
		return nil, err
	}
	return starlark.String(dst), nil
}

func blobFetchPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	name, dest, _, err := unpackFetch(args, kwargs)
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
	decompress := true
	if err := Unpack("blob.fetch_all", args, kwargs, "dest_dir?", &dirV, "decompress?", &decompress); err != nil {
		return nil, err
	}
	dir := filepath.Join(env.WorkDir(), "download")
	if s, ok := starlark.AsString(dirV); ok {
		dir = s
	}
	out := map[string]any{}
	var files []blobstore.FileRequest
	for _, f := range env.Snapshot.Manifest.Files {
		dst, err := fetchDest(env, f.Name, filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil {
			return nil, err
		}
		files = append(files, blobstore.FileRequest{Name: f.Name, Dst: dst})
		out[f.Name] = dst
	}
	if !plan {
		if err := fetchFiles(ctx, env, files, decompress); err != nil {
			return nil, err
		}
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
