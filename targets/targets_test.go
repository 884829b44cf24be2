package targets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

func TestScratchEtcd(t *testing.T) {
	dir := t.TempDir()
	tg, err := Parse("scratch://etcd?members=3", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !tg.Scratch || tg.Engine != "etcd" || len(tg.Dirs) != 1 || tg.Dirs[0] != dir {
		t.Fatalf("target = %+v", tg)
	}
	members := tg.Spec["members"].([]any)
	if len(members) != 3 {
		t.Fatalf("members = %v", members)
	}
	cluster := tg.Spec["initial_cluster"].(string)
	seen := map[string]bool{}
	for _, m := range members {
		mm := m.(map[string]any)
		if !strings.Contains(cluster, mm["name"].(string)+"="+mm["peer_url"].(string)) {
			t.Errorf("member %v not in initial cluster %s", mm, cluster)
		}
		for _, k := range []string{"peer_url", "client_url"} {
			if seen[mm[k].(string)] {
				t.Errorf("url reused: %s", mm[k])
			}
			seen[mm[k].(string)] = true
		}
		if !strings.HasPrefix(mm["data_dir"].(string), dir) {
			t.Errorf("data dir %s outside %s", mm["data_dir"], dir)
		}
	}
}

func TestScratchErrors(t *testing.T) {
	for ref, want := range map[string]string{
		"scratch://etcd?members=0":   "from 1 to 7",
		"scratch://etcd?members=abc": "from 1 to 7",
		"scratch://etcd?nodes=3":     `unknown option "nodes"`,
		"scratch://nosuch":           `no scratch targets for engine "nosuch"`,
		"scratch://etcd/path":        "has no path",
		"ftp://x":                    "unknown scheme",
		"":                           "no target given",
	} {
		_, err := Parse(ref, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", ref, err, want)
		}
	}
}

const goodEtcd = `engine: etcd
initial_cluster_token: prod
members:
  - name: a
    peer_url: http://10.0.0.1:2380
    client_url: http://10.0.0.1:2379
    data_dir: /var/lib/etcd
    service: {systemd: etcd.service}
  - name: b
    peer_url: http://10.0.0.2:2380
    client_url: http://10.0.0.2:2379
    data_dir: /var/lib/etcd-b
    service:
      start: [/usr/local/bin/etcd-ctl, start]
      stop: [/usr/local/bin/etcd-ctl, stop]
      timeout: 30
`

func TestEtcdTargetFile(t *testing.T) {
	tg, err := ParseYAML("t.yaml", []byte(goodEtcd))
	if err != nil {
		t.Fatal(err)
	}
	if tg.Scratch || tg.Engine != "etcd" {
		t.Fatalf("%+v", tg)
	}
	want := []string{"/var/lib/etcd", "/var/lib/etcd.restore-run", "/var/lib/etcd-b", "/var/lib/etcd-b.restore-run"}
	if strings.Join(tg.Dirs, ",") != strings.Join(want, ",") {
		t.Errorf("dirs = %v", tg.Dirs)
	}
	if tg.Spec["initial_cluster"] != "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380" {
		t.Errorf("initial cluster = %v", tg.Spec["initial_cluster"])
	}
}

func TestEtcdTargetFileErrors(t *testing.T) {
	cases := map[string]string{
		"engine: nosuch\n":                  `engine "nosuch" is not one of`,
		"":                                  "is empty",
		"engine: etcd\n":                    "members: a non-empty list",
		"engine: etcd\nmembers: []\nx: 1\n": "members: a non-empty list",
		strings.Replace(goodEtcd, "data_dir: /var/lib/etcd\n", "data_dir: relative\n", 1):                  "must be an absolute path",
		strings.Replace(goodEtcd, "name: b", "name: a", 1):                                                 "unique",
		strings.Replace(goodEtcd, "http://10.0.0.1:2380", "10.0.0.1:2380", 1):                              "must be an http(s) URL",
		strings.Replace(goodEtcd, "service: {systemd: etcd.service}", "service: {}", 1):                    "needs `systemd: UNIT`",
		strings.Replace(goodEtcd, "timeout: 30", "timeout: -1", 1):                                         "positive number",
		strings.Replace(goodEtcd, "initial_cluster_token: prod", "initial_cluster_token: prod\nfoo: 1", 1): `unknown key "foo"`,
		"engine: etcd\nmembers: [\n": "not valid YAML",
	}
	for text, want := range cases {
		_, err := ParseYAML("t.yaml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), want) || drivers.ClassOf(err) != drivers.Permanent {
			t.Errorf("%q: err = %v, want %q", text, err, want)
		}
	}
}

func TestSecretsByReference(t *testing.T) {
	t.Setenv("RR_TEST_PW", "s3cr3t-env")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cr3t-file\n"), 0o600)
	Register(Kind{Engine: "secrettest", Check: func(map[string]any) ([]string, error) { return nil, nil }})
	tg, err := ParseYAML("t.yaml", []byte("engine: secrettest\nuser: root\npassword: {env: RR_TEST_PW}\nreplica:\n  password: {file: "+pwFile+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tg.Secret("password"); v != "s3cr3t-env" {
		t.Errorf("env secret = %q", v)
	}
	if v, _ := tg.Secret("replica.password"); v != "s3cr3t-file" {
		t.Errorf("file secret = %q", v)
	}
	if tg.Spec["password"] != "(secret from env RR_TEST_PW)" {
		t.Errorf("spec keeps %v", tg.Spec["password"])
	}
	// A password in clear text is refused, an unset variable is named.
	if _, err := ParseYAML("t.yaml", []byte("engine: secrettest\npassword: hunter2\n")); err == nil || !strings.Contains(err.Error(), "clear text") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("clear text: %v", err)
	}
	if _, err := ParseYAML("t.yaml", []byte("engine: secrettest\npassword: {env: RR_NOT_SET_ANYWHERE}\n")); err == nil || !strings.Contains(err.Error(), "RR_NOT_SET_ANYWHERE is not set") {
		t.Errorf("unset env: %v", err)
	}
}
