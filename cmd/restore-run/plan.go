package main

import (
	"fmt"
	"io"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/engine"
)

// phaseIntent says, for the plan, what each phase is for.
var phaseIntent = map[string]string{
	"download": "fetch and verify the snapshot; the target is not touched",
	"prepare":  "checks and staging next to the target's data; nothing is destroyed",
	"execute":  "restore into the target",
	"validate": "check the restored database",
	"commit":   "after validation passed: drop what a rollback would have needed",
	"rollback": "put the target back as it was",
}

// printPlan prints the steps a restore would take, in order and grouped by phase:
// for each builtin call a short description of what it would do (the command, the
// SQL, the file move), READ or WRITE, the exact call and the script line. Secrets
// are already masked in the recorded calls; the work dir reads $WORKDIR.
func printPlan(w io.Writer, r *engine.Report) {
	fmt.Fprintf(w, "plan: restore %s into %s\n", r.Snapshot.Ref, r.Target.Ref)
	fmt.Fprintf(w, "  driver    %s@%s (%s)\n", r.Driver.Name, r.Driver.Version, r.Driver.Source)
	snap := r.Snapshot.Ref
	switch {
	case r.Snapshot.Engine != "":
		snap += fmt.Sprintf(" (%s %s, %d file(s), %s)", r.Snapshot.Engine, r.Snapshot.EngineVersion, r.Snapshot.Files, humanBytes(r.Snapshot.Bytes))
	case r.Snapshot.Bare:
		snap += fmt.Sprintf(" (native file, %s)", humanBytes(r.Snapshot.Bytes))
	}
	fmt.Fprintf(w, "  snapshot  %s\n", snap)
	kind := "target file"
	if r.Target.Scratch {
		kind = "scratch, created and torn down by the run"
	}
	fmt.Fprintf(w, "  target    %s (%s)\n", r.Target.Ref, kind)
	fmt.Fprintf(w, "  work dir  $WORKDIR = %s\n", r.WorkDir)
	fmt.Fprintf(w, "  run id    %s\n", r.RunID)
	if len(r.Params) > 0 {
		var ps []string
		for _, k := range sortedKeys(r.Params) {
			ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
		}
		fmt.Fprintf(w, "  params    %s\n", strings.Join(ps, " "))
	}
	docs := builtinDocs()
	n, writes := 0, 0
	for _, p := range r.Phases {
		fmt.Fprintf(w, "\n%s: %s\n", p.Name, phaseIntent[p.Name])
		if p.Result == "skipped" {
			fmt.Fprintln(w, "  not run in plan mode: it checks the restored target, which a plan does not create")
			continue
		}
		hasCalls := false
		for _, c := range r.Calls {
			if c.Phase != p.Name {
				continue
			}
			hasCalls = true
			n++
			tag := "read "
			if c.Planned {
				tag = "WRITE"
				writes++
			}
			call := c.String()
			if r.WorkDir != "" {
				call = strings.ReplaceAll(call, r.WorkDir, "$WORKDIR")
			}
			what := describeCall(c.Builtin, call, docs[c.Builtin])
			fmt.Fprintf(w, "  %2d. %s %s\n", n, tag, what)
			if what != call {
				fmt.Fprintf(w, "           %s\n", call)
			}
			if c.Pos != "" {
				fmt.Fprintf(w, "           at %s\n", c.Pos)
			}
		}
		if !hasCalls {
			fmt.Fprintln(w, "  (no builtin calls)")
		}
	}
	fmt.Fprintf(w, "\n%d steps, %d of them WRITE. Nothing was changed: WRITE steps were recorded, not run.\n", n, writes)
	for _, note := range r.Notes {
		if !strings.HasPrefix(note, "validate is not run in plan mode") {
			fmt.Fprintf(w, "note: %s\n", note)
		}
	}
}

// builtinDocs maps qualified builtin names to their definitions.
func builtinDocs() map[string]builtins.Func {
	out := map[string]builtins.Func{}
	for _, m := range append(builtins.Modules(), builtins.Globals) {
		for _, f := range m.Funcs {
			name := f.Name
			if m.Name != "" {
				name = m.Name + "." + f.Name
			}
			out[name] = f
		}
	}
	return out
}

