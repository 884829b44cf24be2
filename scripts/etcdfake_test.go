package scripts_test

// The harness for etcd_test.go: fake "etcd" and "service" builtin modules, a small
// model of the restored cluster they answer from, and helpers to run whole restores
// of the embedded etcd.star through engine.Runner. blob and fs stay real: snapshots
// are packed with blobstore.Pack and the script really moves directories.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/blobstore"
	"github.com/restore-run/restore-run/builtins"
	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// ---- what the fakes answer ----

// snapStatus is what the fake etcd.snapshot_status reports for any existing file.
type snapStatus struct {
	Revision    int64
	TotalKey    int64
	TotalSize   int64
	Hash        uint64
	Version     string
	HasChecksum bool
}

// The snapshot every test starts from: status and manifest metadata agree.
const (
	snapRevision = 4242
	snapKeys     = 17
)

func defaultStatus() snapStatus {
	return snapStatus{Revision: snapRevision, TotalKey: snapKeys, TotalSize: 24576, Hash: 0xdeadbeef, Version: "3.6.0", HasChecksum: true}
}

// member is what one member of the restored cluster answers.
type member struct {
	Name, ID          string
	Endpoint, PeerURL string
	Leader            string // the leader's ID as this member sees it
	IsLeader          bool
	Revision          int64
	Hash              uint64   // its HashKV
	Errors            []string // its alarms
}

// cluster is the restored cluster as the fake client calls see it. It is built from
// the target and the restores on the first client call: every member healthy, m1
// leading, every member at the snapshot's revision (plus the bump the restores were
// given), equal hashes and the snapshot's key count. Tests break one thing with
// fake.Break.
type cluster struct {
	Members []*member
	Listed  []string          // names etcd.member_list returns (default: every member)
	Keys    int64             // what etcd.count returns
	Values  map[string]string // what etcd.get returns
}

func (c *cluster) byEndpoint(ep string) *member {
	for _, m := range c.Members {
		if m.Endpoint == ep {
			return m
		}
	}
	return nil
}

// setRevision moves every member to rev.
func (c *cluster) setRevision(rev int64) {
	for _, m := range c.Members {
		m.Revision = rev
	}
}

// fakeCall is one call a fake answered.
type fakeCall struct {
	Builtin string // e.g. "etcd.snapshot_restore"
	Phase   string
	N       int            // 1 for the first call of this builtin in the run, 2 for the second, ...
	Member  string         // the member the call is about, when there is one
	Args    map[string]any // arguments by parameter name, as Go values
	Result  any            // what the fake returned (nil on error)
}

func (c fakeCall) String() string { return c.Builtin + "(" + c.Member + ")" }

// fake holds the fake etcd and service modules of one test.
type fake struct {
	t *testing.T
	// Status is what etcd.snapshot_status says about the snapshot file.
	Status snapStatus
	// Break changes the cluster model once it is built (one thing at a time).
	Break func(c *cluster)
	// EditStatus changes the fields of every etcd.status answer (e.g. drops one).
	EditStatus func(fields map[string]any)
	// Hooks run before a fake answers (key: "etcd.snapshot_restore", "service.start",
	// ...); an error they return is the builtin's error.
	Hooks map[string]func(c fakeCall) error

	mu    sync.Mutex
	calls []fakeCall
	model *cluster
}

func newFake(t *testing.T) *fake {
	return &fake{t: t, Status: defaultStatus(), Hooks: map[string]func(fakeCall) error{}}
}

// failNth makes the n-th call of builtin fail with an error of class cls.
func (f *fake) failNth(builtin string, n int, cls drivers.Class, msg string) {
	f.Hooks[builtin] = func(c fakeCall) error {
		if c.N == n {
			return drivers.Errorf(cls, "%s: %s", builtin, msg)
		}
		return nil
	}
}

// calls returns the recorded calls of the given builtins (all when none given).
func (f *fake) callsTo(names ...string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if len(names) == 0 || contains(names, c.Builtin) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fake) count(builtin string) int { return len(f.callsTo(builtin)) }

