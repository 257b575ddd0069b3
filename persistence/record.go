package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"sluice/backpressure"
	"sluice/store"
)

const (
	headerSize = 12
	// MaxRecord bounds a record's body: a larger length field is corruption,
	// not a torn write.
	MaxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Field tags. Stored on disk: never renumber.
const (
	tNow = iota + 1
	tID
	tQueue
	tHandler
	tPayload
	tPriority
	tCKey
	tRKey
	tRunAt
	tAttempt
	tMaxAtt
	tBackoff
	tToken
	tWorker
	tExpires
	tError
	tHasError
	tState
	tAdmitted
	tKind
	tLimit
	tPeriod
	tSeq
	tCreated
	tTSeq
	tCreatedAt
	tUpdatedAt
	tPaused
	tPushed
	tSucc
	tFailed
	tTimes
	tStrings
	tIdemKey
)

// appendRecord frames r onto buf.
func appendRecord(buf []byte, r *store.Record) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.Op))
	i := func(tag byte, v int64) {
		if v != 0 {
			buf = append(buf, tag)
			buf = binary.AppendVarint(buf, v)
		}
	}
	u := func(tag byte, v uint64) {
		if v != 0 {
			buf = append(buf, tag)
			buf = binary.AppendUvarint(buf, v)
		}
	}
	str := func(tag byte, v string) {
		if v != "" {
			buf = append(buf, tag)
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
		}
	}
	flag := func(tag byte, v bool) {
		if v {
			buf = append(buf, tag)
		}
	}
	i(tNow, r.Now)
	str(tID, r.ID)
	str(tQueue, r.Queue)
	str(tHandler, r.Handler)
	if r.Payload != nil {
		buf = append(buf, tPayload)
		buf = binary.AppendUvarint(buf, uint64(len(r.Payload)))
		buf = append(buf, r.Payload...)
	}
	i(tPriority, r.Priority)
	str(tCKey, r.CKey)
	str(tRKey, r.RKey)
	i(tRunAt, r.RunAt)
	i(tAttempt, r.Attempt)
	i(tMaxAtt, r.MaxAtt)
	i(tBackoff, r.Backoff)
	str(tToken, r.Token)
	str(tWorker, r.Worker)
	i(tExpires, r.Expires)
	str(tError, r.Error)
	flag(tHasError, r.HasError)
	u(tState, uint64(r.State))
	flag(tAdmitted, r.Admitted)
	u(tKind, uint64(r.Kind))
	i(tLimit, r.Limit)
	i(tPeriod, r.Period)
	u(tSeq, r.Seq)
	u(tCreated, r.Created)
	u(tTSeq, r.TSeq)
	i(tCreatedAt, r.CreatedAt)
	i(tUpdatedAt, r.UpdatedAt)
	flag(tPaused, r.Paused)
	i(tPushed, r.Pushed)
	i(tSucc, r.Succ)
	i(tFailed, r.Failed)
	str(tIdemKey, r.IdemKey)
	if len(r.Times) > 0 {
		buf = append(buf, tTimes)
		buf = binary.AppendUvarint(buf, uint64(len(r.Times)))
		for _, t := range r.Times {
			buf = binary.AppendVarint(buf, t)
		}
	}
	if len(r.Strings) > 0 {
		buf = append(buf, tStrings)
		buf = binary.AppendUvarint(buf, uint64(len(r.Strings)))
		for _, s := range r.Strings {
			buf = binary.AppendUvarint(buf, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	body := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(body, castagnoli))
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
	p := 1
	var err error
	varint := func() int64 {
		v, k := binary.Varint(b[p:])
		if k <= 0 {
			err = errors.New("bad integer")
			return 0
		}
		p += k
		return v
	}
	uvarint := func() uint64 {
		v, k := binary.Uvarint(b[p:])
		if k <= 0 {
			err = errors.New("bad integer")
			return 0
		}
		p += k
		return v
	}
	bytes := func() []byte {
		n := uvarint()
		if err != nil || n > uint64(len(b)-p) {
			err = errors.New("bad length")
			return nil
		}
		v := b[p : p+int(n) : p+int(n)]
		p += int(n)
		return v
	}
	str := func() string { return string(bytes()) }
	for p < len(b) && err == nil {
		tag := b[p]
		p++
		switch tag {
		case tNow:
			r.Now = varint()
		case tID:
			r.ID = str()
		case tQueue:
			r.Queue = str()
		case tHandler:
			r.Handler = str()
		case tPayload:
			r.Payload = append([]byte{}, bytes()...)
		case tPriority:
			r.Priority = varint()
		case tCKey:
			r.CKey = str()
		case tRKey:
			r.RKey = str()
		case tRunAt:
			r.RunAt = varint()
		case tAttempt:
			r.Attempt = varint()
		case tMaxAtt:
			r.MaxAtt = varint()
		case tBackoff:
			r.Backoff = varint()
		case tToken:
			r.Token = str()
		case tWorker:
			r.Worker = str()
		case tExpires:
			r.Expires = varint()
		case tError:
			r.Error = str()
		case tHasError:
			r.HasError = true
		case tState:
			r.State = store.State(uvarint())
		case tAdmitted:
			r.Admitted = true
		case tKind:
			r.Kind = backpressure.Kind(uvarint())
		case tLimit:
			r.Limit = varint()
		case tPeriod:
			r.Period = varint()
		case tSeq:
			r.Seq = uvarint()
		case tCreated:
			r.Created = uvarint()
		case tTSeq:
			r.TSeq = uvarint()
		case tCreatedAt:
			r.CreatedAt = varint()
		case tUpdatedAt:
			r.UpdatedAt = varint()
		case tPaused:
			r.Paused = true
		case tPushed:
			r.Pushed = varint()
		case tSucc:
			r.Succ = varint()
		case tFailed:
			r.Failed = varint()
		case tIdemKey:
			r.IdemKey = str()
		case tTimes:
			n := uvarint()
			if n > uint64(len(b)) {
				return errors.New("bad list length")
			}
			r.Times = make([]int64, 0, n)
			for k := uint64(0); k < n && err == nil; k++ {
				r.Times = append(r.Times, varint())
			}
		case tStrings:
			n := uvarint()
			if n > uint64(len(b)) {
				return errors.New("bad list length")
			}
			r.Strings = make([]string, 0, n)
			for k := uint64(0); k < n && err == nil; k++ {
				r.Strings = append(r.Strings, str())
			}
		default:
			return fmt.Errorf("unknown field %d", tag)
		}
	}
	return err
}
