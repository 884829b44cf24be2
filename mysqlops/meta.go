package mysqlops

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Binlog is the replication position of a backup: where a replica of the source
// would start.
type Binlog struct {
	File     string `json:"file,omitempty"`
	Position int64  `json:"position,omitempty"`
	GTID     string `json:"gtid,omitempty"`
}

// Empty reports whether nothing is known.
func (b Binlog) Empty() bool { return b.File == "" && b.GTID == "" }

// Map is the binlog as a plain map (what scripts and reports see).
func (b Binlog) Map() map[string]any {
	return map[string]any{"file": b.File, "position": b.Position, "gtid": b.GTID}
}

// ParseBinlogInfo reads xtrabackup_binlog_info: "FILE\tPOS[\tGTID]".
func ParseBinlogInfo(text string) Binlog {
	f := strings.Fields(strings.TrimSpace(text))
	var b Binlog
	if len(f) > 0 {
		b.File = f[0]
	}
	if len(f) > 1 {
		b.Position, _ = strconv.ParseInt(f[1], 10, 64)
	}
	if len(f) > 2 {
		b.GTID = strings.Join(f[2:], "")
	}
	return b
}

// ParseKeyValues reads xtrabackup_info or xtrabackup_checkpoints: "key = value"
// lines.
func ParseKeyValues(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// ParseMydumperMetadata reads the binlog position from a mydumper metadata file
// ("SHOW MASTER STATUS:\n\tLog: F\n\tPos: N\n\tGTID:G").
func ParseMydumperMetadata(text string) Binlog {
	var b Binlog
	inMaster := false
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "SHOW MASTER STATUS") {
			inMaster = true
			continue
		}
		if strings.HasPrefix(t, "SHOW SLAVE STATUS") || strings.HasPrefix(t, "Finished dump") {
			inMaster = false
		}
		if !inMaster {
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Log":
			b.File = v
		case "Pos":
			b.Position, _ = strconv.ParseInt(v, 10, 64)
		case "GTID":
			b.GTID = v
		}
	}
	return b
}

// DumpInfo is what the header and the structure lines of a mariadb-dump /
// mysqldump file say.
type DumpInfo struct {
	// Tool is the header's first words, e.g. "MariaDB dump 10.19  Distrib 10.11.19-MariaDB".
	Tool string `json:"tool"`
	// ServerVersion is the source server's version ("-- Server version").
	ServerVersion string `json:"server_version"`
	// Schemas are the databases the dump creates or switches to (USE), in order;
	// empty for a dump of one database made without --databases.
	Schemas []string `json:"schemas"`
	// Tables counts "CREATE TABLE" statements.
	Tables int `json:"tables"`
	// Binlog is the position recorded with --master-data / --dump-slave and --gtid.
	Binlog Binlog `json:"binlog"`
	// Bytes is the size of the (decompressed) dump.
	Bytes int64 `json:"bytes"`
	// Sandbox is true when the dump starts with MariaDB's sandbox-mode line,
	// which only MariaDB's client accepts.
	Sandbox bool `json:"sandbox"`
	// Complete is true when the dump ends with mariadb-dump's "-- Dump
	// completed" line (see CheckComplete).
	Complete bool `json:"complete"`
}

var (
	changeMasterRE = regexp.MustCompile(`MASTER_LOG_FILE='([^']*)',\s*MASTER_LOG_POS=(\d+)`)
	gtidRE         = regexp.MustCompile(`gtid_slave_pos\s*=\s*'([^']*)'`)
	createDBRE     = regexp.MustCompile("^CREATE DATABASE (?:/\\*!32312 IF NOT EXISTS\\*/ |IF NOT EXISTS )?`((?:[^`]|``)+)`")
	useRE          = regexp.MustCompile("^USE `((?:[^`]|``)+)`;")
)

// lineHead is how much of each line the scanners look at: statements that matter
// start at a line's beginning; INSERT lines can be megabytes long.
const lineHead = 4096

// eachLine calls fn with the start (at most lineHead bytes) of every line of r.
func eachLine(r io.Reader, fn func(head []byte)) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var n int64
	atStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if len(chunk) > 0 && atStart {
			h := chunk
			if len(h) > lineHead {
				h = h[:lineHead]
			}
			fn(bytes.TrimRight(h, "\r\n"))
		}
		atStart = err == nil // ErrBufferFull: the same line goes on
		switch {
		case err == nil, err == bufio.ErrBufferFull:
		case err == io.EOF:
			return n, nil
		default:
			return n, err
		}
	}
}

