package ingest

import (
	"errors"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// UTF-16 byte-order marks: Excel's "Unicode Text" is UTF-16LE with a mark
// and tab-separated; some tools write UTF-16BE.
var (
	utf16LEMark = []byte{0xff, 0xfe}
	utf16BEMark = []byte{0xfe, 0xff}
)

// utf16Reader transcodes a UTF-16 stream, after its byte-order mark, to
// UTF-8 as it is read, so that the line readers see the text they read in
// any other file. A lone surrogate or a last odd byte becomes U+FFFD, as
// unicode/utf16 decodes them.
type utf16Reader struct {
	r        io.Reader
	big      bool
	buf      []byte // read, not yet decoded (an odd byte, a high surrogate)
	dec      []byte // the decoded text of the last read, reused
	out      []byte // the part of dec not yet returned
	err      error
	encoding string
}

func newUTF16Reader(r io.Reader, big bool) *utf16Reader {
	enc := "UTF-16LE"
	if big {
		enc = "UTF-16BE"
	}
	return &utf16Reader{r: r, big: big, buf: make([]byte, 0, 32<<10), encoding: enc}
}

// sourceEncoding names the encoding the text was transcoded from.
func (u *utf16Reader) sourceEncoding() string { return u.encoding }

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		n, err := u.r.Read(u.buf[len(u.buf):cap(u.buf)])
		u.buf = u.buf[:len(u.buf)+n]
		final := err != nil
		var rest []byte
		u.dec, rest = appendUTF16(u.dec[:0], u.buf, u.big, final)
		u.out = u.dec
		u.buf = append(u.buf[:0], rest...)
		if err != nil {
			u.err = err
			if !errors.Is(err, io.EOF) {
				u.out = u.out[:0]
			}
		}
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// appendUTF16 appends the UTF-8 of the UTF-16 code units in src (big- or
// little-endian) to dst. Unless final, it returns the bytes at the end of
// src that may begin a character whose rest is still to come (an odd byte,
// a high surrogate) instead of decoding them.
func appendUTF16(dst, src []byte, big, final bool) (out, rest []byte) {
	unit := func(i int) rune {
		if big {
			return rune(src[i])<<8 | rune(src[i+1])
		}
		return rune(src[i+1])<<8 | rune(src[i])
	}
	i := 0
	for ; i+1 < len(src); i += 2 {
		r := unit(i)
		switch {
		case r < 0xd800 || r >= 0xe000:
		case r < 0xdc00 && i+3 < len(src):
			if r2 := unit(i + 2); r2 >= 0xdc00 && r2 < 0xe000 {
				r = utf16.DecodeRune(r, r2)
				i += 2
			} else {
				r = utf8.RuneError
			}
		case r < 0xdc00 && !final:
			return dst, src[i:] // a high surrogate whose pair is still to come
		default:
			r = utf8.RuneError
		}
		dst = utf8.AppendRune(dst, r)
	}
	if i < len(src) {
		if !final {
			return dst, src[i:]
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
	}
	return dst, nil
}
