package ingest

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// render writes the plan as a mapping document: a head saying what was
// read, then each key below the evidence for it.
func (p *plan) render() []byte {
	var b bytes.Buffer
	s := p.s
	what := "delimited text"
	switch {
	case s.jsonLines:
		what = "JSON Lines"
	case s.delimiter == '\t':
		what = "tab-separated text"
	case s.delimiter == ',':
		what = "comma-separated text"
	case s.delimiter == ';':
		what = "semicolon-separated text"
	}
	if s.gzip {
		what += ", gzip-compressed"
	}
	if s.bom {
		what += ", with a UTF-8 byte-order mark"
	}
	if p.source != "" {
		what = p.source
	}
	fmt.Fprintf(&b, "# Suggested by kairos mapping suggest from %s (%s).\n", p.name, what)
	sampled := groupDigits(int64(len(s.rows))) + " data rows sampled"
	switch {
	case p.more:
		sampled += " from the head of the file"
	case s.truncated && p.size > 0 && s.gzip:
		sampled += fmt.Sprintf(" from the head of the file (%s bytes decompressed; the file is %s bytes compressed)", groupDigits(int64(len(s.raw))), groupDigits(p.size))
	case s.truncated && p.size > 0:
		sampled += fmt.Sprintf(" from the head of the file (%s of its %s bytes)", groupDigits(int64(len(s.raw))), groupDigits(p.size))
	case s.truncated:
		sampled += " from the head of the file"
	default:
		sampled += ": the whole file"
	}
	fmt.Fprintf(&b, "# %s. Each key has its evidence above it; a CHECK line is a guess to confirm.\n", sampled)
	entries := append([]entry(nil), p.entries...)
	slices.SortStableFunc(entries, func(a, b entry) int { return keyRank(a) - keyRank(b) })
	for _, e := range entries {
		b.WriteByte('\n')
		for _, w := range e.why {
			writeComment(&b, w)
		}
		if e.check != "" {
			writeComment(&b, "CHECK: "+e.check)
		}
		for _, l := range e.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	if len(p.trailer) > 0 {
		b.WriteByte('\n')
		for _, t := range p.trailer {
			writeComment(&b, "CHECK: "+t)
		}
	}
	return b.Bytes()
}

// keyRank orders the entries as the mapping's keys are documented, from the
// first word of their evidence.
func keyRank(e entry) int {
	if len(e.why) == 0 {
		return len(topKeys)
	}
	key, _, _ := strings.Cut(e.why[0], ":")
	if i := slices.Index(topKeys, key); i >= 0 {
		return i
	}
	return len(topKeys)
}

// writeComment writes one comment, a line per line of text.
func writeComment(b *bytes.Buffer, text string) {
	for l := range strings.Lines(text) {
		b.WriteString("# ")
		b.WriteString(strings.TrimRight(l, "\n"))
		b.WriteByte('\n')
	}
}

// yamlString writes s as a YAML scalar that reads back as the string s: plain
// when it is a plain word or header name, double-quoted otherwise.
func yamlString(s string) string {
	if plainYAML(s) {
		return s
	}
	return strconv.Quote(s)
}

// plainYAML reports whether s reads as itself, a string, written plain in a
// block or a flow collection.
func plainYAML(s string) bool {
	if s == "" || s != strings.TrimSpace(s) {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
		return false
	}
	first := s[0]
	if !isASCIILetter(first) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == ' ' || r == '_' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/':
		default:
			return false
		}
	}
	return true
}

// groupDigits writes n with commas between thousands.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
