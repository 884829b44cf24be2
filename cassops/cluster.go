package cassops

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/drivers"
)

// Cluster is a cluster as a target describes it (targets/cassandra.go writes the
// spec; docs/targets.md documents it): how to reach each node over CQL and JMX,
// and where its data lives.
type Cluster struct {
	// Name is the cluster_name the target expects ("" accepts any).
	Name string `json:"cluster_name"`
	// Lib is the folder of Cassandra jars the tools run from ("" for the default).
	Lib         string        `json:"cassandra_lib"`
	CQLPort     int           `json:"cql_port"`
	StoragePort int           `json:"storage_port"`
	Nodes       []ClusterNode `json:"nodes"`
	// Credentials, from the target's secrets (never from its spec).
	CQLUser     string `json:"-"`
	CQLPassword string `json:"-"`
	JMXUser     string `json:"-"`
	JMXPassword string `json:"-"`
}

// ClusterNode is one node of a Cluster.
type ClusterNode struct {
	Name     string   `json:"name"`
	Host     string   `json:"host"`
	JMXHost  string   `json:"jmx_host"`
	JMXPort  int      `json:"jmx_port"`
	DataDirs []string `json:"data_dirs"`
}

// Secret names under which a target records the cluster's credentials.
const (
	SecretCQLPassword = "cql.password"
	SecretJMXPassword = "jmx.password"
)

// ClusterFromSpec reads a target's spec. secret returns the target's resolved
// secrets by name (cql.password, jmx.password).
func ClusterFromSpec(spec map[string]any, secret func(name string) (string, bool)) (*Cluster, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "cassandra target", err)
	}
	var c Cluster
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "cassandra target", err)
	}
	var creds struct {
		CQL struct {
			Username string `json:"username"`
		} `json:"cql"`
		JMX struct {
			Username string `json:"username"`
		} `json:"jmx"`
	}
	_ = json.Unmarshal(data, &creds)
	c.CQLUser, c.JMXUser = creds.CQL.Username, creds.JMX.Username
	if secret != nil {
		c.CQLPassword, _ = secret(SecretCQLPassword)
		c.JMXPassword, _ = secret(SecretJMXPassword)
	}
	if c.CQLPort == 0 {
		c.CQLPort = 9042
	}
	if c.StoragePort == 0 {
		c.StoragePort = 7000
	}
	if len(c.Nodes) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "cassandra target has no nodes")
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Name == "" || n.Host == "" {
			return nil, drivers.Errorf(drivers.Permanent, "cassandra target: nodes[%d] needs a name and a host", i)
		}
		if n.JMXHost == "" {
			n.JMXHost = n.Host
		}
		if n.JMXPort == 0 {
			n.JMXPort = 7199
		}
	}
	return &c, nil
}

// Node returns the node called name.
func (c *Cluster) Node(name string) (ClusterNode, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return ClusterNode{}, false
}

// NodeNames lists the nodes' names, in target order.
func (c *Cluster) NodeNames() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// CQL is how to reach nodes over CQL: every node of the cluster as contact
// points when none is given, else only the given ones.
func (c *Cluster) CQL(only ...ClusterNode) CQLConfig {
	cfg := CQLConfig{Port: c.CQLPort, User: c.CQLUser, Password: c.CQLPassword}
	nodes := c.Nodes
	if len(only) > 0 {
		nodes, cfg.Only = only, true
	}
	for _, n := range nodes {
		cfg.Hosts = append(cfg.Hosts, n.Host)
	}
	return cfg
}

// JMX is how nodetool reaches node n.
func (c *Cluster) JMX(n ClusterNode) JMX {
	return JMX{Host: n.JMXHost, Port: n.JMXPort, User: c.JMXUser, Password: c.JMXPassword}
}

// LoadTarget is where sstableloader streams to: every node as a contact point.
func (c *Cluster) LoadTarget() LoadTarget {
	lt := LoadTarget{CQLPort: c.CQLPort, StoragePort: c.StoragePort, User: c.CQLUser, Password: c.CQLPassword}
	for _, n := range c.Nodes {
		lt.Hosts = append(lt.Hosts, n.Host)
	}
	return lt
}

// NodeInfo is what one node says about itself.
type NodeInfo struct {
	ClusterName              string   `json:"cluster_name"`
	Partitioner              string   `json:"partitioner"`
	ReleaseVersion           string   `json:"release_version"`
	DC                       string   `json:"dc"`
	Rack                     string   `json:"rack"`
	HostID                   string   `json:"host_id"`
	Address                  string   `json:"address"`
	Tokens                   []string `json:"tokens"`
	StorageCompatibilityMode string   `json:"storage_compatibility_mode"`
	SchemaVersion            string   `json:"schema_version"`
}

// LocalInfo reads system.local and, on 5.0, the storage compatibility mode from
// system_views.settings, on the session's node (use a session to one node).
func (s *Session) LocalInfo(ctx context.Context) (NodeInfo, error) {
	rows, err := s.Query(ctx, "SELECT cluster_name, partitioner, release_version, data_center, rack, host_id, broadcast_address, tokens, schema_version FROM system.local", nil, gocql.One, 0, 0)
	if err != nil {
		return NodeInfo{}, err
	}
	if len(rows) != 1 {
		return NodeInfo{}, drivers.Errorf(drivers.Transient, "system.local on %s returned %d rows", s.Where(), len(rows))
	}
	r := rows[0]
	str := func(k string) string {
		if v, ok := r[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	ni := NodeInfo{ClusterName: str("cluster_name"), Partitioner: str("partitioner"), ReleaseVersion: str("release_version"),
		DC: str("data_center"), Rack: str("rack"), HostID: str("host_id"), Address: str("broadcast_address"), SchemaVersion: str("schema_version")}
	if l, ok := r["tokens"].([]any); ok {
		for _, t := range l {
			ni.Tokens = append(ni.Tokens, fmt.Sprint(t))
		}
	}
	SortTokens(ni.Tokens)
	settings, err := s.Query(ctx, "SELECT name, value FROM system_views.settings WHERE name = 'storage_compatibility_mode'", nil, gocql.One, 0, 0)
	if err == nil && len(settings) == 1 {
		ni.StorageCompatibilityMode = fmt.Sprint(settings[0]["value"])
	}
	if ni.StorageCompatibilityMode == "" {
		// Cassandra 4.x has no such setting; it writes what CASSANDRA_4 writes.
		ni.StorageCompatibilityMode = ModeCassandra4
	}
	return ni, nil
}

// SortTokens sorts Murmur3 tokens numerically.
func SortTokens(tokens []string) {
	sort.Slice(tokens, func(i, j int) bool {
		a, ea := strconv.ParseInt(tokens[i], 10, 64)
		b, eb := strconv.ParseInt(tokens[j], 10, 64)
		if ea != nil || eb != nil {
			return tokens[i] < tokens[j]
		}
		return a < b
	})
}
