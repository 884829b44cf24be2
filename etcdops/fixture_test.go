package etcdops

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/drivers"
)

var updateFixtures = flag.Bool("update-fixtures", false, "regenerate testdata/etcd/quickstart from an embedded etcd instead of verifying it")

// quickstartDir holds the committed etcd fixture: snapshot.db and manifest.json.
var quickstartDir = filepath.Join("..", "testdata", "etcd", "quickstart")

// fixtureOp is one write of the quickstart dataset, in order.
type fixtureOp struct {
	key, value string
	delete     bool
}

// quickstartDataset returns the writes that build the quickstart fixture: a small
// Kubernetes-like /registry/... tree plus /app/config/... settings. Pods are
// created Pending and updated to Running, node leases are renewed several times,
// some events and pods are deleted, so the revision exceeds the key count. It
// returns the writes and the live keys with their final values.
func quickstartDataset() ([]fixtureOp, map[string]string) {
	var ops []fixtureOp
	put := func(k, v string) { ops = append(ops, fixtureOp{key: k, value: v}) }
	del := func(k string) { ops = append(ops, fixtureOp{key: k, delete: true}) }
	uid := func(s string) string {
		h := sha256.Sum256([]byte(s))
		x := hex.EncodeToString(h[:16])
		return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
	}
	obj := func(kind, ns, name, extra string) string {
		meta := fmt.Sprintf(`"name":%q,"uid":%q`, name, uid(kind+"/"+ns+"/"+name))
		if ns != "" {
			meta = fmt.Sprintf(`"name":%q,"namespace":%q,"uid":%q`, name, ns, uid(kind+"/"+ns+"/"+name))
		}
		s := fmt.Sprintf(`{"kind":%q,"apiVersion":"v1","metadata":{%s}`, kind, meta)
		if extra != "" {
			s += "," + extra
		}
		return s + "}"
	}

	namespaces := []string{"default", "kube-system", "kube-public", "kube-node-lease", "shop", "payments"}
	for _, ns := range namespaces {
		put("/registry/namespaces/"+ns, obj("Namespace", "", ns, `"status":{"phase":"Active"}`))
	}
	nodes := []string{"node-01", "node-02", "node-03", "node-04"}
	for i, n := range nodes {
		put("/registry/minions/"+n, obj("Node", "", n, fmt.Sprintf(`"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.%d"}],"capacity":{"cpu":"4","memory":"16Gi"}}`, 11+i)))
		put("/registry/leases/kube-node-lease/"+n, obj("Lease", "kube-node-lease", n, `"spec":{"renewTime":"2026-01-01T00:00:00Z"}`))
	}

	type app struct {
		ns, name string
		replicas int
		image    string
	}
	apps := []app{
		{"shop", "frontend", 12, "shop/frontend:2.4.1"},
		{"shop", "cart", 8, "shop/cart:1.9.0"},
		{"shop", "search", 6, "shop/search:0.7.3"},
		{"payments", "api", 8, "payments/api:5.0.2"},
		{"payments", "ledger", 4, "payments/ledger:5.0.2"},
		{"kube-system", "coredns", 2, "registry.k8s.io/coredns:v1.11.1"},
		{"default", "hello", 2, "nginx:1.27"},
	}
	var pods []string
	for _, a := range apps {
		put(fmt.Sprintf("/registry/deployments/%s/%s", a.ns, a.name), obj("Deployment", a.ns, a.name, fmt.Sprintf(`"spec":{"replicas":%d,"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}`, a.replicas, a.name, a.image)))
		put(fmt.Sprintf("/registry/services/specs/%s/%s", a.ns, a.name), obj("Service", a.ns, a.name, fmt.Sprintf(`"spec":{"ports":[{"port":%d}],"selector":{"app":%q}}`, 8000+len(a.name), a.name)))
		put(fmt.Sprintf("/registry/serviceaccounts/%s/%s", a.ns, a.name), obj("ServiceAccount", a.ns, a.name, ""))
		put(fmt.Sprintf("/registry/services/endpoints/%s/%s", a.ns, a.name), obj("Endpoints", a.ns, a.name, fmt.Sprintf(`"subsets":[{"ports":[{"port":%d}]}]`, 8000+len(a.name))))
		put(fmt.Sprintf("/registry/configmaps/%s/%s-flags", a.ns, a.name), obj("ConfigMap", a.ns, a.name+"-flags", fmt.Sprintf(`"data":{"canary":"%t"}`, a.replicas > 4)))
		put(fmt.Sprintf("/registry/configmaps/%s/%s-config", a.ns, a.name), obj("ConfigMap", a.ns, a.name+"-config", fmt.Sprintf(`"data":{"LOG_LEVEL":"info","REPLICAS":"%d"}`, a.replicas)))
		h := sha256.Sum256([]byte(a.name))
		for i := range a.replicas {
			name := fmt.Sprintf("%s-%x-%d", a.name, h[:3], i)
			key := fmt.Sprintf("/registry/pods/%s/%s", a.ns, name)
			pods = append(pods, key)
			put(key, obj("Pod", a.ns, name, fmt.Sprintf(`"spec":{"nodeName":%q,"containers":[{"image":%q}]},"status":{"phase":"Pending"}`, nodes[i%len(nodes)], a.image)))
		}
	}
	for _, ns := range []string{"shop", "payments", "kube-system"} {
		for _, s := range []string{"tls", "db-credentials"} {
			put(fmt.Sprintf("/registry/secrets/%s/%s", ns, s), obj("Secret", ns, s, fmt.Sprintf(`"type":"Opaque","data":{"value":%q}`, "c2VjcmV0LQ=="+ns)))
		}
	}
	for _, n := range []string{"extension-apiserver-authentication", "kube-root-ca.crt", "cluster-info"} {
		put("/registry/configmaps/kube-system/"+n, obj("ConfigMap", "kube-system", n, `"data":{"ca.crt":"-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n"}`))
	}
	for _, ns := range namespaces {
		put("/registry/serviceaccounts/"+ns+"/default", obj("ServiceAccount", ns, "default", ""))
	}
	for _, r := range []string{"admin", "edit", "view", "cluster-admin", "system:node", "system:kube-dns", "system:controller:deployment-controller", "system:controller:endpoint-controller", "shop-deployer", "payments-auditor"} {
		put("/registry/clusterroles/"+r, obj("ClusterRole", "", r, `"rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["get","list","watch"]}]`))
	}
	for _, r := range []string{"cluster-admin", "system:node", "system:kube-dns", "system:controller:deployment-controller", "system:controller:endpoint-controller", "shop-deployer", "payments-auditor", "view"} {
		put("/registry/clusterrolebindings/"+r, obj("ClusterRoleBinding", "", r, fmt.Sprintf(`"roleRef":{"kind":"ClusterRole","name":%q}`, r)))
	}
	for _, pc := range []string{"system-cluster-critical", "system-node-critical"} {
		put("/registry/priorityclasses/"+pc, obj("PriorityClass", "", pc, `"value":2000000000`))
	}
	for _, sc := range []string{"standard", "fast-ssd"} {
		put("/registry/storageclasses/"+sc, obj("StorageClass", "", sc, `"provisioner":"example.com/csi"`))
	}
	for i := range 10 {
		put(fmt.Sprintf("/registry/events/shop/frontend.%04d", i), obj("Event", "shop", fmt.Sprintf("frontend.%04d", i), fmt.Sprintf(`"reason":"Scheduled","message":"Successfully assigned shop/frontend to %s"`, nodes[i%len(nodes)])))
	}

	// Application settings with varied values.
	services := []string{"frontend", "cart", "search", "payments-api", "ledger", "notifications"}
	for i, s := range services {
		base := "/app/config/" + s + "/"
		put(base+"log_level", []string{"info", "debug", "warn", "error", "info", "debug"}[i])
		put(base+"max_connections", fmt.Sprint(64<<i))
		put(base+"timeout_ms", fmt.Sprint(250*(i+1)))
		put(base+"retries", fmt.Sprint(i))
		put(base+"enabled", fmt.Sprint(i%2 == 0))
		put(base+"feature_flags", fmt.Sprintf(`{"new_checkout":%t,"beta_search":%t,"rollout_percent":%d}`, i%2 == 1, i > 1, 10*i))
		put(base+"endpoint", fmt.Sprintf("https://%s.internal.example:%d/v%d", s, 8443+i, i+1))
		put(base+"banner", []string{"Willkommen! Grüße aus München", "ようこそ", "¡Bienvenido!", "Welcome 👋", "Ledger \"v5\" — read-only on Sundays", "tab\tseparated\tvalues"}[i])
		put(base+"notes", strings.Repeat(fmt.Sprintf("line %d of the %s notes\n", i, s), 3+i))
		put(base+"empty", "")
	}
	put("/app/config/global/maintenance_window", "Sun 02:00-04:00 UTC")
	put("/app/config/global/schema_version", "42")

	// Later writes: pods start, leases renew, settings change, things go away.
	first := map[string]string{}
	for _, op := range ops {
		first[op.key] = op.value
	}
	for _, p := range pods {
		put(p, strings.Replace(first[p], `"phase":"Pending"`, `"phase":"Running"`, 1))
	}
	for r := 1; r <= 5; r++ {
		for _, n := range nodes {
			put("/registry/leases/kube-node-lease/"+n, obj("Lease", "kube-node-lease", n, fmt.Sprintf(`"spec":{"renewTime":"2026-01-01T00:00:%02dZ"}`, 10*r)))
		}
	}
	put("/app/config/cart/max_connections", "512")
	put("/app/config/global/schema_version", "43")
	for i := range 6 {
		del(fmt.Sprintf("/registry/events/shop/frontend.%04d", i))
	}
	del(pods[len(pods)-1]) // default/hello scaled down to one
	for _, p := range pods {
		if strings.HasPrefix(p, "/registry/pods/shop/cart-") && (strings.HasSuffix(p, "-6") || strings.HasSuffix(p, "-7")) {
			del(p) // shop/cart scaled down to six
		}
	}
	put("/registry/deployments/shop/cart", strings.Replace(first["/registry/deployments/shop/cart"], `"replicas":8`, `"replicas":6`, 1))
	del("/registry/configmaps/kube-system/cluster-info")
	put("/registry/deployments/default/hello", obj("Deployment", "default", "hello", `"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"hello","image":"nginx:1.27"}]}}}`))

	live := map[string]string{}
	for _, op := range ops {
		if op.delete {
			delete(live, op.key)
		} else {
			live[op.key] = op.value
		}
	}
	return ops, live
}

