package commands

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// infoName escapes a queue name or policy key for use inside an INFO field
// name, so that each queue and policy gets a field of its own that every
// client's INFO parser keeps apart: redis-py and go-redis split a line at
// its first ':', redis-py splits a value at ',' and '=' and the text at
// any line break Python knows (\v, \f, \x1c-\x1e, U+0085, U+2028, ...),
// redis-rb at CRLF. The escape is percent-encoding, as in URLs, of '%',
// ':', ',', '=', every byte that is not part of a printable UTF-8
// character other than space, so the field name is printable, holds none
// of those separators, and decodes back to the exact name
// (url.PathUnescape, Python's urllib.parse.unquote_to_bytes).
func infoName(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b >= 0x7f || b == '%' || b == ':' || b == ',' || b == '=' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		keep := r != ' ' && r != '%' && r != ':' && r != ',' && r != '=' &&
			r != utf8.RuneError && unicode.IsPrint(r)
		if keep {
			b.WriteString(s[i : i+n])
		} else {
			for _, c := range []byte(s[i : i+n]) {
				b.WriteByte('%')
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			}
		}
		i += n
	}
	return b.String()
}
