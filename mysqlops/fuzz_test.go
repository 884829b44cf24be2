package mysqlops

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzDumpHandling: any dump text scans without a panic, and renaming schemas
// changes nothing in a dump that never names them.
func FuzzDumpHandling(f *testing.F) {
	f.Add([]byte("-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n--\n-- Current Database: `shop`\n--\n\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n\nUSE `shop`;\n-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=1234;\nINSERT INTO t VALUES (1);\n"))
	f.Add([]byte("USE `a``b`;\nCREATE DATABASE `x`;\n"))
	f.Add([]byte(strings.Repeat("x", 70000) + "\nUSE `s`;\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ScanDump(bytes.NewReader(data))
		out, err := io.ReadAll(RenameSchemas(bytes.NewReader(data), map[string]string{"zz_never_named_zz": "other"}))
		if err != nil {
			t.Fatalf("rename: %v", err)
		}
		if !bytes.Contains(data, []byte("zz_never_named_zz")) && !bytes.Equal(out, data) {
			t.Fatalf("renaming a schema the dump does not name changed it:\n%q\n%q", data, out)
		}
		MydumperSchemas(strings.Split(string(data), "\n"))
	})
}