// sequence renders the calls of the given builtins as "service.stop(m1)", in order.
func (f *fake) sequence(names ...string) []string {
	var out []string
	for _, c := range f.callsTo(names...) {
		out = append(out, c.String())
	}
	return out
}

// writes are the fake WRITE builtins: none may run in plan mode.
var writes = []string{"etcd.snapshot_restore", "etcd.start_members", "etcd.stop_member", "service.start", "service.stop"}

// ---- the fake modules ----

// answer computes a fake builtin's result (a Go value for builtins.ToValue, or a
// starlark.Value) from its bound arguments.
type answer func(env *builtins.Env, c *fakeCall) (any, error)

// modules returns mods with "etcd" and "service" replaced by fakes (fakeModules).
func (f *fake) modules(mods []builtins.Module) []builtins.Module {
	answers := map[string]map[string]answer{
		"etcd": {
			"snapshot_status":  f.snapshotStatus,
			"snapshot_restore": f.snapshotRestore,
			"start_members":    f.startMembers,
			"stop_member":      func(*builtins.Env, *fakeCall) (any, error) { return false, nil },
			"status":           f.status,
			"member_list":      f.memberList,
			"hashkv":           f.hashKV,
			"count":            func(env *builtins.Env, c *fakeCall) (any, error) { return f.cluster(env).Keys, nil },
			"get":              f.get,
			"wait_healthy":     f.waitHealthy,
		},
		"service": {"start": f.service, "stop": f.service},
	}
	return fakeModules(f.t, mods, answers, nil, f.impl)
}

// impl wraps an answer: bind the arguments as the real builtin documents them (so a
// script calling it wrongly fails as it would for real), record the call, run the
// test's hook, answer.
func (f *fake) impl(qualified, params string, ans answer) builtins.Impl {
	names := paramNames(params)
	return func(ctx context.Context, env *builtins.Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		bound, err := bind(qualified, names, args, kwargs)
		if err != nil {
			return nil, err
		}
		c := fakeCall{Builtin: qualified, Phase: builtins.PhaseFrom(ctx), Args: bound, Member: memberOf(env, bound)}
		f.mu.Lock()
		c.N = 1
		for _, p := range f.calls {
			if p.Builtin == qualified {
				c.N++
			}
		}
		idx := len(f.calls)
		f.calls = append(f.calls, c)
		hook := f.Hooks[qualified]
		f.mu.Unlock()
		if hook != nil {
			if err := hook(c); err != nil {
				return nil, err
			}
		}
		v, err := ans(env, &c)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.calls[idx].Result = v
		f.mu.Unlock()
		return builtins.ToValue(v)
	}
}

// paramNames turns a documented signature ("endpoint, revision=0") into
// starlark.UnpackArgs names ("endpoint", "revision?").
func paramNames(sig string) []string {
	var out []string
	for _, p := range strings.Split(sig, ",") {
		name, _, optional := strings.Cut(strings.TrimSpace(p), "=")
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if optional {
			name += "?"
		}
		out = append(out, name)
	}
	return out
}

func bind(fn string, names []string, args starlark.Tuple, kwargs []starlark.Tuple) (map[string]any, error) {
	vals := make([]starlark.Value, len(names))
	pairs := make([]any, 0, 2*len(names))
	for i, n := range names {
		pairs = append(pairs, n, &vals[i])
	}
	if err := builtins.Unpack(fn, args, kwargs, pairs...); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for i, n := range names {
		if vals[i] == nil {
			continue
		}
		g, err := builtins.FromValue(vals[i])
		if err != nil {
			return nil, drivers.WithClass(drivers.Script, fn, err)
		}
		out[strings.TrimSuffix(n, "?")] = g
	}
	return out, nil
}

