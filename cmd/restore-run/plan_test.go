package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ instead of comparing")

// cliOut runs restore-run in process and returns what it printed on stdout.
func cliOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root, _ := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--log-level", "error"))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

var (
	runIDPattern = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)
	portPattern  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// normalizePlan replaces what differs from run to run: the work dir, the run id,
// temp dirs and loopback ports (numbered in order of appearance).
func normalizePlan(text string, replace map[string]string) string {
	for from, to := range replace {
		text = strings.ReplaceAll(text, from, to)
	}
	text = regexp.MustCompile(`\$WORKDIR = \S+`).ReplaceAllString(text, "$$WORKDIR = WORKDIR")
	text = runIDPattern.ReplaceAllString(text, "RUN")
	ports := map[string]string{}
	return portPattern.ReplaceAllStringFunc(text, func(p string) string {
		if _, ok := ports[p]; !ok {
			ports[p] = fmt.Sprintf("127.0.0.1:PORT%d", len(ports)+1)
		}
		return ports[p]
	})
}

const quickstart = "../../testdata/etcd/quickstart"

// TestGoldenPlans compares `restore-run plan` with the plans under testdata/plans
// (go test ./cmd/restore-run -run GoldenPlans -update rewrites them).
func TestGoldenPlans(t *testing.T) {
	t.Setenv("RESTORE_RUN_LOCK_DIR", t.TempDir())
	// Only the embedded scripts (and /etc/restore-run/scripts, if a machine has one).
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("RESTORE_RUN_PATH", "")
	cases := []struct {
		golden string
		args   func(t *testing.T) ([]string, map[string]string)
	}{
		{"etcd-scratch-1.txt", func(*testing.T) ([]string, map[string]string) {
			return []string{"--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd"}, nil
		}},
		{"etcd-scratch-3.txt", func(*testing.T) ([]string, map[string]string) {
			return []string{"--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3"}, nil
		}},
		{"etcd-scratch-3-bump.txt", func(*testing.T) ([]string, map[string]string) {
			return []string{"--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3",
				"--param", "bump_revision=1000000000", "--param", "mark_compacted=true"}, nil
		}},
		{"etcd-target-file.txt", func(t *testing.T) ([]string, map[string]string) {
			dir := t.TempDir()
			var b strings.Builder
			b.WriteString("engine: etcd\nmembers:\n")
			for i := 1; i <= 3; i++ {
				data := filepath.Join(dir, fmt.Sprintf("m%d.etcd", i))
				if err := os.MkdirAll(data, 0o700); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "  - name: m%d\n    peer_url: http://10.0.0.%d:2380\n    client_url: http://10.0.0.%d:2379\n    data_dir: %s\n", i, i, i, data)
				if i == 3 {
					fmt.Fprintf(&b, "    service: {start: [/usr/local/bin/etcd-ctl, start, m3], stop: [/usr/local/bin/etcd-ctl, stop, m3]}\n")
				} else {
					fmt.Fprintf(&b, "    service: {systemd: etcd@m%d.service}\n", i)
				}
			}
			file := filepath.Join(dir, "etcd-prod.yaml")
			if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--driver", "etcd", "--snapshot", quickstart, "--target", file}, map[string]string{dir: "/srv/etcd"}
		}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			args, replace := c.args(t)
			out, err := cliOut(t, append([]string{"plan"}, args...)...)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, out)
			}
			got := normalizePlan(out, replace)
			path := filepath.Join("..", "..", "testdata", "plans", c.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/restore-run -run GoldenPlans -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s (if the change is intended, run go test ./cmd/restore-run -run GoldenPlans -update and review the diff):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out = append(out, fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl))
			if len(out) == 5 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
