package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoadSource: any script text loads or is refused, without a panic, within
// the step limit; a script that loads declares a valid driver.
func FuzzLoadSource(f *testing.F) {
	for _, name := range []string{"etcd.star", "mysql.star"} {
		if data, err := os.ReadFile(filepath.Join("..", "scripts", name)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`driver(name = "toy", version = "1.0.0", api = 1)
def execute(ctx, snapshot, target):
    pass
def validate(ctx, snapshot, target):
    return []
`))
	f.Add([]byte("while True:\n    pass\n"))
	f.Add([]byte(`driver(name = "x", version = "1", api = 2)`))
	f.Add([]byte(`load("../../etc/passwd", "x")`))
	f.Add([]byte(`driver(name = "toy", version = "1.0.0", api = 1, retry = {"download": {"attempts": 0}})`))
	h := NewHost(DefaultSources(nil))
	h.MaxSteps = 100_000
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		d, err := h.LoadSource(Source{Name: "fuzz"}, "fuzz.star", data)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("loading took %s", took)
		}
		if err != nil {
			return
		}
		info := d.Info()
		if !validName(info.Name) || info.Version == nil || !supportedAPI(info.API) {
			t.Fatalf("loaded an invalid driver %+v", info)
		}
	})
}
