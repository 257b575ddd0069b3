package commands

// glob is a compiled Redis glob pattern (KEYS, SCAN MATCH): '*' matches
// any bytes, '?' one byte, '[abc]', '[^abc]' and '[a-z]' one byte of a
// set, '\' makes the next byte literal. Matching is on bytes and
// case-sensitive, as in Redis. Each element but '*' matches exactly one
// byte, compiled to a 256-bit set, so a match costs at most the string's
// length times the pattern's elements whatever the pattern holds, and a
// string shorter than the pattern's fixed elements fails at once.
type glob struct {
	elems []globElem
	fixed int // elements that are not '*'
}

type globElem struct {
	star bool
	set  [4]uint64 // the bytes this element matches, when not star
}

func (e *globElem) add(b byte)      { e.set[b>>6] |= 1 << (b & 63) }
func (e *globElem) has(b byte) bool { return e.set[b>>6]&(1<<(b&63)) != 0 }
func (e *globElem) invert()         { e.set = [4]uint64{^e.set[0], ^e.set[1], ^e.set[2], ^e.set[3]} }
func (e *globElem) addRange(lo, hi byte) {
	if lo > hi {
		lo, hi = hi, lo
	}
	for c := int(lo); c <= int(hi); c++ {
		e.add(byte(c))
	}
}

// compileGlob reads a pattern as Redis's stringmatchlen does: a '\' at the
// end is literal, an unclosed '[' takes the rest of the pattern as its
// set, "[]" matches nothing, and in "x-y" the bounds may come in either
// order.
func compileGlob(p string) *glob {
	g := &glob{}
	for i := 0; i < len(p); i++ {
		var e globElem
		switch c := p[i]; c {
		case '*':
			if n := len(g.elems); n > 0 && g.elems[n-1].star {
				continue
			}
			e.star = true
		case '?':
			e.invert()
		case '[':
			i++
			not := i < len(p) && p[i] == '^'
			if not {
				i++
			}
			for ; i < len(p) && p[i] != ']'; i++ {
				switch {
				case p[i] == '\\' && i+1 < len(p):
					i++
					e.add(p[i])
				case i+2 < len(p) && p[i+1] == '-':
					e.addRange(p[i], p[i+2])
					i += 2
				default:
					e.add(p[i])
				}
			}
			if not {
				e.invert()
			}
		case '\\':
			if i+1 < len(p) {
				i++
			}
			e.add(p[i])
		default:
			e.add(c)
		}
		if !e.star {
			g.fixed++
		}
		g.elems = append(g.elems, e)
	}
	return g
}

// match reports whether s matches the whole pattern. A failure after a
// '*' retries from that star one byte further on; only the last star is
// retried, which suffices since a later star can absorb whatever an
// earlier one would.
func (g *glob) match(s string) bool {
	if len(s) < g.fixed {
		return false
	}
	si, ei := 0, 0
	star, starS := -1, 0
	for si < len(s) {
		switch {
		case ei < len(g.elems) && g.elems[ei].star:
			star, starS = ei, si
			ei++
		case ei < len(g.elems) && g.elems[ei].has(s[si]):
			si++
			ei++
		case star >= 0:
			starS++
			si, ei = starS, star+1
		default:
			return false
		}
	}
	for ei < len(g.elems) && g.elems[ei].star {
		ei++
	}
	return ei == len(g.elems)
}
