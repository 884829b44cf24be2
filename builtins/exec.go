package builtins

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

func init() {
	Register(Module{
		Name: "exec",
		Doc: "Runs the database's own tools: only allowed programs (" + strings.Join(mysqlops.Programs, ", ") +
			"), found on PATH, with arguments as a list (no shell). Output is captured with a bounded tail; " +
			"a timeout or Ctrl-C kills the program's whole process group. Credentials reach client tools " +
			"through a temporary option file (0600, in the work dir), never on the command line.",
		Funcs: []Func{
			{Name: "run", Effect: Write,
				Params: `argv, stdin_blob=None, stdin_file=None, decompress="auto", rename_schemas=None, append="", ` +
					`connect=False, env={}, timeout=0, check=True, tail=65536`,
				Returns: "struct(code, stdout, stderr, seconds, bytes_in)",
				Doc: "Runs argv[0] (an allowed program) with argv[1:]. " +
					"stdin_blob streams a snapshot file from the blob store, verified as it is read; a file that fails " +
					"its checksum kills the program before its stdin closes, so a broken stream never looks complete. " +
					"decompress: \"auto\" (the manifest's compression, else a .zst/.gz name), \"zstd\", \"gzip\" or \"none\". " +
					"rename_schemas ({old: new}) rewrites the CREATE DATABASE and USE lines of a mariadb-dump stream; " +
					"append is written after the stream (e.g. \"COMMIT;\"). stdin_file reads a local file instead. " +
					"connect=True gives a client tool (mariadb, mariadb-admin, mariadb-check, myloader) the target's " +
					"connection and credentials through an option file. A non-zero exit fails unless check=False.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Transient, drivers.Corruption, drivers.Cancelled, drivers.Script},
				Impl:   execRun, Plan: execRunPlan},
			{Name: "version", Idempotent: true, Effect: Read, Params: "program", Returns: "struct(path, version, series, mariadb, text)",
				Doc:    "Runs `program --version` and parses it (series is MAJOR.MINOR). A missing program is a permanent error naming how to install it.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Script}, Impl: execVersion},
		},
	})
}

// execArgs is exec.run's unpacked arguments.
type execArgs struct {
	argv       []string
	stdinBlob  string
	stdinFile  string
	decompress string
	rename     map[string]string
	appendText string
	connect    bool
	env        []string
	timeout    time.Duration
	check      bool
	tail       int
}

func unpackExec(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (*execArgs, error) {
	var (
		argvV, blobV, fileV, renameV, envV starlark.Value = nil, starlark.None, starlark.None, starlark.None, starlark.None
		decompress                                        = "auto"
		appendText                         string
		connect                            bool
		timeoutV                           starlark.Value = starlark.MakeInt(0)
		check                                             = true
		tail                                              = 65536
	)
	if err := Unpack("exec.run", args, kwargs, "argv", &argvV, "stdin_blob?", &blobV, "stdin_file?", &fileV,
		"decompress?", &decompress, "rename_schemas?", &renameV, "append?", &appendText, "connect?", &connect,
		"env?", &envV, "timeout?", &timeoutV, "check?", &check, "tail?", &tail); err != nil {
		return nil, err
	}
	a := &execArgs{decompress: decompress, appendText: appendText, connect: connect, check: check, tail: tail}
	argv, err := stringList("exec.run", argvV)
	if err != nil || len(argv) == 0 {
		return nil, drivers.Errorf(drivers.Script, "exec.run: argv must be a non-empty list of strings (the program and its arguments)")
	}
	if !mysqlops.Allowed(argv[0]) {
		return nil, drivers.Errorf(drivers.Script, "exec.run: program %q is not allowed; allowed programs: %s", argv[0], strings.Join(mysqlops.Programs, ", "))
	}
	a.argv = argv
	if s, ok := starlark.AsString(blobV); ok {
		if _, found := env.Snapshot.Manifest.File(s); !found {
			return nil, drivers.Errorf(drivers.Script, "exec.run: the snapshot has no file %q (files: %s)", s, fileNames(env.Snapshot.Manifest))
		}
		a.stdinBlob = s
	}
	if s, ok := starlark.AsString(fileV); ok {
		if a.stdinBlob != "" {
			return nil, drivers.Errorf(drivers.Script, "exec.run: give stdin_blob or stdin_file, not both")
		}
		if a.stdinFile, err = env.CheckPath(s); err != nil {
			return nil, err
		}
	}
	switch decompress {
	case "auto", "zstd", "gzip", "none":
	default:
		return nil, drivers.Errorf(drivers.Script, "exec.run: decompress must be auto, zstd, gzip or none, not %q", decompress)
	}
	if renameV != starlark.None {
		g, err := FromValue(renameV)
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, drivers.Errorf(drivers.Script, "exec.run: rename_schemas must be a dict old -> new")
		}
		a.rename = map[string]string{}
		for k, v := range m {
			s, ok := v.(string)
			if !ok || s == "" {
				return nil, drivers.Errorf(drivers.Script, "exec.run: rename_schemas[%q] must be a non-empty string", k)
			}
			a.rename[k] = s
		}
	}
	if envV != starlark.None {
		g, err := FromValue(envV)
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, drivers.Errorf(drivers.Script, "exec.run: env must be a dict NAME -> value")
		}
		for k, v := range m {
			a.env = append(a.env, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if f, ok := starlark.AsFloat(timeoutV); !ok || f < 0 {
		return nil, drivers.Errorf(drivers.Script, "exec.run: timeout must be a number of seconds (0: none)")
	} else {
		a.timeout = time.Duration(f * float64(time.Second))
	}
	return a, nil
}

// clientTool reports how a program takes an option file: "extra" for the
// mariadb client family (--defaults-extra-file, which must come first), "file"
// for myloader (--defaults-file), "" for programs that do not connect.
func clientTool(prog string) string {
	switch prog {
	case "mariadb", "mysql", "mariadb-admin", "mysqladmin", "mariadb-check", "mysqlcheck":
		return "extra"
	case "myloader":
		return "file"
	}
	return ""
}

// defaultsFile writes (once per run) the option file with the target's
// connection and credentials, removed when the run ends.
func defaultsFile(env *Env) (string, error) {
	type df struct {
		path string
		err  error
	}
	v := env.Value("exec.defaults", func() any {
		c, err := MySQLConn(env, "")
		if err != nil {
			return &df{err: err}
		}
		p := filepath.Join(env.WorkDir(), ".restore-run-client.cnf")
		if err := mysqlops.WriteDefaultsFile(p, c, "myloader", "mariadb-check", "mysqlcheck"); err != nil {
			return &df{err: drivers.WithClass(drivers.Permanent, "write client option file", err)}
		}
		env.Defer("client option file", func(context.Context) error { os.Remove(p); return nil })
		return &df{path: p}
	}).(*df)
	return v.path, v.err
}

// withConnection inserts the option-file argument right after the program name.
func withConnection(env *Env, argv []string) ([]string, error) {
	kind := clientTool(argv[0])
	if kind == "" {
		return nil, drivers.Errorf(drivers.Script, "exec.run: connect=True is for client tools (mariadb, mariadb-admin, mariadb-check, myloader), not %s", argv[0])
	}
	p, err := defaultsFile(env)
	if err != nil {
		return nil, err
	}
	flag := "--defaults-extra-file=" + p
	if kind == "file" {
		flag = "--defaults-file=" + p
	}
	return append([]string{argv[0], flag}, argv[1:]...), nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// openBlobStream opens a snapshot file as a verified, decompressed stream.
func openBlobStream(ctx context.Context, env *Env, name, decompress string) (io.ReadCloser, error) {
	f, _ := env.Snapshot.Manifest.File(name)
	comp := decompress
	if comp == "auto" {
		comp = mysqlops.CompressionOf(name, f.Compression)
	}
	r, err := env.Source.OpenFile(ctx, name)
	if err != nil {
		return nil, err
	}
	return mysqlops.Decompress(r, comp)
}

func execRun(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackExec(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	argv := a.argv
	if a.connect {
		if argv, err = withConnection(env, argv); err != nil {
			return nil, err
		}
	}
	var stdin io.Reader
	var counter *countingReader
	switch {
	case a.stdinBlob != "":
		rc, err := openBlobStream(ctx, env, a.stdinBlob, a.decompress)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		stdin = mysqlops.RenameSchemas(rc, a.rename)
	case a.stdinFile != "":
		f, err := os.Open(a.stdinFile)
		if err != nil {
			return nil, drivers.WithClass(drivers.Permanent, "exec.run stdin", err)
		}
		defer f.Close()
		comp := a.decompress
		if comp == "auto" {
			comp = mysqlops.CompressionOf(a.stdinFile, "")
		}
		rc, err := mysqlops.Decompress(f, comp)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		stdin = mysqlops.RenameSchemas(rc, a.rename)
	}
	if stdin != nil {
		if a.appendText != "" {
			stdin = io.MultiReader(stdin, strings.NewReader("\n"+a.appendText+"\n"))
		}
		counter = &countingReader{r: stdin}
		stdin = counter
	}
	res, err := mysqlops.Run(ctx, mysqlops.Cmd{
		Argv: argv, Env: a.env, Stdin: stdin, Timeout: a.timeout, TailBytes: a.tail, Redact: env.Redact,
	})
	var in int64
	if counter != nil {
		in = counter.n.Load()
	}
	if err != nil && (a.check || res.Code <= 0) {
		return nil, err
	}
	env.Log.Info().Str("program", a.argv[0]).Int("code", res.Code).Float64("seconds", res.Duration.Seconds()).Int64("bytes_in", in).Msg("exec.run")
	return Struct(map[string]any{"code": res.Code, "stdout": res.Stdout, "stderr": res.Stderr, "seconds": res.Duration.Seconds(), "bytes_in": in})
}

func execRunPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if _, err := unpackExec(env, args, kwargs); err != nil {
		return nil, err
	}
	return Struct(map[string]any{"code": 0, "stdout": "", "stderr": "", "seconds": 0.0, "bytes_in": 0})
}

func execVersion(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var prog string
	if err := Unpack("exec.version", args, kwargs, "program", &prog); err != nil {
		return nil, err
	}
	path, err := mysqlops.LookPath(prog)
	if err != nil {
		return nil, err
	}
	v, text, err := mysqlops.ToolVersion(ctx, path)
	if err != nil {
		return nil, err
	}
	return Struct(map[string]any{"path": path, "version": v.String(), "series": v.Series(), "mariadb": v.MariaDB, "text": text})
}
