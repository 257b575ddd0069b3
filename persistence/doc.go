// Package persistence keeps sluice's append-only log: the record framing,
// the fsync policy with group commit, replay at startup and background
// rewrite (compaction).
//
// # Files
//
// The log lives in a directory (--dir) as a manifest and the files it names:
//
//	sluice.manifest      which files make the log, in replay order
//	sluice.<N>.base      a snapshot: the whole state as records (optional)
//	sluice.<N>.incr      changes after that snapshot, appended live
//
// Replay reads the base, then each incr file in order. A rewrite starts a new
// incr file (so writes go on), builds a new base from the older files in the
// background, then switches the manifest to [new base, new incr] with an
// atomic rename. A crash at any moment leaves a manifest naming a complete,
// consistent set of files.
//
// Only the manifest says which files make the log, so Open refuses to start
// when the directory holds log files but no manifest (it would start empty
// and later write over them), or when the manifest names a file that is
// not there; `sluice check-aof --rebuild-manifest DIR` writes a manifest
// from the files present. Files the manifest does not name are what a
// rewrite that stopped leaves behind: they are never read nor written. A
// new file, incr or base, is numbered above every sluice.<N>.* file in the
// directory and created exclusively (O_EXCL), and made durable before a
// manifest names it; the manifest's last incr file is the only one ever
// opened to append to what it holds.
//
// # Records
//
// Every file is a sequence of framed records:
//
//	+---------+--------------+---------------+-------------------+
//	| len (4) | len crc (4)  | body crc (4)  | body (len bytes)  |
//	+---------+--------------+---------------+-------------------+
//	  uint32 LE, checksums CRC-32C
//	body: op (1 byte), then fields as (tag byte, value); integers are
//	zig-zag varints, strings and byte slices are length-prefixed.
//
// The length has a checksum of its own, so a damaged length is told apart
// from a record that a crash cut short.
//
// The tags and their encodings are store.Record's `log` struct tags, read
// into record_codec.go by TestCodecGenerated (rerun it with -update after
// changing the struct). testdata/records-v1.bin holds every kind of record
// as it has been written, and must keep decoding to the same bytes.
//
// A transaction (MULTI/EXEC) is logged as one unit: a frame like a
// record's whose body starts with 0xff (no record kind) and holds the
// transaction's records, each framed as above, back to back:
//
//	+---------+--------------+---------------+------+-----------------------+
//	| len (4) | len crc (4)  | body crc (4)  | 0xff | record, record, ...   |
//	+---------+--------------+---------------+------+-----------------------+
//
// Replay reads a unit whole before applying any of it, so a transaction is
// all there or not at all: a unit cut short is a torn tail like any record,
// and a unit whose checksum holds but whose inside does not is corruption.
// A transaction of one record is logged as that record.
//
// A record cut short at the end of the last incr file is a torn write from a
// crash: it is cut off with a warning. A bad record anywhere else is
// corruption: loading stops and names the file and offset; `sluice
// check-aof --fix FILE` truncates a file at its last good record.
//
// # Durability
//
// Records are appended to an in-memory buffer under the store's locks.
// With appendfsync always, an operation then waits (Wait) until its record is
// written and fsynced: whoever waits first writes and fsyncs everything
// buffered so far, so concurrent clients share one write and one fsync (group
// commit). With everysec and no, the reply does not wait: a writer goroutine
// writes the buffer as soon as it fills (one write per batch), and with
// everysec a background goroutine fsyncs once a second, so a crash of the
// machine loses at most about the last second or two, and a crash of the
// process only what was not yet written (milliseconds). A failed write or
// fsync makes the log refuse changes (MISCONF) until a retry succeeds: a
// write error until a write succeeds, an fsync error until an fsync of the
// same file does (a write alone does not clear it, and written records are
// never written twice). When the fsync that fails is that of the file a
// rewrite switches away from, no later fsync can cover it: the rewrite goes
// on, and its snapshot, fsynced, is what clears the failure; should the
// rewrite fail, another is tried every 10 seconds.
//
// An automatic rewrite starts when the log has reached its minimum size,
// has grown by the configured percentage since the last rewrite, and would
// at least halve: its output is estimated from the store's memory estimate
// and the snapshot bytes per byte of it that the last rewrite measured.
package persistence
