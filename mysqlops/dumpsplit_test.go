package mysqlops

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/restore-run/restore-run/drivers"
)

var update = flag.Bool("update", false, "rewrite the golden files of the dump splitter tests (testdata/split/*.golden)")

// splitAll returns every statement of data, and the error that ended the
// stream (nil at a clean end).
func splitAll(data []byte, rename map[string]string) ([]Stmt, DumpInfo, error) {
	sp := NewDumpSplitter(bytes.NewReader(data), rename)
	var out []Stmt
	for {
		st, err := sp.Next()
		if err == io.EOF {
			return out, sp.Info(), nil
		}
		if err != nil {
			return out, sp.Info(), err
		}
		st.Text = append([]byte(nil), st.Text...) // the splitter may reuse a buffer
		out = append(out, st)
	}
}

// describe renders statements the way the golden files hold them.
func describe(stmts []Stmt, info DumpInfo, err error) string {
	var b strings.Builder
	for _, st := range stmts {
		fmt.Fprintf(&b, "== %s line=%d offset=%d delim=%q", st.Kind, st.Line, st.Offset, st.Delim)
		if st.Schema != "" {
			fmt.Fprintf(&b, " schema=%q", st.Schema)
		}
		if st.Table != "" {
			fmt.Fprintf(&b, " table=%q", st.Table)
		}
		if st.Create {
			fmt.Fprintf(&b, " create engine=%q", st.Engine)
		}
		fmt.Fprintf(&b, "\n%q\n", st.Text)
	}
	fmt.Fprintf(&b, "== info tool=%q server=%q schemas=%q tables=%d binlog=%+v bytes=%d sandbox=%v complete=%v\n",
		info.Tool, info.ServerVersion, info.Schemas, info.Tables, info.Binlog, info.Bytes, info.Sandbox, info.Complete)
	if err != nil {
		fmt.Fprintf(&b, "== error (%s): %v\n", drivers.ClassOf(err), err)
	}
	if cerr := info.CheckComplete(); cerr != nil {
		fmt.Fprintf(&b, "== incomplete: %v\n", cerr)
	}
	return b.String()
}

// TestDumpSplitterGolden splits each testdata/split/*.sql and compares the
// statements, their kinds and names, and what the dump says about itself with
// the .golden file beside it (go test -run DumpSplitterGolden -update rewrites
// them; read the diff).
func TestDumpSplitterGolden(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "split", "*.sql"))
	if len(inputs) < 6 {
		t.Fatalf("found %d inputs in testdata/split, want the 6 or more kept there", len(inputs))
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			stmts, info, serr := splitAll(data, nil)
			got := describe(stmts, info, serr)
			golden := strings.TrimSuffix(in, ".sql") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run the test with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("split of %s differs from %s (rerun with -update and read the diff):\n%s", in, golden, got)
			}
			checkSplit(t, data, stmts, serr)
		})
	}
}

