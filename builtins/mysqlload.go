package builtins

import (
	"context"
	"runtime"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

// loadArgs is mysql.load_dump's unpacked arguments.
type loadArgs struct {
	name       string
	threads    int
	database   string
	rename     map[string]string
	schemas    []string
	decompress string
	commitMB   int
	timeout    time.Duration
}

func unpackLoad(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (*loadArgs, error) {
	const fn = "mysql.load_dump"
	a := &loadArgs{threads: 0, decompress: "auto", commitMB: 32}
	var renameV, schemasV starlark.Value = starlark.None, starlark.None
	var timeoutV starlark.Value = starlark.MakeInt(0)
	if err := Unpack(fn, args, kwargs, "name", &a.name, "threads?", &a.threads, "database?", &a.database, "rename?", &renameV,
		"schemas?", &schemasV, "decompress?", &a.decompress, "commit_mb?", &a.commitMB, "timeout?", &timeoutV); err != nil {
		return nil, err
	}
	if _, ok := env.Snapshot.Manifest.File(a.name); !ok {
		return nil, drivers.Errorf(drivers.Script, "%s: the snapshot has no file %q (files: %s)", fn, a.name, fileNames(env.Snapshot.Manifest))
	}
	if a.threads < 0 || a.threads > 64 {
		return nil, drivers.Errorf(drivers.Script, "%s: threads must be 0 (as many row sessions as cores, 2 to 4), 1 (one client session, in the dump's order) or up to 64 row sessions, not %d", fn, a.threads)
	}
	if a.threads == 0 {
		a.threads = AutoLoadThreads()
	}
	if a.commitMB < 1 {
		return nil, drivers.Errorf(drivers.Script, "%s: commit_mb must be at least 1 (MiB of statements per transaction), not %d", fn, a.commitMB)
	}
	switch a.decompress {
	case "auto", "zstd", "gzip", "none":
	default:
		return nil, drivers.Errorf(drivers.Script, "%s: decompress must be auto, zstd, gzip or none, not %q", fn, a.decompress)
	}
	if renameV != starlark.None {
		g, err := FromValue(renameV)
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, drivers.Errorf(drivers.Script, "%s: rename must be a dict old -> new, e.g. {\"shop\": \"shop_copy\"}", fn)
		}
		a.rename = map[string]string{}
		for k, v := range m {
			s, ok := v.(string)
			if !ok || s == "" {
				return nil, drivers.Errorf(drivers.Script, "%s: rename[%q] must be a non-empty schema name", fn, k)
			}
			a.rename[k] = s
		}
	}
	if schemasV != starlark.None {
		l, err := stringList(fn, schemasV)
		if err != nil {
			return nil, err
		}
		a.schemas = append([]string{}, l...)
	}
	if a.database != "" && len(a.rename) > 0 {
		return nil, drivers.Errorf(drivers.Script, "%s: give database (a dump without --databases) or rename, not both", fn)
	}
	if f, ok := starlark.AsFloat(timeoutV); !ok || f < 0 {
		return nil, drivers.Errorf(drivers.Script, "%s: timeout must be a number of seconds (0: none)", fn)
	} else {
		a.timeout = time.Duration(f * float64(time.Second))
	}
	return a, nil
}

// AutoLoadThreads is mysql.load_dump's threads=0: as many row sessions as
// this machine has cores, at least 2 and at most 4.
func AutoLoadThreads() int {
	return min(max(runtime.NumCPU(), 2), 4)
}

func mysqlLoadDump(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackLoad(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	conn, err := MySQLConn(env, "")
	if err != nil {
		return nil, err
	}
	client, err := withConnection(env, []string{"mariadb"})
	if err != nil {
		return nil, err
	}
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	rc, err := openBlobStream(ctx, env, a.name, a.decompress)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	res, err := mysqlops.LoadDump(ctx, rc, mysqlops.LoadOptions{
		Client:      client,
		Threads:     a.threads,
		Database:    a.database,
		Rename:      a.rename,
		Schemas:     a.schemas,
		CommitBytes: int64(a.commitMB) << 20,
		Redact:      env.Redact,
		Conn:        &conn,
	})
	if err != nil {
		return nil, drivers.WithClass(drivers.ClassOf(err), "mysql.load_dump "+a.name, err)
	}
	env.Log.Info().Str("file", a.name).Int("sessions", res.Sessions).Int64("statements", res.Statements).Int64("inserts", res.Inserts).
		Int64("bytes", res.Bytes).Float64("seconds", res.Duration.Seconds()).Int("skipped", len(res.Skipped)).Msg("dump loaded")
	return loadResult(res)
}

// loadResult is mysql.load_dump's return value.
func loadResult(res mysqlops.LoadResult) (starlark.Value, error) {
	skipped := res.Skipped
	if skipped == nil {
		skipped = []string{}
	}
	return Struct(map[string]any{"statements": res.Statements, "inserts": res.Inserts, "sessions": res.Sessions,
		"skipped": skipped, "bytes": res.Bytes, "seconds": res.Duration.Seconds(), "binlog": binlogValue(res.Binlog),
		"complete": res.Complete})
}

func mysqlLoadDumpPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := unpackLoad(env, args, kwargs); err != nil {
		return nil, err
	}
	return loadResult(mysqlops.LoadResult{})
}
