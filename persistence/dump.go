package persistence

import (
	"errors"
	"fmt"
	"io"

	"sluice/store"
)

// A dump is a store's whole state as a rewrite's base file holds it: the
// records store.Dump emits, each framed as in the log. A replicated group
// ships it as its raft snapshots.

// WriteDump writes st's state as of now to w. Nothing else may change st
// meanwhile (see store.Dump).
func WriteDump(w io.Writer, st *store.Store, now int64) error {
	var buf []byte
	return st.Dump(now, func(r *store.Record) error {
		buf = appendRecord(buf[:0], r)
		_, err := w.Write(buf)
		return err
	})
}

// ReadDump replays the dump in data into st, which must be empty. A dump
// that is cut short or damaged is an error; what was replayed before it
// stays, so the caller starts again from an empty store.
func ReadDump(data []byte, st *store.Store) error {
	st.BeginReplay()
	defer st.EndReplay()
	var r store.Record
	var unit []store.Record
	for off := 0; off < len(data); {
		n, recs, err := readRecord(data[off:], &r, unit)
		if err != nil {
			if errors.Is(err, errShort) {
				return fmt.Errorf("dump cut short at byte %d of %d", off, len(data))
			}
			return fmt.Errorf("dump damaged at byte %d: %w", off, err)
		}
		unit = recs
		if len(recs) == 0 {
			recs = append(recs, r)
		}
		for i := range recs {
			if err := st.Replay(&recs[i]); err != nil {
				return fmt.Errorf("dump record at byte %d: %w", off, err)
			}
		}
		clear(unit)
		off += n
	}
	return nil
}
