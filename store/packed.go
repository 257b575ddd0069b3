package store

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Packed queued jobs. A job pushed straight into queued (no DELAY or AT)
// and never reserved costs no record of its own: it is an entry in a chunk,
// a byte buffer owned by its lane's priority bucket (small chunks share
// one allocation with their header, newChunk). The lane
// gives its queue, handler and keys, the bucket its priority; the entry
// holds the rest. A bucket's FIFO is then two FIFOs, each in entry order
// (seq): its chunks, oldest first, and a ring of *job for the jobs that
// re-entered queued (released, lease expired, retried, due) or were too big
// to pack. The bucket's head is the one with the smaller seq.
//
// A packed job leaves the packed form only by leaving queued (reserve,
// cancel, purge): it is then decoded into a *job whose payload is a copy, so
// that no job pins a chunk, and its entry is marked dead. It never goes
// back. A chunk with no live entry is dropped from its bucket, except the
// last one, which is rewound and keeps taking entries; a lane keeps one
// such empty chunk aside when its bucket empties, so a lane drained as fast
// as it fills allocates no chunk at all.
//
// The id index points at a packed job's chunk, with the entry's offset in
// the slot's hash word (see idSlot). An entry's bytes never change while it
// is indexed, but for its dead flag, so the index may compare ids with a
// chunk's bytes under its own lock; everything else about chunks is
// guarded by the lock of the shard that owns the queue. Since a chunk is
// written again once rewound, nothing the store hands out points into one:
// ids and payloads leave as copies.

const (
	chunkBits = 12
	chunkMax  = 1 << chunkBits // largest chunk: offsets fit in the index slot's offset bits
	chunkMin  = 256            // a lane's first chunk; each next one doubles, up to chunkMax
	packMax   = 1024           // largest id and payload, together, of a packed job; a bigger job is kept as a *job
)

// Entry layout: a flags byte, then varints: seq (zigzag, from the chunk's
// seq0), id length, id, payload length, payload, created (zigzag, from
// created0), created_at (zigzag, from at0), and, when entCustom is set, max
// attempts and backoff (zigzag). updated_at and run_at equal created_at.
const (
	entDead   = 1 << iota // left the packed form: no index slot refers to it
	entCustom             // max attempts and backoff follow; else the defaults
	entNil                // the payload is nil, not merely empty
)

type chunk struct {
	prev, next *chunk  // in its bucket's FIFO
	b          *bucket // the bucket holding it; nil when aside or dropped
	ln         *lane   // never changes
	buf        []byte  // never reassigned: the index reads ids in it
	n          int     // bytes written
	head       int     // the first live entry; n when none
	live       int     // live entries
	seq0       uint64  // bases of the entries' deltas
	created0   uint64
	at0        int64
}

// packing is what a packed entry holds.
type packing struct {
	seq, created               uint64
	createdAt, maxAtt, backoff int64
	id                         string
	payload                    []byte
}

