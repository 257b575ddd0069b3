package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An entry is what the leader proposes to raft: the commands of many
// clients, decided once, that every node applies in order.
//
//	entry   = version:1 kind:1 now:8 seed:16 count:uvarint batch*
//	batch   = ncmds:uvarint cmd*        (one client's commands; more than one: a MULTI/EXEC)
//	cmd     = nargs:uvarint arg*
//	arg     = len:uvarint bytes
//
// now is the leader's clock (Unix ms), never earlier than the previous
// entry's; seed feeds the ids and tokens the entry's commands create. A
// tick entry (KindTick) carries no batches: it only moves time forward.
// Integers are big-endian; uvarints are encoding/binary's.
const EntryVersion = 1

// Kinds of entries.
const (
	KindCommands = 1 // batches of client commands
	KindTick     = 2 // time passes: leases end, delayed jobs come due
)

// SeedLen is the size of an entry's seed.
const SeedLen = 16

// Entry is a decoded entry.
type Entry struct {
	Kind    byte
	Now     int64
	Seed    [SeedLen]byte
	Batches []Batch
}

// Batch is one client's commands in an entry: a single command, or the
// commands of a MULTI/EXEC applied as one.
type Batch [][][]byte

// headerLen is the fixed part of an entry: version, kind, now, seed.
const headerLen = 1 + 1 + 8 + SeedLen

// ErrEntryVersion is returned for an entry of a format this node cannot
// apply: the node must stop applying, never skip it.
var ErrEntryVersion = errors.New("raft entry of an unknown format version")

// AppendEntry encodes e after dst.
func AppendEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, EntryVersion, e.Kind)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Now))
	dst = append(dst, e.Seed[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Batches)))
	for _, b := range e.Batches {
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		for _, cmd := range b {
			dst = binary.AppendUvarint(dst, uint64(len(cmd)))
			for _, a := range cmd {
				dst = binary.AppendUvarint(dst, uint64(len(a)))
				dst = append(dst, a...)
			}
		}
	}
	return dst
}

// DecodeEntry decodes data. Arguments alias data. A malformed entry is an
// error, never a panic, and no count in it makes the decoder allocate
// more than data's length allows.
func DecodeEntry(data []byte) (*Entry, error) {
	if len(data) < headerLen {
		return nil, fmt.Errorf("raft entry of %d bytes: shorter than its header", len(data))
	}
	if data[0] != EntryVersion {
		return nil, fmt.Errorf("%w: %d (this node applies %d)", ErrEntryVersion, data[0], EntryVersion)
	}
	e := &Entry{Kind: data[1], Now: int64(binary.BigEndian.Uint64(data[2:10]))}
	copy(e.Seed[:], data[10:headerLen])
	if e.Kind != KindCommands && e.Kind != KindTick {
		return nil, fmt.Errorf("%w: entry kind %d", ErrEntryVersion, e.Kind)
	}
	d := decoder{b: data[headerLen:]}
	nb := d.count()
	if e.Kind == KindTick && nb != 0 {
		return nil, errors.New("raft entry: a tick carries commands")
	}
	e.Batches = make([]Batch, 0, nb)
	for range nb {
		nc := d.count()
		if d.err == nil && nc == 0 {
			d.err = errors.New("empty batch")
		}
		b := make(Batch, 0, nc)
		for range nc {
			na := d.count()
			if d.err == nil && na == 0 {
				d.err = errors.New("command without a name")
			}
			cmd := make([][]byte, 0, na)
			for range na {
				cmd = append(cmd, d.bytes())
			}
			b = append(b, cmd)
		}
		e.Batches = append(e.Batches, b)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes past its end", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("raft entry: %w", d.err)
	}
	return e, nil
}

// decoder reads uvarints and byte strings, keeping the first error.
type decoder struct {
	b       []byte
	err     error
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) {
		d.err = errors.New("truncated, overlong or padded length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that each take at least one byte: it
// cannot exceed the bytes left, which bounds what the caller allocates.
func (d *decoder) count() int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)) {
		d.err = fmt.Errorf("count %d past the %d bytes left", v, len(d.b))
	}
	if d.err != nil {
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = fmt.Errorf("argument of %d bytes past the %d left", n, len(d.b))
	}
	if d.err != nil {
		return nil
	}
	a := d.b[:n:n]
	d.b = d.b[n:]
	return a
}
