package cassops

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/drivers"
)

// IsSystemKeyspace reports whether ks belongs to Cassandra itself.
func IsSystemKeyspace(ks string) bool {
	switch ks {
	case "system", "system_schema", "system_auth", "system_distributed", "system_traces", "system_views", "system_virtual_schema":
		return true
	}
	return strings.HasPrefix(ks, "system_")
}

// Keyspaces lists the user keyspaces (no system keyspace), sorted.
func (s *Session) Keyspaces(ctx context.Context) ([]string, error) {
	rows, err := s.Query(ctx, "SELECT keyspace_name FROM system_schema.keyspaces", nil, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if ks := fmt.Sprint(r["keyspace_name"]); !IsSystemKeyspace(ks) {
			out = append(out, ks)
		}
	}
	sort.Strings(out)
	return out, nil
}

// KeyspaceInfo is a keyspace of a live cluster.
type KeyspaceInfo struct {
	Name        string
	Exists      bool
	Create      string            // CREATE KEYSPACE ... (from DESCRIBE)
	Replication map[string]string // system_schema.keyspaces.replication
	Tables      map[string]string // table name -> id
	Views       []string          // materialized views
}

// Keyspace reads a keyspace's definition; Exists is false when there is none.
func (s *Session) Keyspace(ctx context.Context, ks string) (*KeyspaceInfo, error) {
	info := &KeyspaceInfo{Name: ks, Replication: map[string]string{}, Tables: map[string]string{}}
	rows, err := s.Query(ctx, "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", []any{ks}, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return info, nil
	}
	info.Exists = true
	if m, ok := rows[0]["replication"].(map[string]any); ok {
		for k, v := range m {
			info.Replication[k] = fmt.Sprint(v)
		}
	}
	tables, err := s.Query(ctx, "SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = ?", []any{ks}, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range tables {
		info.Tables[fmt.Sprint(r["table_name"])] = fmt.Sprint(r["id"])
	}
	views, err := s.Query(ctx, "SELECT view_name FROM system_schema.views WHERE keyspace_name = ?", []any{ks}, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range views {
		info.Views = append(info.Views, fmt.Sprint(r["view_name"]))
	}
	sort.Strings(info.Views)
	desc, err := s.Query(ctx, "DESCRIBE KEYSPACE "+Ident(ks), nil, gocql.One, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range desc {
		if fmt.Sprint(r["type"]) == "keyspace" {
			info.Create = strings.TrimSpace(fmt.Sprint(r["create_statement"]))
		}
	}
	if info.Create == "" {
		return nil, drivers.Errorf(drivers.Permanent, "DESCRIBE KEYSPACE %s gave no CREATE KEYSPACE statement", ks)
	}
	return info, nil
}

// TableFacts counts a table's rows and digests its partition sample, both at
// consistency ALL (every replica answers).
func (s *Session) TableFacts(ctx context.Context, ks, table string, points int) (int64, Sample, error) {
	rows, err := s.CountRows(ctx, ks, table, gocql.All, 5000)
	if err != nil {
		return 0, Sample{}, err
	}
	sample, err := s.SampleDigest(ctx, ks, table, points, gocql.All)
	if err != nil {
		return 0, Sample{}, err
	}
	return rows, sample, nil
}

// SplitStatements splits CQL text (a schema.cql) into statements at semicolons
// outside quotes, comments and $$ blocks, without the semicolons; comments and
// blank statements are dropped.
func SplitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(text) {
				if text[j] == c {
					if j+1 < len(text) && text[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			cur.WriteString(text[i:min(j+1, len(text))])
			i = j
		case c == '$' && i+1 < len(text) && text[i+1] == '$':
			end := strings.Index(text[i+2:], "$$")
			if end < 0 {
				cur.WriteString(text[i:])
				i = len(text)
			} else {
				cur.WriteString(text[i : i+2+end+2])
				i = i + 2 + end + 1
			}
		case c == '-' && i+1 < len(text) && text[i+1] == '-', c == '/' && i+1 < len(text) && text[i+1] == '/':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				i = len(text)
			} else {
				i = i + 2 + end + 1
			}
			cur.WriteByte(' ')
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}