// TestFixtureQuickstart verifies testdata/etcd/quickstart (manifest, digests,
// snapshot status, and the restored data); with -update-fixtures it first
// regenerates it from an embedded etcd:
//
//	go test ./etcdops -run Fixture -update-fixtures
func TestFixtureQuickstart(t *testing.T) {
	if !*updateFixtures {
		t.Parallel()
	}
	if *updateFixtures {
		generateQuickstart(t)
	}
	ctx := t.Context()
	data, err := os.ReadFile(filepath.Join(quickstartDir, drivers.ManifestName))
	if err != nil {
		t.Fatalf("%v (generate the fixture with: go test ./etcdops -run Fixture -update-fixtures)", err)
	}
	m, err := drivers.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != "etcd" || m.EngineVersion == "" || len(m.Files) != 1 {
		t.Fatalf("manifest: engine %q version %q, %d files; want etcd, a version and one file", m.Engine, m.EngineVersion, len(m.Files))
	}
	f, ok := m.File("snapshot.db")
	if !ok {
		t.Fatal("manifest lists no snapshot.db")
	}
	snap := filepath.Join(quickstartDir, "snapshot.db")
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
		t.Fatalf("snapshot.db is %d bytes with sha256 %x; the manifest says %d bytes, %s", len(b), sum, f.Size, f.SHA256)
	}
	st, err := Status(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := m.Metadata["revision"].(float64)
	keys, _ := m.Metadata["total_key"].(float64)
	if st.Revision != int64(rev) || st.TotalKey != int(keys) || !st.HasChecksum {
		t.Fatalf("snapshot status %+v; the manifest records revision %v, total_key %v", st, m.Metadata["revision"], m.Metadata["total_key"])
	}

	// The snapshot restores to exactly the dataset.
	_, want := quickstartDataset()
	if st.TotalKey != len(want) {
		t.Fatalf("snapshot has %d keys, the dataset %d: regenerate the fixture", st.TotalKey, len(want))
	}
	ports, err := FreeLoopbackPorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, RestoreConfig{SnapshotPath: snap, Name: "q", DataDir: dir, PeerURLs: []string{httpURL(ports[1])}}); err != nil {
		t.Fatal(err)
	}
	mem, err := StartMember(ctx, MemberConfig{Name: "q", DataDir: dir, ClientURL: httpURL(ports[0]), PeerURL: httpURL(ports[1])})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Stop()
	c := dial(t, mem.ClientURL())
	got := collect(t, c, "")
	if len(got) != len(want) {
		t.Fatalf("restored %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("restored %s = %q, want %q", k, got[k], v)
		}
	}
	t.Logf("fixture: %d bytes, revision %d, %d keys, engine %s", f.Size, st.Revision, st.TotalKey, m.EngineVersion)
}

