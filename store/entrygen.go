package store

import (
	"encoding/binary"
	"errors"
)

var _ Generator = (*EntryGenerator)(nil)

// EntryGenerator is the Generator of a replicated store. The nodes of a
// group apply the same entries in the same order; this generator draws the
// same ids and tokens on each of them from what it holds (the last
// millisecond and counts, part of a snapshot: State/SetState) and from the
// seed of the entry being applied (Begin). Its ids have RandomGenerator's
// form: 9 characters of milliseconds, then a count that starts at a
// seed-drawn place in each new millisecond and counts up. Its tokens are
// 26 characters: a counter passed through a bijection of 64 bits (unique),
// then 64 bits drawn from the entry's seed and that counter, so that one
// token does not tell the next (the seeds are the leader's random bytes).
//
// Not safe for concurrent use: entries are applied one at a time.
type EntryGenerator struct {
	seed   uint64 // from the entry being applied
	seed2  uint64 // its second half, for tokens
	last   int64  // millisecond of the last id
	ctr    uint64 // its count
	tokens uint64 // tokens drawn so far
}

// EntryGeneratorStateLen is the size of State's encoding.
const EntryGeneratorStateLen = 24

// Begin starts an entry with its seed.
func (g *EntryGenerator) Begin(seed []byte) {
	var s [16]byte
	copy(s[:], seed)
	g.seed = binary.BigEndian.Uint64(s[:8])
	g.seed2 = binary.BigEndian.Uint64(s[8:])
}

// AppendJobID implements Generator.
func (g *EntryGenerator) AppendJobID(dst []byte, now int64) []byte {
	const ctrMax = 1 << 35 // the 7 characters after the milliseconds
	if now > g.last {
		g.last = now
		g.ctr = mix64(g.seed^uint64(now)) >> 30 // 34 bits: room to count up
	} else {
		g.ctr++
		if g.ctr == ctrMax {
			g.last++
			g.ctr = 0
		}
	}
	return appendGenID(dst, uint64(g.last), g.ctr)
}

// AppendToken implements Generator.
func (g *EntryGenerator) AppendToken(dst []byte, _ int64) []byte {
	g.tokens++
	dst = appendBase32(dst, mix64(g.tokens))
	return appendBase32(dst, mix64(g.seed2^mix64(g.tokens^g.seed)))
}

// appendBase32 appends v in 13 Crockford characters.
func appendBase32(dst []byte, v uint64) []byte {
	var out [13]byte
	for i := 12; i >= 0; i-- {
		out[i] = crockford[v&31]
		v >>= 5
	}
	return append(dst, out[:]...)
}

// State encodes what the generator carries from entry to entry.
func (g *EntryGenerator) State() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(g.last))
	b = binary.BigEndian.AppendUint64(b, g.ctr)
	return binary.BigEndian.AppendUint64(b, g.tokens)
}

// SetState restores what State encoded.
func (g *EntryGenerator) SetState(b []byte) error {
	if len(b) != EntryGeneratorStateLen {
		return errors.New("generator state of the wrong size")
	}
	g.last = int64(binary.BigEndian.Uint64(b))
	g.ctr = binary.BigEndian.Uint64(b[8:])
	g.tokens = binary.BigEndian.Uint64(b[16:])
	return nil
}

// mix64 is splitmix64's finalizer: a bijection on 64 bits, so distinct
// inputs give distinct outputs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
