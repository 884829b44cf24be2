package builtins

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/mysqlops"
)

func init() {
	Register(Module{
		Name: "proc",
		Doc: "Supervised local processes for scratch targets (a throwaway mariadbd): started in their own " +
			"process group from the allowed programs, waited for until ready, and stopped when the run " +
			"ends, also after a failure or Ctrl-C (SIGTERM, then SIGKILL after a timeout).",
		Funcs: []Func{
			{Name: "start", Effect: Write,
				Params:  "name, argv, log=None, error_log=None, ready_socket=None, ready_tcp=None, timeout=120",
				Returns: "struct(name, pid)",
				Doc: "Starts argv (an allowed program) as process name, its output appended to log, and waits until " +
					"ready_socket (a unix socket path) or ready_tcp (host:port) accepts a connection. A process that " +
					"exits first, or is not ready within timeout seconds, is killed and reported with the end of " +
					"error_log (or log).",
				Errors: []drivers.Class{drivers.Permanent, drivers.Transient, drivers.Cancelled, drivers.Script},
				Impl:   procStart, Plan: procStartPlan},
			{Name: "stop", Effect: Write, Params: "name, timeout=120", Returns: "bool (whether it was running)",
				Doc:  "Stops process name: SIGTERM (a clean shutdown for mariadbd), SIGKILL to its group after timeout seconds.",
				Impl: procStop},
			{Name: "status", Idempotent: true, Effect: Read, Params: "name", Returns: "struct(running, pid, exit_code, log_tail)",
				Doc: "Whether process name runs, and the end of its log.", Impl: procStatus},
			{Name: "memory", Idempotent: true, Effect: Read, Params: "", Returns: "struct(total, available) in bytes",
				Doc: "The machine's memory (from /proc/meminfo), to size buffers such as mariabackup --use-memory.", Impl: procMemory},
		},
	})
}

type procs struct {
	mu      sync.Mutex
	running map[string]*mysqlops.Process
}

func procsOf(env *Env) *procs {
	return env.Value("proc.running", func() any {
		p := &procs{running: map[string]*mysqlops.Process{}}
		env.Defer("processes", func(context.Context) error {
			p.mu.Lock()
			list := p.running
			p.running = map[string]*mysqlops.Process{}
			p.mu.Unlock()
			var wg sync.WaitGroup
			for _, pr := range list {
				wg.Add(1)
				go func() { defer wg.Done(); pr.Stop(60 * time.Second) }()
			}
			wg.Wait()
			return nil
		})
		return p
	}).(*procs)
}

type startArgs struct {
	name                                      string
	cfg                                       mysqlops.ProcessConfig
	readySocket, readyTCP, logFile, errorFile string
}

func unpackStart(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (*startArgs, error) {
	var (
		name                              string
		argvV                             starlark.Value
		logV, errV, sockV, tcpV, timeoutV starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None, starlark.None
	)
	if err := Unpack("proc.start", args, kwargs, "name", &name, "argv", &argvV, "log?", &logV, "error_log?", &errV,
		"ready_socket?", &sockV, "ready_tcp?", &tcpV, "timeout?", &timeoutV); err != nil {
		return nil, err
	}
	argv, err := stringList("proc.start", argvV)
	if err != nil || len(argv) == 0 {
		return nil, drivers.Errorf(drivers.Script, "proc.start: argv must be a non-empty list of strings")
	}
	if !mysqlops.Allowed(argv[0]) {
		return nil, drivers.Errorf(drivers.Script, "proc.start: program %q is not allowed; allowed programs: %s", argv[0], strings.Join(mysqlops.Programs, ", "))
	}
	timeout, err := timeoutArg("proc.start", timeoutV, 120)
	if err != nil {
		return nil, err
	}
	a := &startArgs{name: name}
	for _, x := range []struct {
		v   starlark.Value
		dst *string
	}{{logV, &a.logFile}, {errV, &a.errorFile}} {
		if s, ok := starlark.AsString(x.v); ok {
			if *x.dst, err = env.CheckPath(s); err != nil {
				return nil, err
			}
		}
	}
	a.readySocket, _ = starlark.AsString(sockV)
	a.readyTCP, _ = starlark.AsString(tcpV)
	a.cfg = mysqlops.ProcessConfig{Argv: argv, LogFile: a.logFile, ErrorLog: a.errorFile,
		ReadySocket: a.readySocket, ReadyTCP: a.readyTCP, ReadyTimeout: timeout}
	return a, nil
}

func procStart(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackStart(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	reg := procsOf(env)
	reg.mu.Lock()
	if p, ok := reg.running[a.name]; ok && p.Running() {
		reg.mu.Unlock()
		return nil, drivers.Errorf(drivers.Script, "proc.start: process %s already runs (pid %d)", a.name, p.Pid())
	}
	reg.mu.Unlock()
	p, err := mysqlops.StartProcess(ctx, a.cfg)
	if err != nil {
		return nil, drivers.WithClass(drivers.ClassOf(err), "proc.start "+a.name, err)
	}
	reg.mu.Lock()
	reg.running[a.name] = p
	reg.mu.Unlock()
	env.Log.Info().Str("name", a.name).Int("pid", p.Pid()).Msg("process ready")
	return Struct(map[string]any{"name": a.name, "pid": p.Pid()})
}

func procStartPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackStart(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	return Struct(map[string]any{"name": a.name, "pid": 0})
}

func procStop(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var tv starlark.Value = starlark.None
	if err := Unpack("proc.stop", args, kwargs, "name", &name, "timeout?", &tv); err != nil {
		return nil, err
	}
	timeout, err := timeoutArg("proc.stop", tv, 120)
	if err != nil {
		return nil, err
	}
	reg := procsOf(env)
	reg.mu.Lock()
	p, ok := reg.running[name]
	delete(reg.running, name)
	reg.mu.Unlock()
	if !ok || !p.Running() {
		return starlark.False, nil
	}
	if _, err := p.Stop(timeout); err != nil {
		env.Log.Warn().Str("name", name).Err(err).Msg("proc.stop")
	}
	return starlark.True, nil
}

func procStatus(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := Unpack("proc.status", args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	reg := procsOf(env)
	reg.mu.Lock()
	p, ok := reg.running[name]
	reg.mu.Unlock()
	if !ok {
		return Struct(map[string]any{"running": false, "pid": 0, "exit_code": nil, "log_tail": ""})
	}
	var code any
	if !p.Running() {
		code = p.ExitCode()
	}
	return Struct(map[string]any{"running": p.Running(), "pid": p.Pid(), "exit_code": code, "log_tail": env.Redact(p.LogTail(4000))})
}

func procMemory(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := Unpack("proc.memory", args, kwargs); err != nil {
		return nil, err
	}
	total, avail := MemInfo()
	return Struct(map[string]any{"total": total, "available": avail})
}

// MemInfo returns MemTotal and MemAvailable from /proc/meminfo, in bytes (0 when
// unknown).
func MemInfo() (total, available int64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			total = n * 1024
		case "MemAvailable:":
			available = n * 1024
		}
	}
	return total, available
}
