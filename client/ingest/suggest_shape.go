package ingest

import (
	"fmt"
	"strings"
)

// chooseDelimiter picks the delimiter that splits the most of the first
// lines into one same number of fields, more than one.
func chooseDelimiter(lines [][]byte) (byte, string) {
	best, bestShare, bestCols := byte(','), 0.0, 1
	n := min(len(lines), 500)
	for _, d := range []byte{',', ';', '\t', '|'} {
		sp := splitter{delim: d}
		counts := map[int]int{}
		total := 0
		for _, r := range records(lines[:n], d, true) {
			if len(r.text) == 0 {
				continue
			}
			total++
			f, _, err := sp.split(r.text)
			if err == nil {
				counts[len(f)]++
			}
		}
		mode, modeN := 1, 0
		for c, k := range counts {
			if k > modeN || k == modeN && c > mode {
				mode, modeN = c, k
			}
		}
		if mode < 2 || total == 0 {
			continue
		}
		share := float64(modeN) / float64(total)
		if share > bestShare+0.01 || share >= bestShare-0.01 && mode > bestCols {
			best, bestShare, bestCols = d, share, mode
		}
	}
	if bestCols < 2 {
		return ',', "no delimiter splits the lines into columns"
	}
	return best, fmt.Sprintf("splits %.0f%% of the first %d lines into %d columns", 100*bestShare, n, bestCols)
}

// hasHeader decides whether the first row names the columns: none of its
// fields is empty, a number or a time, and in some column the later rows
// hold numbers or times, or the first row's values never recur below.
func hasHeader(rows [][]string) (bool, string) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return false, "the file is empty"
	}
	first := rows[0]
	for _, f := range first {
		f = strings.TrimSpace(f)
		if f == "" {
			return false, "the first line has an empty field"
		}
		if looksNumeric(f) || looksDate(f) {
			return false, fmt.Sprintf("the first line holds %q, a value rather than a name", f)
		}
	}
	if len(rows) == 1 {
		return true, "the only line holds no numbers or dates"
	}
	for c, name := range first {
		typed, recurs := 0, false
		n := 0
		for _, r := range rows[1:min(len(rows), 200)] {
			if c >= len(r) {
				continue
			}
			n++
			v := strings.TrimSpace(r[c])
			if looksNumeric(v) || looksDate(v) {
				typed++
			}
			if v == strings.TrimSpace(name) {
				recurs = true
			}
		}
		if n > 0 && typed*2 > n {
			return true, fmt.Sprintf("the first line's %q heads a column of numbers or dates", strings.TrimSpace(name))
		}
		if recurs {
			return false, fmt.Sprintf("the first line's %q recurs in its column", strings.TrimSpace(name))
		}
	}
	return true, "no value of the first line recurs in its column"
}

// looksNumeric reports whether s reads as a number, with optional sign,
// currency symbol and marks.
func looksNumeric(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(".,'-+() \u00a0\u202f$€£¥", r):
		default:
			return false
		}
	}
	return digits > 0
}

// looksDate reports whether s starts like a date: digits and a date
// separator, or a month name followed by a digit.
func looksDate(s string) bool {
	if len(s) < 6 {
		return false
	}
	d := 0
	for d < len(s) && s[d] >= '0' && s[d] <= '9' {
		d++
	}
	return d >= 1 && d <= 4 && d < len(s) && strings.ContainsRune("-./", rune(s[d]))
}

// shape decides the file-level keys: header, delimiter, encoding.
func (p *plan) shape() {
	s := p.s
	if s.jsonLines {
		return // keys are the header; JSON is UTF-8 and has no delimiter
	}
	if s.header {
		p.add(entry{why: []string{"header: " + s.headerWhy}, lines: []string{"header: true"}})
	} else {
		p.add(entry{why: []string{"header: " + s.headerWhy + "; columns are named by 1-based index"}, lines: []string{"header: false"}})
	}
	if s.delimiter != ',' {
		p.add(entry{why: []string{fmt.Sprintf("delimiter: %s %s", quoteMark(s.delimiter), s.delimFit)}, lines: []string{"delimiter: " + quoteMark(s.delimiter)}})
	}
	if s.encoding != EncodingUTF8 {
		p.add(entry{why: []string{"encoding: the file is not valid UTF-8; Windows-1252 (what Excel and shop systems on Windows write) reads every byte"},
			lines: []string{"encoding: " + s.encoding}})
	}
}
