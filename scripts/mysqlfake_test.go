package scripts_test

// The harness for mysql_test.go: fake "sql", "exec", "proc", "mysql" and "service"
// modules answering from a small model of a MySQL server, and helpers to run whole
// restores of the embedded mysql.star through engine.Runner. blob and fs stay real:
// snapshots are packed with blobstore.Pack and the script really moves directories.

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/engine"
)

// myServer is the fake server: its schemas (name -> objects), version, and the
// inventory validation reads (by default the snapshot's own).
type myServer struct {
	Version   string
	Objects   map[string]int
	Inventory map[string]any // nil: the manifest's inventory, as restored
	// Checksums overrides table checksums ("schema.table" -> value).
	Checksums map[string]string
	Holding   map[string]bool
}

// myFake holds the fake modules of one test.
type myFake struct {
	t      *testing.T
	Server *myServer
	// ToolSeries is what exec.version says of mariabackup and mariadbd.
	ToolSeries string
	// Hooks run before a fake answers (key: "exec.run mariadb", "service.start",
	// "sql.move_aside", ...); an error they return is the builtin's error.
	Hooks map[string]func(args map[string]any) error

	mu    sync.Mutex
	calls []myCall
	inv   map[string]any
}

type myCall struct {
	Builtin string // "exec.run mariadb" for exec.run, else the builtin
	Phase   string
	Args    map[string]any
}

func newMyFake(t *testing.T) *myFake {
	return &myFake{t: t, ToolSeries: "10.11", Hooks: map[string]func(map[string]any) error{},
		Server: &myServer{Version: "10.11.19-MariaDB", Objects: map[string]int{}, Holding: map[string]bool{}}}
}

// sequence lists the calls, e.g. "execute exec.run mariadb", optionally only of the
// given builtins (prefix match).
func (f *myFake) sequence(prefixes ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		keep := len(prefixes) == 0
		for _, p := range prefixes {
			if strings.HasPrefix(c.Builtin, p) {
				keep = true
			}
		}
		if keep {
			out = append(out, c.Phase+" "+c.Builtin)
		}
	}
	return out
}

func (f *myFake) callsTo(builtin string) []myCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []myCall
	for _, c := range f.calls {
		if c.Builtin == builtin {
			out = append(out, c)
		}
	}
	return out
}

type myAnswer func(env *builtins.Env, args map[string]any) (any, error)

func (f *myFake) modules(mods []builtins.Module) []builtins.Module {
	answers := map[string]map[string]myAnswer{
		"sql": {
			"query": f.sqlQuery,
			"exec": func(*builtins.Env, map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"rows_affected": 0, "last_insert_id": 0})
			},
			"wait_ready": func(*builtins.Env, map[string]any) (any, error) {
				return f.Server.Version, nil
			},
			"inventory": f.sqlInventory,
			"objects": func(env *builtins.Env, a map[string]any) (any, error) {
				return f.Server.Objects[a["schema"].(string)], nil
			},
			"move_aside": func(env *builtins.Env, a map[string]any) (any, error) {
				f.Server.Holding[a["holding"].(string)] = true
				return map[string]any{"tables": 5, "views": 2, "routines": 2, "triggers": 1, "events": 1}, nil
			},
			"move_back": func(env *builtins.Env, a map[string]any) (any, error) {
				delete(f.Server.Holding, a["holding"].(string))
				return map[string]any{"tables": 5, "views": 2, "routines": 2, "triggers": 1, "events": 1}, nil
			},
			"drop_holding": func(env *builtins.Env, a map[string]any) (any, error) {
				delete(f.Server.Holding, a["holding"].(string))
				return nil, nil
			},
		},
		"exec": {
			"run": f.execRun,
			"version": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"path": "/usr/bin/" + a["program"].(string), "version": f.ToolSeries + ".19-MariaDB",
					"series": f.ToolSeries, "mariadb": true, "text": "fake"})
			},
		},
		"proc": {
			"start": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"name": a["name"], "pid": 4242})
			},
			"stop": func(*builtins.Env, map[string]any) (any, error) { return true, nil },
			"status": func(*builtins.Env, map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"running": true, "pid": 4242, "exit_code": nil, "log_tail": ""})
			},
			"memory": func(*builtins.Env, map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"total": int64(24 << 30), "available": int64(20 << 30)})
			},
		},
		"mysql": {
			"scan_dump": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"tool": "MariaDB dump 10.19", "server_version": "10.11.19-MariaDB-log",
					"schemas": []string{"shop"}, "tables": 5, "bytes": 1000, "sandbox": true,
					"binlog": map[string]any{"file": "mysql-bin.000003", "position": 1234, "gtid": "0-7-17"}})
			},
			"backup_info": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"server_version": "10.11.19-MariaDB-log", "tool_version": "10.11.19-MariaDB",
					"binlog": map[string]any{"file": "mysql-bin.000003", "position": 99, "gtid": "0-7-18"}, "info": map[string]any{}})
			},
			"load_dump": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"statements": 120, "inserts": 100, "sessions": 3, "skipped": []string{}, "bytes": 1000,
					"seconds": 0.5, "binlog": map[string]any{"file": "mysql-bin.000003", "position": 1234, "gtid": "0-7-17"}, "complete": true})
			},
			"mydumper_info": func(env *builtins.Env, a map[string]any) (any, error) {
				return builtins.Struct(map[string]any{"schemas": []string{"shop"}, "binlog": nil})
			},
		},
		"service": {"start": f.service, "stop": f.service},
	}
	return fakeModules(f.t, mods, answers, map[string]bool{"mysql.parse_version": true}, f.impl) // pure parsing: the real one
}

