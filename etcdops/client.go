package etcdops

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"

	"github.com/restore-run/restore-run/drivers"
)

// rangePageSize is how many keys Range fetches per request.
const rangePageSize = 500

// Client is a client v3 connection to an etcd cluster, used to validate it.
//
// Every method honours ctx; when ctx has no deadline, each call is bounded by
// DefaultCallTimeout. Errors are Transient when a member is unreachable, has no
// leader or does not answer in time, Cancelled when ctx is done, and Permanent
// otherwise.
type Client struct {
	cli       *clientv3.Client
	endpoints []string
}

// Dial connects to the cluster at endpoints (client URLs such as
// http://127.0.0.1:2379) and waits until at least one of them accepts the
// connection, for at most DefaultDialTimeout or until ctx is done.
func Dial(ctx context.Context, endpoints []string) (*Client, error) {
	op := "connect to etcd " + strings.Join(endpoints, ",")
	if len(endpoints) == 0 {
		return nil, drivers.Errorf(drivers.Permanent, "connect to etcd: no endpoints given; give at least one client URL, e.g. http://127.0.0.1:2379")
	}
	for _, ep := range endpoints {
		if ep == "" {
			return nil, drivers.Errorf(drivers.Permanent, "%s: empty endpoint in the list", op)
		}
	}
	if err := cancelled(ctx, op); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          DefaultDialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, classifyRPC(ctx, op, err)
	}
	// clientv3.New does not wait for a connection; wait here so that Dial reports an
	// unreachable cluster.
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	conn := cli.ActiveConnection()
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			break
		}
		if !conn.WaitForStateChange(dctx, state) {
			_ = cli.Close()
			if ctx.Err() != nil {
				return nil, cancelled(ctx, op)
			}
			return nil, drivers.Errorf(drivers.Transient, "%s: no endpoint accepted a connection within %s (last state %s); check that etcd runs there and is reachable, then retry", op, DefaultDialTimeout, state)
		}
	}
	return &Client{cli: cli, endpoints: append([]string(nil), endpoints...)}, nil
}

// Close closes the client's connections.
func (c *Client) Close() error {
	if err := c.cli.Close(); err != nil && !strings.Contains(err.Error(), "context canceled") {
		return drivers.WithClass(drivers.Transient, "close etcd client", err)
	}
	return nil
}

// Endpoints returns the endpoints the client was dialled with.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// MemberStatus is one member's answer to the maintenance Status call.
type MemberStatus struct {
	// Endpoint is the client URL that answered.
	Endpoint string
	// MemberID is the answering member's ID.
	MemberID uint64
	// Leader is the ID of the member it believes is leader (0: none).
	Leader uint64
	// IsLeader is true when the member is the leader.
	IsLeader bool
	// Revision is the member's current MVCC revision.
	Revision int64
	// RaftIndex is the member's raft log index.
	RaftIndex uint64
	// RaftAppliedIndex is the raft index the member has applied.
	RaftAppliedIndex uint64
	// RaftTerm is the member's raft term.
	RaftTerm uint64
	// Version is the server's version, e.g. "3.6.16".
	Version string
	// StorageVersion is the version of the member's storage schema, e.g. "3.6.0".
	StorageVersion string
	// DBSize is the size of the member's database file in bytes.
	DBSize int64
	// DBSizeInUse is the part of DBSize that holds data.
	DBSizeInUse int64
	// IsLearner is true for a non-voting member.
	IsLearner bool
	// Errors are the member's alarms and errors (e.g. "NOSPACE"), empty when healthy.
	Errors []string
}

// Status asks the member at endpoint (which need not be one of the client's
// endpoints) for its status, over a connection to that member only.
func (c *Client) Status(ctx context.Context, endpoint string) (MemberStatus, error) {
	op := "etcd status " + endpoint
	cctx, cancel := callCtx(ctx)
	defer cancel()
	resp, err := c.cli.Status(cctx, endpoint)
	if err != nil {
		return MemberStatus{}, classifyRPC(ctx, op, err)
	}
	s := MemberStatus{
		Endpoint:         endpoint,
		Leader:           resp.Leader,
		RaftIndex:        resp.RaftIndex,
		RaftAppliedIndex: resp.RaftAppliedIndex,
		RaftTerm:         resp.RaftTerm,
		Version:          resp.Version,
		StorageVersion:   resp.StorageVersion,
		DBSize:           resp.DbSize,
		DBSizeInUse:      resp.DbSizeInUse,
		IsLearner:        resp.IsLearner,
		Errors:           append([]string(nil), resp.Errors...),
	}
	if resp.Header != nil {
		s.MemberID = resp.Header.MemberId
		s.Revision = resp.Header.Revision
	}
	s.IsLeader = s.MemberID != 0 && s.MemberID == s.Leader
	return s, nil
}

// MemberInfo describes one member of the cluster.
type MemberInfo struct {
	// ID is the member's ID.
	ID uint64
	// Name is the member's name; empty for a member that was added but never started.
	Name string
	// PeerURLs are the member's advertised peer URLs.
	PeerURLs []string
	// ClientURLs are the member's advertised client URLs.
	ClientURLs []string
	// IsLearner is true for a non-voting member.
	IsLearner bool
}

