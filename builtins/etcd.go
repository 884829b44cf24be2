package builtins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/etcdops"
)

func init() {
	net := []drivers.Class{drivers.Transient, drivers.Permanent, drivers.Cancelled}
	Register(Module{
		Name: "etcd",
		Doc: "etcd snapshots (inspect, restore a member's data dir), in-process members for " +
			"scratch targets, and the client calls that validate a cluster.",
		Funcs: []Func{
			{Name: "snapshot_status", Idempotent: true, Effect: Read, Params: "path",
				Returns: "struct(revision, total_key, total_size, hash, version, has_checksum)",
				Doc: "Inspects a snapshot file after checking its sha256 trailer when it has one. " +
					"A file that is not an etcd snapshot, or fails its checksum, is a corruption error.",
				Errors: []drivers.Class{drivers.Corruption, drivers.Permanent, drivers.Cancelled},
				Impl:   etcdSnapshotStatus, Plan: etcdSnapshotStatusPlan},
			{Name: "snapshot_restore", Effect: Write,
				Params:  `path, name, data_dir, peer_url, initial_cluster, token, bump_revision=0, mark_compacted=False, skip_hash_check=False`,
				Returns: "data_dir",
				Doc: "Restores one member's data dir (which must not exist or be empty) from a snapshot file. " +
					"Every member of the new cluster restores the same file with the same initial_cluster and token. " +
					"bump_revision needs mark_compacted.",
				Errors: []drivers.Class{drivers.Permanent, drivers.Corruption, drivers.Cancelled},
				Impl:   etcdSnapshotRestore, Plan: etcdSnapshotRestorePlan},
			{Name: "start_members", Effect: Write, Params: "members, token",
				Returns: "list of client URLs",
				Doc: "Starts in-process members (scratch targets only) from a list of " +
					"struct(name, data_dir, client_url, peer_url), together, and waits until the cluster " +
					"has a leader. They stop when the run ends (or when --keep is released).",
				Errors: net, Impl: etcdStartMembers, Plan: etcdStartMembersPlan},
			{Name: "stop_member", Effect: Write, Params: "name", Returns: "bool (whether it was running)",
				Doc: "Stops an in-process member this run started with etcd.start_members (scratch targets); members of a real target are stopped with service.stop.", Impl: etcdStopMember},
			{Name: "status", Idempotent: true, Effect: Read, Params: "endpoint",
				Returns: "struct(endpoint, member_id, leader, is_leader, revision, raft_index, raft_applied_index, raft_term, version, db_size, is_learner, errors)",
				Doc:     "One member's status, as `etcdctl endpoint status` shows it: its id and its leader's as hex strings, revision, raft indexes, db size, alarms in errors.", Errors: net, Impl: etcdStatus},
			{Name: "member_list", Idempotent: true, Effect: Read, Params: "endpoints",
				Returns: "list of struct(id, name, peer_urls, client_urls, is_learner)",
				Doc:     "The cluster's members as the first endpoint that answers reports them (ids as hex strings).", Errors: net, Impl: etcdMemberList},
			{Name: "hashkv", Idempotent: true, Effect: Read, Params: "endpoint, revision=0",
				Returns: "struct(hash, hash_revision, compact_revision, revision)",
				Doc:     "The member's hash of its keys up to revision (0: latest). Equal on every member at one revision.",
				Errors:  net, Impl: etcdHashKV},
			{Name: "count", Idempotent: true, Effect: Read, Params: `endpoints, prefix=""`, Returns: "int",
				Doc: "How many keys start with prefix (all keys for \"\").", Errors: net, Impl: etcdCount},
			{Name: "get", Idempotent: true, Effect: Read, Params: "endpoints, key", Returns: "string or None",
				Doc: "The value of key as a string, or None when the key does not exist.", Errors: net, Impl: etcdGet},
			{Name: "wait_healthy", Effect: Read, Params: "endpoints, timeout=60",
				Returns: "list of status structs",
				Doc:     "Polls every endpoint until each answers and all agree on one leader, or fails after timeout seconds (transient).",
				Errors:  net, Impl: etcdWaitHealthy,
				// A plan does not start the members it would wait for.
				Plan: func(context.Context, *Env, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
					return starlark.NewList(nil), nil
				}},
		},
	})
}

