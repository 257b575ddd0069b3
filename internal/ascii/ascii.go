// Package ascii folds the case of ASCII letters only, as Redis does for
// command names and keywords: every other byte, non-ASCII ones included,
// compares as it is, so "ſ" (U+017F) is no "s" and the Kelvin sign no "k".
package ascii

// Lower is c with A-Z mapped to a-z.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

// EqualFold reports whether a and b are equal but for the case of ASCII
// letters. Either may be a string or a byte slice; neither is copied.
func EqualFold[A, B ~string | ~[]byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if Lower(a[i]) != Lower(b[i]) {
			return false
		}
	}
	return true
}

// AppendLower appends b to dst with A-Z mapped to a-z.
func AppendLower[B ~string | ~[]byte](dst []byte, b B) []byte {
	for i := 0; i < len(b); i++ {
		dst = append(dst, Lower(b[i]))
	}
	return dst
}
