package mysqlops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/klauspost/compress/zstd"

	"github.com/restore-run/restore-run/drivers"
)

func TestParseVersion(t *testing.T) {
	cases := map[string]string{
		"10.11.19-MariaDB-0+deb12u1-log":                                                 "10.11",
		"mariadb  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)":      "10.11",
		"mariabackup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)": "10.11",
		"11.4.3-MariaDB": "11.4",
		"8.0.36":         "8.0",
	}
	for in, want := range cases {
		v, ok := ParseVersion(in)
		if !ok || v.Series() != want {
			t.Errorf("ParseVersion(%q) = %v %v, want series %s", in, v, ok, want)
		}
	}
	if _, ok := ParseVersion("no version"); ok {
		t.Error("a version parsed from nothing")
	}
	if v, _ := ParseVersion("10.11.19-MariaDB-log"); !v.MariaDB || v.String() != "10.11.19-MariaDB" {
		t.Errorf("MariaDB flavour: %+v", v)
	}
}

func TestBackupMetadata(t *testing.T) {
	if b := ParseBinlogInfo("mysql-bin.000001\t1093\t0-1-4\n"); b != (Binlog{"mysql-bin.000001", 1093, "0-1-4"}) {
		t.Errorf("binlog info: %+v", b)
	}
	md := "Started dump at: 2026-11-25 18:19:37\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000002\n\tPos: 77\n\tGTID:0-1-9\n\nFinished dump at: x\n"
	if b := ParseMydumperMetadata(md); b != (Binlog{"mysql-bin.000002", 77, "0-1-9"}) {
		t.Errorf("mydumper metadata: %+v", b)
	}
	kv := ParseKeyValues("tool_version = 10.11.19-MariaDB\nserver_version = 10.11.19-MariaDB-log\n")
	if kv["server_version"] != "10.11.19-MariaDB-log" {
		t.Errorf("key values: %v", kv)
	}
	if got := MydumperSchemas([]string{"metadata", "b-schema-create.sql", "a-schema-create.sql", "a.t.sql"}); strings.Join(got, ",") != "a,b" {
		t.Errorf("mydumper schemas: %v", got)
	}
}

const dump = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n" +
	"-- Server version\t10.11.19-MariaDB-log\n" +
	"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=1093;\n" +
	"--\n-- Current Database: `shop`\n--\n\n" +
	"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n\nUSE `shop`;\n" +
	"CREATE TABLE `t` (\n  `id` int\n);\nINSERT INTO `t` VALUES (1),(2);\n" +
	"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird` ;\nUSE `we``ird`;\nCREATE TABLE `u` (`id` int);\n" +
	"-- SET GLOBAL gtid_slave_pos='0-1-4';\n"

