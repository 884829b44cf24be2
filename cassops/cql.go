package cassops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	"gopkg.in/inf.v0"

	"github.com/restore-run/restore-run/drivers"
)

// CQLConfig says how to reach a cluster (or one node) over CQL.
type CQLConfig struct {
	// Hosts are contact points (addresses); with Only, the only hosts queried.
	Hosts []string
	// Port is the native transport port of every node (default 9042).
	Port int
	// User and Password, if User is set, log in with PasswordAuthenticator.
	User, Password string
	// Only restricts the session to Hosts: with one host, every query runs on that
	// node (system.local, a node's own view).
	Only bool
	// Timeout bounds one request (default 60 s: TRUNCATE and DDL can be slow).
	Timeout time.Duration
	// ConnectTimeout bounds connecting (default 10 s).
	ConnectTimeout time.Duration
}

// Session is a CQL session.
type Session struct {
	cfg CQLConfig
	s   *gocql.Session
}

func (c CQLConfig) where() string {
	port := c.Port
	if port == 0 {
		port = 9042
	}
	var hs []string
	for _, h := range c.Hosts {
		hs = append(hs, net.JoinHostPort(h, strconv.Itoa(port)))
	}
	return strings.Join(hs, ",")
}

// Connect opens a session. A cluster that does not answer is a transient error,
// refused credentials a permanent one.
func Connect(ctx context.Context, cfg CQLConfig) (*Session, error) {
	if len(cfg.Hosts) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "cql: no hosts given")
	}
	if cfg.Port == 0 {
		cfg.Port = 9042
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	c := gocql.NewCluster(cfg.Hosts...)
	c.Port = cfg.Port
	c.Timeout = cfg.Timeout
	c.ConnectTimeout = cfg.ConnectTimeout
	c.Consistency = gocql.LocalQuorum
	c.ProtoVersion = 4
	c.NumConns = 1
	c.MaxWaitSchemaAgreement = 2 * time.Minute
	c.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 3, Interval: time.Second}
	c.Logger = quietLogger{}
	if cfg.Only {
		c.HostFilter = gocql.WhiteListHostFilter(cfg.Hosts...)
	}
	if cfg.User != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.User, Password: cfg.Password}
	}
	type result struct {
		s   *gocql.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.CreateSession()
		ch <- result{s, err}
	}()
	select {
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, drivers.WithClass(drivers.Cancelled, "cql connect "+cfg.where(), context.Cause(ctx))
	case r := <-ch:
		if r.err != nil {
			return nil, classifyConnect(cfg, r.err)
		}
		return &Session{cfg: cfg, s: r.s}, nil
	}
}

type quietLogger struct{}

func (quietLogger) Print(...any)          {}
func (quietLogger) Printf(string, ...any) {}
func (quietLogger) Println(...any)        {}

func classifyConnect(cfg CQLConfig, err error) error {
	msg := strings.ToLower(err.Error())
	op := "cql connect " + cfg.where()
	refused := strings.Contains(msg, "incorrect") || strings.Contains(msg, "bad credentials") ||
		strings.Contains(msg, "authentication failed") || strings.Contains(msg, "requires authentication") ||
		strings.Contains(msg, "no authenticator")
	if refused && !strings.Contains(msg, "timed out") && !strings.Contains(msg, "timeout") {
		return drivers.WithHint(drivers.WithClass(drivers.Permanent, op, err),
			"check the target file's cql username and password (given by reference, e.g. password: {env: VAR})")
	}
	return drivers.WithClass(drivers.Transient, op, fmt.Errorf("%w (is the node up and serving CQL on that address and port?)", err))
}

// Close ends the session.
func (s *Session) Close() { s.s.Close() }

// Where names the session's hosts and port.
func (s *Session) Where() string { return s.cfg.where() }

// ParseConsistency reads a consistency level name (ONE, QUORUM, LOCAL_QUORUM,
// ALL, ...).
func ParseConsistency(name string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.ToUpper(name))
	if err != nil {
		return 0, drivers.Errorf(drivers.Permanent, "consistency %q: want ANY, ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM or LOCAL_ONE", name)
	}
	return c, nil
}

