package mysqlops

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// StmtKind says what a statement of a dump does, as far as loading it in
// parallel is concerned.
type StmtKind int

const (
	// StmtOther is any statement not listed below (views, routines, triggers,
	// events, grants, ...): run alone, after everything before it.
	StmtOther StmtKind = iota
	// StmtSandbox is MariaDB's first line "/*M!999999\- enable the sandbox mode */".
	StmtSandbox
	// StmtSet changes the session (SET NAMES, SET character_set_client = ...,
	// SET @saved = ...): every session gets it, in order.
	StmtSet
	// StmtUse is USE `schema`.
	StmtUse
	// StmtCreateDB is CREATE DATABASE/SCHEMA.
	StmtCreateDB
	// StmtDropDB is DROP DATABASE/SCHEMA.
	StmtDropDB
	// StmtTableDDL is DROP TABLE [IF EXISTS] `t` or CREATE TABLE `t` (one table).
	StmtTableDDL
	// StmtInsert is INSERT or REPLACE into one table.
	StmtInsert
	// StmtLock is LOCK TABLES (Table is "" unless it names exactly one table).
	StmtLock
	// StmtUnlock is UNLOCK TABLES.
	StmtUnlock
	// StmtKeys is ALTER TABLE `t` DISABLE KEYS or ENABLE KEYS.
	StmtKeys
	// StmtCommit is COMMIT.
	StmtCommit
	// StmtReplication configures replication on the server that loads the dump
	// (CHANGE MASTER TO, SET GLOBAL gtid_slave_pos, START SLAVE, ...): written by
	// --master-data=1 / --dump-slave; a restore reports the position instead.
	StmtReplication
)

var kindNames = map[StmtKind]string{StmtOther: "other", StmtSandbox: "sandbox", StmtSet: "set", StmtUse: "use",
	StmtCreateDB: "create database", StmtDropDB: "drop database", StmtTableDDL: "table ddl", StmtInsert: "insert",
	StmtLock: "lock tables", StmtUnlock: "unlock tables", StmtKeys: "keys", StmtCommit: "commit", StmtReplication: "replication"}

func (k StmtKind) String() string { return kindNames[k] }

// Stmt is one statement of a dump, as the mariadb client would send it.
type Stmt struct {
	Kind StmtKind
	// Text is the statement with its delimiter and, when nothing else follows on
	// its last line, that line's end.
	Text []byte
	// Delim is the delimiter in force (";" unless a DELIMITER command changed it).
	Delim string
	// Schema is the schema of USE, CREATE/DROP DATABASE (renamed), or of a
	// table qualified with its schema ("" otherwise).
	Schema string
	// Table is the table of an INSERT, table DDL, ALTER TABLE ... KEYS or a
	// one-table LOCK TABLES.
	Table string
	// Create is true for CREATE TABLE (false for DROP TABLE).
	Create bool
	// Engine is the ENGINE= of a CREATE TABLE ("" when it names none).
	Engine string
	// Line is the dump's line where the statement starts (1-based).
	Line int64
	// Offset is the byte offset in the dump where Text starts (before any
	// renaming changed Text).
	Offset int64
}

// DumpSplitter reads a mariadb-dump/mysqldump stream statement by statement, the
// way the mariadb client does: quotes (with backslash escapes in '...' and
// "..."), comments, and DELIMITER commands decide where a statement ends, so a
// row value that holds "-- Table structure for table" or ";\n" never splits
// anything. Comment lines are not returned; the header, the binlog position and
// the final "-- Dump completed" line they carry are collected in Info.
type DumpSplitter struct {
	br     *bufio.Reader
	rename map[string]string
	// MaxStatement bounds one statement (default 1 GiB + 1 MiB, above the
	// server's largest max_allowed_packet).
	MaxStatement int

	info   DumpInfo
	seen   map[string]bool
	delim  string
	lineNo int64
	eof    bool
	carry  []byte
	stmt   []byte
	start  int64
	// offsets in the stream: of the line being lexed, of the carried rest of
	// a line, and of the statement being read
	lineOff, carryOff, startOff int64
	lineBf                      []byte

	// lexer state inside a statement
	quote byte
	block bool
}