// describeCall returns a short description of a recorded call: what it would do,
// with its arguments (parsed back from the recorded, redacted call text). Unknown
// builtins are described by the first sentence of their doc; a call that cannot
// be parsed is shown as it is.
func describeCall(builtin, call string, f builtins.Func) string {
	args, ok := parseCall(call, f)
	if !ok {
		return call
	}
	str := func(name string) string { return plain(args[name]) }
	switch builtin {
	case "blob.fetch":
		dest := str("dest")
		if dest == "" || dest == "None" {
			dest = "$WORKDIR/download/" + str("name")
		}
		return fmt.Sprintf("download snapshot file %s to %s, verified", str("name"), dest)
	case "blob.fetch_all":
		dest := str("dest_dir")
		if dest == "" || dest == "None" {
			dest = "$WORKDIR/download"
		}
		return "download every snapshot file to " + dest + ", verified"
	case "blob.read":
		return "read snapshot file " + str("name")
	case "fs.mkdir":
		return "create directory " + str("path")
	case "fs.write":
		return fmt.Sprintf("write file %s (%d bytes)", str("path"), len(str("content")))
	case "fs.move":
		return fmt.Sprintf("move %s -> %s", str("src"), str("dst"))
	case "fs.remove":
		return "remove " + str("path") + " and everything under it"
	case "fs.rmdir":
		return "remove the empty directory " + str("path")
	case "fs.chown":
		return fmt.Sprintf("give %s to user %s", str("path"), str("user"))
	case "fs.exists":
		return "check whether " + str("path") + " exists"
	case "fs.stat", "fs.list", "fs.read":
		return strings.TrimPrefix(builtin, "fs.") + " " + str("path")
	case "fs.disk_free":
		return "measure free space at " + str("path")
	case "etcd.snapshot_status":
		return "inspect etcd snapshot " + str("path") + " (checksum, revision, keys)"
	case "etcd.snapshot_restore":
		s := fmt.Sprintf("restore etcd member %s into %s from %s", str("name"), str("data_dir"), str("path"))
		if b := str("bump_revision"); b != "" && b != "0" {
			s += ", revision raised by " + b
			if str("mark_compacted") == "True" {
				s += " and marked compacted"
			}
		}
		return s
	case "etcd.start_members":
		var names, urls []string
		if l, ok := args["members"].(*starlark.List); ok {
			for i := 0; i < l.Len(); i++ {
				if st, ok := l.Index(i).(*starlarkstruct.Struct); ok {
					n, _ := st.Attr("name")
					u, _ := st.Attr("client_url")
					names = append(names, plain(n))
					urls = append(urls, plain(u))
				}
			}
		}
		return fmt.Sprintf("start etcd members %s in process, serving %s", strings.Join(names, ", "), strings.Join(urls, ", "))
	case "etcd.stop_member":
		return "stop etcd member " + str("name")
	case "etcd.wait_healthy":
		return fmt.Sprintf("wait up to %ss until %s agree on a leader", str("timeout"), str("endpoints"))
	case "service.start", "service.stop":
		return serviceLine(strings.TrimPrefix(builtin, "service."), args["service"])
	case "sql.exec", "sql.query":
		s := "run SQL: " + oneLine(str("stmt"))
		if db := str("db"); db != "" {
			s += " (database " + db + ")"
		}
		return s
	case "exec.run":
		return "run `" + argv(args["argv"]) + "`"
	case "proc.start":
		return fmt.Sprintf("start process %s: `%s`", str("name"), argv(args["argv"]))
	case "proc.stop":
		return "stop process " + str("name")
	case "fail":
		return "fail: " + str("msg")
	}
	if first := firstSentence(f.Doc); first != "" {
		return strings.TrimSuffix(first, ".") + ": " + call
	}
	return call
}

// parseCall evaluates the recorded call text (builtin(args...)) back into
// arguments bound to the builtin's parameter names.
func parseCall(call string, f builtins.Func) (map[string]starlark.Value, bool) {
	sig, err := f.Signature()
	if err != nil {
		return nil, false
	}
	open := strings.Index(call, "(")
	if open < 0 {
		return nil, false
	}
	var args starlark.Tuple
	var kwargs []starlark.Tuple
	capture := starlark.NewBuiltin("f", func(_ *starlark.Thread, _ *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		args, kwargs = a, kw
		return starlark.None, nil
	})
	thread := &starlark.Thread{Name: "plan"}
	thread.SetMaxExecutionSteps(100000)
	env := starlark.StringDict{"f": capture, "struct": starlark.NewBuiltin("struct", starlarkstruct.Make)}
	if _, err := starlark.EvalOptions(&syntax.FileOptions{}, thread, "call", "f"+call[open:], env); err != nil {
		return nil, false
	}
	bound, _, err := sig.Bind("f", args, kwargs)
	if err != nil {
		return nil, false
	}
	return bound, true
}

// plain renders a value for people: strings without quotes, lists joined.
func plain(v starlark.Value) string {
	switch x := v.(type) {
	case nil:
		return ""
	case starlark.String:
		return string(x)
	case *starlark.List:
		var parts []string
		for i := 0; i < x.Len(); i++ {
			parts = append(parts, plain(x.Index(i)))
		}
		return strings.Join(parts, ", ")
	}
	return v.String()
}

// argv renders a command line, quoting arguments with spaces.
func argv(v starlark.Value) string {
	l, ok := v.(*starlark.List)
	if !ok {
		return plain(v)
	}
	var parts []string
	for i := 0; i < l.Len(); i++ {
		s := plain(l.Index(i))
		if s == "" || strings.ContainsAny(s, " \t'\"$") {
			s = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// serviceLine describes service.start/stop of a target's service entry.
func serviceLine(action string, svc starlark.Value) string {
	st, ok := svc.(*starlarkstruct.Struct)
	if !ok {
		return action + " service " + plain(svc)
	}
	if unit, err := st.Attr("systemd"); err == nil && unit != nil {
		return fmt.Sprintf("%s service: systemctl %s %s", action, action, plain(unit))
	}
	if cmd, err := st.Attr(action); err == nil && cmd != nil {
		return fmt.Sprintf("%s service: run `%s`", action, argv(cmd))
	}
	return action + " service " + st.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func firstSentence(doc string) string {
	if i := strings.Index(doc, ". "); i >= 0 {
		return doc[:i+1]
	}
	return doc
}
