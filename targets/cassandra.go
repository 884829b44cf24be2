package targets

import (
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/restore-run/restore-run/drivers"
)

func init() {
	Register(Kind{
		Engine:  "cassandra",
		Scratch: cassandraScratch,
		Check:   cassandraCheck,
		ScratchDoc: "nodes=N (1-3, default 1) on 127.0.0.1..127.0.0.N, heap=SIZE (per node, default 512M), " +
			"storage_compatibility_mode=CASSANDRA_4|UPGRADING|NONE (default: the snapshot's), " +
			"lib=DIR (the Cassandra 5.0 jars; default $RESTORE_RUN_CASSANDRA_LIB, else ./third_party/cassandra/lib)",
	})
}

var heapRe = regexp.MustCompile(`^[1-9][0-9]*[MG]$`)

// cassandraScratch describes N nodes started from the jars on 127.0.0.1..N: one
// CQL port and one storage port free on every address (sstableloader and the
// drivers expect one of each per cluster), a JMX port per node (JMX listens on
// 127.0.0.1 only), balanced tokens. The driver starts them.
func cassandraScratch(opts url.Values, dir string) (*drivers.Target, error) {
	if err := CheckOptions(opts, "nodes", "heap", "storage_compatibility_mode", "lib"); err != nil {
		return nil, err
	}
	n, err := IntOption(opts, "nodes", 1, 1, 3)
	if err != nil {
		return nil, err
	}
	heap := opts.Get("heap")
	if heap == "" {
		heap = "512M"
	}
	if !heapRe.MatchString(heap) {
		return nil, fmt.Errorf("option heap=%q must be a size like 512M or 1G", heap)
	}
	mode := opts.Get("storage_compatibility_mode")
	switch mode {
	case "", "CASSANDRA_4", "UPGRADING", "NONE":
	default:
		return nil, fmt.Errorf("option storage_compatibility_mode=%q must be CASSANDRA_4, UPGRADING or NONE", mode)
	}
	lib := opts.Get("lib")
	if lib != "" {
		if lib, err = filepath.Abs(lib); err != nil {
			return nil, err
		}
	}
	var addrs []string
	for i := 1; i <= n; i++ {
		addrs = append(addrs, fmt.Sprintf("127.0.0.%d", i))
	}
	shared, err := PortsFreeOn(addrs, 2)
	if err != nil {
		return nil, err
	}
	jmx, err := FreePorts(n)
	if err != nil {
		return nil, err
	}
	tokens := balancedTokens(n)
	var nodes []any
	for i, a := range addrs {
		name := fmt.Sprintf("n%d", i+1)
		nd := filepath.Join(dir, name)
		nodes = append(nodes, map[string]any{
			"name": name, "host": a, "jmx_host": "127.0.0.1", "jmx_port": jmx[i],
			"dir": nd, "data_dirs": []any{filepath.Join(nd, "data")},
			"tokens": []any{tokens[i]}, "dc": "datacenter1", "rack": "rack1",
		})
	}
	return &drivers.Target{
		Spec: map[string]any{
			"cluster_name":               "",
			"cassandra_lib":              lib,
			"cql_port":                   shared[0],
			"storage_port":               shared[1],
			"heap":                       heap,
			"storage_compatibility_mode": mode,
			"nodes":                      nodes,
		},
		Dirs: []string{dir},
	}, nil
}

// PortsFreeOn returns k distinct ports that are free on every address of addrs
// right now (another process may still take one before the nodes bind it).
func PortsFreeOn(addrs []string, k int) ([]int, error) {
	var out []int
	for attempt := 0; attempt < 50 && len(out) < k; attempt++ {
		l, err := net.Listen("tcp", addrs[0]+":0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", addrs[0], err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		var held []net.Listener
		for _, a := range addrs[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l2)
		}
		l.Close()
		for _, h := range held {
			h.Close()
		}
		for _, p := range out {
			if p == port {
				ok = false
			}
		}
		if ok {
			out = append(out, port)
		}
	}
	if len(out) < k {
		return nil, fmt.Errorf("found no port free on every one of %v", addrs)
	}
	return out, nil
}

// balancedTokens is cassops.BalancedTokens: n Murmur3 tokens spread evenly from
// the ring's minimum.
func balancedTokens(n int) []string {
	out := make([]string, n)
	ring := new(big.Int).Lsh(big.NewInt(1), 64)
	min := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 63))
	for i := range out {
		v := new(big.Int).Mul(ring, big.NewInt(int64(i)))
		v.Div(v, big.NewInt(int64(n)))
		out[i] = v.Add(v, min).String()
	}
	return out
}

