package builtins

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/drivers"
)

func init() {
	net := []drivers.Class{drivers.Transient, drivers.Throttled, drivers.Permanent, drivers.Cancelled}
	Register(Module{
		Name: "cql",
		Doc: "CQL on the target's Cassandra cluster (github.com/gocql/gocql). Every call reaches the nodes the " +
			"target names, with the target's credentials (a script never sees a password). node=NODE (a node of " +
			"target.nodes, or its name) runs a call on that node alone. Unavailable replicas, timeouts and lost " +
			"connections are transient errors; syntax errors, invalid queries and refused permissions permanent. " +
			"Consistency levels by name: ONE, QUORUM, LOCAL_QUORUM, ALL, ...",
		Funcs: []Func{
			{Name: "query", Idempotent: true, Effect: Read,
				Params:  `stmt, args=[], consistency="LOCAL_QUORUM", node=None, page_size=5000, limit=10000`,
				Returns: "list of dicts (column -> value)",
				Doc: "Runs a SELECT. It returns at most limit rows (0: all), fetched page_size at a time. " +
					"UUIDs, times, decimals and varints come back as strings, blobs as 0x-hex, UDTs as dicts.",
				Errors: net, Impl: cqlQuery, Plan: scratchReadPlan(cqlQuery, func() starlark.Value { return starlark.NewList(nil) })},
			{Name: "exec", Effect: Write,
				Params:  `stmt, args=[], consistency="LOCAL_QUORUM", node=None`,
				Returns: "None",
				Doc:     "Runs a statement that changes something. DDL (the driver waits for schema agreement after it), TRUNCATE (needs every node up), INSERT, ...",
				Errors:  net, Impl: cqlExec},
			{Name: "statements", Idempotent: true, Effect: Read, Params: "text", Returns: "list of strings",
				Doc:  "Splits CQL text (a table's schema.cql) into statements, without comments and semicolons.",
				Impl: cqlStatements, NoRecord: true},
			{Name: "ident", Idempotent: true, Effect: Read, Params: "name", Returns: "string",
				Doc:  "Quotes a keyspace, table or column name for a statement: ident(\"ks\") + \".\" + ident(\"t\").",
				Impl: cqlIdent, NoRecord: true},
			{Name: "wait_schema_agreement", Effect: Read, Params: "timeout=60", Returns: "dict (node address -> schema version)",
				Doc:    "Waits until every node reports the same schema version. It fails after timeout seconds (transient).",
				Errors: net, Impl: cqlWaitSchema, Plan: scratchReadPlan(cqlWaitSchema, func() starlark.Value { return starlark.NewDict(0) })},
			{Name: "schema_versions", Idempotent: true, Effect: Read, Params: "node=None", Returns: "dict (node address -> schema version)",
				Doc:    "Reads every node's schema version, as one node (default: any) sees it.",
				Errors: net, Impl: cqlSchemaVersions, Plan: scratchReadPlan(cqlSchemaVersions, func() starlark.Value { return starlark.NewDict(0) })},
			{Name: "keyspace", Idempotent: true, Effect: Read, Params: "name", Returns: "struct(exists, create, replication, tables, views)",
				Doc: "Reads a keyspace's definition. Its CREATE KEYSPACE statement, replication (dict), tables " +
					"(dict name -> id) and materialized views. exists is False (and the rest empty) when there is none.",
				Errors: net, Impl: cqlKeyspace, Plan: scratchReadPlan(cqlKeyspace, func() starlark.Value {
					return MustStruct(map[string]any{"exists": false, "create": "", "replication": map[string]any{}, "tables": map[string]any{}, "views": []any{}})
				})},
			{Name: "columns", Idempotent: true, Effect: Read, Params: "keyspace, table", Returns: "list of struct(name, type, kind, position)",
				Doc:    "Reads a table's columns. From system_schema.columns, partition key first; empty when the table does not exist.",
				Errors: net, Impl: cqlColumns, Plan: scratchReadPlan(cqlColumns, func() starlark.Value { return starlark.NewList(nil) })},
			{Name: "count", Idempotent: true, Effect: Read, Params: `keyspace, table, consistency="ALL", page_size=5000`, Returns: "int",
				Doc: "Counts a table's rows. It pages through the rows' tokens at consistency (ALL: every " +
					"replica answers, so no row is missed). Slow on large tables; not SELECT COUNT(*), which times out.",
				Errors: net, Impl: cqlCount, Plan: scratchReadPlan(cqlCount, func() starlark.Value { return starlark.None })},
			{Name: "sample_digest", Idempotent: true, Effect: Read, Params: `keyspace, table, points=32, consistency="ALL"`,
				Returns: "struct(points, partitions, rows, digest)",
				Doc: "Digests a deterministic sample of a table's partitions. For points tokens spread evenly over the " +
					"ring, the first partition at or after each; every row of those partitions as SELECT JSON renders it " +
					"goes into a sha256. It depends on the data and the partitioner only, so a restored cluster of any " +
					"topology gives the digest `snapshot pack` recorded.",
				Errors: net, Impl: cqlSampleDigest, Plan: scratchReadPlan(cqlSampleDigest, func() starlark.Value {
					return MustStruct(map[string]any{"points": nil, "partitions": nil, "rows": nil, "digest": nil})
				})},
		},
	})
}

