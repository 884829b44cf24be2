package transfer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/restore-run/restore-run/internal/testcheck"
)

// The kill -9 test re-runs this test binary as a child that downloads a slow object;
// the parent kills it mid-download and downloads again, counting what it fetches.

const childEnv = "TRANSFER_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childDownload())
	}
	os.Exit(m.Run())
}

// childDownload fetches $SRC to $DST with parts of 64 KiB, slowly.
func childDownload() int {
	data, err := os.ReadFile(os.Getenv("SRC"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	o := fastOptions()
	o.StateDir = os.Getenv("STATE")
	d, err := New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	obj := &fakeObject{data: data, delay: 40 * time.Millisecond}
	f := manifestFile("big.db", data, 64*kib)
	if os.Getenv("PARTLESS") != "" {
		f = manifestFile("big.db", data, 0)
	}
	if _, err := d.Fetch(context.Background(), Request{Name: "big.db", File: f, Object: obj, Dst: os.Getenv("DST")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestResumeAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, partless := range []bool{false, true} {
		t.Run(fmt.Sprintf("partless=%v", partless), func(t *testing.T) {
			dir := t.TempDir()
			data := randBytes(4<<20, 11)
			src := filepath.Join(dir, "src")
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "out", "big.db")
			state := filepath.Join(dir, "state")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", "SRC="+src, "DST="+dst, "STATE="+state)
			if partless {
				cmd.Env = append(cmd.Env, "PARTLESS=1")
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill it once the journal records a few verified parts.
			journal := journalPath(state, "big.db", dst)
			deadline := time.Now().Add(20 * time.Second)
			for {
				b, _ := os.ReadFile(journal)
				if bytes.Count(b, []byte("\n")) >= 9 { // header + 8 lines
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("the child recorded no parts in time: %s", stderr.String())
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("child was not killed: %v (%s)", err, stderr.String())
			}
			testcheck.Absent(t, dst)

			o := fastOptions()
			o.StateDir = state
			obj := &fakeObject{data: data}
			f := manifestFile("big.db", data, 64*kib)
			if partless {
				f = manifestFile("big.db", data, 0)
			}
			res, err := newDownloader(t, o).Fetch(context.Background(), Request{Name: "big.db", File: f, Object: obj, Dst: dst})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, data)
			if res.Resumed < 8*64*kib || obj.fetched.Load() != int64(len(data))-res.Resumed {
				t.Errorf("resumed %d bytes, fetched %d of %d", res.Resumed, obj.fetched.Load(), len(data))
			}
			t.Logf("after kill -9: resumed %d bytes, fetched %d of %d", res.Resumed, obj.fetched.Load(), len(data))
		})
	}
}
