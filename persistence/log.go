package persistence

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"sluice/store"
)

// Fsync is the appendfsync policy.
type Fsync int

// The appendfsync policies, as Redis names them.
const (
	FsyncEverySec Fsync = iota
	FsyncAlways
	FsyncNo
)

func (f Fsync) String() string {
	switch f {
	case FsyncAlways:
		return "always"
	case FsyncNo:
		return "no"
	}
	return "everysec"
}

// ParseFsync reads "always", "everysec" or "no".
func ParseFsync(s string) (Fsync, error) {
	switch strings.ToLower(s) {
	case "always":
		return FsyncAlways, nil
	case "everysec":
		return FsyncEverySec, nil
	case "no":
		return FsyncNo, nil
	}
	return 0, fmt.Errorf("appendfsync must be always, everysec or no, not %q", s)
}

// Config tunes a Log. DefaultConfig gives the documented defaults.
type Config struct {
	Dir               string       // where the log lives; default ./data
	Fsync             Fsync        // default everysec
	RewriteMinSize    int64        // no automatic rewrite below this size; default 64 MiB
	RewritePercentage int          // rewrite when the log grew this much since the last one; default 100; 0: never
	Store             store.Config // for the store a rewrite rebuilds in the background
	FS                FS           // default OSFS
	Logger            zerolog.Logger
	Now               func() int64 // Unix ms; default the wall clock
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Dir:               "./data",
		Fsync:             FsyncEverySec,
		RewriteMinSize:    64 << 20,
		RewritePercentage: 100,
		Store:             store.DefaultConfig(),
		FS:                OSFS{},
		Logger:            zerolog.Nop(),
		Now:               func() int64 { return time.Now().UnixMilli() },
	}
}

// Validate reports the first setting a user must change.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("persistence: Dir must not be empty")
	case c.RewriteMinSize < 0:
		return errors.New("persistence: RewriteMinSize must not be negative")
	case c.RewritePercentage < 0:
		return errors.New("persistence: RewritePercentage must not be negative")
	case c.FS == nil || c.Now == nil:
		return errors.New("persistence: FS and Now are required")
	}
	return c.Store.Validate()
}

// Log is the append-only log. It implements store.Journal.
type Log struct {
	cfg Config
	log zerolog.Logger

	mu       sync.Mutex // protects the fields below
	cond     *sync.Cond // signalled when writing ends or err changes
	buf      []byte     // appended records not yet written
	spare    []byte
	appended uint64 // sequence number of the last appended record
	unit     bool   // between BeginUnit and EndUnit: Append adds to ubuf
	ubuf     []byte // the unit's records, framed, not yet in buf
	unitN    int    // how many records ubuf holds
	// unitLimit, if set, replaces maxUnit (tests).
	unitLimit int
	written   uint64 // ... of the last record written to the file
	synced    uint64 // ... of the last record fsynced
	writing   bool   // a waiter is writing buf (the group-commit leader)
	dirty     bool   // the file may end with part of a record (only the leader touches it)
	err       error  // why writes fail; nil when healthy
	// syncErr is a failed fsync: what was written may not be on disk. Only
	// a later fsync that covers it clears it; when it concerns a file a
	// rewrite switched away from (syncErrOld), only a rewrite's snapshot
	// does. Changes are refused meanwhile, as with err.
	syncErr    error
	syncErrOld bool
	oldUpto    uint64 // with syncErrOld: the last record the old file holds
	size       int64  // bytes written to the current incr file
	total      int64  // bytes in all files of the manifest
	lastBase   int64  // total right after the last rewrite (or load)
	man        manifest
	next       int // number for the next file
	stats      Stats
	closed     bool
	abandoned  bool // Abandon was called: waits give up

	lastFileSize int64 // set by replay: valid bytes of the last file

	// The live store, and how many bytes of snapshot a byte of its memory
	// estimate (store.Bytes) made at the last rewrite (at most 1): together
	// they say how large a rewrite's output would be now.
	st            *store.Store
	snapshotRatio float64 // guarded by mu

	fileMu sync.RWMutex // shared while the writer uses file; exclusive to replace or close it
	file   File

	rewriteMu sync.Mutex    // one rewrite at a time
	kick      chan struct{} // wakes the writer when the buffer was empty
	stop      chan struct{}
	done      sync.WaitGroup
}

