package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/restore-run/restore-run/engine"
)

// TestOverridingGuide follows docs/overriding.md with the binary, step by step:
// export etcd.star and its tests into ~/.config/restore-run/scripts, apply the
// guide's edits (taken from its code blocks), fmt, check, test, plan, restore into
// scratch, list drivers, and reach the original with --driver etcd@=1.0.0. It also
// checks the guide's MySQL edit with `restore-run check`.
func TestOverridingGuide(t *testing.T) {
	guide := readGuide(t)
	home := t.TempDir()
	config := filepath.Join(home, "config")
	dir := filepath.Join(config, "restore-run", "scripts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dba := &dbaShell{t: t, env: []string{"XDG_CONFIG_HOME=" + config, "HOME=" + home, "RESTORE_RUN_PATH=", "RESTORE_RUN_LOCK_DIR=" + t.TempDir()}}

	// 1. Export the driver and its tests.
	// As the shell does for `restore-run drivers export etcd > etcd.star`, the file
	// exists, empty, while restore-run runs.
	write(t, filepath.Join(dir, "etcd.star"), "")
	write(t, filepath.Join(dir, "etcd.star"), dba.run(0, "drivers", "export", "etcd").Stdout)
	write(t, filepath.Join(dir, "etcd_test.star"), dba.run(0, "drivers", "export", "etcd", "--test").Stdout)

	// 2., 3. and 5.: the edits, as the guide shows them.
	for _, e := range guide.edits {
		if e.file == "mysql.star" {
			continue
		}
		apply(t, filepath.Join(dir, e.file), e)
	}

	// 4. Format and check.
	dba.run(0, "fmt", "-w", filepath.Join(dir, "etcd.star"))
	dba.run(0, "fmt", "--check", dir)
	res := dba.run(0, "check", dir)
	for _, want := range []string{"ok   " + filepath.Join(dir, "etcd.star") + ": driver etcd@1.0.1, api 1", "ok   " + filepath.Join(dir, "etcd_test.star")} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("check printed:\n%s\nwant a line %q", res.Stdout, want)
		}
	}

	// 5. Test: every shipped test and the new one pass against the override.
	res = dba.run(0, "test", dir)
	for _, want := range []string{"ok   test_application_config_check (", "ok   test_real_target_swap_order (", " 0 failed"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("test printed:\n%s\nwant %q", res.Stdout, want)
		}
	}

	// 6. The plan shows the new step, from the override.
	res = dba.run(0, "plan", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3")
	planStep := regexp.MustCompile(`(?m)^\s+\d+\. read  wait up to 60s until .* agree on a leader\n\s+etcd\.wait_healthy\(.*timeout=60\)\n\s+at ` + regexp.QuoteMeta(filepath.Join(dir, "etcd.star")) + `:\d+:\d+$`)
	if !strings.Contains(res.Stdout, "etcd@1.0.1 ("+filepath.Join(dir, "etcd.star")+")") || !planStep.MatchString(res.Stdout) {
		t.Errorf("plan does not show the new step of etcd@1.0.1:\n%s", res.Stdout)
	}

	// 7. A restore into scratch runs the new step and the new check.
	res = dba.run(0, "restore", "--driver", "etcd", "--snapshot", quickstart, "--target", "scratch://etcd?members=3")
	rep := res.Report
	if rep == nil || rep.Driver.Version != "1.0.1" || rep.Driver.Source != filepath.Join(dir, "etcd.star") {
		t.Fatalf("restore ran %+v; want etcd 1.0.1 from %s", rep, dir)
	}
	waited := false
	for _, c := range rep.Calls {
		if c.Builtin == "etcd.wait_healthy" && c.Phase == "execute" && strings.HasPrefix(c.Pos, filepath.Join(dir, "etcd.star")+":") && c.Error == "" {
			waited = true
		}
	}
	if !waited {
		t.Errorf("the restore did not run the new etcd.wait_healthy step in execute: %+v", rep.Calls)
	}
	found := false
	for _, c := range rep.Checks {
		if c.Name == "application config restored" {
			found = true
			if !c.OK || !regexp.MustCompile(`^\d+ keys under /app/config/$`).MatchString(c.Detail) || !strings.HasPrefix(c.Pos, filepath.Join(dir, "etcd.star")) {
				t.Errorf("check %+v; want ok with N keys, made in the override", c)
			}
		}
	}
	if !found || !strings.Contains(res.Stdout, "ok   application config restored: ") {
		t.Errorf("the new check did not run: checks %+v\n%s", rep.Checks, res.Stdout)
	}

	// 8. drivers lists both; --driver etcd@=1.0.0 reaches the embedded original.
	res = dba.run(0, "drivers")
	rows := driversTable(t, res.Stdout)
	var mine, original bool
	for _, row := range rows {
		if len(row) == 5 && row[0] == "etcd" && row[1] == "1.0.1" && row[3] == filepath.Join(dir, "etcd.star") && row[4] == "-" {
			mine = true
		}
		if len(row) == 5 && row[0] == "etcd" && row[1] == "1.0.0" && row[3] == "embedded:etcd.star" && row[4] == "-" {
			original = true
		}
	}
	if !mine || !original {
		t.Errorf("drivers does not list both etcd 1.0.1 (%s) and 1.0.0 (embedded):\n%s", dir, res.Stdout)
	}
	res = dba.run(0, "restore", "--driver", "etcd@=1.0.0", "--snapshot", quickstart, "--target", "scratch://etcd")
	if res.Report == nil || res.Report.Driver.Source != "embedded:etcd.star" || res.Report.Driver.Version != "1.0.0" {
		t.Errorf("--driver etcd@=1.0.0 ran %+v; want the embedded 1.0.0", res.Report)
	}
	for _, c := range res.Report.Checks {
		if c.Name == "application config restored" {
			t.Errorf("the original ran the override's check")
		}
	}

	// A broken test fails with its file:line and exit code 1.
	testFile := filepath.Join(dir, "etcd_test.star")
	text, _ := os.ReadFile(testFile)
	write(t, testFile, strings.Replace(string(text), `assert.eq(res.failed_checks, ["application config restored"])`, `assert.eq(res.failed_checks, ["something else"])`, 1))
	res = dba.run(1, "test", dir)
	if !regexp.MustCompile(`FAIL test_application_config_check: \S+etcd_test\.star:\d+:\d+: assert\.eq: expected \["something else"\], got \["application config restored"\]`).MatchString(res.Stdout) {
		t.Errorf("a failing test printed:\n%s", res.Stdout)
	}

	// A wrong builtin argument is caught by check, with its position.
	script := filepath.Join(dir, "etcd.star")
	text, _ = os.ReadFile(script)
	write(t, script, strings.Replace(string(text), `prefix = "/app/config/"`, `prefx = "/app/config/"`, 1))
	res = dba.run(2, "check", script)
	if !regexp.MustCompile(`etcd\.star:\d+:\d+: etcd\.count: unknown keyword argument prefx \(did you mean prefix\?\)`).MatchString(res.Stdout) {
		t.Errorf("check of a wrong argument printed:\n%s", res.Stdout)
	}

	// The guide's MySQL edit checks clean too.
	mysqlDir := t.TempDir()
	mysqlText := dba.run(0, "drivers", "export", "mysql").Stdout
	write(t, filepath.Join(mysqlDir, "mysql.star"), mysqlText)
	for _, e := range guide.edits {
		if e.file == "mysql.star" {
			apply(t, filepath.Join(mysqlDir, "mysql.star"), e)
		}
	}
	dba.run(0, "check", filepath.Join(mysqlDir, "mysql.star"))
}

