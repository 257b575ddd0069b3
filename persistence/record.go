package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"sluice/store"
)

const (
	headerSize = 12
	// MaxRecord bounds a record's body: a larger length field is corruption,
	// not a torn write.
	MaxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord frames r onto buf. Its fields are written by appendFields
// (record_codec.go, generated from store.Record's declaration).
func appendRecord(buf []byte, r *store.Record) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.Op))
	buf = appendFields(buf, r)
	body := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(body, castagnoli))
	return buf
}

// The encodings of one field: its number, then its value. Zero values are
// left out, except a payload, kept when empty but not nil.

func putInt(buf []byte, tag byte, v int64) []byte {
	if v == 0 {
		return buf
	}
	return binary.AppendVarint(append(buf, tag), v)
}

func putUint(buf []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return buf
	}
	return binary.AppendUvarint(append(buf, tag), v)
}

func putFlag(buf []byte, tag byte, v bool) []byte {
	if !v {
		return buf
	}
	return append(buf, tag)
}

func putString(buf []byte, tag byte, v string) []byte {
	if v == "" {
		return buf
	}
	buf = binary.AppendUvarint(append(buf, tag), uint64(len(v)))
	return append(buf, v...)
}

func putBytes(buf []byte, tag byte, v []byte) []byte {
	if v == nil {
		return buf
	}
	buf = binary.AppendUvarint(append(buf, tag), uint64(len(v)))
	return append(buf, v...)
}

func putInts(buf []byte, tag byte, v []int64) []byte {
	if len(v) == 0 {
		return buf
	}
	buf = binary.AppendUvarint(append(buf, tag), uint64(len(v)))
	for _, t := range v {
		buf = binary.AppendVarint(buf, t)
	}
	return buf
}

func putStrings(buf []byte, tag byte, v []string) []byte {
	if len(v) == 0 {
		return buf
	}
	buf = binary.AppendUvarint(append(buf, tag), uint64(len(v)))
	for _, s := range v {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return buf
}

// unitOp is the first byte of a unit's body, where a record has its op: a
// unit frames the records of one transaction, back to back, each framed
// as on its own. It is no store.Op, so no store record kind can take it.
const unitOp = 0xff

// appendUnit frames recs, records framed by appendRecord, as one unit onto
// buf.
func appendUnit(buf, recs []byte) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, unitOp)
	buf = append(buf, recs...)
	body := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(body, castagnoli))
	return buf
}

// Errors of reading a record.
var (
	errShort   = errors.New("record cut short")
	errCorrupt = errors.New("record is corrupt")
)

// readRecord decodes the record at the start of data and returns its size.
// errShort means data ends inside the record (a torn tail if nothing
// follows); errCorrupt means the bytes are not a valid record. A unit is
// decoded whole into recs (reused), each record checked, and r is left
// alone; for a record, recs comes back empty.
func readRecord(data []byte, r *store.Record, recs []store.Record) (int, []store.Record, error) {
	recs = recs[:0]
	body, n, err := readFrame(data)
	if err != nil {
		return 0, recs, err
	}
	if body[0] != unitOp {
		if err := decodeBody(body, r); err != nil {
			return 0, recs, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		return n, recs, nil
	}
	inner := body[1:]
	if len(inner) == 0 {
		return 0, recs, fmt.Errorf("%w: an empty unit", errCorrupt)
	}
	for len(inner) > 0 {
		b, k, err := readFrame(inner)
		if err == nil && b[0] == unitOp {
			err = errors.New("a unit inside a unit")
		}
		var rec store.Record
		if err == nil {
			err = decodeBody(b, &rec)
		}
		if err != nil {
			// The unit's checksum held, so its inside is not torn.
			return 0, recs, fmt.Errorf("%w: record %d of a unit: %v", errCorrupt, len(recs)+1, err)
		}
		recs = append(recs, rec)
		inner = inner[k:]
	}
	return n, recs, nil
}

// readFrame checks the frame at the start of data (lengths and checksums)
// and returns its body and size, with errShort or errCorrupt as
// readRecord.
func readFrame(data []byte) ([]byte, int, error) {
	if len(data) < headerSize {
		return nil, 0, errShort
	}
	n := binary.LittleEndian.Uint32(data)
	if crc32.Checksum(data[:4], castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return nil, 0, fmt.Errorf("%w: length checksum mismatch", errCorrupt)
	}
	if n == 0 || n > MaxRecord {
		return nil, 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	if uint64(len(data)) < headerSize+uint64(n) {
		return nil, 0, errShort // the length is sound: the record was cut short
	}
	body := data[headerSize : headerSize+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[8:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return body, headerSize + int(n), nil
}

func decodeBody(b []byte, r *store.Record) error {
	*r = store.Record{Op: store.Op(b[0])}
	if !r.Op.Valid() {
		return fmt.Errorf("unknown record kind %d", b[0])
	}
	d := decoder{b: b, p: 1}
	for d.p < len(b) && d.err == nil {
		tag := b[d.p]
		d.p++
		if !decodeField(&d, r, tag) {
			return fmt.Errorf("unknown field %d", tag)
		}
	}
	return d.err
}

// decoder reads a record's fields; its first error sticks.
type decoder struct {
	b   []byte
	p   int
	err error
}

func (d *decoder) varint() int64 {
	v, k := binary.Varint(d.b[d.p:])
	if k <= 0 {
		d.err = errors.New("bad integer")
		return 0
	}
	d.p += k
	return v
}

func (d *decoder) uvarint() uint64 {
	v, k := binary.Uvarint(d.b[d.p:])
	if k <= 0 {
		d.err = errors.New("bad integer")
		return 0
	}
	d.p += k
	return v
}

func (d *decoder) flag() bool { return true } // the number alone says it

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)-d.p) {
		d.err = errors.New("bad length")
		return nil
	}
	v := d.b[d.p : d.p+int(n) : d.p+int(n)]
	d.p += int(n)
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

// payload copies: the record outlives the buffer it was read from.
func (d *decoder) payload() []byte { return append([]byte{}, d.bytes()...) }

// count reads a list's length, bounded by the record's size.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errors.New("bad list length")
		return 0
	}
	return n
}

func (d *decoder) ints() []int64 {
	n := d.count()
	if d.err != nil {
		return nil
	}
	v := make([]int64, 0, n)
	for k := uint64(0); k < n && d.err == nil; k++ {
		v = append(v, d.varint())
	}
	return v
}

func (d *decoder) strs() []string {
	n := d.count()
	if d.err != nil {
		return nil
	}
	v := make([]string, 0, n)
	for k := uint64(0); k < n && d.err == nil; k++ {
		v = append(v, d.str())
	}
	return v
}