// cassandraCheck validates a target file describing an existing cluster and fills
// in the defaults, so scripts see every field.
func cassandraCheck(spec map[string]any) ([]string, error) {
	for k := range spec {
		switch k {
		case "cluster_name", "cassandra_lib", "cql_port", "storage_port", "jmx_port", "cql", "jmx", "nodes":
		default:
			return nil, fmt.Errorf("unknown key %q (cassandra target files have cluster_name, cassandra_lib, cql_port, storage_port, jmx_port, cql, jmx, nodes)", k)
		}
	}
	str := func(field string, v any, required bool) (string, error) {
		s, ok := v.(string)
		if v == nil && !required {
			return "", nil
		}
		if !ok || (required && s == "") {
			return "", fmt.Errorf("%s must be a non-empty string", field)
		}
		return s, nil
	}
	port := func(field string, v any, def int) (int, error) {
		if v == nil {
			return def, nil
		}
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) || f < 1 || f > 65535 {
			return 0, fmt.Errorf("%s must be a port number (1-65535)", field)
		}
		return int(f), nil
	}
	name, err := str("cluster_name", spec["cluster_name"], false)
	if err != nil {
		return nil, err
	}
	spec["cluster_name"] = name
	lib, err := str("cassandra_lib", spec["cassandra_lib"], false)
	if err != nil {
		return nil, err
	}
	if lib != "" {
		if lib, err = AbsDir("cassandra_lib", lib); err != nil {
			return nil, err
		}
	}
	spec["cassandra_lib"] = lib
	for _, p := range []struct {
		key string
		def int
	}{{"cql_port", 9042}, {"storage_port", 7000}, {"jmx_port", 7199}} {
		v, err := port(p.key, spec[p.key], p.def)
		if err != nil {
			return nil, err
		}
		spec[p.key] = v
	}
	for _, sect := range []string{"cql", "jmx"} {
		v, ok := spec[sect]
		if !ok {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s must be a map with username and password (password: {env: VAR} or {file: PATH})", sect)
		}
		for k := range m {
			if k != "username" && k != "password" {
				return nil, fmt.Errorf("%s: unknown key %q (username, password)", sect, k)
			}
		}
		if _, err := str(sect+".username", m["username"], true); err != nil {
			return nil, err
		}
		if _, ok := m["password"].(string); !ok {
			return nil, fmt.Errorf("%s.password is missing; give it by reference: `password: {env: VAR}` or `password: {file: /path}`", sect)
		}
	}
	raw, ok := spec["nodes"].([]any)
	if !ok || len(raw) == 0 {
		return nil, fmt.Errorf("nodes: a non-empty list of {name, host, jmx_host, jmx_port, data_dirs} is required")
	}
	var dirs []string
	names, hosts := map[string]bool{}, map[string]bool{}
	for i, r := range raw {
		field := fmt.Sprintf("nodes[%d]", i)
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s must be a map", field)
		}
		for k := range m {
			switch k {
			case "name", "host", "jmx_host", "jmx_port", "data_dirs":
			default:
				return nil, fmt.Errorf("%s: unknown key %q (name, host, jmx_host, jmx_port, data_dirs)", field, k)
			}
		}
		name, err := str(field+".name", m["name"], true)
		if err != nil || names[name] {
			return nil, fmt.Errorf("%s.name must be a unique non-empty string", field)
		}
		names[name] = true
		host, err := str(field+".host", m["host"], true)
		if err != nil || hosts[host] {
			return nil, fmt.Errorf("%s.host must be a unique non-empty address (the node's rpc address, as the cluster knows it)", field)
		}
		hosts[host] = true
		jh, err := str(field+".jmx_host", m["jmx_host"], false)
		if err != nil {
			return nil, err
		}
		if jh == "" {
			jh = host
		}
		m["jmx_host"] = jh
		jp, err := port(field+".jmx_port", m["jmx_port"], spec["jmx_port"].(int))
		if err != nil {
			return nil, err
		}
		m["jmx_port"] = jp
		var dds []any
		if v, ok := m["data_dirs"]; ok {
			l, ok := v.([]any)
			if !ok || len(l) == 0 {
				return nil, fmt.Errorf("%s.data_dirs must be a non-empty list of absolute paths (the node's data_file_directories)", field)
			}
			for j, d := range l {
				s, _ := d.(string)
				dd, err := AbsDir(fmt.Sprintf("%s.data_dirs[%d]", field, j), s)
				if err != nil {
					return nil, err
				}
				dds = append(dds, dd)
				dirs = append(dirs, dd, dd+StagingSuffix)
			}
		}
		if dds == nil {
			dds = []any{}
		}
		m["data_dirs"] = dds
	}
	return dirs, nil
}