// NewDumpSplitter reads r, renaming the schemas of CREATE DATABASE, DROP
// DATABASE and USE (and of tables qualified with a schema) per rename.
func NewDumpSplitter(r io.Reader, rename map[string]string) *DumpSplitter {
	return &DumpSplitter{br: bufio.NewReaderSize(r, 1<<20), rename: rename, delim: ";", seen: map[string]bool{},
		MaxStatement: 1<<30 + 1<<20}
}

// Info is what the dump said about itself so far: header, schemas, CREATE TABLE
// count, binlog position, bytes read, whether it ended with "-- Dump completed".
func (s *DumpSplitter) Info() DumpInfo {
	d := s.info
	if d.Schemas == nil {
		d.Schemas = []string{}
	}
	d.Schemas = append([]string(nil), d.Schemas...)
	return d
}

// readLine returns the next whole line (with its "\n", except at the end of the
// stream). The slice is valid until the next call.
func (s *DumpSplitter) readLine() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.lineBf = append(s.lineBf[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = s.br.ReadSlice('\n')
			s.lineBf = append(s.lineBf, line...)
			if len(s.lineBf) > s.MaxStatement {
				return nil, drivers.Errorf(drivers.Permanent, "line %d of the dump is longer than %d bytes", s.lineNo+1, s.MaxStatement)
			}
		}
		line = s.lineBf
	}
	s.info.Bytes += int64(len(line))
	if err == io.EOF && len(line) > 0 {
		err = nil
		s.eof = true
	}
	return line, err
}

// Next returns the next statement, or io.EOF after the last one. A read error of
// the underlying stream (a checksum mismatch of a verified stream) is returned
// as it is.
func (s *DumpSplitter) Next() (Stmt, error) {
	for {
		var line []byte
		if s.carry != nil {
			line, s.carry = s.carry, nil
			s.lineOff = s.carryOff
		} else {
			if s.eof {
				return s.finish()
			}
			l, err := s.readLine()
			if err == io.EOF {
				return s.finish()
			}
			if err != nil {
				return Stmt{}, err
			}
			line = l
			s.lineNo++
			s.lineOff = s.info.Bytes - int64(len(l))
		}
		if len(s.stmt) == 0 {
			t := bytes.TrimLeft(line, " \t\r")
			switch {
			case len(t) == 0 || t[0] == '\n':
				continue
			case s.lineNo == 1 && bytes.HasPrefix(t, []byte("/*M!")) && bytes.Contains(t, []byte("enable the sandbox mode")):
				s.info.Sandbox = true
				return Stmt{Kind: StmtSandbox, Text: append([]byte(nil), line...), Delim: s.delim, Line: 1, Offset: s.lineOff}, nil
			case isCommentLine(t):
				s.comment(t)
				continue
			case isDelimiterCommand(t):
				f := bytes.Fields(t[len("delimiter"):])
				if len(f) > 0 {
					s.delim = string(f[0])
				}
				continue
			}
			s.start = s.lineNo
			s.startOff = s.lineOff + int64(len(line)-len(t))
			s.lineOff = s.startOff
			line = t
			if cap(s.stmt) == 0 {
				if b, ok := stmtPool.Get().([]byte); ok {
					s.stmt = b[:0]
				}
			}
		}
		end := s.lex(line)
		if end < 0 {
			s.stmt = append(s.stmt, line...)
			if len(s.stmt) > s.MaxStatement {
				return Stmt{}, drivers.Errorf(drivers.Permanent, "the statement at line %d of the dump is longer than %d bytes", s.start, s.MaxStatement)
			}
			continue
		}
		if rest := line[end:]; len(bytes.TrimSpace(rest)) == 0 {
			s.stmt = append(s.stmt, line...)
		} else {
			s.stmt = append(s.stmt, line[:end]...)
			s.carry = append([]byte(nil), rest...)
			s.carryOff = s.lineOff + int64(end)
		}
		return s.emit(), nil
	}
}