// generateQuickstart writes testdata/etcd/quickstart from an embedded etcd.
func generateQuickstart(t *testing.T) {
	ctx := t.Context()
	ops, live := quickstartDataset()
	src := startSingle(t, "quickstart", filepath.Join(t.TempDir(), "src"))
	c := dial(t, src.ClientURL())
	for _, op := range ops {
		if op.delete {
			if n, err := c.Delete(ctx, op.key); err != nil || n != 1 {
				t.Fatalf("delete %s: %d, %v", op.key, n, err)
			}
		} else if err := c.Put(ctx, op.key, op.value); err != nil {
			t.Fatal(err)
		}
	}
	ms := waitStorageVersion(t, c, src.ClientURL())

	if err := os.MkdirAll(quickstartDir, 0o755); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(quickstartDir, "snapshot.db")
	if _, err := Save(ctx, src.ClientURL(), snap); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(snap, 0o644); err != nil { // Save writes 0600
		t.Fatal(err)
	}
	st, err := Status(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalKey != len(live) || st.Revision <= int64(st.TotalKey) {
		t.Fatalf("snapshot status %+v: want %d keys and a revision above that", st, len(live))
	}
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	m := drivers.Manifest{
		Format:        drivers.ManifestFormat,
		Engine:        "etcd",
		EngineVersion: ms.Version,
		Created:       time.Now().UTC().Truncate(time.Second),
		Source:        fmt.Sprintf("etcdops fixture test (embedded etcd %s)", ms.Version),
		Files:         []drivers.File{{Name: "snapshot.db", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}},
		Metadata:      map[string]any{"revision": st.Revision, "total_key": st.TotalKey},
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(quickstartDir, drivers.ManifestName), append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d bytes, revision %d, %d keys, %d writes", quickstartDir, len(b), st.Revision, st.TotalKey, len(ops))
	if len(b) > 1<<20 {
		t.Logf("warning: snapshot.db is %d bytes, more than 1 MiB", len(b))
	}
}