// etcdMembers holds the in-process members a run started.
type etcdMembers struct {
	mu      sync.Mutex
	running map[string]*etcdops.Member
}

func membersOf(env *Env) *etcdMembers {
	return env.Value("etcd.members", func() any {
		m := &etcdMembers{running: map[string]*etcdops.Member{}}
		env.Defer("etcd members", func(context.Context) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			var all []*etcdops.Member
			for name, mem := range m.running {
				all = append(all, mem)
				delete(m.running, name)
			}
			// Together: one by one, each stop waits for a leader hand-over.
			return etcdops.StopMembers(all)
		})
		return m
	}).(*etcdMembers)
}

func statusStruct(st etcdops.SnapshotStatus) (starlark.Value, error) {
	return Struct(map[string]any{
		"revision": st.Revision, "total_key": st.TotalKey, "total_size": st.TotalSize,
		"hash": uint64(st.Hash), "version": st.Version, "has_checksum": st.HasChecksum,
	})
}

func etcdSnapshotStatus(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("etcd.snapshot_status", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	st, err := etcdops.Status(ctx, p)
	if err != nil {
		return nil, err
	}
	return statusStruct(st)
}

// etcdSnapshotStatusPlan answers for a file a planned fetch did not write: the
// values are unknown (None) until the real run.
func etcdSnapshotStatusPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p, err := onePath("etcd.snapshot_status", env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err == nil {
		return etcdSnapshotStatus(ctx, env, args, kwargs)
	}
	return Struct(map[string]any{"revision": nil, "total_key": nil, "total_size": nil, "hash": nil, "version": nil, "has_checksum": nil})
}

// unpackRestore reads etcd.snapshot_restore's arguments and checks its paths.
func unpackRestore(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (etcdops.RestoreConfig, error) {
	var (
		path, name, dataDir, peer, cluster, token string
		bump                                      int64
		markCompacted, skipHash                   bool
	)
	if err := Unpack("etcd.snapshot_restore", args, kwargs, "path", &path, "name", &name, "data_dir", &dataDir,
		"peer_url", &peer, "initial_cluster", &cluster, "token", &token,
		"bump_revision?", &bump, "mark_compacted?", &markCompacted, "skip_hash_check?", &skipHash); err != nil {
		return etcdops.RestoreConfig{}, err
	}
	if bump < 0 {
		return etcdops.RestoreConfig{}, drivers.Errorf(drivers.Script, "etcd.snapshot_restore: bump_revision must be >= 0")
	}
	path, err := env.CheckPath(path)
	if err != nil {
		return etcdops.RestoreConfig{}, err
	}
	if dataDir, err = env.CheckPath(dataDir); err != nil {
		return etcdops.RestoreConfig{}, err
	}
	return etcdops.RestoreConfig{
		SnapshotPath: path, Name: name, DataDir: dataDir, PeerURLs: []string{peer},
		InitialCluster: cluster, InitialClusterToken: token,
		RevisionBump: uint64(bump), MarkCompacted: markCompacted, SkipHashCheck: skipHash,
	}, nil
}

func etcdSnapshotRestore(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	cfg, err := unpackRestore(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := etcdops.Restore(ctx, cfg); err != nil {
		return nil, err
	}
	return starlark.String(cfg.DataDir), nil
}

func etcdSnapshotRestorePlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	cfg, err := unpackRestore(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	return starlark.String(cfg.DataDir), nil
}

type memberSpec struct{ name, dataDir, clientURL, peerURL string }

func unpackMembers(env *Env, args starlark.Tuple, kwargs []starlark.Tuple) ([]memberSpec, string, error) {
	var list *starlark.List
	var token string
	if err := Unpack("etcd.start_members", args, kwargs, "members", &list, "token", &token); err != nil {
		return nil, "", err
	}
	var out []memberSpec
	for i := 0; i < list.Len(); i++ {
		g, err := FromValue(list.Index(i))
		m, ok := g.(map[string]any)
		if err != nil || !ok {
			return nil, "", drivers.Errorf(drivers.Script, "etcd.start_members: members[%d] must be a struct or dict with name, data_dir, client_url, peer_url", i)
		}
		s := memberSpec{}
		for key, dst := range map[string]*string{"name": &s.name, "data_dir": &s.dataDir, "client_url": &s.clientURL, "peer_url": &s.peerURL} {
			v, _ := m[key].(string)
			if v == "" {
				return nil, "", drivers.Errorf(drivers.Script, "etcd.start_members: members[%d] has no %s", i, key)
			}
			*dst = v
		}
		if s.dataDir, err = env.CheckPath(s.dataDir); err != nil {
			return nil, "", err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, "", drivers.Errorf(drivers.Script, "etcd.start_members: no members given")
	}
	return out, token, nil
}

func etcdStartMembers(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	specs, token, err := unpackMembers(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	if env.Target == nil || !env.Target.Scratch {
		return nil, drivers.Errorf(drivers.Script, "etcd.start_members runs in-process members for scratch targets only; start real members with service.start")
	}
	var cluster string
	for i, s := range specs {
		if i > 0 {
			cluster += ","
		}
		cluster += s.name + "=" + s.peerURL
	}
	var cfgs []etcdops.MemberConfig
	for _, s := range specs {
		cfgs = append(cfgs, etcdops.MemberConfig{
			Name: s.name, DataDir: s.dataDir, ClientURL: s.clientURL, PeerURL: s.peerURL,
			InitialCluster: cluster, InitialClusterToken: token,
			LogFile: filepath.Join(filepath.Dir(s.dataDir), s.name+".log"),
		})
	}
	reg := membersOf(env)
	members, err := etcdops.StartMembers(ctx, cfgs)
	if err != nil {
		return nil, err
	}
	reg.mu.Lock()
	var urls []string
	for _, m := range members {
		reg.running[m.Name()] = m
		urls = append(urls, m.ClientURL())
	}
	reg.mu.Unlock()
	return ToValue(urls)
}

func etcdStartMembersPlan(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	specs, _, err := unpackMembers(env, args, kwargs)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, s := range specs {
		urls = append(urls, s.clientURL)
	}
	return ToValue(urls)
}

func etcdStopMember(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := Unpack("etcd.stop_member", args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	reg := membersOf(env)
	reg.mu.Lock()
	m, ok := reg.running[name]
	delete(reg.running, name)
	reg.mu.Unlock()
	if !ok {
		return starlark.False, nil
	}
	if err := m.Stop(); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "stop member "+name, err)
	}
	return starlark.True, nil
}

// endpointsArg accepts one endpoint string or a list of them.
func endpointsArg(fn string, v starlark.Value) ([]string, error) {
	if s, ok := starlark.AsString(v); ok {
		return []string{s}, nil
	}
	g, err := FromValue(v)
	l, ok := g.([]any)
	if err != nil || !ok || len(l) == 0 {
		return nil, drivers.Errorf(drivers.Script, "%s: endpoints must be a URL or a non-empty list of URLs, not %s", fn, v.Type())
	}
	var out []string
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, drivers.Errorf(drivers.Script, "%s: endpoints must be strings", fn)
		}
		out = append(out, s)
	}
	return out, nil
}

func withClient(ctx context.Context, endpoints []string, fn func(*etcdops.Client) (starlark.Value, error)) (starlark.Value, error) {
	c, err := etcdops.Dial(ctx, endpoints)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return fn(c)
}

func hexID(id uint64) string { return fmt.Sprintf("%x", id) }

func memberStatusValue(st etcdops.MemberStatus) (starlark.Value, error) {
	errs := st.Errors
	if errs == nil {
		errs = []string{}
	}
	return Struct(map[string]any{
		"endpoint": st.Endpoint, "member_id": hexID(st.MemberID), "leader": hexID(st.Leader),
		"is_leader": st.IsLeader, "revision": st.Revision, "raft_index": st.RaftIndex,
		"raft_applied_index": st.RaftAppliedIndex, "raft_term": st.RaftTerm, "version": st.Version,
		"db_size": st.DBSize, "is_learner": st.IsLearner, "errors": errs,
	})
}

func etcdStatus(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ep string
	if err := Unpack("etcd.status", args, kwargs, "endpoint", &ep); err != nil {
		return nil, err
	}
	return withClient(ctx, []string{ep}, func(c *etcdops.Client) (starlark.Value, error) {
		st, err := c.Status(ctx, ep)
		if err != nil {
			return nil, err
		}
		return memberStatusValue(st)
	})
}

func etcdMemberList(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var epv starlark.Value
	if err := Unpack("etcd.member_list", args, kwargs, "endpoints", &epv); err != nil {
		return nil, err
	}
	eps, err := endpointsArg("etcd.member_list", epv)
	if err != nil {
		return nil, err
	}
	return withClient(ctx, eps, func(c *etcdops.Client) (starlark.Value, error) {
		ms, err := c.MemberList(ctx)
		if err != nil {
			return nil, err
		}
		var out []starlark.Value
		for _, m := range ms {
			s, err := Struct(map[string]any{"id": hexID(m.ID), "name": m.Name, "peer_urls": m.PeerURLs, "client_urls": m.ClientURLs, "is_learner": m.IsLearner})
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return starlark.NewList(out), nil
	})
}

func etcdHashKV(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ep string
	var rev int64
	if err := Unpack("etcd.hashkv", args, kwargs, "endpoint", &ep, "revision?", &rev); err != nil {
		return nil, err
	}
	return withClient(ctx, []string{ep}, func(c *etcdops.Client) (starlark.Value, error) {
		h, err := c.HashKV(ctx, ep, rev)
		if err != nil {
			return nil, err
		}
		return Struct(map[string]any{"hash": uint64(h.Hash), "hash_revision": h.HashRevision, "compact_revision": h.CompactRevision, "revision": h.Revision})
	})
}

func etcdCount(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var epv starlark.Value
	var prefix string
	if err := Unpack("etcd.count", args, kwargs, "endpoints", &epv, "prefix?", &prefix); err != nil {
		return nil, err
	}
	eps, err := endpointsArg("etcd.count", epv)
	if err != nil {
		return nil, err
	}
	return withClient(ctx, eps, func(c *etcdops.Client) (starlark.Value, error) {
		n, err := c.Count(ctx, prefix)
		if err != nil {
			return nil, err
		}
		return starlark.MakeInt64(n), nil
	})
}

func etcdGet(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var epv starlark.Value
	var key string
	if err := Unpack("etcd.get", args, kwargs, "endpoints", &epv, "key", &key); err != nil {
		return nil, err
	}
	eps, err := endpointsArg("etcd.get", epv)
	if err != nil {
		return nil, err
	}
	return withClient(ctx, eps, func(c *etcdops.Client) (starlark.Value, error) {
		v, found, err := c.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if !found {
			return starlark.None, nil
		}
		return starlark.String(v), nil
	})
}

func etcdWaitHealthy(ctx context.Context, env *Env, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var epv starlark.Value
	var tv starlark.Value = starlark.MakeInt(60)
	if err := Unpack("etcd.wait_healthy", args, kwargs, "endpoints", &epv, "timeout?", &tv); err != nil {
		return nil, err
	}
	timeout, ok := starlark.AsFloat(tv)
	if !ok || timeout <= 0 {
		return nil, drivers.Errorf(drivers.Script, "etcd.wait_healthy: timeout must be a positive number of seconds")
	}
	eps, err := endpointsArg("etcd.wait_healthy", epv)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Duration(timeout * float64(time.Second)))
	var last error
	for {
		sts, err := healthyStatuses(ctx, eps)
		if err == nil {
			var out []starlark.Value
			for _, st := range sts {
				v, err := memberStatusValue(st)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			return starlark.NewList(out), nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, drivers.WithClass(drivers.Cancelled, "etcd.wait_healthy", ctx.Err())
		}
		if time.Now().After(deadline) {
			return nil, drivers.Errorf(drivers.Transient, "etcd.wait_healthy: cluster %v not healthy after %.0fs: %v", eps, timeout, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func healthyStatuses(ctx context.Context, eps []string) ([]etcdops.MemberStatus, error) {
	c, err := etcdops.Dial(ctx, eps)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []etcdops.MemberStatus
	leaders := map[uint64]bool{}
	for _, ep := range eps {
		st, err := c.Status(ctx, ep)
		if err != nil {
			return nil, err
		}
		if st.Leader == 0 {
			return nil, fmt.Errorf("member at %s has no leader", ep)
		}
		leaders[st.Leader] = true
		out = append(out, st)
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("members disagree on the leader")
	}
	return out, nil
}