// finish ends the stream: a statement left without its delimiter is returned
// as the client would send it, unless a quote or comment is still open or the
// dump has mariadb-dump's header (a cut stream, either way).
func (s *DumpSplitter) finish() (Stmt, error) {
	if len(bytes.TrimSpace(s.stmt)) == 0 {
		s.stmt = nil
		return Stmt{}, io.EOF
	}
	if s.quote != 0 || s.block {
		return Stmt{}, drivers.Errorf(drivers.Corruption, "the dump ends inside the statement that starts at line %d (an open quote or comment: a cut stream)", s.start)
	}
	if s.info.Tool != "" {
		// mariadb-dump ends every statement with its delimiter: one without it
		// was cut, maybe right after a row, and must not load as if whole.
		return Stmt{}, drivers.Errorf(drivers.Corruption, "the dump ends inside the statement that starts at line %d (no %q after it: a cut stream)", s.start, s.delim)
	}
	return s.emit(), nil
}

// Terminated is Text ending with its delimiter: the last statement of a dump
// without mariadb-dump's header may lack it, and a session must not read the
// next statement it is given as a part of it.
func (st Stmt) Terminated() []byte {
	t := bytes.TrimRight(st.Text, " \t\r\n")
	if st.Kind == StmtSandbox || bytes.HasSuffix(t, []byte(st.Delim)) {
		return st.Text
	}
	return append(st.Text, "\n"+st.Delim+"\n"...)
}

func (s *DumpSplitter) emit() Stmt {
	st := Stmt{Text: s.stmt, Delim: s.delim, Line: s.start, Offset: s.startOff}
	s.stmt = nil
	s.quote, s.block = 0, false
	s.classify(&st)
	switch st.Kind {
	case StmtCreateDB, StmtUse:
		s.addSchema(st.Schema)
	case StmtTableDDL:
		if st.Create {
			s.info.Tables++
		}
	case StmtReplication:
		s.binlogFrom(headOf(st.Text))
	}
	return st
}

func (s *DumpSplitter) addSchema(renamed string) {
	name := renamed
	for old, nw := range s.rename {
		if nw == renamed {
			name = old
		}
	}
	if !s.seen[name] {
		s.seen[name] = true
		s.info.Schemas = append(s.info.Schemas, name)
	}
}

func isCommentLine(t []byte) bool {
	if t[0] == '#' {
		return true
	}
	return len(t) >= 2 && t[0] == '-' && t[1] == '-' && (len(t) == 2 || t[2] == ' ' || t[2] == '\t' || t[2] == '\r' || t[2] == '\n')
}

func isDelimiterCommand(t []byte) bool {
	return len(t) >= 9 && bytes.EqualFold(t[:9], []byte("delimiter")) && (len(t) == 9 || t[9] == ' ' || t[9] == '\t' || t[9] == '\r' || t[9] == '\n')
}

// comment reads what a comment line says about the dump.
func (s *DumpSplitter) comment(t []byte) {
	line := string(bytes.TrimRight(t, "\r\n"))
	switch {
	case s.info.Tool == "" && s.lineNo <= 3 && strings.HasPrefix(line, "-- ") && strings.Contains(strings.ToLower(line), "dump"):
		s.info.Tool = strings.TrimSpace(strings.TrimPrefix(line, "--"))
	case strings.HasPrefix(line, "-- Server version"):
		s.info.ServerVersion = strings.TrimSpace(strings.TrimPrefix(line, "-- Server version"))
	case strings.HasPrefix(line, "-- Dump completed"):
		s.info.Complete = true
	default:
		s.binlogFrom(line)
	}
}

func (s *DumpSplitter) binlogFrom(line string) {
	if strings.Contains(line, "CHANGE MASTER TO") && strings.Contains(line, "MASTER_LOG_FILE") {
		if m := changeMasterRE.FindStringSubmatch(line); m != nil {
			s.info.Binlog.File = m[1]
			fmt.Sscan(m[2], &s.info.Binlog.Position)
		}
	}
	if strings.Contains(line, "gtid_slave_pos") {
		if m := gtidRE.FindStringSubmatch(line); m != nil {
			s.info.Binlog.GTID = m[1]
		}
	}
}

