package store

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
)

var (
	_ Generator = (*SeqGenerator)(nil)
	_ Generator = (*RandomGenerator)(nil)
)

// SeqGenerator is a deterministic Generator for tests and replay checks: job
// ids "j1", "j2", ... and tokens "1", "2", ...
type SeqGenerator struct {
	ids    atomic.Uint64
	_      [56]byte // pushes and reservations count on lines of their own
	tokens atomic.Uint64
}

// NewSeqGenerator returns a SeqGenerator starting at 1.
func NewSeqGenerator() *SeqGenerator { return &SeqGenerator{} }

// AppendJobID implements Generator.
func (g *SeqGenerator) AppendJobID(dst []byte, _ int64) []byte {
	return strconv.AppendUint(append(dst, 'j'), g.ids.Add(1), 10)
}

// AppendToken implements Generator.
func (g *SeqGenerator) AppendToken(dst []byte, _ int64) []byte {
	return strconv.AppendUint(dst, g.tokens.Add(1), 10)
}

// RandomGenerator is the production Generator. Job ids are 16 characters of
// Crockford base32: 9 for the milliseconds (45 bits, so ids sort roughly by
// time until the year 3084), then 7 for a 32-bit counter. The counter's top
// bits name one of genSlots independent sub-generators (AppendJobID picks
// one at random per id, so that concurrent callers rarely share a lock or a
// cache line; the store has each queue shard draw from its own, see
// AppendJobIDFrom); the rest counts up from a random start each
// millisecond, so ids stay unique
// (distinct slots, or one slot's strictly increasing count). Tokens carry
// 64 random bits (math/rand/v2's randomly seeded generator: tokens must be
// unique, not secret).
type RandomGenerator struct {
	slots [genSlots]genSlot
}

const (
	genSlotBits = 6
	genSlots    = 1 << genSlotBits
	genCtrBits  = 32 - genSlotBits // 67M ids per slot per millisecond
)

type genSlot struct {
	mu   sync.Mutex // protects last and ctr
	last int64
	ctr  uint32
	_    [40]byte // a cache line per slot
}

// NewRandomGenerator returns a generator; each slot draws a random
// starting count at every new millisecond.
func NewRandomGenerator() *RandomGenerator { return &RandomGenerator{} }

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// crockfordValue maps a character of crockford to its value; any other
// byte to 255.
var crockfordValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for i := range len(crockford) {
		t[crockford[i]] = byte(i)
	}
	return t
}()

// AppendJobID implements Generator.
func (g *RandomGenerator) AppendJobID(dst []byte, now int64) []byte {
	return g.AppendJobIDFrom(dst, now, int(rand.Uint32()))
}

// AppendJobIDFrom is AppendJobID from sub-generator slot (taken modulo
// their number). Ids drawn one after another from one sub-generator in one
// millisecond count up: a caller that keeps to one slot gets ids that the
// id index keeps side by side (see idIndex.hash).
func (g *RandomGenerator) AppendJobIDFrom(dst []byte, now int64, slot int) []byte {
	slot &= genSlots - 1
	sl := &g.slots[slot]
	sl.mu.Lock()
	if now > sl.last {
		sl.last = now
		sl.ctr = rand.Uint32() >> (genSlotBits + 1) // leave room to count up
	} else {
		sl.ctr++
		if sl.ctr == 1<<genCtrBits { // 67M in one millisecond: borrow the next one
			sl.last++
			sl.ctr = 0
		}
	}
	ms, ctr := uint64(sl.last), uint64(slot)<<genCtrBits|uint64(sl.ctr)
	sl.mu.Unlock()
	return appendGenID(dst, ms, ctr)
}

// appendGenID appends the generated form of an id: ms in 9 Crockford
// characters, then ctr (35 bits) in 7.
func appendGenID(dst []byte, ms, ctr uint64) []byte {
	var out [16]byte
	for i := 15; i >= 9; i-- {
		out[i] = crockford[ctr&31]
		ctr >>= 5
	}
	for i := 8; i >= 0; i-- {
		out[i] = crockford[ms&31]
		ms >>= 5
	}
	return append(dst, out[:]...)
}

// AppendToken implements Generator.
func (g *RandomGenerator) AppendToken(dst []byte, _ int64) []byte {
	v := rand.Uint64()
	var out [13]byte
	for i := 12; i >= 0; i-- {
		out[i] = crockford[v&31]
		v >>= 5
	}
	return append(dst, out[:]...)
}