// ScanDump reads a whole dump (already decompressed) and returns its DumpInfo.
// Reading to the end also lets a verifying reader check the file's sha256.
func ScanDump(r io.Reader) (DumpInfo, error) {
	var d DumpInfo
	seen := map[string]bool{}
	addSchema := func(s string) {
		s = strings.ReplaceAll(s, "``", "`")
		if !seen[s] {
			seen[s] = true
			d.Schemas = append(d.Schemas, s)
		}
	}
	lineNo := 0
	n, err := eachLine(r, func(h []byte) {
		lineNo++
		line := string(h)
		switch {
		case lineNo == 1 && strings.Contains(line, "enable the sandbox mode"):
			d.Sandbox = true
		case d.Tool == "" && lineNo <= 3 && strings.HasPrefix(line, "-- ") && strings.Contains(strings.ToLower(line), "dump"):
			d.Tool = strings.TrimSpace(strings.TrimPrefix(line, "--"))
		case strings.HasPrefix(line, "-- Server version"):
			d.ServerVersion = strings.TrimSpace(strings.TrimPrefix(line, "-- Server version"))
		case strings.HasPrefix(line, "-- Dump completed"):
			d.Complete = true
		case strings.HasPrefix(line, "CREATE TABLE "):
			d.Tables++
		case strings.HasPrefix(line, "CREATE DATABASE "):
			if m := createDBRE.FindStringSubmatch(line); m != nil {
				addSchema(m[1])
			}
		case strings.HasPrefix(line, "USE `"):
			if m := useRE.FindStringSubmatch(line); m != nil {
				addSchema(m[1])
			}
		case strings.Contains(line, "CHANGE MASTER TO") && strings.Contains(line, "MASTER_LOG_FILE"):
			if m := changeMasterRE.FindStringSubmatch(line); m != nil {
				d.Binlog.File = m[1]
				d.Binlog.Position, _ = strconv.ParseInt(m[2], 10, 64)
			}
		case strings.Contains(line, "gtid_slave_pos"):
			if m := gtidRE.FindStringSubmatch(line); m != nil {
				d.Binlog.GTID = m[1]
			}
		}
	})
	d.Bytes = n
	if d.Schemas == nil {
		d.Schemas = []string{}
	}
	return d, err
}

// RenameSchemas returns a reader of r's dump in which the schema names of CREATE
// DATABASE, USE and "-- Current Database" lines are replaced per rename (old ->
// new). Statements that name a schema elsewhere (a view or routine body qualified
// with its schema) are left as they are.
func RenameSchemas(r io.Reader, rename map[string]string) io.Reader {
	if len(rename) == 0 {
		return r
	}
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReaderSize(r, 1<<20)
		atStart := true
		for {
			chunk, err := br.ReadSlice('\n')
			if len(chunk) > 0 {
				out := chunk
				if atStart {
					out = renameLine(chunk, rename)
				}
				if _, werr := pw.Write(out); werr != nil {
					pw.CloseWithError(werr)
					return
				}
			}
			atStart = err == nil
			switch {
			case err == nil, err == bufio.ErrBufferFull:
			case err == io.EOF:
				pw.Close()
				return
			default:
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

func renameLine(line []byte, rename map[string]string) []byte {
	s := string(line)
	var loc []int
	switch {
	case strings.HasPrefix(s, "CREATE DATABASE "):
		loc = createDBRE.FindStringSubmatchIndex(strings.TrimRight(s, "\r\n"))
	case strings.HasPrefix(s, "USE `"):
		loc = useRE.FindStringSubmatchIndex(s)
	case strings.HasPrefix(s, "-- Current Database: `"):
		loc = regexp.MustCompile("^-- Current Database: `((?:[^`]|``)+)`").FindStringSubmatchIndex(s)
	}
	if loc == nil {
		return line
	}
	old := strings.ReplaceAll(s[loc[2]:loc[3]], "``", "`")
	nw, ok := rename[old]
	if !ok {
		return line
	}
	return []byte(s[:loc[2]] + strings.ReplaceAll(nw, "`", "``") + s[loc[3]:])
}

// MydumperSchemas lists the schemas of a mydumper directory from its file names
// (SCHEMA-schema-create.sql), sorted.
func MydumperSchemas(names []string) []string {
	var out []string
	for _, n := range names {
		base := n[strings.LastIndex(n, "/")+1:]
		if s, ok := strings.CutSuffix(base, "-schema-create.sql"); ok {
			out = append(out, s)
		} else if s, ok := strings.CutSuffix(base, "-schema-create.sql.gz"); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