// special marks the bytes the lexer stops at outside quotes and comments.
var special = func() (t [256]bool) {
	for _, c := range "'\"`/-#" {
		t[c] = true
	}
	return
}()

// lex follows the statement through line and returns the index just after its
// delimiter, or -1 when the statement goes on past the line.
func (s *DumpSplitter) lex(b []byte) int {
	d := s.delim
	d0 := d[0]
	n := len(b)
	i := 0
	for i < n {
		if s.quote != 0 {
			q := s.quote
			j := bytes.IndexByte(b[i:], q)
			if q != '`' {
				seg := b[i:]
				if j >= 0 {
					seg = b[i : i+j]
				}
				if k := bytes.IndexByte(seg, '\\'); k >= 0 {
					i += k + 2 // the escaped byte, whatever it is
					continue
				}
			}
			if j < 0 {
				return -1
			}
			i += j + 1
			s.quote = 0 // a doubled quote ('' or ``) reopens at once
			continue
		}
		if s.block {
			j := bytes.Index(b[i:], []byte("*/"))
			if j < 0 {
				return -1
			}
			i += j + 2
			s.block = false
			continue
		}
		c := b[i]
		if c == d0 && (len(d) == 1 || bytes.HasPrefix(b[i:], []byte(d))) {
			return i + len(d)
		}
		if !special[c] {
			i++
			continue
		}
		switch c {
		case '\'', '"', '`':
			s.quote = c
			i++
		case '#':
			return -1 // a comment to the end of the line
		case '-':
			if i+1 < n && b[i+1] == '-' && (i+2 == n || b[i+2] == ' ' || b[i+2] == '\t' || b[i+2] == '\r' || b[i+2] == '\n') {
				return -1
			}
			i++
		case '/':
			// /*! and /*M! hold code; any other /* is a comment.
			if i+1 < n && b[i+1] == '*' && !(i+2 < n && (b[i+2] == '!' || (b[i+2] == 'M' && i+3 < n && b[i+3] == '!'))) {
				s.block = true
				i += 2
				continue
			}
			i++
		default:
			i++
		}
	}
	return -1
}

// tableEngine reads ENGINE= from the table options of a CREATE TABLE, given
// the text after its name: what follows the column list's closing parenthesis,
// quoted strings (comments, defaults) left out ("" when it names none).
func tableEngine(b []byte) string {
	depth, i, columns := 0, 0, false
	var quote byte
	opts := make([]byte, 0, 256)
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
			if depth == 0 {
				opts = append(opts, ' ')
			}
			continue
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 && !columns {
				columns = true // the options start after the column list
				opts = opts[:0]
				continue
			}
		}
		if depth == 0 {
			opts = append(opts, c)
		}
	}
	if m := engineRE.FindSubmatch(opts); m != nil {
		return string(m[1])
	}
	return ""
}

// headOf is the start of a statement, enough to classify it.
func headOf(text []byte) string {
	if len(text) > 1024 {
		text = text[:1024]
	}
	return string(text)
}

var (
	condPrefixRE = regexp.MustCompile(`^/\*M?!\d*\s*`)
	engineRE     = regexp.MustCompile(`(?i)(?:^|[\s,*/])ENGINE\s*=?\s*([A-Za-z0-9_]+)`)
)