func TestScanDump(t *testing.T) {
	d, err := ScanDump(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Sandbox || !strings.HasPrefix(d.Tool, "MariaDB dump") || d.ServerVersion != "10.11.19-MariaDB-log" || d.Tables != 2 ||
		strings.Join(d.Schemas, ",") != "shop,we`ird" || d.Binlog != (Binlog{"mysql-bin.000001", 1093, "0-1-4"}) || d.Bytes != int64(len(dump)) {
		t.Errorf("%+v", d)
	}
	// A line longer than the reader's buffer is passed over without losing lines.
	long := "INSERT INTO t VALUES (" + strings.Repeat("1,", 3<<20) + "1);\nCREATE TABLE `x` (a int);\n"
	d, err = ScanDump(strings.NewReader(long))
	if err != nil || d.Tables != 1 {
		t.Errorf("long line: %+v %v", d, err)
	}
}

func TestRenameSchemas(t *testing.T) {
	out, err := io.ReadAll(RenameSchemas(strings.NewReader(dump), map[string]string{"shop": "shop_copy"}))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"-- Current Database: `shop_copy`", "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_copy` /*!40100", "USE `shop_copy`;", "USE `we``ird`;"} {
		if !strings.Contains(s, want) {
			t.Errorf("renamed dump lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "`shop`") {
		t.Errorf("old name left:\n%s", s)
	}
	if len(s) != len(dump)+3*len("_copy") {
		t.Errorf("renamed dump is %d bytes, want %d", len(s), len(dump)+15)
	}
}

func TestDecompress(t *testing.T) {
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf)
	w.Write([]byte(dump))
	w.Close()
	r, err := Decompress(io.NopCloser(bytes.NewReader(buf.Bytes())), CompressionOf("x.sql.zst", ""))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != dump {
		t.Errorf("zstd round trip: %v", err)
	}
	bad := append([]byte(nil), buf.Bytes()...)
	bad[len(bad)/2] ^= 0xff
	r, _ = Decompress(io.NopCloser(bytes.NewReader(bad)), "zstd")
	if _, err := io.ReadAll(r); drivers.ClassOf(err) != drivers.Corruption {
		t.Errorf("damaged zstd: %v (class %s), want corruption", err, drivers.ClassOf(err))
	}
	if CompressionOf("a.sql", "") != "none" || CompressionOf("a.sql.gz", "") != "gzip" || CompressionOf("a", "zstd") != "zstd" {
		t.Error("CompressionOf")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want drivers.Class
	}{
		{&mysql.MySQLError{Number: 1045, Message: "Access denied"}, drivers.Permanent},
		{&mysql.MySQLError{Number: 1049, Message: "Unknown database"}, drivers.Permanent},
		{&mysql.MySQLError{Number: 1213, Message: "Deadlock"}, drivers.Transient},
		{mysql.ErrInvalidConn, drivers.Transient},
		{context.Canceled, drivers.Cancelled},
		{errors.New("ERROR 2002 (HY000): Can't connect to local server through socket"), drivers.Transient},
		{errors.New("ERROR 1064 (42000) at line 3: You have an error in your SQL syntax"), drivers.Permanent},
	}
	for _, c := range cases {
		if got := drivers.ClassOf(Classify(context.Background(), "op", c.err)); got != c.want {
			t.Errorf("%v: class %s, want %s", c.err, got, c.want)
		}
	}
}

func TestLookPathAllowList(t *testing.T) {
	for _, bad := range []string{"sh", "/bin/sh", "../mariadb", "rm"} {
		if _, err := LookPath(bad); drivers.ClassOf(err) != drivers.Script {
			t.Errorf("LookPath(%q): %v; want a script error", bad, err)
		}
	}
}

// failingReader returns data, then a corruption error (a checksum mismatch at
// the end of a stream).
type failingReader struct{ data io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if err == io.EOF {
		return n, drivers.Errorf(drivers.Corruption, "sha256 mismatch")
	}
	return n, err
}

func TestRunKillsOnBrokenStdin(t *testing.T) {
	zstdPath, err := LookPath("zstd")
	if err != nil {
		// It only stands in for a stdin consumer here; ./test.sh installs it.
		t.Fatalf("zstd is not installed (./test.sh installs Debian's zstd): %v", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	// zstd -c compresses stdin; if it saw a clean EOF it would exit 0.
	f, _ := os.Create(out)
	defer f.Close()
	_, err = Run(context.Background(), Cmd{Argv: []string{zstdPath, "-q", "-c"}, Stdin: &failingReader{strings.NewReader("some input")}, Stdout: f, Timeout: 30 * time.Second})
	if drivers.ClassOf(err) != drivers.Corruption || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Run with a failing stdin: %v (class %s); want corruption, program killed", err, drivers.ClassOf(err))
	}
	// A non-zero exit carries the stderr tail.
	_, err = Run(context.Background(), Cmd{Argv: []string{zstdPath, "-d", "/nonexistent/file"}})
	var ee *ExitError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("exit error: %v", err)
	}
}

func TestDefaultsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "my.cnf")
	if err := WriteDefaultsFile(p, ConnConfig{Host: "db1", Port: 3307, User: "u", Password: `p"w\x`}, "myloader"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	data, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o600 || !strings.Contains(string(data), `password="p\"w\\x"`) || !strings.Contains(string(data), "[myloader]") || !strings.Contains(string(data), "port=3307") {
		t.Errorf("mode %v:\n%s", fi.Mode(), data)
	}
	c := ConnConfig{Socket: "/s", User: "root", Password: "pw"}
	if strings.Contains(c.Where(), "pw") || c.Where() != "socket /s" {
		t.Errorf("Where() = %s", c.Where())
	}
}

func TestTail(t *testing.T) {
	tl := &Tail{Max: 5}
	tl.Write([]byte("abc"))
	tl.Write([]byte("defgh"))
	if tl.String() != "...defgh" {
		t.Errorf("tail %q", tl.String())
	}
}