// cqlSessions are the run's CQL sessions: one to the whole cluster, one per node
// used alone. They are closed when the run ends.
type cqlSessions struct {
	mu       sync.Mutex
	sessions map[string]*cassops.Session
}

func sessionsOf(env *Env) *cqlSessions {
	return env.Value("cql.sessions", func() any {
		s := &cqlSessions{sessions: map[string]*cassops.Session{}}
		env.Defer("cql sessions", func(context.Context) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			for k, sess := range s.sessions {
				sess.Close()
				delete(s.sessions, k)
			}
			return nil
		})
		return s
	}).(*cqlSessions)
}

// dropSessions closes every cached session (after nodes were stopped or started).
func dropSessions(env *Env) {
	s := sessionsOf(env)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sess := range s.sessions {
		sess.Close()
		delete(s.sessions, k)
	}
}

// clusterOf is the target as a Cassandra cluster, its credentials from the
// target's secrets.
func clusterOf(env *Env) (*cassops.Cluster, error) {
	if env.Target == nil || env.Target.Engine != "cassandra" {
		return nil, drivers.Errorf(drivers.Script, "this builtin needs a cassandra target")
	}
	return cassops.ClusterFromSpec(env.Target.Spec, env.Target.Secret)
}

// session returns the cached session to the cluster ("" node) or to one node.
func session(ctx context.Context, env *Env, node string) (*cassops.Session, error) {
	c, err := clusterOf(env)
	if err != nil {
		return nil, err
	}
	cfg := c.CQL()
	if node != "" {
		n, ok := c.Node(node)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "%q is not a node of the target (nodes: %s)", node, strings.Join(c.NodeNames(), ", "))
		}
		cfg = c.CQL(n)
	}
	reg := sessionsOf(env)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if s, ok := reg.sessions[node]; ok {
		return s, nil
	}
	s, err := cassops.Connect(ctx, cfg)
	if err != nil {
		if node != "" {
			return nil, drivers.WithClass(drivers.ClassOf(err), "node "+node, err)
		}
		return nil, err
	}
	reg.sessions[node] = s
	return s, nil
}

// nodeName reads a node argument: None (""), a name, or a node struct/dict.
func nodeName(fn string, v starlark.Value) (string, error) {
	if v == nil || v == starlark.None {
		return "", nil
	}
	if s, ok := starlark.AsString(v); ok {
		return s, nil
	}
	g, err := FromValue(v)
	if m, ok := g.(map[string]any); err == nil && ok {
		if s, ok := m["name"].(string); ok && s != "" {
			return s, nil
		}
	}
	return "", drivers.Errorf(drivers.Script, "%s: node must be a node of target.nodes or its name, not %s", fn, v.Type())
}

func consistency(fn, name string) (gocql.Consistency, error) {
	c, err := cassops.ParseConsistency(name)
	if err != nil {
		return 0, drivers.WithClass(drivers.Script, fn, err)
	}
	return c, nil
}

// cqlArgs converts a list of bind values.
func cqlArgs(fn string, v starlark.Value) ([]any, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	g, err := FromValue(v)
	l, ok := g.([]any)
	if err != nil || !ok {
		return nil, drivers.Errorf(drivers.Script, "%s: args must be a list of values", fn)
	}
	return l, nil
}

// scratchUnstarted reports whether the target is a scratch cluster whose nodes
// this run has not started: in a plan, READ calls to it answer placeholders.
func scratchUnstarted(env *Env) bool {
	if env.Target == nil || !env.Target.Scratch {
		return false
	}
	return len(cassandraNodesOf(env).names()) == 0
}

// scratchReadPlan runs impl in a plan, except against a scratch cluster the plan
// did not start, where it answers placeholder().
func scratchReadPlan(impl Impl, placeholder func() starlark.Value) Impl {
	return func(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if scratchUnstarted(env) {
			return placeholder(), nil
		}
		return impl(ctx, env, args, kwargs)
	}
}

func cqlQuery(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		stmt, cl      = "", "LOCAL_QUORUM"
		argv, nodev   starlark.Value
		pageSize, lim = 5000, 10000
	)
	if err := Unpack("cql.query", args, kwargs, "stmt", &stmt, "args?", &argv, "consistency?", &cl, "node?", &nodev, "page_size?", &pageSize, "limit?", &lim); err != nil {
		return nil, err
	}
	binds, err := cqlArgs("cql.query", argv)
	if err != nil {
		return nil, err
	}
	c, err := consistency("cql.query", cl)
	if err != nil {
		return nil, err
	}
	node, err := nodeName("cql.query", nodev)
	if err != nil {
		return nil, err
	}
	s, err := session(ctx, env, node)
	if err != nil {
		return nil, err
	}
	rows, err := s.Query(ctx, stmt, binds, c, pageSize, lim)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return ToValue(out)
}