var _ store.Journal = (*Log)(nil)

// Stats describe the log for INFO persistence.
type Stats struct {
	Size              int64 // bytes in the log's files
	BaseSize          int64 // bytes right after the last rewrite or load
	RewriteInProgress bool
	Rewrites          int64
	LastRewriteAt     int64  // Unix ms, 0 if never
	LastRewriteMillis int64  // how long it took
	LastRewriteStatus string // ok or err
	LastFsyncAt       int64  // Unix ms
	LastFsyncMicros   int64
	// Fsyncs is a histogram of fsync durations: Fsyncs.Counts[i] counts
	// those up to FsyncBounds[i] µs, the last count the rest.
	Fsyncs      FsyncHistogram
	WriteErrors int64
	LastError   string // empty when healthy
	Status      string // ok or err
	Loaded      LoadStats
}

// FsyncBounds are the upper bounds, in microseconds, of the fsync
// histogram's buckets.
var FsyncBounds = [...]int64{100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000}

// FsyncHistogram counts fsyncs by duration.
type FsyncHistogram struct {
	Counts    [len(FsyncBounds) + 1]uint64
	SumMicros int64
}

func (h *FsyncHistogram) observe(micros int64) {
	i := 0
	for i < len(FsyncBounds) && micros > FsyncBounds[i] {
		i++
	}
	h.Counts[i]++
	h.SumMicros += micros
}

// LoadStats describe what Open replayed.
type LoadStats struct {
	Files     int
	Records   int64
	Bytes     int64
	Truncated int64 // bytes of a torn tail cut off
	Skipped   int64 // records that did not fit the replayed state
	Millis    int64
	LastNow   int64 // the latest time a replayed record carries
}

// Open loads the log in cfg.Dir into st (which must be empty), installs the
// log as st's journal and starts its background work. A torn last record is
// cut off with a warning; corruption elsewhere is an error naming the file
// and offset. Log files without a manifest (ErrNoManifest), or a manifest
// naming a missing file (ErrMissingFile), are an error naming the files,
// and Open then changes nothing in the directory.
func Open(cfg Config, st *store.Store) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, log: cfg.Logger.With().Str("component", "aof").Logger(),
		stop: make(chan struct{}), kick: make(chan struct{}, 1),
		st: st, snapshotRatio: defaultSnapshotRatio}
	l.cond = sync.NewCond(&l.mu)
	if err := cfg.FS.MkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
	}
	start := time.Now()
	plan, err := planStart(cfg.FS, cfg.Dir)
	if err != nil {
		return nil, err
	}
	if len(plan.stray) > 0 {
		l.log.Warn().Strs("files", plan.stray).
			Msg("log files the manifest does not name (left by a rewrite that stopped): not read, never written to, new files are numbered above them")
	}
	man, f := plan.man, File(nil)
	l.next = plan.next
	if !plan.found {
		if len(plan.unused) > 0 {
			l.log.Warn().Strs("files", plan.unused).Msg("empty log files without a manifest: starting a new log numbered above them")
		}
		if f, man, err = l.create(); err != nil {
			return nil, err
		}
	}
	l.man = man
	st.BeginReplay()
	err = l.replay(st, man.files(), true, &l.stats.Loaded)
	st.EndReplay()
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	l.stats.Loaded.Millis = time.Since(start).Milliseconds()
	if f == nil {
		// The one file ever opened to append to what it holds.
		if f, err = cfg.FS.OpenAppend(l.path(man.last())); err != nil {
			return nil, err
		}
	}
	l.file = f
	l.total = l.stats.Loaded.Bytes
	l.lastBase = l.total
	l.size = l.lastFileSize
	l.stats.Status = "ok"
	l.stats.LastRewriteStatus = "ok"
	st.SetJournal(l)
	l.done.Add(2)
	go l.background()
	go l.writer()
	if n := st.ReleaseStranded(); n > 0 { // the log was torn before their release records
		l.log.Warn().Int("keys", n).Msg("unique keys whose jobs had left their scope released after replay")
	}
	return l, nil
}

