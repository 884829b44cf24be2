package targets

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseYAML: any bytes parse or fail without a panic; a target that parses
// has a known engine and absolute directories.
func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("engine: etcd\nmembers:\n  - name: m1\n    peer_url: http://127.0.0.1:2380\n    client_url: http://127.0.0.1:2379\n    data_dir: /var/lib/etcd\n    service: {systemd: etcd}\n"))
	f.Add([]byte("engine: mysql\nhost: 127.0.0.1\nport: 3306\nuser: restorer\npassword: {env: PW}\ndatadir: /var/lib/mysql\nservice: {start: [a, b], stop: [c]}\n"))
	f.Add([]byte("engine: mysql\npassword: secret-in-clear\n"))
	f.Add([]byte("engine: nosuch\n"))
	f.Add([]byte("- [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tg, err := ParseYAML("fuzz.yaml", data)
		if err != nil {
			return
		}
		if !Known(tg.Engine) {
			t.Fatalf("parsed a target of unknown engine %q", tg.Engine)
		}
		for _, d := range tg.Dirs {
			if !filepath.IsAbs(d) {
				t.Fatalf("parsed a target with a relative dir %q", d)
			}
		}
	})
}

var _ = os.Getenv