// entry is a decoded packed entry; id and payload point into the chunk.
type entry struct {
	packing
	idb []byte
	end int // offset of the next entry
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
func varintLen(v int64) int   { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// size is the bytes p's entry takes in c (whose bases are set).
func (c *chunk) size(p *packing) int {
	n := 1 + varintLen(int64(p.seq-c.seq0)) + uvarintLen(uint64(len(p.id))) + len(p.id) +
		uvarintLen(uint64(len(p.payload))) + len(p.payload) +
		varintLen(int64(p.created-c.created0)) + varintLen(p.createdAt-c.at0)
	if p.custom() {
		n += varintLen(p.maxAtt) + varintLen(p.backoff)
	}
	return n
}

// rewind empties c, which holds no live entry, for p's entry to come
// first.
func (c *chunk) rewind(p *packing) {
	c.n, c.head = 0, 0
	c.base(p)
}

// base sets c's delta bases from its first entry.
func (c *chunk) base(p *packing) {
	c.seq0, c.created0, c.at0 = p.seq, p.created, p.createdAt
}

// put writes p's entry at c.n, which must have room for it, and returns
// where it ends; c.n is not moved.
func (c *chunk) put(p *packing) int {
	b := c.buf[c.n:c.n:len(c.buf)]
	var flags byte
	if p.payload == nil {
		flags |= entNil
	}
	custom := p.custom()
	if custom {
		flags |= entCustom
	}
	b = append(b, flags)
	b = appendVarint(b, int64(p.seq-c.seq0))
	b = appendUvarint(b, uint64(len(p.id)))
	b = append(b, p.id...)
	b = appendUvarint(b, uint64(len(p.payload)))
	b = append(b, p.payload...)
	b = appendVarint(b, int64(p.created-c.created0))
	b = appendVarint(b, p.createdAt-c.at0)
	if custom {
		b = appendVarint(b, p.maxAtt)
		b = appendVarint(b, p.backoff)
	}
	if cap(b) != len(c.buf)-c.n {
		panic("store: packed entry outgrew its chunk")
	}
	return c.n + len(b)
}

// appendUvarint and appendVarint are binary's, with one-byte values, the
// common case, taking no call.
func appendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, v)
}

func appendVarint(b []byte, v int64) []byte {
	return appendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

// uvarint and varint decode the varint at buf[i:], returning it and the
// offset after it; one-byte values, the common case, take no call.
func uvarint(buf []byte, i int) (uint64, int) {
	if b := buf[i]; b < 0x80 {
		return uint64(b), i + 1
	}
	v, k := binary.Uvarint(buf[i:])
	return v, i + k
}

func varint(buf []byte, i int) (int64, int) {
	u, i := uvarint(buf, i)
	return int64(u>>1) ^ -int64(u&1), i
}

// idAt returns the id of the entry at off. It reads only bytes that never
// change once the entry is indexed, so the index may call it under its own
// lock alone.
func (c *chunk) idAt(off int) []byte {
	_, i := uvarint(c.buf, off+1)
	l, i := uvarint(c.buf, i)
	return c.buf[i : i+int(l) : i+int(l)]
}

// seqAt returns the seq of the entry at off. Lock must be held.
func (c *chunk) seqAt(off int) uint64 {
	d, _ := varint(c.buf, off+1)
	return c.seq0 + uint64(d)
}

// dead reports whether the entry at off left the packed form. Lock must be
// held.
func (c *chunk) dead(off int) bool { return c.buf[off]&entDead != 0 }

// entry decodes the entry at off. Lock must be held.
func (c *chunk) entry(off int) entry {
	buf := c.buf
	flags := buf[off]
	var e entry
	d, i := varint(buf, off+1)
	e.seq = c.seq0 + uint64(d)
	l, i := uvarint(buf, i)
	e.idb = buf[i : i+int(l) : i+int(l)]
	e.id = unsafe.String(unsafe.SliceData(e.idb), len(e.idb)) // fixed while the entry is live
	i += int(l)
	l, i = uvarint(buf, i)
	if flags&entNil == 0 {
		e.payload = buf[i : i+int(l) : i+int(l)]
	}
	i += int(l)
	d, i = varint(buf, i)
	e.created = c.created0 + uint64(d)
	d, i = varint(buf, i)
	e.createdAt = c.at0 + d
	e.maxAtt, e.backoff = DefaultMaxAttempts, DefaultBackoff
	if flags&entCustom != 0 {
		e.maxAtt, i = varint(buf, i)
		e.backoff, i = varint(buf, i)
	}
	e.end = i
	return e
}

// skipDead moves c.head past dead entries. Lock must be held.
func (c *chunk) skipDead() {
	for c.head < c.n && c.dead(c.head) {
		c.head = c.entry(c.head).end
	}
}

// nextLive returns the first live entry after the one at off, or c.n.
// Lock must be held.
func (c *chunk) nextLive(off int) int {
	for off = c.entry(off).end; off < c.n && c.dead(off); off = c.entry(off).end {
	}
	return off
}

// ref names a held job: a *job, or a packed entry (chunk and offset).
type ref struct {
	j   *job
	c   *chunk
	off int
}

func (r ref) ok() bool { return r.j != nil || r.c != nil }

// shard is the shard whose lock guards the job. Any lock may be held.
func (r ref) shard() *shard {
	if r.j != nil {
		return r.j.ln.q.sh
	}
	return r.c.ln.q.sh
}

// lane is the job's lane. Lock must be held.
func (r ref) lane() *lane {
	if r.j != nil {
		return r.j.ln
	}
	return r.c.ln
}

// seq is the job's entry order into queued. Lock must be held.
func (r ref) seq() uint64 {
	if r.j != nil {
		return r.j.seq
	}
	return r.c.seqAt(r.off)
}

// packed FIFO of a bucket.

// packedFront returns the bucket's oldest packed entry's chunk, or nil.
func (b *bucket) packedFront() *chunk {
	if b.np == 0 {
		return nil
	}
	return b.first
}

// front is the bucket's head: the older of its ring's front and its first
// packed entry. The bucket must be non-empty and its ring's front live.
func (b *bucket) front() ref {
	c := b.packedFront()
	if c == nil {
		return ref{j: b.jobs.front()}
	}
	if b.jobs.len() > 0 {
		if j := b.jobs.front(); j.seq < c.seqAt(c.head) {
			return ref{j: j}
		}
	}
	return ref{c: c, off: c.head}
}

// link appends c to b's chunks.
func (b *bucket) link(c *chunk) {
	c.b, c.prev, c.next = b, b.last, nil
	if b.last != nil {
		b.last.next = c
	} else {
		b.first = c
	}
	b.last = c
}

// unlink takes c out of b's chunks.
func (b *bucket) unlink(c *chunk) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		b.first = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		b.last = c.prev
	}
	c.prev, c.next, c.b = nil, nil, nil
}