func (l *Log) path(name string) string { return filepath.Join(l.cfg.Dir, name) }

// create starts a new log: its first incr file, made durable before the
// manifest names it, so a manifest never names a file that is not there.
func (l *Log) create() (File, manifest, error) {
	name := logFileName(l.next, "incr")
	l.next++
	f, err := l.cfg.FS.CreateNew(l.path(name))
	if err != nil {
		return nil, manifest{}, err
	}
	m := manifest{incrs: []string{name}}
	if err := l.cfg.FS.SyncDir(l.cfg.Dir); err == nil {
		err = l.writeManifest(m)
	}
	if err != nil {
		f.Close()
		return nil, manifest{}, err
	}
	return f, m, nil
}

// Append buffers r and returns its sequence number. It never blocks on I/O.
// Inside a unit it returns 0: the record is written with the unit.
func (l *Log) Append(r store.Record) uint64 {
	l.mu.Lock()
	if l.unit {
		l.ubuf = appendRecord(l.ubuf, &r)
		l.unitN++
		l.mu.Unlock()
		return 0
	}
	wasEmpty := len(l.buf) == 0
	l.buf = appendRecord(l.buf, &r)
	l.appended++
	seq := l.appended
	l.mu.Unlock()
	if wasEmpty && l.cfg.Fsync != FsyncAlways {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return seq
}

// Appended is the sequence number of the last record appended, for Wait:
// what the store waits for when it cannot know which record it needs
// (Store.SyncEnd).
func (l *Log) Appended() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended
}

// BeginUnit starts a unit: the records appended until EndUnit are logged
// as one, which replay applies whole or not at all (a transaction). The
// store calls it while nothing else can append.
func (l *Log) BeginUnit() {
	l.mu.Lock()
	l.unit, l.ubuf, l.unitN = true, l.ubuf[:0], 0
	l.mu.Unlock()
}

// EndUnit appends the unit's records as one frame (a single record as
// itself) and returns its sequence number for Wait; 0 if it holds none.
func (l *Log) EndUnit() uint64 {
	l.mu.Lock()
	l.unit = false
	if l.unitN == 0 {
		l.mu.Unlock()
		return 0
	}
	wasEmpty := len(l.buf) == 0
	switch {
	case l.unitN == 1:
		l.buf = append(l.buf, l.ubuf...)
	case len(l.ubuf)+1 > MaxRecord:
		// Not reached: Err refuses a unit's changes once it holds
		// maxUnit. A unit this large could not be read back as one.
		l.log.Error().Int("records", l.unitN).Int("bytes", len(l.ubuf)).
			Msg("a transaction too large for one log record: logged record by record, so a crash may keep part of it")
		l.buf = append(l.buf, l.ubuf...)
	default:
		l.buf = appendUnit(l.buf, l.ubuf)
	}
	if cap(l.ubuf) > 1<<20 {
		l.ubuf = nil // a large transaction's buffer is not kept
	}
	l.ubuf, l.unitN = l.ubuf[:0], 0
	l.appended++
	seq := l.appended
	l.mu.Unlock()
	if wasEmpty && l.cfg.Fsync != FsyncAlways {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return seq
}

// Err is the reason writes fail, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unit && len(l.ubuf) > l.unitMax() {
		// The unit could not be read back as one record if it grew much
		// more: the transaction's further changes are refused (in their
		// slots), those already made stay one unit.
		return errUnitFull
	}
	return l.failure()
}

