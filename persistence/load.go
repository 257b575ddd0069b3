package persistence

import (
	"errors"
	"fmt"
	"io/fs"

	"sluice/store"
)

var errNotExist = fs.ErrNotExist

// CorruptError names where a log file is unreadable.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("append-only log %s is corrupt at offset %d (%s); run `sluice check-aof --fix %s` to truncate it at the last good record, losing what follows",
		e.File, e.Offset, e.Reason, e.File)
}

// replay feeds the records of files into st. When lastIsLive, a torn tail of
// the last file is cut off (it is the file that was being appended to).
func (l *Log) replay(st *store.Store, files []string, lastIsLive bool, ls *LoadStats) error {
	for i, name := range files {
		path := l.path(name)
		data, err := l.cfg.FS.ReadFile(path)
		if err != nil {
			// Never taken for empty: a file is made durable before a
			// manifest names it, so a missing one is lost data.
			return fmt.Errorf("reading %s: %w", path, err)
		}
		ls.Files++
		good, err := l.replayData(st, data, ls)
		if err != nil {
			torn := errors.Is(err, errShort) || (errors.Is(err, errCorrupt) && allZero(data[good:]))
			if i != len(files)-1 || !lastIsLive || !torn {
				return &CorruptError{File: path, Offset: int64(good), Reason: err.Error()}
			}
			l.log.Warn().Str("file", path).Int("offset", good).Int("bytes", len(data)-good).
				Msg("append-only log ends with a torn record: cutting it off")
			if err := l.cfg.FS.Truncate(path, int64(good)); err != nil {
				return fmt.Errorf("truncating %s: %w", path, err)
			}
			ls.Truncated += int64(len(data) - good)
		}
		ls.Bytes += int64(good)
		if i == len(files)-1 {
			l.lastFileSize = int64(good)
		}
	}
	return nil
}

// replayData replays one file's bytes and returns how many were good.
func (l *Log) replayData(st *store.Store, data []byte, ls *LoadStats) (int, error) {
	var r store.Record
	var unit []store.Record
	off := 0
	for off < len(data) {
		n, recs, err := readRecord(data[off:], &r, unit)
		if err != nil {
			return off, err
		}
		unit = recs
		if len(recs) == 0 {
			recs = append(recs, r) // a record alone: a unit of one
		}
		// A unit is read whole before any of it applies: all or none.
		for i := range recs {
			if err := l.apply(st, &recs[i], off, ls); err != nil {
				return off, err
			}
		}
		clear(unit)
		off += n
	}
	return off, nil
}

// apply replays one record read at offset off.
func (l *Log) apply(st *store.Store, r *store.Record, off int, ls *LoadStats) error {
	if r.Now > ls.LastNow {
		ls.LastNow = r.Now
	}
	if err := st.Replay(r); err != nil {
		if !errors.Is(err, store.ErrReplay) {
			return err
		}
		ls.Skipped++
		l.log.Warn().Err(err).Int("offset", off).Msg("skipping a logged record that does not fit")
	}
	ls.Records++
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// CheckResult is what Check found in a file.
type CheckResult struct {
	Records int64
	Good    int64 // bytes of valid records from the start
	Size    int64
	Problem string // empty if the whole file is valid
	Fixed   bool
}

// Check reads a log file and reports its first bad record. With fix, the
// file is truncated at the last good record.
func Check(fsys FS, path string, fix bool) (CheckResult, error) {
	data, err := fsys.ReadFile(path)
	if err != nil {
		return CheckResult{}, err
	}
	res := CheckResult{Size: int64(len(data))}
	var r store.Record
	var unit []store.Record
	off := 0
	for off < len(data) {
		n, recs, err := readRecord(data[off:], &r, unit)
		if err != nil {
			res.Problem = err.Error()
			break
		}
		res.Records += int64(max(len(recs), 1))
		unit = recs
		clear(unit)
		off += n
	}
	res.Good = int64(off)
	if res.Problem != "" && fix {
		if err := fsys.Truncate(path, res.Good); err != nil {
			return res, err
		}
		res.Fixed = true
	}
	return res, nil
}