// dropChunks empties b's chunks, which hold no live entry, keeping the
// last aside in the lane for reuse.
func (b *bucket) dropChunks(l *lane) {
	last := b.last
	for c := b.first; c != nil; {
		next := c.next
		c.prev, c.next, c.b = nil, nil, nil
		c = next
	}
	b.first, b.last, b.np = nil, nil, 0
	if last != nil && (l.aside == nil || len(last.buf) >= len(l.aside.buf)) {
		l.aside = last
	}
}

// chunkFor returns the chunk p's entry goes in at the back of b (nil: a
// new bucket), not yet linked when new, with its bases set.
func (l *lane) chunkFor(b *bucket, p *packing) *chunk {
	if b != nil && b.last != nil {
		c := b.last
		if c.live == 0 {
			c.rewind(p)
		}
		if c.n+c.size(p) <= len(c.buf) {
			return c
		}
	} else if c := l.aside; c != nil {
		c.rewind(p)
		if c.n+c.size(p) <= len(c.buf) {
			return c
		}
	}
	// A new bucket's first chunk is sized for its first job (rounded up to
	// 64 bytes), so that jobs of many priorities, one bucket each, take
	// little. Each next chunk of
	// a bucket doubles from chunkMin, so that a long one allocates rarely.
	var h chunk
	h.ln = l
	h.base(p)
	size := (h.size(p) + 63) &^ 63
	if b != nil {
		size = min(chunkMin<<min(b.grown, chunkBits), chunkMax)
		if size < chunkMax {
			b.grown++
		}
	}
	for size < h.size(p) {
		size *= 2
	}
	if size > chunkMax { // only a generated id longer than MaxIdentifier gets here
		panic("store: a packed job does not fit in a chunk: is a generated id longer than MaxIdentifier?")
	}
	c := newChunk(size)
	h.buf = c.buf
	*c = h
	return c
}

// chunkWith is a chunk and its bytes in one allocation, so that reading a
// chunk not touched for a while (the head of one of 100,000 fair groups'
// lanes) reads its header and its first entries from adjacent lines, and
// the collector has one object to mark, not two. A is a byte array.
type chunkWith[A any] struct {
	c chunk
	b A
}