// errUnitFull refuses the changes of a transaction whose log unit is full.
var errUnitFull = fmt.Errorf("the transaction's log unit holds more than %d MiB; it takes no more changes", maxUnit>>20)

// maxUnit is what a unit may hold before its transaction's further changes
// are refused: half of MaxRecord, so that the one change that crosses it
// (far smaller than half a GiB) still leaves the unit one record.
const maxUnit = MaxRecord / 2

func (l *Log) unitMax() int {
	if l.unitLimit > 0 {
		return l.unitLimit
	}
	return maxUnit
}

// failure is the write or fsync error that makes the log refuse changes,
// or nil. l.mu must be held.
func (l *Log) failure() error {
	if l.err != nil {
		return l.err
	}
	return l.syncErr
}

// setStatus shows the current failure, if any, in Stats. l.mu must be held.
func (l *Log) setStatus() {
	if err := l.failure(); err != nil {
		l.stats.LastError, l.stats.Status = err.Error(), "err"
	} else {
		l.stats.LastError, l.stats.Status = "", "ok"
	}
}

// Wait returns once record seq is fsynced with appendfsync always. With
// everysec and no it returns nil at once: the writer goroutine writes the
// buffer within moments and everysec fsyncs it within a second, as Redis
// does.
//
// A record handed to Append is a change already applied in memory, so Wait
// never answers it with the log's failure: a failed write keeps the record
// for a retry (every second, by the background loop), and with always Wait
// goes on waiting until that retry, and its fsync, succeed. A command is
// thus refused (MISCONF, by the store's check before it changes anything)
// or answered with success once durable; never refused after it applied.
// Wait gives up only when the log is closed or Abandon is called, when the
// process is about to exit without the record.
func (l *Log) Wait(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Fsync != FsyncAlways {
		return nil
	}
	for {
		if l.synced >= seq {
			return nil
		}
		if l.closed || l.abandoned {
			return errClosed
		}
		if !l.writing && l.failure() == nil {
			l.flushLocked(true)
			continue
		}
		// Someone else writes, or the log is failing and the background
		// loop (or a rewrite) retries: either broadcasts when done.
		l.cond.Wait()
	}
}