// specMembers returns the target's members as the target spec holds them.
func specMembers(env *builtins.Env) []map[string]any {
	var out []map[string]any
	if env.Target == nil {
		return nil
	}
	raw, _ := env.Target.Spec["members"].([]any)
	for _, r := range raw {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// memberOf names the member a call is about: by name, endpoint or service entry.
func memberOf(env *builtins.Env, args map[string]any) string {
	if n, ok := args["name"].(string); ok {
		return n
	}
	for _, m := range specMembers(env) {
		if ep, ok := args["endpoint"].(string); ok && m["client_url"] == ep {
			return m["name"].(string)
		}
		if svc, ok := args["service"]; ok && m["service"] != nil && reflect.DeepEqual(m["service"], svc) {
			return m["name"].(string)
		}
	}
	return ""
}

// cluster returns the cluster model, building it on first use.
func (f *fake) cluster(env *builtins.Env) *cluster {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.model != nil {
		return f.model
	}
	var bump int64
	for _, c := range f.calls {
		if c.Builtin == "etcd.snapshot_restore" {
			bump, _ = c.Args["bump_revision"].(int64)
		}
	}
	c := &cluster{Keys: f.Status.TotalKey, Values: map[string]string{}}
	for i, m := range specMembers(env) {
		c.Members = append(c.Members, &member{
			Name: m["name"].(string), ID: fmt.Sprintf("%x", 0x8e0001+i),
			Endpoint: m["client_url"].(string), PeerURL: m["peer_url"].(string),
			IsLeader: i == 0, Revision: f.Status.Revision + bump, Hash: 0x5eed5eed,
		})
	}
	for _, m := range c.Members {
		m.Leader = c.Members[0].ID
	}
	if f.Break != nil {
		f.Break(c)
	}
	f.model = c
	return c
}

func (f *fake) snapshotStatus(env *builtins.Env, c *fakeCall) (any, error) {
	p, err := env.CheckPath(c.Args["path"].(string))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "etcd snapshot status %s: file does not exist; check the path", p)
	}
	s := f.Status
	return builtins.Struct(map[string]any{
		"revision": s.Revision, "total_key": s.TotalKey, "total_size": s.TotalSize,
		"hash": s.Hash, "version": s.Version, "has_checksum": s.HasChecksum,
	})
}