func chunkOf[A any](size int) *chunk {
	x := new(chunkWith[A])
	x.c.buf = unsafe.Slice((*byte)(unsafe.Pointer(&x.b)), size)
	return &x.c
}

// newChunk makes an empty chunk of size bytes: the sizes chunks of one job
// or of a bucket's first doublings take, up to 1 KiB, in one allocation
// with the header; other sizes keep their bytes apart.
func newChunk(size int) *chunk {
	switch size {
	case 64:
		return chunkOf[[64]byte](size)
	case 128:
		return chunkOf[[128]byte](size)
	case 192:
		return chunkOf[[192]byte](size)
	case 256:
		return chunkOf[[256]byte](size)
	case 320:
		return chunkOf[[320]byte](size)
	case 384:
		return chunkOf[[384]byte](size)
	case 512:
		return chunkOf[[512]byte](size)
	case 1024:
		return chunkOf[[1024]byte](size)
	}
	// Larger chunks keep their bytes apart: with the header they would
	// round up to a size class up to 16% larger.
	return &chunk{buf: make([]byte, size)}
}

// commitPacked makes the entry of p just written in c at c.n (ending at
// end) part of the lane's bucket of priority prio, and counts it.
func (l *lane) commitPacked(c *chunk, end int, prio int64) {
	b := l.bucketFor(prio)
	if c.b != b {
		if c.b != nil {
			panic("store: a chunk changed buckets")
		}
		if l.aside == c {
			l.aside = nil
		}
		if last := b.last; last != nil && last.live == 0 {
			b.unlink(last) // too small, and nothing in it is live
		}
		b.link(c)
	}
	if c.live == 0 {
		c.head = c.n
	}
	c.n = end
	c.live++
	b.np++
	l.n++
}

// unpack turns the live packed entry at off of c into a queued *job, marks
// the entry dead and points the index at the job. The job is in no FIFO
// but still counted in its lane's n: the caller takes it out (popHead,
// removeQueued or takeQueued) before anything looks at the lane. Lock must
// be held.
func (sh *shard) unpack(c *chunk, off int) *job {
	e := c.entry(off)
	b := c.b
	j := c.record(&e)
	j.payload, j.loose = bytes.Clone(e.payload), true
	if len(e.idb) <= len(j.text) {
		j.id = j.keepID(e.id)
	} else {
		j.id = string(e.idb) // no job pins a chunk
	}
	c.buf[off] |= entDead
	c.live--
	b.np--
	if off == c.head {
		c.head = e.end
		c.skipDead()
	}
	if c.live == 0 && c != b.last {
		b.unlink(c)
	}
	sh.index.replace(j.id, ref{c: c, off: off}, j)
	return j
}

// view decodes a packed entry into a *job that belongs nowhere, for code
// that only reads a job. Its payload points into the chunk: it is valid
// only while the lock is held. Lock must be held.
func (c *chunk) view(off int) *job {
	e := c.entry(off)
	j := c.record(&e)
	j.id, j.payload = string(e.idb), e.payload
	return j
}

// record makes the queued *job that c's entry e describes, without its id
// and payload. Lock must be held.
func (c *chunk) record(e *entry) *job {
	return &job{
		ln: c.ln, priority: c.b.prio, seq: e.seq, created: e.created, state: Queued,
		maxAtt: e.maxAtt, backoff: e.backoff,
		createdAt: e.createdAt, updatedAt: e.createdAt, runAt: e.createdAt, tidx: -1,
	}
}

// bytes is the memory estimate (JobBytes) of a packed job.
func (p *packing) bytes() int64 { return JobBytes(len(p.payload), len(p.id), 0) }

// custom reports whether p's max attempts and backoff are not the
// defaults, and so are written in its entry.
func (p *packing) custom() bool {
	return p.maxAtt != DefaultMaxAttempts || p.backoff != DefaultBackoff
}