// Abandon makes every Wait in progress or to come return an error: the
// process is exiting without the records it waits for (a forced shutdown
// while the log cannot be written). The connections of those waiters are
// closed by then, so no client hears that error for a change it could see.
func (l *Log) Abandon() {
	l.mu.Lock()
	l.abandoned = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// Drain writes and fsyncs everything appended so far, retrying once a
// second while the log cannot be written (a full disk), until it succeeds
// or ctx ends. It logs what is at stake every ten seconds while it waits.
// A graceful shutdown calls it before Close so that no acknowledged change
// is lost to a disk that is full for a while.
func (l *Log) Drain(ctx context.Context) error {
	began := time.Now()
	lastSaid := time.Time{}
	for {
		err := l.Flush()
		if err == nil {
			if !lastSaid.IsZero() {
				l.log.Info().Dur("after", time.Since(began)).Msg("append-only log written: shutdown goes on")
			}
			return nil
		}
		if errors.Is(err, errClosed) {
			return err
		}
		if time.Since(lastSaid) >= 10*time.Second {
			lastSaid = time.Now()
			recs, bytes := l.Unwritten()
			l.log.Error().Err(err).Uint64("changes", recs).Int("bytes", bytes).
				Msg("shutdown waits for the append-only log: these changes are not on disk yet; " +
					"free space (or fix the error) and it goes on; another signal exits without them")
		}
		select {
		case <-ctx.Done():
			recs, _ := l.Unwritten()
			return fmt.Errorf("%d changes not written to the append-only log: %w", recs, err)
		case <-time.After(time.Second):
		}
	}
}

// Unwritten is how many records (and bytes) are not yet known to be on
// disk: buffered, written but not fsynced, or covered by a failed fsync.
func (l *Log) Unwritten() (records uint64, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended - l.synced, len(l.buf)
}

// flushLocked writes everything buffered as the group-commit leader, and
// fsyncs it when sync is set. It releases l.mu while doing I/O. l.mu must
// be held and no one else writing.
func (l *Log) flushLocked(sync bool) {
	l.writing = true
	data, upto := l.buf, l.appended
	l.buf, l.spare = l.spare[:0], nil
	l.mu.Unlock()

	l.fileMu.RLock()
	var err error
	if l.dirty {
		// A failed write left part of a record behind: cut it off first.
		if err = l.file.Truncate(l.sizeNow()); err == nil {
			l.dirty = false
		}
	}
	if err == nil && len(data) > 0 {
		var n int
		if n, err = l.file.Write(data); err != nil && n > 0 {
			l.dirty = true // never leave half a record before the next one
		}
	}
	var syncErr error
	var syncMicros, syncAt int64
	if err == nil && sync {
		t := time.Now()
		syncErr = l.file.Sync()
		syncMicros, syncAt = time.Since(t).Microseconds(), l.cfg.Now()
	}
	l.fileMu.RUnlock()

	l.mu.Lock()
	l.writing = false
	if err != nil {
		// Keep the records for a retry, ahead of those appended meanwhile.
		l.buf = append(data, l.buf...)
	} else {
		l.size += int64(len(data))
		l.total += int64(len(data))
		l.written = upto
		l.spare = data[:0]
	}
	switch {
	case err != nil:
		l.stats.WriteErrors++
		if l.err == nil {
			l.log.Error().Err(err).Msg("append-only log write failed: refusing writes until it can be written again")
		}
		l.err = err
	case l.err != nil && len(l.buf) == 0:
		l.log.Info().Msg("append-only log writable again")
		l.err = nil
	}
	if err == nil && sync {
		// The data is in the file either way: a failed fsync is retried,
		// never the write (that would append the records twice).
		l.afterSync(upto, syncErr, syncAt, syncMicros)
	}
	l.setStatus()
	l.cond.Broadcast()
}

// afterSync records the outcome of an fsync that covered the records up to
// upto. l.mu must be held.
func (l *Log) afterSync(upto uint64, err error, at, micros int64) {
	if err != nil {
		l.stats.WriteErrors++
		if l.failure() == nil {
			l.log.Error().Err(err).Msg("append-only log fsync failed: refusing writes until an fsync succeeds")
		}
		if l.syncErr == nil {
			l.syncErr = err
		}
		return
	}
	if upto > l.synced {
		l.synced = upto
	}
	l.stats.LastFsyncAt, l.stats.LastFsyncMicros = at, micros
	l.stats.Fsyncs.observe(micros)
	if l.syncErr != nil && !l.syncErrOld {
		l.log.Info().Msg("append-only log fsynced again")
		l.syncErr = nil
	}
}

// sizeNow is the size of the current file before the write in progress.
// Called by the leader only, which is the only one changing size.
func (l *Log) sizeNow() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// writeDelay is how long the writer lets records gather after the first
// one arrives in an empty buffer. Without it, a server answering one
// command at a time from many clients woke the writer and wrote the log
// for most commands (360,000 write calls in all for 200,000 pushes, the
// replies' 200,000 included); with it, about one log write per
// millisecond (204,000 write calls).
const writeDelay = time.Millisecond

// writer writes the buffer within writeDelay of its first record
// (everysec and no): while it waits or writes, the next batch accumulates,
// so a busy server issues one write per batch, not per change.
func (l *Log) writer() {
	defer l.done.Done()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		select {
		case <-l.stop:
		case <-time.After(writeDelay):
		}
		l.mu.Lock()
		// Someone else may hold the writer's role (a rewrite's switch, a
		// retry): wait for it rather than skip, since appends made
		// meanwhile found the buffer non-empty and sent no kick of their
		// own.
		for l.writing && !l.closed {
			l.cond.Wait()
		}
		if !l.closed && l.err == nil && len(l.buf) > 0 {
			l.flushLocked(false)
		}
		l.mu.Unlock()
	}
}