func cqlExec(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		stmt, cl    = "", "LOCAL_QUORUM"
		argv, nodev starlark.Value
	)
	if err := Unpack("cql.exec", args, kwargs, "stmt", &stmt, "args?", &argv, "consistency?", &cl, "node?", &nodev); err != nil {
		return nil, err
	}
	binds, err := cqlArgs("cql.exec", argv)
	if err != nil {
		return nil, err
	}
	c, err := consistency("cql.exec", cl)
	if err != nil {
		return nil, err
	}
	node, err := nodeName("cql.exec", nodev)
	if err != nil {
		return nil, err
	}
	s, err := session(ctx, env, node)
	if err != nil {
		return nil, err
	}
	return starlark.None, s.Exec(ctx, stmt, binds, c)
}

func cqlStatements(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var text string
	if err := Unpack("cql.statements", args, kwargs, "text", &text); err != nil {
		return nil, err
	}
	return ToValue(cassops.SplitStatements(text))
}

func cqlIdent(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := Unpack("cql.ident", args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	return starlark.String(cassops.Ident(name)), nil
}

func cqlWaitSchema(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tv starlark.Value = starlark.MakeInt(60)
	if err := Unpack("cql.wait_schema_agreement", args, kwargs, "timeout?", &tv); err != nil {
		return nil, err
	}
	timeout, ok := starlark.AsFloat(tv)
	if !ok || timeout <= 0 {
		return nil, drivers.Errorf(drivers.Script, "cql.wait_schema_agreement: timeout must be a positive number of seconds")
	}
	s, err := session(ctx, env, "")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(timeout*float64(time.Second)))
	defer cancel()
	if err := s.AwaitSchemaAgreement(wctx); err != nil {
		if ctx.Err() != nil {
			return nil, drivers.WithClass(drivers.Cancelled, "cql.wait_schema_agreement", context.Cause(ctx))
		}
		return nil, err
	}
	v, err := s.SchemaVersions(ctx)
	if err != nil {
		return nil, err
	}
	return ToValue(v)
}

func cqlSchemaVersions(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nodev starlark.Value
	if err := Unpack("cql.schema_versions", args, kwargs, "node?", &nodev); err != nil {
		return nil, err
	}
	node, err := nodeName("cql.schema_versions", nodev)
	if err != nil {
		return nil, err
	}
	s, err := session(ctx, env, node)
	if err != nil {
		return nil, err
	}
	v, err := s.SchemaVersions(ctx)
	if err != nil {
		return nil, err
	}
	return ToValue(v)
}

func cqlKeyspace(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := Unpack("cql.keyspace", args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	s, err := session(ctx, env, "")
	if err != nil {
		return nil, err
	}
	info, err := s.Keyspace(ctx, name)
	if err != nil {
		return nil, err
	}
	repl, tables := map[string]any{}, map[string]any{}
	for k, v := range info.Replication {
		repl[k] = v
	}
	for k, v := range info.Tables {
		tables[k] = v
	}
	views := make([]any, len(info.Views))
	for i, v := range info.Views {
		views[i] = v
	}
	return Struct(map[string]any{"exists": info.Exists, "create": info.Create, "replication": repl, "tables": tables, "views": views})
}

func cqlColumns(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ks, table string
	if err := Unpack("cql.columns", args, kwargs, "keyspace", &ks, "table", &table); err != nil {
		return nil, err
	}
	s, err := session(ctx, env, "")
	if err != nil {
		return nil, err
	}
	cols, err := s.Columns(ctx, ks, table)
	if err != nil {
		return nil, err
	}
	out := make([]starlark.Value, len(cols))
	for i, c := range cols {
		out[i] = MustStruct(map[string]any{"name": c.Name, "type": c.Type, "kind": c.Kind, "position": c.Position})
	}
	return starlark.NewList(out), nil
}

func cqlCount(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		ks, table string
		cl        = "ALL"
		pageSize  = 5000
	)
	if err := Unpack("cql.count", args, kwargs, "keyspace", &ks, "table", &table, "consistency?", &cl, "page_size?", &pageSize); err != nil {
		return nil, err
	}
	c, err := consistency("cql.count", cl)
	if err != nil {
		return nil, err
	}
	s, err := session(ctx, env, "")
	if err != nil {
		return nil, err
	}
	n, err := s.CountRows(ctx, ks, table, c, pageSize)
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt64(n), nil
}

func cqlSampleDigest(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		ks, table string
		points    = cassops.DefaultSamplePoints
		cl        = "ALL"
	)
	if err := Unpack("cql.sample_digest", args, kwargs, "keyspace", &ks, "table", &table, "points?", &points, "consistency?", &cl); err != nil {
		return nil, err
	}
	if points < 1 || points > 100000 {
		return nil, drivers.Errorf(drivers.Script, "cql.sample_digest: points must be from 1 to 100000")
	}
	c, err := consistency("cql.sample_digest", cl)
	if err != nil {
		return nil, err
	}
	s, err := session(ctx, env, "")
	if err != nil {
		return nil, err
	}
	res, err := s.SampleDigest(ctx, ks, table, points, c)
	if err != nil {
		return nil, err
	}
	return Struct(map[string]any{"points": res.Points, "partitions": res.Partitions, "rows": res.Rows, "digest": res.Digest})
}
