package ingest

import "unicode/utf8"

// windows1252High is Windows-1252's 0x80–0x9F (the WHATWG Encoding
// Standard's index: the five bytes the code page leaves undefined map to the
// C1 controls of the same value, as in Latin-1); its other bytes are
// Latin-1's, the code point of the same value.
var windows1252High = [32]rune{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

var latin1Table, windows1252Table = func() (l, w [256]rune) {
	for i := range l {
		l[i], w[i] = rune(i), rune(i)
	}
	for i, r := range windows1252High {
		w[0x80+i] = r
	}
	return l, w
}()

// encodingTable returns the byte-to-rune table of a single-byte encoding,
// or nil for UTF-8.
func encodingTable(enc string) *[256]rune {
	switch enc {
	case EncodingWindows1252:
		return &windows1252Table
	case EncodingLatin1:
		return &latin1Table
	}
	return nil
}

// transcode appends line, in the single-byte encoding table, to dst as
// UTF-8. ASCII, which every such encoding shares, is copied as it is.
func transcode(dst, line []byte, table *[256]rune) []byte {
	for _, c := range line {
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			continue
		}
		dst = utf8.AppendRune(dst, table[c])
	}
	return dst
}

// decodeLine returns line as UTF-8: transcoded into a reused buffer when the
// mapping names a single-byte encoding, line itself otherwise. It notes
// whether the whole line is valid UTF-8, so that the fields of the usual
// line need no check of their own.
func (p *csvParser) decodeLine(line []byte) []byte {
	if p.table == nil {
		p.lineUTF8 = utf8.Valid(line)
		return line
	}
	p.dec = transcode(p.dec[:0], line, p.table)
	p.lineUTF8 = true
	return p.dec
}