// TestDumpSplitterFacts pins the behaviours the loader depends on, beside the
// golden files, so that a regenerated golden file cannot hide them.
func TestDumpSplitterFacts(t *testing.T) {
	read := func(name string) ([]Stmt, DumpInfo, error) {
		data, err := os.ReadFile(filepath.Join("testdata", "split", name))
		if err != nil {
			t.Fatal(err)
		}
		return splitAll(data, nil)
	}
	stmts, info, err := read("quoting.sql")
	if err != nil || len(stmts) != 9 || !info.Complete {
		t.Fatalf("quoting.sql: %d statements, %+v, %v; want 9, complete", len(stmts), info, err)
	}
	if stmts[2].Kind != StmtInsert || stmts[2].Schema != "we`ird" || stmts[2].Table != "t" || !bytes.Contains(stmts[2].Text, []byte("# and this")) {
		t.Errorf("a multi-line insert with a qualified name: %+v %q", stmts[2], stmts[2].Text)
	}

	stmts, info, err = read("delimiter.sql")
	if err != nil {
		t.Fatal(err)
	}
	var bodies []Stmt
	for _, st := range stmts {
		if st.Delim != ";" {
			bodies = append(bodies, st)
		}
	}
	if len(bodies) != 3 || bodies[0].Delim != ";;" || !bytes.HasSuffix(bodies[0].Text, []byte("END */;;\n")) ||
		!bytes.Contains(bodies[1].Text, []byte("SELECT ';;' INTO @x;")) || bodies[2].Delim != "//" {
		t.Errorf("DELIMITER blocks: %d statements with another delimiter: %+v", len(bodies), bodies)
	}

	stmts, info, err = read("versioned.sql")
	if err != nil || !info.Sandbox || stmts[0].Kind != StmtSandbox {
		t.Fatalf("versioned.sql: %v, %+v", err, info)
	}
	kinds := map[StmtKind]int{}
	for _, st := range stmts {
		kinds[st.Kind]++
		if st.Kind == StmtTableDDL && st.Create && st.Table == "legacy" && st.Engine != "MyISAM" {
			t.Errorf("legacy's engine is %q, want MyISAM (a comment naming another engine must not count)", st.Engine)
		}
		if st.Kind == StmtTableDDL && st.Table == "parts" && (st.Engine != "InnoDB" || st.Schema != "shop") {
			t.Errorf("partitioned table: %+v", st)
		}
		if st.Kind == StmtLock && bytes.Contains(st.Text, []byte("`b`")) && st.Table != "" {
			t.Errorf("LOCK TABLES of two tables names one: %+v", st)
		}
	}
	if kinds[StmtReplication] != 2 || kinds[StmtKeys] != 2 || kinds[StmtLock] != 2 || kinds[StmtUnlock] != 1 || kinds[StmtCommit] != 1 {
		t.Errorf("kinds in versioned.sql: %v", kinds)
	}
	if info.Binlog != (Binlog{File: "mysql-bin.000002", Position: 1234, GTID: "0-1-9"}) {
		t.Errorf("binlog position: %+v", info.Binlog)
	}

	for _, name := range []string{"cut-in-string.sql", "cut-at-row.sql"} {
		_, info, err := read(name)
		cut := err
		if cut == nil {
			cut = info.CheckComplete()
		}
		if drivers.ClassOf(cut) != drivers.Corruption || !strings.Contains(cut.Error(), "cut") {
			t.Errorf("%s: %v (class %s), want a corruption error that says the dump was cut", name, cut, drivers.ClassOf(cut))
		}
	}
	// Without mariadb-dump's header a dump cannot be known to be complete.
	if _, info, err := read("crlf-no-header.sql"); err != nil || info.CheckComplete() != nil {
		t.Errorf("a dump without a header: %v %v", err, info.CheckComplete())
	}
}

// TestDumpSplitterRename renames schemas in USE, CREATE DATABASE and qualified
// names, and leaves others alone.
func TestDumpSplitterRename(t *testing.T) {
	in := "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `shop`;\n" +
		"INSERT INTO `shop`.`t` VALUES ('shop');\nINSERT INTO `other`.`t` VALUES (1);\nDROP DATABASE IF EXISTS shop;\n"
	stmts, info, err := splitAll([]byte(in), map[string]string{"shop": "shop_copy"})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, st := range stmts {
		all = append(all, string(st.Text))
	}
	want := []string{
		"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_copy` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n",
		"USE `shop_copy`;\n",
		"INSERT INTO `shop_copy`.`t` VALUES ('shop');\n",
		"INSERT INTO `other`.`t` VALUES (1);\n",
		"DROP DATABASE IF EXISTS `shop_copy`;\n",
	}
	if strings.Join(all, "") != strings.Join(want, "") {
		t.Errorf("renamed:\n%q\nwant\n%q", all, want)
	}
	if strings.Join(info.Schemas, ",") != "shop" || stmts[2].Schema != "shop_copy" {
		t.Errorf("schemas %v (want the dump's own names), insert schema %q", info.Schemas, stmts[2].Schema)
	}
}

