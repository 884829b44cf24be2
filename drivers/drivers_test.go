package drivers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

type fakeDriver struct{ info Info }

func (f fakeDriver) Info() Info                                            { return f.info }
func (fakeDriver) Download(context.Context, *Run, *Snapshot) error         { return nil }
func (fakeDriver) Prepare(context.Context, *Run, *Snapshot, *Target) error { return nil }
func (fakeDriver) Execute(context.Context, *Run, *Snapshot, *Target) (*RestoreResult, error) {
	return nil, nil
}
func (fakeDriver) Validate(context.Context, *Run, *Snapshot, *Target) (*ValidationResult, error) {
	return nil, nil
}
func (fakeDriver) Commit(context.Context, *Run, *Snapshot, *Target) error   { return nil }
func (fakeDriver) Rollback(context.Context, *Run, *Snapshot, *Target) error { return nil }

func drv(name, version, source string) RestoreDriver {
	return fakeDriver{Info{Name: name, Version: semver.MustParse(version), API: 1, Source: source}}
}

func TestRegistryResolve(t *testing.T) {
	r := NewRegistry()
	for _, v := range []string{"1.0.0", "1.2.0", "1.2.5", "2.0.0"} {
		r.Register(drv("etcd", v, "embedded"))
	}
	r.Register(drv("mysql", "1.0.0", "embedded"))
	for spec, want := range map[string]string{
		"etcd": "2.0.0", "etcd@1": "1.2.5", "etcd@^1.2": "1.2.5", "etcd@=1.2.0": "1.2.0",
		"etcd@~1.2.0": "1.2.5", "etcd@>=1.0, <1.2": "1.0.0", "mysql": "1.0.0",
	} {
		d, err := r.Resolve(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := d.Info().Version.String(); got != want {
			t.Errorf("%s -> %s, want %s", spec, got, want)
		}
	}
}

func TestRegistryErrorsListWhatIsAvailable(t *testing.T) {
	r := NewRegistry()
	r.Register(drv("etcd", "1.0.0", "a"))
	r.Register(drv("etcd", "1.1.0", "a"))
	r.Register(drv("mysql", "1.0.0", "a"))
	_, err := r.Resolve("cassandra")
	if err == nil || !strings.Contains(err.Error(), "etcd@1.1.0, etcd@1.0.0, mysql@1.0.0") || ClassOf(err) != Permanent {
		t.Errorf("unknown name: %v", err)
	}
	_, err = r.Resolve("etcd@^2")
	if err == nil || !strings.Contains(err.Error(), `no version of driver "etcd" matches "^2" (available: 1.1.0, 1.0.0)`) {
		t.Errorf("unmatched: %v", err)
	}
	for _, bad := range []string{"@1", "etcd@", "etcd@not-a-version"} {
		if _, err := r.Resolve(bad); err == nil {
			t.Errorf("%q resolved", bad)
		}
	}
}

func TestRegistryShadowing(t *testing.T) {
	r := NewRegistry()
	r.Register(drv("etcd", "1.0.0", "embedded"))
	if old := r.Register(drv("etcd", "1.0.0", "/etc/restore-run/scripts/etcd.star")); old == nil || old.Info().Source != "embedded" {
		t.Fatalf("shadowed = %v", old)
	}
	d, _ := r.Resolve("etcd@=1.0.0")
	if d.Info().Source != "/etc/restore-run/scripts/etcd.star" {
		t.Errorf("resolved %s", d.Info().Source)
	}
	list := r.List()
	if len(list) != 2 {
		t.Fatalf("list = %+v", list)
	}
	shadowed := 0
	for _, e := range list {
		if e.ShadowedBy == "/etc/restore-run/scripts/etcd.star" {
			shadowed++
		}
	}
	if shadowed != 1 {
		t.Errorf("shadowed entries: %d", shadowed)
	}
}

func TestClassOf(t *testing.T) {
	inner := Errorf(Corruption, "bad bytes")
	cases := []struct {
		err  error
		want Class
	}{
		{nil, ""},
		{errors.New("plain"), Permanent},
		{inner, Corruption},
		{fmt.Errorf("wrapped: %w", inner), Corruption},
		{WithClass(Transient, "op", inner), Transient},
		{context.Canceled, Cancelled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), Cancelled},
		{WithHint(inner, "fix it"), Corruption},
	}
	for _, c := range cases {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if !Transient.Retryable() || !Throttled.Retryable() || Corruption.Retryable() || Script.Retryable() {
		t.Error("retryable classes wrong")
	}
	if h := HintOf(fmt.Errorf("ctx: %w", WithHint(inner, "use --driver mysql"))); h != "use --driver mysql" {
		t.Errorf("hint = %q", h)
	}
	if _, err := ParseClass("nope"); err == nil || !strings.Contains(err.Error(), "transient") {
		t.Errorf("ParseClass: %v", err)
	}
}

func TestParseManifest(t *testing.T) {
	sha := strings.Repeat("a", 64)
	good := `{"format":"restore-run/v1","engine":"etcd","created":"2026-01-01T00:00:00Z","files":[{"name":"snapshot.db","size":10,"sha256":"` + sha + `"}]}`
	m, err := ParseManifest([]byte(good))
	if err != nil || m.Engine != "etcd" || m.TotalSize() != 10 {
		t.Fatalf("good manifest: %v %+v", err, m)
	}
	bad := map[string]string{
		"unknown field": `{"format":"restore-run/v1","engine":"etcd","files":[],"extra":1}`,
		"format":        strings.Replace(good, "restore-run/v1", "v0", 1),
		"no engine":     strings.Replace(good, `"engine":"etcd"`, `"engine":""`, 1),
		"bad sha":       strings.Replace(good, sha, "abc", 1),
		"escape":        strings.Replace(good, "snapshot.db", "../etc/passwd", 1),
		"absolute":      strings.Replace(good, "snapshot.db", "/etc/passwd", 1),
		"reserved":      strings.Replace(good, "snapshot.db", "manifest.json", 1),
		"compression":   strings.Replace(good, `"size":10`, `"size":10,"compression":"rar"`, 1),
		"parts count":   strings.Replace(good, `"size":10`, `"size":10,"part_size":4,"parts":["`+sha+`"]`, 1),
		"trailing":      good + "{}",
	}
	for name, text := range bad {
		if _, err := ParseManifest([]byte(text)); err == nil || ClassOf(err) != Corruption {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	withParts := strings.Replace(good, `"size":10`, `"size":10,"part_size":4,"parts":["`+sha+`","`+sha+`","`+sha+`"]`, 1)
	if _, err := ParseManifest([]byte(withParts)); err != nil {
		t.Errorf("3 parts of 4 bytes for 10: %v", err)
	}
}

func TestTargetSecretsStayOutOfJSON(t *testing.T) {
	tg := &Target{Ref: "t.yaml", Spec: map[string]any{"password": "(secret from env PW)"}}
	tg.SetSecret("password", "hunter2")
	if v, ok := tg.Secret("password"); !ok || v != "hunter2" {
		t.Fatal("secret not kept")
	}
	if got := tg.SecretValues(); len(got) != 1 || got[0] != "hunter2" {
		t.Errorf("values = %v", got)
	}
	data, _ := json.Marshal(tg)
	if strings.Contains(string(data), "hunter2") {
		t.Errorf("secret in JSON: %s", data)
	}
}
