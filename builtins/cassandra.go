package builtins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drivers"
)

func init() {
	net := []drivers.Class{drivers.Transient, drivers.Permanent, drivers.Cancelled}
	Register(Module{
		Name: "cassandra",
		Doc: "Cassandra nodes, snapshots and tools (nodetool, sstableloader), run from the Cassandra 5.0 jars on " +
			"the machine's JDK 17 (the target's cassandra_lib or lib= option, else $RESTORE_RUN_CASSANDRA_LIB, else " +
			"./third_party/cassandra/lib). Nodes are given as entries of target.nodes (or their names): a script " +
			"reaches only the target's nodes. Work that runs on every node runs on all of them at once, in Go.",
		Funcs: []Func{
			{Name: "inspect_snapshot", Idempotent: true, Effect: Read, Params: "dir, metadata",
				Returns: "struct(root, tables, formats, bytes); tables: list of struct(node, keyspace, table, dir, sstables, bytes, formats)",
				Doc: "Checks a downloaded snapshot against its metadata, before anything is loaded. dir holds " +
					"nodes/NODE/KEYSPACE/TABLE/; every node has every table with Cassandra's manifest.json and schema.cql, " +
					"every file that manifest lists, every component each SSTable's TOC.txt names, every Data.db matching " +
					"its Digest.crc32, SSTable versions the recorded storage_compatibility_mode reads. A failure is a " +
					"corruption error naming the file.",
				Errors: []drivers.Class{drivers.Corruption, drivers.Permanent}, Impl: cassInspect, Plan: cassInspectPlan},
			{Name: "start_nodes", Effect: Write,
				Params:  `nodes, cluster_name, storage_compatibility_mode="CASSANDRA_4", timeout=300`,
				Returns: "list of CQL endpoints (host:port)",
				Doc: "Starts scratch nodes from the jars, together, and waits until each serves CQL. Scratch targets only. " +
					"nodes are entries of target.nodes, or dicts with their name and the tokens, dc and rack to use instead " +
					"of the target's; every node is a seed. They stop when the run ends (or when --keep is released).",
				Errors: net, Impl: cassStartNodes, Plan: cassStartNodesPlan},
			{Name: "stop_node", Effect: Write, Params: "node, timeout=60", Returns: "bool (whether it was running)",
				Doc:  "Scratch targets only: stops a node this run started (SIGTERM, killed after timeout seconds).",
				Impl: cassStopNode},
			{Name: "status", Idempotent: true, Effect: Read, Params: "nodes=None",
				Returns: "list of struct(name, host, address, up, error, cluster_name, release_version, storage_compatibility_mode, partitioner, dc, rack, host_id, tokens, schema_version, ring)",
				Doc: "Asks every node how it is. Every node (default: all of the target's), at once, answers about itself over CQL (system.local, " +
					"system_views.settings; address is its broadcast address) and about the ring through its JMX (nodetool " +
					"status: ring maps each address to UN, DN, UJ, ...). A node that does not answer has up=False and error saying why; the call itself " +
					"does not fail for it.",
				Errors: net, Impl: cassStatus, Plan: scratchReadPlan(cassStatus, func() starlark.Value { return starlark.NewList(nil) })},
			{Name: "nodetool", Idempotent: true, Effect: Read, Params: "node, *args", Returns: "string (its output)",
				Doc: "Runs a read-only nodetool command on a node. Allowed: status, ring, info, describecluster, describering, " +
					"listsnapshots, tablestats, gossipinfo, version, compactionstats, netstats, schemaversion.",
				Errors: net, Impl: cassNodetool, Plan: scratchReadPlan(cassNodetool, func() starlark.Value { return starlark.String("") })},
			{Name: "snapshot", Effect: Write, Params: "tag, tables, nodes=None", Returns: "None",
				Doc: "Snapshots tables on every node. `nodetool snapshot -t tag -kt KS.TABLE,...` on every node (default: all) at once: hard links " +
					"of the tables' SSTables under each data dir's snapshots/tag, the safety copy before a TRUNCATE.",
				Errors: net, Impl: cassSnapshot},
			{Name: "clear_snapshot", Idempotent: true, Effect: Write, Params: "tag, nodes=None", Returns: "None",
				Doc:    "Clears a snapshot on every node. `nodetool clearsnapshot -t tag` on every node (default: all) at once.",
				Errors: net, Impl: cassClearSnapshot},
			{Name: "snapshot_dirs", Idempotent: true, Effect: Read, Params: "node, keyspace, table, tag", Returns: "list of directories",
				Doc: "Finds a snapshot of a table on a node. DATA_DIR/KEYSPACE/TABLE-ID/snapshots/TAG in each of " +
					"the node's data_dirs (empty when there is none).",
				Impl: cassSnapshotDirs},
			{Name: "import_all", Effect: Write, Params: "jobs, parallel=0, copy_data=False",
				Returns: "list of struct(node, keyspace, table, sstables, seconds)",
				Doc: "Imports SSTables into their nodes with `nodetool import`, every node at once. At most " +
					"parallel nodes (0: all), each node's tables one after another. A job is a dict: node, keyspace, table, " +
					"dirs (SSTable directories) and staging (a directory the dirs' SSTables are gathered into first, " +
					"renumbered, as Cassandra imports from one directory; None imports the dirs as they are). Cassandra " +
					"checks the SSTables and that the node owns their tokens, moves them in (copies with copy_data) and " +
					"builds the table's secondary indexes. Fails naming the node and table.",
				Errors: net, Impl: cassImportAll, Plan: cassImportAllPlan},
			{Name: "sstableloader", Effect: Write, Params: "jobs, parallel=1",
				Returns: "list of struct(keyspace, table, sstables, seconds)",
				Doc: "Streams SSTables to the nodes that own their rows with sstableloader. Any topology; a job is a " +
					"dict: keyspace, table, dirs (every node's SSTable directories of the table). They are gathered into " +
					"WORKDIR/loader/KEYSPACE/TABLE (hard links, renumbered) and loaded with one sstableloader per table, " +
					"parallel tables at once.",
				Errors: net, Impl: cassLoader, Plan: cassLoaderPlan},
		},
	})
}