// TestDumpSplitterLongLine splits a statement longer than the reader's buffer.
func TestDumpSplitterLongLine(t *testing.T) {
	long := "INSERT INTO `t` VALUES (" + strings.Repeat("'x;y',", 1<<20) + "1);\nSELECT 2;\n"
	stmts, _, err := splitAll([]byte(long), nil)
	if err != nil || len(stmts) != 2 || len(stmts[0].Text) != len(long)-len("SELECT 2;\n") {
		t.Fatalf("long line: %d statements, %v", len(stmts), err)
	}
	sp := NewDumpSplitter(strings.NewReader(long), nil)
	sp.MaxStatement = 1 << 20
	if _, err := sp.Next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a statement above MaxStatement: %v", err)
	}
}

// TestDumpSplitterReadError passes a read error of the stream through as it is.
func TestDumpSplitterReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("SELECT 1;\nSELECT 2;\nINSERT"), &failingReader{strings.NewReader(" INTO t VALUES (1);\n")})
	sp := NewDumpSplitter(r, nil)
	var err error
	for err == nil {
		_, err = sp.Next()
	}
	if drivers.ClassOf(err) != drivers.Corruption || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("read error: %v", err)
	}
}

// checkSplit holds for any input: each statement is the input's own bytes at
// its offset, in order, without overlap, and everything between statements is
// blank, a comment line or a DELIMITER command: nothing of the input is lost
// or invented. Each statement, fed alone (with its DELIMITER) to a new
// splitter, as a row session does, comes back whole.
func checkSplit(t *testing.T, data []byte, stmts []Stmt, err error) {
	t.Helper()
	var pos int64
	for i, st := range stmts {
		end := st.Offset + int64(len(st.Text))
		if st.Offset < pos || end > int64(len(data)) || !bytes.Equal(data[st.Offset:end], st.Text) {
			t.Fatalf("statement %d (line %d) is not the input's bytes at offset %d: %q", i, st.Line, st.Offset, st.Text)
		}
		if len(bytes.TrimSpace(st.Text)) == 0 {
			t.Fatalf("statement %d is blank: %q", i, st.Text)
		}
		checkGap(t, data[pos:st.Offset])
		pos = end

		one := st.Terminated()
		if st.Delim != ";" {
			one = []byte("DELIMITER " + st.Delim + "\n" + string(one) + "\nDELIMITER ;\n")
		}
		again, _, aerr := splitAll(one, nil)
		if aerr != nil || len(again) != 1 || !bytes.Equal(bytes.TrimRight(again[0].Text, "\n"), bytes.TrimRight(st.Terminated(), "\n")) || again[0].Kind != st.Kind {
			t.Fatalf("statement %d split alone gives %d statements (%v): %+v, want %q", i, len(again), aerr, again, st.Text)
		}
	}
	if err == nil {
		checkGap(t, data[pos:])
	}
}

func checkGap(t *testing.T, gap []byte) {
	t.Helper()
	for _, line := range bytes.Split(gap, []byte("\n")) {
		l := bytes.TrimLeft(line, " \t\r")
		nl := append(append([]byte(nil), l...), '\n')
		if len(bytes.TrimSpace(l)) == 0 || isCommentLine(nl) || isDelimiterCommand(nl) {
			continue
		}
		t.Fatalf("input left out of every statement: %q (gap %q)", line, gap)
	}
}

// FuzzDumpSplitter: any input splits without a panic, and checkSplit holds.
func FuzzDumpSplitter(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "split", "*.sql"))
	for _, in := range inputs {
		data, _ := os.ReadFile(in)
		f.Add(data)
	}
	f.Add([]byte("DELIMITER $$\nSELECT 1$$ SELECT 2 $$\ndelimiter ;\nSELECT '\\\n;';"))
	f.Add([]byte("/*!50003 SELECT 1; */ SELECT 2;\n-- x\n#y\n/* open"))
	f.Fuzz(func(t *testing.T, data []byte) {
		stmts, info, err := splitAll(data, nil)
		if err != nil && drivers.ClassOf(err) != drivers.Corruption && drivers.ClassOf(err) != drivers.Permanent {
			t.Fatalf("error of class %s: %v", drivers.ClassOf(err), err)
		}
		if info.Bytes > int64(len(data)) {
			t.Fatalf("read %d bytes of %d", info.Bytes, len(data))
		}
		checkSplit(t, data, stmts, err)
	})
}