// MemberList lists the cluster's members (a linearizable read: it needs a leader).
func (c *Client) MemberList(ctx context.Context) ([]MemberInfo, error) {
	cctx, cancel := callCtx(ctx)
	defer cancel()
	resp, err := c.cli.MemberList(cctx)
	if err != nil {
		return nil, classifyRPC(ctx, "etcd member list", err)
	}
	out := make([]MemberInfo, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, MemberInfo{
			ID:         m.ID,
			Name:       m.Name,
			PeerURLs:   append([]string(nil), m.PeerURLs...),
			ClientURLs: append([]string(nil), m.ClientURLs...),
			IsLearner:  m.IsLearner,
		})
	}
	return out, nil
}

// HashKV is a member's hash of its MVCC keys up to a revision. Members of one
// cluster agree on it at the same revision; it is unrelated to SnapshotStatus.Hash.
type HashKV struct {
	// Hash is the hash of the keys from CompactRevision to HashRevision.
	Hash uint32
	// HashRevision is the revision up to which Hash was computed.
	HashRevision int64
	// CompactRevision is the member's compacted revision when hashing began.
	CompactRevision int64
	// Revision is the member's current revision when it answered.
	Revision int64
}

// HashKV asks the member at endpoint for the hash of its keys up to rev (0: its
// latest revision), over a connection to that member only. A rev the member has not
// reached yet or has compacted gives a Permanent error; compare members at a
// revision all of them have applied.
func (c *Client) HashKV(ctx context.Context, endpoint string, rev int64) (HashKV, error) {
	op := fmt.Sprintf("etcd hashkv %s at revision %d", endpoint, rev)
	cctx, cancel := callCtx(ctx)
	defer cancel()
	resp, err := c.cli.HashKV(cctx, endpoint, rev)
	if err != nil {
		return HashKV{}, classifyRPC(ctx, op, err)
	}
	h := HashKV{Hash: resp.Hash, HashRevision: resp.HashRevision, CompactRevision: resp.CompactRevision}
	if resp.Header != nil {
		h.Revision = resp.Header.Revision
	}
	return h, nil
}

// Count returns how many keys start with prefix; "" counts every key.
func (c *Client) Count(ctx context.Context, prefix string) (int64, error) {
	cctx, cancel := callCtx(ctx)
	defer cancel()
	key, opts := prefix, []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
	if prefix == "" {
		key, opts = "\x00", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithCountOnly()}
	}
	resp, err := c.cli.Get(cctx, key, opts...)
	if err != nil {
		return 0, classifyRPC(ctx, fmt.Sprintf("etcd count prefix %q", prefix), err)
	}
	return resp.Count, nil
}

// Get returns the value of key and whether it exists (a linearizable read).
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	cctx, cancel := callCtx(ctx)
	defer cancel()
	resp, err := c.cli.Get(cctx, key)
	if err != nil {
		return "", false, classifyRPC(ctx, fmt.Sprintf("etcd get %q", key), err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// Put sets key to value. It is meant for tests and fixtures.
func (c *Client) Put(ctx context.Context, key, value string) error {
	cctx, cancel := callCtx(ctx)
	defer cancel()
	if _, err := c.cli.Put(cctx, key, value); err != nil {
		return classifyRPC(ctx, fmt.Sprintf("etcd put %q", key), err)
	}
	return nil
}

// Delete removes key and returns how many keys it removed (0 or 1). It is meant for
// tests and fixtures.
func (c *Client) Delete(ctx context.Context, key string) (int64, error) {
	cctx, cancel := callCtx(ctx)
	defer cancel()
	resp, err := c.cli.Delete(cctx, key)
	if err != nil {
		return 0, classifyRPC(ctx, fmt.Sprintf("etcd delete %q", key), err)
	}
	return resp.Deleted, nil
}

// Range calls fn with every key starting with prefix ("" for all keys) and its
// value, in key order, fetching pages of keys all read at the revision of the first
// page so that the result is one consistent view. The slices are only valid during
// the call. An error from fn stops Range and is returned (with a Permanent class if
// it has none). Each page, not the whole walk, is bounded by DefaultCallTimeout when
// ctx has no deadline.
func (c *Client) Range(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	op := fmt.Sprintf("etcd range prefix %q", prefix)
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if prefix == "" {
		start, end = "\x00", "\x00"
	}
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(rangePageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		cctx, cancel := callCtx(ctx)
		resp, err := c.cli.Get(cctx, start, opts...)
		cancel()
		if err != nil {
			return classifyRPC(ctx, op, err)
		}
		if rev == 0 && resp.Header != nil {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv.Key, kv.Value); err != nil {
				if hasClass(err) {
					return fmt.Errorf("%s: %w", op, err)
				}
				return drivers.WithClass(drivers.Permanent, op, err)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		if err := cancelled(ctx, op); err != nil {
			return err
		}
	}
}