// classify sets st's kind and the names it acts on, and renames its schema.
func (s *DumpSplitter) classify(st *Stmt) {
	text := st.Text
	// Skip leading space and one /*!NNNNN (conditional comment) opener.
	off := len(text) - len(bytes.TrimLeft(text, " \t\r\n"))
	if m := condPrefixRE.Find(text[off:]); m != nil {
		off += len(m)
	}
	p := &parser{b: text, i: off}
	kw := p.word()
	switch kw {
	case "INSERT", "REPLACE":
		for {
			w := p.peekWord()
			if w == "LOW_PRIORITY" || w == "DELAYED" || w == "HIGH_PRIORITY" || w == "IGNORE" {
				p.word()
				continue
			}
			break
		}
		if p.peekWord() == "INTO" {
			p.word()
		}
		if schema, table, ok := s.qualified(p, st); ok {
			st.Kind, st.Schema, st.Table = StmtInsert, schema, table
		}
	case "SET":
		up := strings.ToUpper(headOf(text[off:]))
		w := p.peekWord()
		switch {
		case strings.Contains(up, "GTID_SLAVE_POS") || strings.Contains(up, "GTID_PURGED"):
			st.Kind = StmtReplication
		case w == "GLOBAL" || strings.HasPrefix(strings.TrimSpace(up[3:]), "@@GLOBAL."):
			st.Kind = StmtOther
		default:
			st.Kind = StmtSet
		}
	case "USE":
		if i0, name, ok := p.ident(); ok && p.atEnd(st.Delim) {
			st.Kind, st.Schema = StmtUse, s.renameAt(st, i0, name)
		}
	case "CREATE":
		w := p.word()
		if w == "OR" && p.word() == "REPLACE" {
			w = p.word()
		}
		switch w {
		case "DATABASE", "SCHEMA":
			p.ifExists("IF", "NOT", "EXISTS")
			if i0, name, ok := p.ident(); ok {
				st.Kind, st.Schema = StmtCreateDB, s.renameAt(st, i0, name)
			}
		case "TABLE":
			p.ifExists("IF", "NOT", "EXISTS")
			if schema, table, ok := s.qualified(p, st); ok {
				st.Kind, st.Schema, st.Table, st.Create = StmtTableDDL, schema, table, true
				st.Engine = tableEngine(text[p.i:])
			}
		}
	case "DROP":
		switch p.word() {
		case "DATABASE", "SCHEMA":
			p.ifExists("IF", "EXISTS")
			if i0, name, ok := p.ident(); ok {
				st.Kind, st.Schema = StmtDropDB, s.renameAt(st, i0, name)
			}
		case "TABLE":
			p.ifExists("IF", "EXISTS")
			if schema, table, ok := s.qualified(p, st); ok && p.atEnd(st.Delim) {
				st.Kind, st.Schema, st.Table = StmtTableDDL, schema, table
			}
		}
	case "LOCK":
		if p.word() == "TABLES" {
			st.Kind = StmtLock
			if schema, table, ok := s.qualified(p, st); ok {
				if w := p.peekWord(); w == "AS" {
					p.word()
					p.ident()
				}
				mode := p.word()
				if (mode == "WRITE" || mode == "READ") && p.atEndAfterWords(st.Delim) {
					st.Schema, st.Table = schema, table
				}
			}
		}
	case "UNLOCK":
		if p.word() == "TABLES" {
			st.Kind = StmtUnlock
		}
	case "ALTER":
		if p.word() == "TABLE" {
			if schema, table, ok := s.qualified(p, st); ok {
				w1, w2 := p.word(), p.word()
				if (w1 == "DISABLE" || w1 == "ENABLE") && w2 == "KEYS" {
					st.Kind, st.Schema, st.Table = StmtKeys, schema, table
				}
			}
		}
	case "COMMIT":
		st.Kind = StmtCommit
	case "CHANGE":
		if w := p.word(); w == "MASTER" || w == "REPLICATION" {
			st.Kind = StmtReplication
		}
	case "START", "STOP", "RESET":
		if w := p.word(); w == "SLAVE" || w == "REPLICA" || w == "MASTER" || w == "ALL" {
			st.Kind = StmtReplication
		}
	}
}

// qualified reads [schema.]table, renaming a schema.
func (s *DumpSplitter) qualified(p *parser, st *Stmt) (schema, table string, ok bool) {
	i0, a, ok := p.ident()
	if !ok {
		return "", "", false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		_, b, ok := p.ident()
		if !ok {
			return "", "", false
		}
		return s.renameAt(st, i0, a), b, true
	}
	return "", a, true
}