// ---- the jars and tools of the run ----

type cassTools struct {
	tools *cassops.Tools
	err   error
}

// toolsOf returns the run's nodetool/sstableloader runner, its jars found once.
func toolsOf(env *Env) (*cassops.Tools, error) {
	t := env.Value("cassandra.tools", func() any {
		c, err := clusterOf(env)
		if err != nil {
			return &cassTools{err: err}
		}
		home, err := cassops.FindHome(c.Lib)
		if err != nil {
			return &cassTools{err: err}
		}
		return &cassTools{tools: &cassops.Tools{Home: home, Dir: filepath.Join(env.WorkDir(), ".cassandra-tools"), Redact: env.Redact}}
	}).(*cassTools)
	return t.tools, t.err
}

// ---- scratch nodes ----

type cassNodes struct {
	mu      sync.Mutex
	running map[string]*cassops.Node
}

func (c *cassNodes) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.running {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func cassandraNodesOf(env *Env) *cassNodes {
	return env.Value("cassandra.nodes", func() any {
		c := &cassNodes{running: map[string]*cassops.Node{}}
		env.Defer("cassandra nodes", func(context.Context) error {
			c.mu.Lock()
			var all []*cassops.Node
			for name, n := range c.running {
				all = append(all, n)
				delete(c.running, name)
			}
			c.mu.Unlock()
			// Scratch data is thrown away: a short grace, then kill.
			cassops.StopNodes(all, 5*time.Second)
			return nil
		})
		return c
	}).(*cassNodes)
}

// nodeTools is nodeList with the cluster's tools, for the builtins that run
// nodetool on each node.
func nodeTools(fn string, env *Env, v starlark.Value) (*cassops.Cluster, []cassops.ClusterNode, *cassops.Tools, error) {
	c, nodes, err := nodeList(fn, env, v)
	if err != nil {
		return nil, nil, nil, err
	}
	tools, err := toolsOf(env)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, nodes, tools, nil
}

// nodeList reads a list of nodes (entries of target.nodes, dicts with a name, or
// names) and resolves them against the target; None means every node.
func nodeList(fn string, env *Env, v starlark.Value) (*cassops.Cluster, []cassops.ClusterNode, error) {
	c, err := clusterOf(env)
	if err != nil {
		return nil, nil, err
	}
	if v == nil || v == starlark.None {
		return c, c.Nodes, nil
	}
	var items []starlark.Value
	switch x := v.(type) {
	case *starlark.List:
		for i := 0; i < x.Len(); i++ {
			items = append(items, x.Index(i))
		}
	case starlark.Tuple:
		items = x
	default:
		items = []starlark.Value{v}
	}
	var out []cassops.ClusterNode
	for _, it := range items {
		name, err := nodeName(fn, it)
		if err != nil {
			return nil, nil, err
		}
		n, ok := c.Node(name)
		if !ok {
			return nil, nil, drivers.Errorf(drivers.Script, "%s: %q is not a node of the target (nodes: %s)", fn, name, strings.Join(c.NodeNames(), ", "))
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, nil, drivers.Errorf(drivers.Script, "%s: no nodes given", fn)
	}
	return c, out, nil
}

// specNode returns the target spec's entry of node name (scratch fields: dir,
// tokens, dc, rack).
func specNode(env *Env, name string) map[string]any {
	raw, _ := env.Target.Spec["nodes"].([]any)
	for _, r := range raw {
		if m, ok := r.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

func stringsOf(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	case []string:
		out = append(out, x...)
	case string:
		if x != "" {
			out = strings.Split(x, ",")
		}
	}
	return out
}

type startArgsCass struct {
	cfgs      []cassops.NodeConfig
	endpoints []string
	timeout   time.Duration
}

func unpackStartNodes(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (*startArgsCass, error) {
	const fn = "cassandra.start_nodes"
	var (
		nodesV      *starlark.List
		clusterName string
		mode                       = cassops.ModeCassandra4
		tv          starlark.Value = starlark.MakeInt(300)
	)
	if err := Unpack(fn, args, kwargs, "nodes", &nodesV, "cluster_name", &clusterName, "storage_compatibility_mode?", &mode, "timeout?", &tv); err != nil {
		return nil, err
	}
	if env.Target == nil || !env.Target.Scratch || env.Target.Engine != "cassandra" {
		return nil, drivers.Errorf(drivers.Script, "%s starts nodes of scratch targets only; an existing cluster must already run", fn)
	}
	timeout, ok := starlark.AsFloat(tv)
	if !ok || timeout <= 0 {
		return nil, drivers.Errorf(drivers.Script, "%s: timeout must be a positive number of seconds", fn)
	}
	if clusterName == "" {
		return nil, drivers.Errorf(drivers.Script, "%s: cluster_name is empty", fn)
	}
	c, err := clusterOf(env)
	if err != nil {
		return nil, err
	}
	a := &startArgsCass{timeout: time.Duration(timeout * float64(time.Second))}
	heap, _ := env.Target.Spec["heap"].(string)
	var seeds []string
	for i := 0; i < nodesV.Len(); i++ {
		g, err := FromValue(nodesV.Index(i))
		if err != nil {
			return nil, drivers.WithClass(drivers.Script, fn, err)
		}
		override, _ := g.(map[string]any)
		name, _ := override["name"].(string)
		if s, ok := g.(string); ok {
			name, override = s, nil
		}
		n, ok := c.Node(name)
		spec := specNode(env, name)
		if !ok || spec == nil {
			return nil, drivers.Errorf(drivers.Script, "%s: nodes[%d] (%v) is not a node of the target (nodes: %s)", fn, i, nodesV.Index(i), strings.Join(c.NodeNames(), ", "))
		}
		pick := func(key string) any {
			if v, ok := override[key]; ok && v != nil {
				return v
			}
			return spec[key]
		}
		dir, _ := spec["dir"].(string)
		if dir, err = env.CheckPath(dir); err != nil {
			return nil, err
		}
		cfg := cassops.NodeConfig{
			Name: n.Name, Address: n.Host, ClusterName: clusterName,
			CQLPort: c.CQLPort, StoragePort: c.StoragePort, JMXPort: n.JMXPort,
			Tokens: stringsOf(pick("tokens")), Dir: dir, Heap: heap,
			StorageCompatibilityMode: mode, StartTimeout: a.timeout,
		}
		cfg.DC, _ = pick("dc").(string)
		cfg.Rack, _ = pick("rack").(string)
		seeds = append(seeds, fmt.Sprintf("%s:%d", n.Host, c.StoragePort))
		a.cfgs = append(a.cfgs, cfg)
		a.endpoints = append(a.endpoints, fmt.Sprintf("%s:%d", n.Host, c.CQLPort))
	}
	if len(a.cfgs) == 0 {
		return nil, drivers.Errorf(drivers.Script, "%s: no nodes given", fn)
	}
	for i := range a.cfgs {
		a.cfgs[i].Seeds = seeds
	}
	return a, nil
}

func cassStartNodes(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackStartNodes(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	tools, err := toolsOf(env)
	if err != nil {
		return nil, err
	}
	reg := cassandraNodesOf(env)
	for _, c := range a.cfgs {
		if len(reg.names()) > 0 && cassContains(reg.names(), c.Name) {
			return nil, drivers.Errorf(drivers.Script, "cassandra.start_nodes: node %s already runs", c.Name)
		}
	}
	start := time.Now()
	nodes, err := cassops.StartNodes(ctx, tools.Home, a.cfgs)
	if err != nil {
		return nil, err
	}
	reg.mu.Lock()
	for _, n := range nodes {
		reg.running[n.Name()] = n
	}
	reg.mu.Unlock()
	dropSessions(env)
	env.Log.Info().Int("nodes", len(nodes)).Str("version", tools.Home.Version).Dur("took", time.Since(start)).Msg("cassandra nodes serve CQL")
	return ToValue(a.endpoints)
}

func cassStartNodesPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	a, err := unpackStartNodes(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	return ToValue(a.endpoints)
}

func cassContains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func cassStopNode(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nodeV starlark.Value
	var tv starlark.Value = starlark.MakeInt(60)
	if err := Unpack("cassandra.stop_node", args, kwargs, "node", &nodeV, "timeout?", &tv); err != nil {
		return nil, err
	}
	if env.Target == nil || !env.Target.Scratch {
		return nil, drivers.Errorf(drivers.Script, "cassandra.stop_node stops nodes of scratch targets only; stop a real node with its service")
	}
	name, err := nodeName("cassandra.stop_node", nodeV)
	if err != nil {
		return nil, err
	}
	timeout, ok := starlark.AsFloat(tv)
	if !ok || timeout <= 0 {
		return nil, drivers.Errorf(drivers.Script, "cassandra.stop_node: timeout must be a positive number of seconds")
	}
	reg := cassandraNodesOf(env)
	reg.mu.Lock()
	n, ok := reg.running[name]
	delete(reg.running, name)
	reg.mu.Unlock()
	if !ok {
		return starlark.False, nil
	}
	n.Stop(time.Duration(timeout * float64(time.Second)))
	dropSessions(env)
	return starlark.True, nil
}

// ---- the snapshot ----

func unpackInspect(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (string, *cassops.Metadata, error) {
	var dir string
	var metaV starlark.Value
	if err := Unpack("cassandra.inspect_snapshot", args, kwargs, "dir", &dir, "metadata", &metaV); err != nil {
		return "", nil, err
	}
	p, err := env.CheckPath(dir)
	if err != nil {
		return "", nil, err
	}
	g, err := FromValue(metaV)
	m, ok := g.(map[string]any)
	if err != nil || !ok {
		return "", nil, drivers.Errorf(drivers.Script, "cassandra.inspect_snapshot: metadata must be the snapshot's metadata dict")
	}
	meta, err := cassops.MetadataFromMap(m)
	if err != nil {
		return "", nil, err
	}
	return p, meta, nil
}

func layoutValue(lay *cassops.Layout) (starlark.Value, error) {
	var tables []starlark.Value
	for _, t := range lay.Tables {
		var sst, bytes any = t.SSTables, t.Bytes
		if t.SSTables < 0 {
			sst, bytes = nil, nil
		}
		s, err := Struct(map[string]any{"node": t.Node, "keyspace": t.Keyspace, "table": t.Table, "dir": t.Dir,
			"sstables": sst, "bytes": bytes, "formats": t.Formats})
		if err != nil {
			return nil, err
		}
		tables = append(tables, s)
	}
	return Struct(map[string]any{"root": lay.Root, "tables": starlark.NewList(tables), "formats": lay.Formats, "bytes": lay.Bytes})
}

func cassInspect(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, meta, err := unpackInspect(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	lay, err := cassops.Inspect(dir, meta)
	if err != nil {
		return nil, err
	}
	return layoutValue(lay)
}

// cassInspectPlan describes the layout the metadata promises when the files were
// not downloaded (a plan): sstables and bytes are None.
func cassInspectPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	dir, meta, err := unpackInspect(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return cassInspect(ctx, env, args, kwargs)
	}
	lay := &cassops.Layout{Root: dir, Formats: meta.SSTableFormats}
	for _, n := range meta.Nodes {
		for _, kt := range meta.Tables() {
			ks, t, _ := strings.Cut(kt, ".")
			lay.Tables = append(lay.Tables, cassops.TableFiles{Node: n.Name, Keyspace: ks, Table: t,
				Dir: filepath.Join(dir, filepath.FromSlash(cassops.TableDir(n.Name, ks, t))), SSTables: -1, Formats: meta.SSTableFormats})
		}
	}
	return layoutValue(lay)
}

// ---- asking the nodes ----

func cassStatus(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nodesV starlark.Value
	if err := Unpack("cassandra.status", args, kwargs, "nodes?", &nodesV); err != nil {
		return nil, err
	}
	c, nodes, tools, err := nodeTools("cassandra.status", env, nodesV)
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(nodes))
	_ = cassops.ForEachNode(ctx, nodes, 0, func(ctx context.Context, n cassops.ClusterNode) error {
		i := indexOf(nodes, n.Name)
		r := map[string]any{"name": n.Name, "host": n.Host, "address": "", "up": false, "error": "", "cluster_name": "", "release_version": "",
			"storage_compatibility_mode": "", "partitioner": "", "dc": "", "rack": "", "host_id": "", "tokens": []any{},
			"schema_version": "", "ring": map[string]any{}}
		results[i] = r
		var problems []string
		s, err := cassops.Connect(ctx, c.CQL(n))
		if err == nil {
			var info cassops.NodeInfo
			info, err = s.LocalInfo(ctx)
			s.Close()
			if err == nil {
				r["cluster_name"], r["release_version"], r["storage_compatibility_mode"] = info.ClusterName, info.ReleaseVersion, info.StorageCompatibilityMode
				r["partitioner"], r["dc"], r["rack"], r["host_id"], r["schema_version"] = info.Partitioner, info.DC, info.Rack, info.HostID, info.SchemaVersion
				r["address"] = info.Address
				toks := make([]any, len(info.Tokens))
				for j, t := range info.Tokens {
					toks[j] = t
				}
				r["tokens"] = toks
			}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("CQL at %s:%d does not answer: %v", n.Host, c.CQLPort, err))
		}
		st, jerr := tools.Status(ctx, c.JMX(n))
		if jerr != nil {
			problems = append(problems, fmt.Sprintf("JMX at %s does not answer: %v", c.JMX(n), jerr))
		} else {
			ring := map[string]any{}
			for _, l := range st {
				ring[l.Address] = l.Status + l.State
			}
			r["ring"] = ring
		}
		r["up"] = len(problems) == 0
		r["error"] = env.Redact(strings.Join(problems, "; "))
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, drivers.WithClass(drivers.Cancelled, "cassandra.status", context.Cause(ctx))
	}
	out := make([]starlark.Value, len(results))
	for i, r := range results {
		s, err := Struct(r)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return starlark.NewList(out), nil
}

func indexOf(nodes []cassops.ClusterNode, name string) int {
	for i, n := range nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

var readOnlyNodetool = []string{"status", "ring", "info", "describecluster", "describering", "listsnapshots", "tablestats",
	"gossipinfo", "version", "compactionstats", "netstats", "schemaversion"}

func cassNodetool(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 || len(kwargs) > 0 {
		return nil, drivers.Errorf(drivers.Script, "cassandra.nodetool: want (node, command, args...), e.g. cassandra.nodetool(target.nodes[0], \"status\")")
	}
	name, err := nodeName("cassandra.nodetool", args[0])
	if err != nil {
		return nil, err
	}
	var argv []string
	for _, a := range args[1:] {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "cassandra.nodetool: arguments must be strings, not %s", a.Type())
		}
		argv = append(argv, s)
	}
	if !cassContains(readOnlyNodetool, argv[0]) {
		return nil, drivers.Errorf(drivers.Script, "cassandra.nodetool: %q is not a read-only command (allowed: %s); changes go through the cassandra builtins", argv[0], strings.Join(readOnlyNodetool, ", "))
	}
	c, err := clusterOf(env)
	if err != nil {
		return nil, err
	}
	n, ok := c.Node(name)
	if !ok {
		return nil, drivers.Errorf(drivers.Script, "cassandra.nodetool: %q is not a node of the target (nodes: %s)", name, strings.Join(c.NodeNames(), ", "))
	}
	tools, err := toolsOf(env)
	if err != nil {
		return nil, err
	}
	out, err := tools.Nodetool(ctx, c.JMX(n), 2*time.Minute, argv...)
	if err != nil {
		return nil, err
	}
	return starlark.String(out), nil
}

// ---- snapshots on the nodes ----

func cassSnapshot(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tag string
	var tablesV, nodesV starlark.Value
	if err := Unpack("cassandra.snapshot", args, kwargs, "tag", &tag, "tables", &tablesV, "nodes?", &nodesV); err != nil {
		return nil, err
	}
	g, err := FromValue(tablesV)
	tables := stringsOf(g)
	if _, isList := g.([]any); err != nil || !isList || len(tables) == 0 {
		return nil, drivers.Errorf(drivers.Script, "cassandra.snapshot: tables must be a non-empty list of \"keyspace.table\"")
	}
	if tag == "" {
		return nil, drivers.Errorf(drivers.Script, "cassandra.snapshot: tag is empty")
	}
	c, nodes, tools, err := nodeTools("cassandra.snapshot", env, nodesV)
	if err != nil {
		return nil, err
	}
	return starlark.None, cassops.ForEachNode(ctx, nodes, 0, func(ctx context.Context, n cassops.ClusterNode) error {
		return tools.Snapshot(ctx, c.JMX(n), tag, nil, tables)
	})
}

func cassClearSnapshot(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tag string
	var nodesV starlark.Value
	if err := Unpack("cassandra.clear_snapshot", args, kwargs, "tag", &tag, "nodes?", &nodesV); err != nil {
		return nil, err
	}
	if tag == "" {
		return nil, drivers.Errorf(drivers.Script, "cassandra.clear_snapshot: tag is empty (an empty tag would clear every snapshot)")
	}
	c, nodes, tools, err := nodeTools("cassandra.clear_snapshot", env, nodesV)
	if err != nil {
		return nil, err
	}
	return starlark.None, cassops.ForEachNode(ctx, nodes, 0, func(ctx context.Context, n cassops.ClusterNode) error {
		return tools.ClearSnapshot(ctx, c.JMX(n), tag)
	})
}

func cassSnapshotDirs(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nodeV starlark.Value
	var ks, table, tag string
	if err := Unpack("cassandra.snapshot_dirs", args, kwargs, "node", &nodeV, "keyspace", &ks, "table", &table, "tag", &tag); err != nil {
		return nil, err
	}
	_, nodes, err := nodeList("cassandra.snapshot_dirs", env, nodeV)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, dd := range nodes[0].DataDirs {
		matches, _ := filepath.Glob(filepath.Join(dd, ks, table+"-*", "snapshots", tag))
		sort.Strings(matches)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() {
				out = append(out, m)
			}
		}
	}
	if out == nil {
		out = []string{}
	}
	return ToValue(out)
}

// ---- loading ----

type importJob struct {
	node     cassops.ClusterNode
	keyspace string
	table    string
	dirs     []string
	staging  string
	sstables int
	seconds  float64
	planned  bool
}

func unpackImport(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (*cassops.Cluster, []*importJob, int, bool, error) {
	const fn = "cassandra.import_all"
	var jobsV *starlark.List
	parallel, copyData := 0, false
	if err := Unpack(fn, args, kwargs, "jobs", &jobsV, "parallel?", &parallel, "copy_data?", &copyData); err != nil {
		return nil, nil, 0, false, err
	}
	c, err := clusterOf(env)
	if err != nil {
		return nil, nil, 0, false, err
	}
	var jobs []*importJob
	for i := 0; i < jobsV.Len(); i++ {
		g, err := FromValue(jobsV.Index(i))
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, nil, 0, false, drivers.Errorf(drivers.Script, "%s: jobs[%d] must be a dict with node, keyspace, table, dirs, staging", fn, i)
		}
		name, _ := m["node"].(string)
		if nm, ok := m["node"].(map[string]any); ok {
			name, _ = nm["name"].(string)
		}
		n, ok := c.Node(name)
		if !ok {
			return nil, nil, 0, false, drivers.Errorf(drivers.Script, "%s: jobs[%d].node %v is not a node of the target (nodes: %s)", fn, i, m["node"], strings.Join(c.NodeNames(), ", "))
		}
		j := &importJob{node: n}
		j.keyspace, _ = m["keyspace"].(string)
		j.table, _ = m["table"].(string)
		if j.keyspace == "" || j.table == "" {
			return nil, nil, 0, false, drivers.Errorf(drivers.Script, "%s: jobs[%d] needs keyspace and table", fn, i)
		}
		for _, d := range stringsOf(m["dirs"]) {
			p, err := env.CheckPath(d)
			if err != nil {
				return nil, nil, 0, false, err
			}
			j.dirs = append(j.dirs, p)
		}
		if len(j.dirs) == 0 {
			return nil, nil, 0, false, drivers.Errorf(drivers.Script, "%s: jobs[%d] has no dirs", fn, i)
		}
		if s, ok := m["staging"].(string); ok && s != "" {
			if j.staging, err = env.CheckPath(s); err != nil {
				return nil, nil, 0, false, err
			}
		}
		jobs = append(jobs, j)
	}
	return c, jobs, parallel, copyData, nil
}

func importResults(jobs []*importJob) (starlark.Value, error) {
	out := make([]starlark.Value, len(jobs))
	for i, j := range jobs {
		var sst, secs any = j.sstables, j.seconds
		if j.planned {
			sst, secs = nil, nil
		}
		s, err := Struct(map[string]any{"node": j.node.Name, "keyspace": j.keyspace, "table": j.table, "sstables": sst, "seconds": secs})
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return starlark.NewList(out), nil
}

func cassImportAll(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, jobs, parallel, copyData, err := unpackImport(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	tools, err := toolsOf(env)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*importJob{}
	var nodes []cassops.ClusterNode
	for _, j := range jobs {
		if byNode[j.node.Name] == nil {
			nodes = append(nodes, j.node)
		}
		byNode[j.node.Name] = append(byNode[j.node.Name], j)
	}
	start := time.Now()
	err = cassops.ForEachNode(ctx, nodes, parallel, func(ctx context.Context, n cassops.ClusterNode) error {
		for _, j := range byNode[n.Name] {
			t0 := time.Now()
			dirs := j.dirs
			if j.staging != "" {
				// Cassandra imports one directory per table: gather, renumbered.
				dst := filepath.Join(j.staging, j.keyspace, j.table)
				count, err := cassops.Merge(dst, j.dirs)
				if err != nil {
					return fmt.Errorf("%s.%s: %w", j.keyspace, j.table, err)
				}
				j.sstables, dirs = count, []string{dst}
				if count == 0 {
					continue // the node holds none of this table's data
				}
			} else {
				for _, d := range dirs {
					entries, _ := os.ReadDir(d)
					for _, e := range entries {
						if _, _, _, comp, ok := cassops.SSTableName(e.Name()); ok && comp == "Data.db" {
							j.sstables++
						}
					}
				}
				if j.sstables == 0 {
					continue
				}
			}
			if err := tools.Import(ctx, c.JMX(n), j.keyspace, j.table, dirs, copyData); err != nil {
				return fmt.Errorf("%s.%s: %w", j.keyspace, j.table, err)
			}
			j.seconds = time.Since(t0).Seconds()
			env.Log.Info().Str("node", n.Name).Str("table", j.keyspace+"."+j.table).Int("sstables", j.sstables).Float64("seconds", j.seconds).Msg("nodetool import")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	env.Log.Info().Int("nodes", len(nodes)).Int("parallel", parallel).Int("jobs", len(jobs)).Dur("took", time.Since(start)).Msg("cassandra.import_all")
	return importResults(jobs)
}

func cassImportAllPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	_, jobs, _, _, err := unpackImport(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		j.planned = true
	}
	return importResults(jobs)
}

type loadJob struct {
	keyspace, table string
	dirs            []string
	sstables        int
	seconds         float64
}

func unpackLoader(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) ([]*loadJob, int, error) {
	const fn = "cassandra.sstableloader"
	var jobsV *starlark.List
	parallel := 1
	if err := Unpack(fn, args, kwargs, "jobs", &jobsV, "parallel?", &parallel); err != nil {
		return nil, 0, err
	}
	if parallel < 1 {
		return nil, 0, drivers.Errorf(drivers.Script, "%s: parallel must be at least 1", fn)
	}
	var jobs []*loadJob
	for i := 0; i < jobsV.Len(); i++ {
		g, err := FromValue(jobsV.Index(i))
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, 0, drivers.Errorf(drivers.Script, "%s: jobs[%d] must be a dict with keyspace, table, dirs", fn, i)
		}
		j := &loadJob{}
		j.keyspace, _ = m["keyspace"].(string)
		j.table, _ = m["table"].(string)
		if j.keyspace == "" || j.table == "" {
			return nil, 0, drivers.Errorf(drivers.Script, "%s: jobs[%d] needs keyspace and table", fn, i)
		}
		for _, d := range stringsOf(m["dirs"]) {
			p, err := env.CheckPath(d)
			if err != nil {
				return nil, 0, err
			}
			j.dirs = append(j.dirs, p)
		}
		jobs = append(jobs, j)
	}
	return jobs, parallel, nil
}

func loaderResults(jobs []*loadJob, planned bool) (starlark.Value, error) {
	out := make([]starlark.Value, len(jobs))
	for i, j := range jobs {
		var sst, secs any = j.sstables, j.seconds
		if planned {
			sst, secs = nil, nil
		}
		s, err := Struct(map[string]any{"keyspace": j.keyspace, "table": j.table, "sstables": sst, "seconds": secs})
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return starlark.NewList(out), nil
}

func cassLoader(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	jobs, parallel, err := unpackLoader(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	c, err := clusterOf(env)
	if err != nil {
		return nil, err
	}
	tools, err := toolsOf(env)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(env.WorkDir(), "loader")
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t0 := time.Now()
			dst := filepath.Join(base, j.keyspace, j.table)
			n, err := cassops.Merge(dst, j.dirs)
			if err == nil && n > 0 {
				err = tools.Load(ctx, c.LoadTarget(), dst, 0)
			}
			j.sstables, j.seconds = n, time.Since(t0).Seconds()
			if err != nil {
				errs[i] = fmt.Errorf("%s.%s: %w", j.keyspace, j.table, err)
				return
			}
			env.Log.Info().Str("table", j.keyspace+"."+j.table).Int("sstables", n).Float64("seconds", j.seconds).Msg("sstableloader")
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	return loaderResults(jobs, false)
}

func cassLoaderPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	jobs, _, err := unpackLoader(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	return loaderResults(jobs, true)
}
