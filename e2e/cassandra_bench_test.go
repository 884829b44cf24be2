package e2e

// The benchmark of docs/benchmarks.md ("Cassandra: parallel per-node import"): a
// 3-node snapshot of 1,000,000 rows (RF 3) restored into 3 scratch nodes three
// ways, printing the figures and the ratios of one run:
//
//	go test ./e2e -run '^$' -bench CassandraRestoreModes -benchtime 1x -timeout 60m -v
//
// It is a benchmark, not a test: `go test ./...` does not run it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/restore-run/restore-run/cassops"
	"github.com/restore-run/restore-run/engine"
)

const (
	benchPartitions = 10000
	benchRowsPer    = 100
)

func BenchmarkCassandraRestoreModes(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchRestoreModes(b)
	}
}

func benchRestoreModes(b *testing.B) {
	src := startCassandras(b, clusterSpec{name: "bench", nodes: 3, mode: cassops.ModeCassandra4, heap: "1G"})[0]
	s := src.session(b)
	execAll(b, s,
		"CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
		"CREATE TABLE bench.rows (p int, c int, v text, n bigint, PRIMARY KEY (p, c))")
	start := time.Now()
	loadBenchRows(b, s)
	b.Logf("loaded %d rows (RF 3) in %s", benchPartitions*benchRowsPer, time.Since(start).Round(time.Second))

	snap := filepath.Join(b.TempDir(), "snap")
	start = time.Now()
	out := benchCLI(b, "snapshot", "pack", "--engine", "cassandra", "--from-cluster", src.Target, "--to", snap)
	packTook := time.Since(start)
	b.Logf("packed in %s:\n%s", packTook.Round(time.Second), out)
	cassops.StopNodes(src.Nodes, 30*time.Second) // the restores get the machine to themselves

	type run struct {
		name, params          string
		rto, load, execute, v float64
	}
	runs := []*run{
		{name: "parallel nodetool import (every node at once)"},
		{name: "nodetool import node after node (the Medusa way)", params: "parallel_nodes=1"},
		{name: "sstableloader", params: "mode=loader"},
	}
	for _, r := range runs {
		args := []string{"restore", "--driver", "cassandra", "--snapshot", snap, "--target", "scratch://cassandra?nodes=3&heap=1G"}
		if r.params != "" {
			args = append(args, "--param", r.params)
		}
		rep := filepath.Join(b.TempDir(), "report.json")
		benchCLI(b, append(args, "--report", rep)...)
		report, err := engine.ReadReport(rep)
		if err != nil {
			b.Fatal(err)
		}
		r.rto = report.RTOSeconds
		for _, p := range report.Phases {
			switch p.Name {
			case "execute":
				r.execute = p.DurationSeconds
			case "validate":
				r.v = p.DurationSeconds
			}
		}
		for _, c := range report.Calls {
			if c.Builtin == "cassandra.import_all" || c.Builtin == "cassandra.sstableloader" {
				r.load += c.Duration.Seconds()
			}
		}
		b.Logf("%s: load %.1fs, execute %.1fs, validate %.1fs, RTO %.1fs", r.name, r.load, r.execute, r.v, r.rto)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%d rows (%d partitions x %d), RF 3, 3 nodes -> 3 scratch nodes; pack %.1fs\n", benchPartitions*benchRowsPer, benchPartitions, benchRowsPer, packTook.Seconds())
	fmt.Fprintf(&sb, "| %-50s | %8s | %8s | %8s | %8s |\n", "restore", "load s", "execute s", "validate s", "RTO s")
	for _, r := range runs {
		fmt.Fprintf(&sb, "| %-50s | %8.1f | %8.1f | %8.1f | %8.1f |\n", r.name, r.load, r.execute, r.v, r.rto)
	}
	p, seq, ldr := runs[0], runs[1], runs[2]
	fmt.Fprintf(&sb, "load: node after node / parallel = %.2fx; sstableloader / parallel = %.2fx\n", seq.load/p.load, ldr.load/p.load)
	fmt.Fprintf(&sb, "RTO:  node after node / parallel = %.2fx; sstableloader / parallel = %.2fx\n", seq.rto/p.rto, ldr.rto/p.rto)
	fmt.Print(sb.String())
	b.ReportMetric(seq.load/p.load, "x-sequential/parallel")
	b.ReportMetric(ldr.load/p.load, "x-loader/parallel")
}

// loadBenchRows writes benchPartitions partitions of benchRowsPer rows (48
// random characters and a bigint each), one unlogged single-partition batch per
// partition, from 16 workers.
func loadBenchRows(b *testing.B, s *cassops.Session) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			letters := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			value := make([]byte, 48) // random text: SSTables as large as real data, not compressed away
			for {
				p := int(next.Add(1)) - 1
				if p >= benchPartitions {
					return
				}
				var stmt strings.Builder
				stmt.WriteString("BEGIN UNLOGGED BATCH\n")
				for c := 0; c < benchRowsPer; c++ {
					for i := range value {
						value[i] = letters[rnd.IntN(len(letters))]
					}
					fmt.Fprintf(&stmt, "INSERT INTO bench.rows (p, c, v, n) VALUES (%d, %d, '%s', %d);\n", p, c, value, int64(p)*1000+int64(c))
				}
				stmt.WriteString("APPLY BATCH")
				if err := s.Exec(context.Background(), stmt.String(), nil, gocql.One); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// benchCLI runs the restore-run binary and fails the benchmark on an error.
func benchCLI(b *testing.B, args ...string) string {
	b.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "RESTORE_RUN_LOCK_DIR="+b.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("restore-run %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 4000))
	}
	return lastLines(string(out), 4)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