// guideEdit is one edit of docs/overriding.md: find text and replace it, or append.
type guideEdit struct {
	file          string
	find, replace string
	appendText    string
}

type guideDoc struct{ edits []guideEdit }

var guideBlock = regexp.MustCompile("(?s)<!-- (find|replace|append)(?:: (\\S+))? -->\n```python\n(.*?)```\n")

// readGuide extracts the edits from docs/overriding.md: a find block, then its
// replace block; or an append block.
func readGuide(t *testing.T) guideDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "overriding.md"))
	if err != nil {
		t.Fatal(err)
	}
	var g guideDoc
	for _, m := range guideBlock.FindAllStringSubmatch(string(data), -1) {
		switch m[1] {
		case "find":
			g.edits = append(g.edits, guideEdit{file: m[2], find: m[3]})
		case "replace":
			if len(g.edits) == 0 || g.edits[len(g.edits)-1].find == "" || g.edits[len(g.edits)-1].replace != "" {
				t.Fatalf("docs/overriding.md: a replace block without its find block")
			}
			g.edits[len(g.edits)-1].replace = m[3]
		case "append":
			g.edits = append(g.edits, guideEdit{file: m[2], appendText: m[3]})
		}
	}
	if len(g.edits) < 4 {
		t.Fatalf("docs/overriding.md: found %d edits, want the version bump, the step, the check and the test", len(g.edits))
	}
	return g
}

// apply makes one edit of the guide to path, as a person would in an editor.
func apply(t *testing.T, path string, e guideEdit) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if e.appendText != "" {
		write(t, path, text+e.appendText)
		return
	}
	if n := strings.Count(text, e.find); n != 1 {
		t.Fatalf("docs/overriding.md tells to find\n%s\nin %s: it occurs %d times", e.find, filepath.Base(path), n)
	}
	write(t, path, strings.Replace(text, e.find, e.replace, 1))
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dbaShell runs the binary the way the guide's reader would: with their own
// config directory.
type dbaShell struct {
	t   *testing.T
	env []string
}

// run runs restore-run with args from the repository root and fails the test
// unless it exits with code; restore and plan get a --report.
func (d *dbaShell) run(code int, args ...string) result {
	t := d.t
	t.Helper()
	reportPath := ""
	if args[0] == "restore" || args[0] == "plan" {
		reportPath = filepath.Join(t.TempDir(), "report.json")
		args = append(args, "--report", reportPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), d.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("restore-run %s: %v", strings.Join(args, " "), err)
	}
	if res.Code != code {
		t.Fatalf("restore-run %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.Code, code, res.Stdout, res.Stderr)
	}
	if reportPath != "" {
		if rep, err := engine.ReadReport(reportPath); err == nil {
			res.Report = rep
		}
	}
	return res
}