func (f *myFake) impl(qualified, params string, ans myAnswer) builtins.Impl {
	names := paramNames(params)
	return func(ctx context.Context, env *builtins.Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		bound, err := bind(qualified, names, args, kwargs)
		if err != nil {
			return nil, err
		}
		key := qualified
		if qualified == "exec.run" {
			key += " " + bound["argv"].([]any)[0].(string)
		}
		f.mu.Lock()
		f.calls = append(f.calls, myCall{Builtin: key, Phase: builtins.PhaseFrom(ctx), Args: bound})
		hook := f.Hooks[key]
		f.mu.Unlock()
		if hook != nil {
			if err := hook(bound); err != nil {
				return nil, err
			}
		}
		v, err := ans(env, bound)
		if err != nil {
			return nil, err
		}
		return builtins.ToValue(v)
	}
}

func (f *myFake) sqlQuery(env *builtins.Env, a map[string]any) (any, error) {
	stmt := a["stmt"].(string)
	switch {
	case strings.Contains(stmt, "VERSION()"):
		return []any{map[string]any{"v": f.Server.Version}}, nil
	case strings.Contains(stmt, "information_schema.SCHEMATA"):
		name := a["args"].([]any)[0].(string)
		if f.Server.Holding[name] || f.Server.Objects[name] > 0 {
			return []any{map[string]any{"x": 1}}, nil
		}
		return []any{}, nil
	}
	return []any{}, nil
}

// sqlInventory answers with the snapshot's inventory (what a faithful restore
// holds), with the test's checksum overrides.
func (f *myFake) sqlInventory(env *builtins.Env, a map[string]any) (any, error) {
	inv := f.Server.Inventory
	if inv == nil {
		inv = env.Snapshot.Manifest.Metadata["inventory"].(map[string]any)
	}
	checksums, _ := a["checksums"].(bool)
	out := map[string]any{}
	schemas, _ := a["schemas"].([]any)
	for s, sv := range inv {
		if len(schemas) > 0 && !contains(toStrings(schemas), s) {
			continue
		}
		sc := sv.(map[string]any)
		tables := map[string]any{}
		for t, tv := range sc["tables"].(map[string]any) {
			ti := map[string]any{}
			for k, v := range tv.(map[string]any) {
				if k != "checksum" || checksums {
					ti[k] = v
				}
			}
			if c, ok := f.Server.Checksums[s+"."+t]; ok && checksums {
				ti["checksum"] = c
			}
			tables[t] = ti
		}
		out[s] = map[string]any{"tables": tables, "views": sc["views"], "routines": sc["routines"], "triggers": sc["triggers"], "events": sc["events"]}
	}
	return out, nil
}

func toStrings(l []any) []string {
	var out []string
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

func (f *myFake) execRun(env *builtins.Env, a map[string]any) (any, error) {
	return builtins.Struct(map[string]any{"code": 0, "stdout": "", "stderr": "", "seconds": 0.1, "bytes_in": 1000})
}

func (f *myFake) service(env *builtins.Env, a map[string]any) (any, error) {
	return nil, nil
}

// run runs the embedded mysql.star with the fake modules.
func (f *myFake) run(o engine.Options) (*engine.Report, error) {
	f.t.Helper()
	return runFaked(f.t, "mysql", f.modules, o)
}

// shopInventory is the manifest inventory of the fake shop schema.
func shopInventory() map[string]any {
	return map[string]any{"shop": map[string]any{
		"tables": map[string]any{
			"customers": map[string]any{"rows": 3000, "engine": "InnoDB", "checksum": "111"},
			"orders":    map[string]any{"rows": 3001, "engine": "InnoDB", "checksum": "222"},
			"legacy":    map[string]any{"rows": 3000, "engine": "MyISAM", "checksum": "333"},
		},
		"views": []any{"big_paid", "paid_orders"}, "routines": []any{"FUNCTION vat", "PROCEDURE customer_total"},
		"triggers": []any{"orders_audit"}, "events": []any{"purge_audit"},
	}}
}

// packMySQL packs a mysql snapshot of files (name -> content) with metadata.
func packMySQL(t *testing.T, meta map[string]any, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	var pf []blobstore.PackFile
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		pf = append(pf, blobstore.PackFile{Path: p, Name: name})
	}
	dest := filepath.Join(t.TempDir(), "snap")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "mysql", EngineVersion: "10.11.19-MariaDB-log", Files: pf, Dest: dest, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	return dest
}

func shopMeta(format string) map[string]any {
	return map[string]any{"format": format, "server_version": "10.11.19-MariaDB-log", "schemas": []any{"shop"}, "inventory": shopInventory(),
		"binlog": map[string]any{"file": "mysql-bin.000003", "position": 1234, "gtid": "0-7-17"}}
}

// myTarget writes a target file for a live server; with datadir, a physical one
// whose data dir holds the marker file OLD.
func myTarget(t *testing.T, physical bool) (file, datadir string) {
	t.Helper()
	t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	t.Setenv("FAKE_MYSQL_PW", "fake-secret-pw")
	base := t.TempDir()
	text := "engine: mysql\nhost: 10.0.0.5\nport: 3306\nuser: restorer\npassword: {env: FAKE_MYSQL_PW}\n"
	if physical {
		datadir = filepath.Join(base, "mysql")
		writeFile(t, filepath.Join(datadir, "OLD"), "old data")
		u, _ := user.Current()
		text += "datadir: " + datadir + "\nos_user: " + u.Username + "\nservice: {start: [fake-start], stop: [fake-stop]}\n"
	}
	file = filepath.Join(base, "target.yaml")
	writeFile(t, file, text)
	return file, datadir
}