// snapshotRestore creates the member's data dir as etcdutl would (refusing a
// non-empty one and a bump without mark_compacted, like etcdops.Restore) and writes
// member/snap/db naming the member.
func (f *fake) snapshotRestore(env *builtins.Env, c *fakeCall) (any, error) {
	if _, err := env.CheckPath(c.Args["path"].(string)); err != nil {
		return nil, err
	}
	dir, err := env.CheckPath(c.Args["data_dir"].(string))
	if err != nil {
		return nil, err
	}
	bump, _ := c.Args["bump_revision"].(int64)
	compacted, _ := c.Args["mark_compacted"].(bool)
	if (bump > 0) != compacted {
		return nil, drivers.Errorf(drivers.Permanent, "fake restore: bump_revision %d and mark_compacted %v must go together", bump, compacted)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, drivers.Errorf(drivers.Permanent, "fake restore: data dir %s is not empty", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte(newData(c.Member)), 0o600); err != nil {
		return nil, err
	}
	return dir, nil
}

func (f *fake) startMembers(env *builtins.Env, c *fakeCall) (any, error) {
	if env.Target == nil || !env.Target.Scratch {
		return nil, drivers.Errorf(drivers.Script, "etcd.start_members runs in-process members for scratch targets only")
	}
	var urls []string
	for _, m := range c.Args["members"].([]any) {
		urls = append(urls, m.(map[string]any)["client_url"].(string))
	}
	return urls, nil
}

func (f *fake) statusOf(env *builtins.Env, ep string) (starlark.Value, error) {
	m := f.cluster(env).byEndpoint(ep)
	if m == nil {
		return nil, drivers.Errorf(drivers.Transient, "fake etcd: nothing answers at %s", ep)
	}
	errs := append([]string{}, m.Errors...)
	fields := map[string]any{
		"endpoint": ep, "member_id": m.ID, "leader": m.Leader, "is_leader": m.IsLeader,
		"revision": m.Revision, "raft_index": m.Revision + 10, "raft_applied_index": m.Revision + 10,
		"raft_term": 2, "version": "3.6.0", "db_size": 24576, "is_learner": false, "errors": errs,
	}
	if f.EditStatus != nil {
		f.EditStatus(fields)
	}
	return builtins.Struct(fields)
}

func (f *fake) status(env *builtins.Env, c *fakeCall) (any, error) {
	return f.statusOf(env, c.Args["endpoint"].(string))
}

func endpointList(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func (f *fake) memberList(env *builtins.Env, c *fakeCall) (any, error) {
	cl := f.cluster(env)
	names := cl.Listed
	if names == nil {
		for _, m := range cl.Members {
			names = append(names, m.Name)
		}
	}
	var out []any
	for _, n := range names {
		for _, m := range cl.Members {
			if m.Name == n {
				s, err := builtins.Struct(map[string]any{"id": m.ID, "name": m.Name, "peer_urls": []string{m.PeerURL}, "client_urls": []string{m.Endpoint}, "is_learner": false})
				if err != nil {
					return nil, err
				}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func (f *fake) hashKV(env *builtins.Env, c *fakeCall) (any, error) {
	ep := c.Args["endpoint"].(string)
	m := f.cluster(env).byEndpoint(ep)
	if m == nil {
		return nil, drivers.Errorf(drivers.Transient, "fake etcd: nothing answers at %s", ep)
	}
	rev, _ := c.Args["revision"].(int64)
	return builtins.Struct(map[string]any{"hash": m.Hash, "hash_revision": rev, "compact_revision": 0, "revision": m.Revision})
}

func (f *fake) get(env *builtins.Env, c *fakeCall) (any, error) {
	if v, ok := f.cluster(env).Values[c.Args["key"].(string)]; ok {
		return v, nil
	}
	return nil, nil
}

func (f *fake) waitHealthy(env *builtins.Env, c *fakeCall) (any, error) {
	var out []any
	for _, ep := range endpointList(c.Args["endpoints"]) {
		st, err := f.statusOf(env, ep)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// service accepts only a service entry of the target, like the real one, and runs
// nothing.
func (f *fake) service(env *builtins.Env, c *fakeCall) (any, error) {
	if c.Member == "" {
		return nil, drivers.Errorf(drivers.Script, "%s: this service description is not one of the target file's", c.Builtin)
	}
	return nil, nil
}

// ---- running restores ----

// run runs the embedded etcd.star through engine.Runner with the fake modules. The
// work dir is kept (under t.TempDir) so tests can look at it.
func (f *fake) run(o engine.Options) (*engine.Report, error) {
	f.t.Helper()
	return runFaked(f.t, "etcd", f.modules, o)
}

// ---- snapshots and targets ----

// packSnapshot packs a manifest snapshot of engine etcd holding one file per name
// (default "snapshot.db") with the given metadata (default: the default status's
// revision and key count) and returns its directory.
func packSnapshot(t *testing.T, meta map[string]any, names ...string) string {
	t.Helper()
	if meta == nil {
		meta = map[string]any{"revision": snapRevision, "total_key": snapKeys}
	}
	if len(names) == 0 {
		names = []string{"snapshot.db"}
	}
	src := t.TempDir()
	var files []blobstore.PackFile
	for _, n := range names {
		p := filepath.Join(src, n)
		if err := os.WriteFile(p, []byte("fake etcd snapshot "+n), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, blobstore.PackFile{Path: p})
	}
	dest := filepath.Join(t.TempDir(), "snap")
	if _, err := blobstore.Pack(context.Background(), blobstore.PackOptions{Engine: "etcd", EngineVersion: "3.6.0", Files: files, Dest: dest, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	return dest
}

// bareSnapshot writes a bare snapshot file (what `etcdctl snapshot save` would
// leave; the fake snapshot_status decides what it holds).
func bareSnapshot(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "etcd-backup.db")
	if err := os.WriteFile(p, []byte("fake bare etcd snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// realTarget is a target file whose members' data dirs hold old data.
type realTarget struct {
	File  string
	Names []string
	Dirs  map[string]string // member name -> data dir
}

// newRealTarget writes a target file of n members (m1..mn), each with a data dir
// under t.TempDir holding the marker file OLD, and a start/stop service the fake
// service module never runs. dataDir, if set, overrides member i's data dir (made
// by the test, or not at all). Target locks go to a private dir.
func newRealTarget(t *testing.T, n int, dataDir map[string]string) *realTarget {
	t.Helper()
	t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	base := t.TempDir()
	rt := &realTarget{File: filepath.Join(base, "target.yaml"), Dirs: map[string]string{}}
	var b strings.Builder
	b.WriteString("engine: etcd\ninitial_cluster_token: restore-run-test\nmembers:\n")
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("m%d", i)
		dir, custom := dataDir[name]
		if !custom {
			dir = filepath.Join(base, name+".etcd")
			writeFile(t, filepath.Join(dir, "OLD"), oldData(name))
		}
		rt.Names = append(rt.Names, name)
		rt.Dirs[name] = dir
		fmt.Fprintf(&b, "  - name: %s\n    peer_url: http://10.0.0.%d:2380\n    client_url: http://10.0.0.%d:2379\n    data_dir: %s\n", name, i, i, dir)
		fmt.Fprintf(&b, "    service: {start: [fake-start, %s], stop: [fake-stop, %s]}\n", name, name)
	}
	writeFile(t, rt.File, b.String())
	return rt
}

func oldData(name string) string { return "old data of " + name }
func newData(name string) string { return "restored " + name }

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// holds says what a data dir holds: "absent", "OLD m1" (the marker), "NEW m1" (what
// the fake restore wrote), or a list of its entries when it is something else.
func holds(dir string) string {
	if _, err := os.Stat(dir); err != nil {
		return "absent"
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if old, err := os.ReadFile(filepath.Join(dir, "OLD")); err == nil && len(names) == 1 {
		return "OLD " + strings.TrimPrefix(string(old), "old data of ")
	}
	if db, err := os.ReadFile(filepath.Join(dir, "member", "snap", "db")); err == nil && len(names) == 1 {
		return "NEW " + strings.TrimPrefix(string(db), "restored ")
	}
	return "entries " + strings.Join(names, ",")
}

func (rt *realTarget) staging(rep *engine.Report, m string) string {
	return rt.Dirs[m] + ".restore-run/staging-" + rep.RunID
}
func (rt *realTarget) previous(rep *engine.Report, m string) string {
	return rt.Dirs[m] + ".restore-run/previous-" + rep.RunID
}
func (rt *realTarget) failed(rep *engine.Report, m string) string {
	return rt.Dirs[m] + ".restore-run/failed-" + rep.RunID
}

// ---- reading reports ----

// phases renders the report's phases as "download:ok execute:failed(permanent)".
func phases(rep *engine.Report) string {
	var out []string
	for _, p := range rep.Phases {
		s := p.Name + ":" + p.Result
		if p.ErrorClass != "" {
			s += "(" + p.ErrorClass + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// checks renders the report's checks as "name:ok" / "name:FAILED".
func checks(rep *engine.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		s := c.Name + ":ok"
		if !c.OK {
			s = c.Name + ":FAILED"
		}
		out = append(out, s)
	}
	return out
}

// allChecks lists etcd.star's checks in order, each ok unless named in failed.
func allChecks(bumped bool, failed ...string) []string {
	names := []string{"members", "every member healthy", "exactly one leader", "same HashKV on every member", "key count equals the snapshot's", "revision equals the snapshot's"}
	if bumped {
		names[5] = "revision bumped"
	}
	var out []string
	for _, n := range names {
		if contains(failed, n) {
			out = append(out, n+":FAILED")
		} else {
			out = append(out, n+":ok")
		}
	}
	return out
}

// normalizer replaces what differs between runs in call arguments: member data
// dirs and URLs by <m1>, <m1-peer>, <m1-client>, the run id by RUN, the work dir by
// WORK.
func normalizer(rep *engine.Report) *strings.Replacer {
	var pairs []string
	if rep.Target != nil {
		members, _ := rep.Target.Spec["members"].([]any)
		for _, r := range members {
			m := r.(map[string]any)
			name := m["name"].(string)
			pairs = append(pairs, m["data_dir"].(string), "<"+name+">", m["peer_url"].(string), "<"+name+"-peer>", m["client_url"].(string), "<"+name+"-client>")
		}
	}
	return strings.NewReplacer(append(pairs, rep.RunID, "RUN", rep.WorkDir, "WORK")...)
}

var (
	quotedArg  = regexp.MustCompile(`"([^"]*)"`)
	dataDirArg = regexp.MustCompile(`data_dir="([^"]*)"`)
	memberArg  = regexp.MustCompile(`"(m\d+)"`)
)

// effects renders the calls of one phase that change something (WRITE builtins)
// or wait on the cluster, one short line each, e.g.
// "fs.move <m1> -> <m1>.restore-run/previous-RUN" or "service.stop m1".
func effects(rep *engine.Report, phase string) []string {
	norm := normalizer(rep)
	var out []string
	for _, c := range rep.Calls {
		if c.Phase != phase || (c.Effect != "WRITE" && c.Builtin != "etcd.wait_healthy") {
			continue
		}
		args := norm.Replace(c.Args)
		q := quotedArg.FindAllStringSubmatch(args, -1)
		line := c.Builtin
		switch c.Builtin {
		case "etcd.snapshot_restore":
			if m := dataDirArg.FindStringSubmatch(args); m != nil {
				line += " " + m[1]
			}
		case "fs.move":
			if len(q) >= 2 {
				line += " " + q[0][1] + " -> " + q[1][1]
			}
		case "fs.mkdir", "fs.remove", "fs.rmdir", "blob.fetch":
			if len(q) >= 1 {
				line += " " + q[0][1]
			}
		case "service.start", "service.stop":
			if m := memberArg.FindStringSubmatch(args); m != nil {
				line += " " + m[1]
			}
		}
		out = append(out, line)
	}
	return out
}

// callLines renders every recorded call of the given phases as
// "phase builtin(normalized args)", for comparing a plan with a real run.
func callLines(rep *engine.Report, phases ...string) []string {
	norm := normalizer(rep)
	var out []string
	for _, c := range rep.Calls {
		if contains(phases, c.Phase) {
			out = append(out, c.Phase+" "+c.Builtin+norm.Replace(c.Args))
		}
	}
	return out
}

// perMember repeats lines for every member, replacing {m} by its name.
func perMember(names []string, lines ...string) []string {
	var out []string
	for _, n := range names {
		for _, l := range lines {
			out = append(out, strings.ReplaceAll(l, "{m}", n))
		}
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// wantFailure checks that a run failed with class cls and a message holding every
// part of want.
func wantFailure(t *testing.T, rep *engine.Report, err error, cls drivers.Class, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("run succeeded (phases %s); want a %s failure", phases(rep), cls)
	}
	if got := drivers.ClassOf(err); got != cls {
		t.Errorf("error class = %s, want %s; error: %v", got, cls, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if rep.Result != "failed" || rep.Error == nil || rep.Error.Class != string(cls) {
		t.Errorf("report: result %q, error %+v; want failed with class %s", rep.Result, rep.Error, cls)
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got: %s\nwant: %s", what, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// specNames returns the target's member names, sorted.
func specNames(rep *engine.Report) []string {
	var out []string
	members, _ := rep.Target.Spec["members"].([]any)
	for _, r := range members {
		out = append(out, r.(map[string]any)["name"].(string))
	}
	sort.Strings(out)
	return out
}