// ClassifyCQL gives a CQL error its class: unavailable replicas, timeouts,
// overload and lost connections are transient (overload: throttled); syntax,
// invalid queries, missing permissions and schema errors are permanent.
func ClassifyCQL(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return drivers.WithClass(drivers.Cancelled, op, context.Cause(ctx))
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeReadFailure,
			gocql.ErrCodeWriteFailure, gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate, gocql.ErrCodeServer,
			gocql.ErrCodeCASWriteUnknown:
			return drivers.WithClass(drivers.Transient, op, fmt.Errorf("%w (replicas unavailable or too slow; retry once every node is up)", err))
		case gocql.ErrCodeOverloaded:
			return drivers.WithClass(drivers.Throttled, op, fmt.Errorf("%w (the node is overloaded; retry later)", err))
		default:
			return drivers.WithClass(drivers.Permanent, op, err)
		}
	}
	var ne net.Error
	switch {
	case errors.Is(err, gocql.ErrNoConnections), errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrConnectionClosed), errors.Is(err, gocql.ErrTooManyTimeouts), errors.Is(err, gocql.ErrNoStreams),
		errors.Is(err, gocql.ErrUnavailable), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return drivers.WithClass(drivers.Transient, op, fmt.Errorf("%w (no node answered in time; retry once every node is up)", err))
	}
	return drivers.WithClass(drivers.Permanent, op, err)
}