// renameAt renames the schema named at st.Text[i0:] (quoted or not) and returns
// its new name.
func (s *DumpSplitter) renameAt(st *Stmt, i0 int, name string) string {
	nw, ok := s.rename[name]
	if !ok || nw == name {
		return name
	}
	old := QuoteIdent(name)
	end := i0 + len(name)
	if i0 < len(st.Text) && st.Text[i0] == '`' {
		end = i0 + len(old)
	}
	st.Text = append(append(append([]byte{}, st.Text[:i0]...), QuoteIdent(nw)...), st.Text[end:]...)
	return nw
}

// parser reads words and identifiers of a statement's head.
type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '/' && p.i+1 < len(p.b) && p.b[p.i+1] == '*':
			// A comment between words (or the /*!NNNNN of a conditional part):
			// skip its opener only; the words inside count.
			if p.i+2 < len(p.b) && (p.b[p.i+2] == '!' || p.b[p.i+2] == 'M') {
				if m := condPrefixRE.Find(p.b[p.i:]); m != nil {
					p.i += len(m)
					continue
				}
			}
			if j := bytes.Index(p.b[p.i+2:], []byte("*/")); j >= 0 {
				p.i += j + 4
				continue
			}
			return
		case c == '*' && p.i+1 < len(p.b) && p.b[p.i+1] == '/':
			p.i += 2 // the end of a conditional part
		default:
			return
		}
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// word reads a bare word, upper-cased ("" if none).
func (p *parser) word() string {
	p.space()
	j := p.i
	for j < len(p.b) && isWordByte(p.b[j]) {
		j++
	}
	w := strings.ToUpper(string(p.b[p.i:j]))
	p.i = j
	return w
}

func (p *parser) peekWord() string {
	i := p.i
	w := p.word()
	p.i = i
	return w
}

// ifExists skips the words of an IF [NOT] EXISTS clause when they come next.
func (p *parser) ifExists(words ...string) {
	i := p.i
	for _, w := range words {
		if p.word() != w {
			p.i = i
			return
		}
	}
}

// ident reads a quoted (`a“b`) or bare identifier and returns where it starts.
func (p *parser) ident() (int, string, bool) {
	p.space()
	if p.i >= len(p.b) {
		return 0, "", false
	}
	i0 := p.i
	if p.b[p.i] == '`' {
		var sb strings.Builder
		j := p.i + 1
		for j < len(p.b) {
			if p.b[j] == '`' {
				if j+1 < len(p.b) && p.b[j+1] == '`' {
					sb.WriteByte('`')
					j += 2
					continue
				}
				p.i = j + 1
				return i0, sb.String(), sb.Len() > 0
			}
			sb.WriteByte(p.b[j])
			j++
		}
		return 0, "", false
	}
	j := p.i
	for j < len(p.b) && isWordByte(p.b[j]) {
		j++
	}
	if j == p.i {
		return 0, "", false
	}
	p.i = j
	return i0, string(p.b[i0:j]), true
}

// atEnd reports whether only the delimiter (and the end of a conditional part,
// spaces) is left.
func (p *parser) atEnd(delim string) bool {
	p.space()
	rest := bytes.TrimSpace(p.b[p.i:])
	rest = bytes.TrimSuffix(rest, []byte(delim))
	rest = bytes.TrimSpace(rest)
	rest = bytes.TrimSuffix(rest, []byte("*/"))
	return len(bytes.TrimSpace(rest)) == 0
}

// atEndAfterWords is atEnd allowing more bare words (LOCK TABLES ... WRITE LOCAL).
func (p *parser) atEndAfterWords(delim string) bool {
	for p.word() != "" {
	}
	return p.atEnd(delim)
}

// errTruncated is the error of a dump with a header but no "-- Dump completed" line.
func errTruncated(bytes int64) error {
	return drivers.Errorf(drivers.Corruption, "the dump ends after %d bytes without its last line \"-- Dump completed\": it was cut (an interrupted dump or upload)", bytes)
}

// CheckComplete fails for a dump that has mariadb-dump's header but not its
// final "-- Dump completed" line (a cut file). A dump made with
// --skip-comments has neither and passes.
func (d DumpInfo) CheckComplete() error {
	if d.Tool != "" && !d.Complete {
		return errTruncated(d.Bytes)
	}
	return nil
}
