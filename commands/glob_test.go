package commands

import (
	"math/rand/v2"
	"testing"
)

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"", "", true}, {"", "a", false},
		{"a*", "abc", true}, {"a*", "bac", false}, {"*c", "abc", true}, {"a*c", "ac", true},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"h[ae]llo", "hello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false}, {"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, {"h[a-b]llo", "hcllo", false}, {`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false}, {`a\`, `a\`, true}, {"a[]b", "ab", false}, {"a[]b", "axb", false},
		{"a[bc", "ab", true}, {"a[bc", "ac", true}, {`a[\]]b`, "a]b", true}, {"a[x-]b", "a-b", false},
		{"a[x-]", "a]", true}, {"a[x-]", "ax", true}, {"*1*2*3*", "x1y2z3w", true}, {"*1*2*3*", "x1y3z2w", false},
		{"1M*", "1M98TDDJ41RJM566", true}, {"????????????????", "1M98TDDJ41RJM566", true},
	} {
		if got := compileGlob(c.pat).match(c.s); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pat, c.s, got, c.want)
		}
	}
}

// refMatch reads a pattern the way Redis's stringmatchlen does, one byte
// of pattern at a time with recursion for '*': the reference compileGlob
// and match must agree with.
func refMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if refMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if len(p) >= 2 && p[0] == '\\' {
					p = p[1:]
					match = match || p[0] == s[0]
				} else if len(p) == 0 {
					break
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					match = match || (s[0] >= lo && s[0] <= hi)
					p = p[2:]
				} else {
					match = match || p[0] == s[0]
				}
				p = p[1:]
			}
			if match == not {
				return false
			}
			s = s[1:]
			if len(p) == 0 {
				return len(s) == 0
			}
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
	}
	return len(s) == 0
}

func TestGlobAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const patBytes, strBytes = `ab-^[]\*?`, `ab-^[]\*?`
	gen := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 200_000 {
		p, s := gen(patBytes, r.IntN(8)), gen(strBytes, r.IntN(7))
		if got, want := compileGlob(p).match(s), refMatch(p, s); got != want {
			t.Fatalf("%q matches %q: %v, reference %v", p, s, got, want)
		}
	}
}