func shortStmt(stmt string) string {
	s := strings.Join(strings.Fields(stmt), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// Query runs a statement and returns up to limit rows (0: no limit), paging
// pageSize rows at a time. Values are plain Go values (see Plain).
func (s *Session) Query(ctx context.Context, stmt string, args []any, cl gocql.Consistency, pageSize, limit int) ([]map[string]any, error) {
	if pageSize <= 0 {
		pageSize = 5000
	}
	q := s.s.Query(stmt, args...).WithContext(ctx).Consistency(cl).PageSize(pageSize)
	iter := q.Iter()
	var out []map[string]any
	for {
		row := map[string]any{}
		if !iter.MapScan(row) {
			break
		}
		plain := make(map[string]any, len(row))
		for k, v := range row {
			plain[k] = Plain(v)
		}
		out = append(out, plain)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	if err := iter.Close(); err != nil {
		return nil, ClassifyCQL(ctx, "cql "+shortStmt(stmt), err)
	}
	return out, nil
}

// Exec runs a statement that returns no rows.
func (s *Session) Exec(ctx context.Context, stmt string, args []any, cl gocql.Consistency) error {
	err := s.s.Query(stmt, args...).WithContext(ctx).Consistency(cl).Exec()
	return ClassifyCQL(ctx, "cql "+shortStmt(stmt), err)
}

// AwaitSchemaAgreement waits until every node reports the same schema version.
func (s *Session) AwaitSchemaAgreement(ctx context.Context) error {
	if err := s.s.AwaitSchemaAgreement(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return drivers.WithClass(drivers.Cancelled, "schema agreement", context.Cause(ctx))
		}
		return drivers.WithClass(drivers.Transient, "schema agreement on "+s.Where(), err)
	}
	return nil
}

// SchemaVersions returns each node's schema version, as this session's
// coordinator sees them (system.local and system.peers_v2), by address.
func (s *Session) SchemaVersions(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	local, err := s.Query(ctx, "SELECT broadcast_address, schema_version FROM system.local", nil, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range local {
		out[fmt.Sprint(r["broadcast_address"])] = fmt.Sprint(r["schema_version"])
	}
	peers, err := s.Query(ctx, "SELECT peer, schema_version FROM system.peers_v2", nil, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range peers {
		out[fmt.Sprint(r["peer"])] = fmt.Sprint(r["schema_version"])
	}
	return out, nil
}

// Ident quotes a CQL identifier (keyspace, table or column name).
func Ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Column is one column of a table.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Kind     string `json:"kind"` // partition_key, clustering, regular, static
	Position int    `json:"position"`
}

// Columns returns a table's columns (system_schema.columns), partition key
// columns first in key order; nil when the table does not exist.
func (s *Session) Columns(ctx context.Context, keyspace, table string) ([]Column, error) {
	rows, err := s.Query(ctx, "SELECT column_name, type, kind, position FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
		[]any{keyspace, table}, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	var cols []Column
	for _, r := range rows {
		pos, _ := r["position"].(int64)
		cols = append(cols, Column{Name: fmt.Sprint(r["column_name"]), Type: fmt.Sprint(r["type"]), Kind: fmt.Sprint(r["kind"]), Position: int(pos)})
	}
	rank := map[string]int{"partition_key": 0, "clustering": 1, "static": 2, "regular": 3}
	sort.Slice(cols, func(i, j int) bool {
		a, b := cols[i], cols[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.Kind == "partition_key" || a.Kind == "clustering" {
			return a.Position < b.Position
		}
		return a.Name < b.Name
	})
	return cols, nil
}

func partitionKey(cols []Column) []string {
	var pk []string
	for _, c := range cols {
		if c.Kind == "partition_key" {
			pk = append(pk, Ident(c.Name))
		}
	}
	return pk
}

// CountRows counts a table's rows by reading its partition key columns with
// paging, at consistency cl (ALL: every replica answers and is repaired).
func (s *Session) CountRows(ctx context.Context, keyspace, table string, cl gocql.Consistency, pageSize int) (int64, error) {
	cols, err := s.Columns(ctx, keyspace, table)
	if err != nil {
		return 0, err
	}
	pk := partitionKey(cols)
	if len(pk) == 0 {
		return 0, drivers.Errorf(drivers.Permanent, "table %s.%s does not exist", keyspace, table)
	}
	if pageSize <= 0 {
		pageSize = 5000
	}
	// One row per CQL row; the token is a bigint whatever the key's types are.
	stmt := fmt.Sprintf("SELECT token(%s) FROM %s.%s", strings.Join(pk, ", "), Ident(keyspace), Ident(table))
	iter := s.s.Query(stmt).WithContext(ctx).Consistency(cl).PageSize(pageSize).Iter()
	var n, tok int64
	for iter.Scan(&tok) {
		n++
	}
	if err := iter.Close(); err != nil {
		return 0, ClassifyCQL(ctx, fmt.Sprintf("count %s.%s at %s", keyspace, table, cl), err)
	}
	return n, nil
}

// Sample is the digest of a deterministic sample of a table's partitions.
type Sample struct {
	// Points is how many evenly spaced tokens were probed.
	Points int `json:"points"`
	// Partitions is how many distinct partitions they found (the first partition
	// at or after each token).
	Partitions int `json:"partitions"`
	// Rows is how many rows those partitions hold.
	Rows int64 `json:"rows"`
	// Digest is the sha256 of every sampled row as `SELECT JSON *` renders it, in
	// token and clustering order.
	Digest string `json:"digest"`
}

// SampleDigest reads, for each of points tokens spread evenly over the ring, the
// first partition at or after it, and hashes every row of those partitions as
// Cassandra renders it with SELECT JSON. The sample depends only on the data and
// the partitioner, not on the cluster's topology, so a restored cluster holding
// the same data gives the same digest.
func (s *Session) SampleDigest(ctx context.Context, keyspace, table string, points int, cl gocql.Consistency) (Sample, error) {
	cols, err := s.Columns(ctx, keyspace, table)
	if err != nil {
		return Sample{}, err
	}
	pk := partitionKey(cols)
	if len(pk) == 0 {
		return Sample{}, drivers.Errorf(drivers.Permanent, "table %s.%s does not exist", keyspace, table)
	}
	tok := "token(" + strings.Join(pk, ", ") + ")"
	from := Ident(keyspace) + "." + Ident(table)
	h := sha256.New()
	fmt.Fprintf(h, "%s.%s\n", keyspace, table)
	res := Sample{Points: points}
	seen := map[int64]bool{}
	for _, start := range BalancedTokens(points) {
		st, _ := strconv.ParseInt(start, 10, 64)
		var t int64
		q := s.s.Query(fmt.Sprintf("SELECT %s FROM %s WHERE %s >= ? LIMIT 1", tok, from, tok), st).WithContext(ctx).Consistency(cl)
		if err := q.Scan(&t); err != nil {
			if errors.Is(err, gocql.ErrNotFound) {
				continue
			}
			return Sample{}, ClassifyCQL(ctx, fmt.Sprintf("sample %s.%s", keyspace, table), err)
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		res.Partitions++
		fmt.Fprintf(h, "token %d\n", t)
		iter := s.s.Query(fmt.Sprintf("SELECT JSON * FROM %s WHERE %s = ?", from, tok), t).WithContext(ctx).Consistency(cl).PageSize(1000).Iter()
		var js string
		for iter.Scan(&js) {
			h.Write([]byte(js))
			h.Write([]byte{'\n'})
			res.Rows++
		}
		if err := iter.Close(); err != nil {
			return Sample{}, ClassifyCQL(ctx, fmt.Sprintf("sample %s.%s", keyspace, table), err)
		}
	}
	res.Digest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}

// Plain converts a value gocql scanned into plain Go values: UUIDs, times,
// decimals and varints as strings, blobs as hex, collections as lists and maps
// with string keys, UDTs as maps.
func Plain(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case gocql.UUID:
		return x.String()
	case time.Time:
		if x.IsZero() {
			return nil
		}
		return x.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	case gocql.Duration:
		return fmt.Sprintf("%dmo%dd%dns", x.Months, x.Days, x.Nanoseconds)
	case *inf.Dec:
		if x == nil {
			return nil
		}
		return x.String()
	case *big.Int:
		if x == nil {
			return nil
		}
		return x.String()
	case net.IP:
		return x.String()
	case []byte:
		if x == nil {
			return nil
		}
		return "0x" + hex.EncodeToString(x)
	case string, bool, int64, float64:
		return x
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return Plain(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = Plain(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			out[fmt.Sprint(Plain(iter.Key().Interface()))] = Plain(iter.Value().Interface())
		}
		return out
	}
	return fmt.Sprint(v)
}