// background fsyncs every second (everysec), retries a failing log, and
// starts rewrites when the log has grown enough.
func (l *Log) background() {
	defer l.done.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		if !l.writing && (l.err != nil || (l.syncErr != nil && !l.syncErrOld)) {
			// Retry: the write, and the fsync if one failed.
			l.flushLocked(l.cfg.Fsync != FsyncNo || l.syncErr != nil)
		}
		l.mu.Unlock()
		if l.cfg.Fsync == FsyncEverySec {
			l.syncWritten()
		}
		grow := l.rewriteDue()
		select {
		case <-l.stop: // Close has begun: do not start a rewrite it must wait for
			return
		default:
		}
		if grow {
			// The rewrite runs beside this loop, so everysec keeps
			// fsyncing every second while it takes its time.
			_ = l.StartRewrite() // one in progress already will do
		}
	}
}

// rewriteDue reports whether an automatic rewrite should start: the log has
// reached RewriteMinSize, has grown by RewritePercentage since the last
// rewrite, and would at least halve; or a failed fsync of a file no longer
// written to waits for a rewrite to cover it. The last condition skips rewrites
// that would copy the log into a snapshot about as large (a backlog that
// only grows is all live; a snapshot of it can even be larger than the
// pushes that made it), which Redis's rule alone does not.
func (l *Log) rewriteDue() bool {
	live := l.st.Bytes()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.syncErrOld && l.err == nil {
		// Only a rewrite clears that failure: try again, every 10 s.
		return l.cfg.Now()-l.stats.LastRewriteAt >= rewriteRetry
	}
	return l.failure() == nil && l.cfg.RewritePercentage > 0 && l.total >= l.cfg.RewriteMinSize &&
		l.total >= l.lastBase+l.lastBase*int64(l.cfg.RewritePercentage)/100 &&
		l.total >= 2*int64(float64(live)*l.snapshotRatio)
}

// rewriteRetry is how long after a failed rewrite another is tried when
// only a rewrite can clear the log's failure (ms).
const rewriteRetry = 10_000

// defaultSnapshotRatio is the snapshot bytes per byte of the store's
// memory estimate assumed until a rewrite measures it: a queued job with a
// 100-byte payload is estimated at 416 bytes and dumps to about 200.
const defaultSnapshotRatio = 0.5

// syncWritten fsyncs what has been written so far, alongside the writer (an
// fsync does not stop writes to the same file).
func (l *Log) syncWritten() {
	l.mu.Lock()
	upto := l.written
	l.mu.Unlock()
	if upto <= l.syncedSeq() {
		return
	}
	l.fileMu.RLock()
	t := time.Now()
	err := l.file.Sync()
	micros := time.Since(t).Microseconds()
	l.fileMu.RUnlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.afterSync(upto, err, l.cfg.Now(), micros)
	l.setStatus()
}

func (l *Log) syncedSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.synced
}

// Flush writes and fsyncs everything appended so far.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.writing && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return errClosed
	}
	l.flushLocked(true)
	return l.failure()
}

// Close flushes, fsyncs and closes the log. Waits made afterwards fail.
func (l *Log) Close() error {
	close(l.stop)
	l.done.Wait()
	l.rewriteMu.Lock() // let a rewrite in progress finish
	defer l.rewriteMu.Unlock()
	err := l.Flush()
	if err != nil && !errors.Is(err, errClosed) {
		recs, _ := l.Unwritten()
		err = fmt.Errorf("%d changes not written to the append-only log: %w", recs, err)
	}
	l.mu.Lock()
	for l.writing {
		l.cond.Wait()
	}
	l.writing = true // for good: nobody writes to a closed file
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stats returns the log's figures.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Size, s.BaseSize = l.total, l.lastBase
	return s
}
