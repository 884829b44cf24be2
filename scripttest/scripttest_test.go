package scripttest

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/engine"
)

func TestRunner(t *testing.T) {
	files, err := Find([]string{"testdata/toy_test.star"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum := Run(context.Background(), Options{Sources: []engine.Source{engine.Embedded()}, Out: &out}, files)
	text := out.String()
	t.Log("\n" + text)
	if sum.Passed != 3 || sum.Failed != 1 || sum.Broken != 0 {
		t.Errorf("summary %+v; want 3 passed, 1 failed", sum)
	}
	for _, want := range []string{
		`(?m)^ok   test_passes \(\d+ms\)$`,
		`(?m)^ok   test_function_fake_and_sequence \(`,
		`(?m)^ok   test_assert_fails_and_validation \(`,
		`(?m)^FAIL test_fails_on_purpose: \S+testdata/toy_test\.star:30:14: assert\.eq: expected \["nope"\], got \["download:ok", `,
		`(?m)^    last testing.run: phases download:ok prepare:ok execute:ok validate:ok commit:ok$`,
		`(?m)^FAIL \S+toy_test\.star: 3 passed, 1 failed`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("output does not match %s", want)
		}
	}
	if strings.Contains(text, "panic") {
		t.Error("panic in the output")
	}
}

func TestRealInTests(t *testing.T) {
	for name, want := range map[string]bool{"fs.move": true, "fs.chown": false, "blob.fetch": true, "log.info": true, "fail": true,
		"time.now": true, "time.sleep": false, "etcd.status": false, "service.start": false, "sql.exec": false, "exec.run": false} {
		if got := realInTests(name); got != want {
			t.Errorf("realInTests(%s) = %v, want %v", name, got, want)
		}
	}
}
