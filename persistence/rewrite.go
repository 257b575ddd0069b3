package persistence

import (
	"bufio"
	"errors"
	"time"

	"sluice/store"
)

var (
	// ErrRewriteRunning is the answer to a rewrite asked for while one is
	// in progress (Redis's text, which BGREWRITEAOF replies).
	ErrRewriteRunning = errors.New("Background append only file rewriting already in progress")
	errClosed         = errors.New("the log is closed")
)

// Rewrite compacts the log: writes switch to a new incr file at once, a
// snapshot of the state the older files describe is built from those files
// in the background (not from the live store, so nothing is locked), and
// the manifest then swaps to [snapshot, new incr] atomically.
func (l *Log) Rewrite() error {
	if !l.rewriteMu.TryLock() {
		return ErrRewriteRunning
	}
	defer l.rewriteMu.Unlock()
	return l.rewriteHeld()
}

// StartRewrite starts a rewrite in the background (BGREWRITEAOF, and the
// automatic ones) and returns at once: ErrRewriteRunning if one is already
// in progress, an error if the log is closed. The outcome shows in Stats.
// The rewrite holds rewriteMu until it ends, so Close waits for it.
func (l *Log) StartRewrite() error {
	if !l.rewriteMu.TryLock() {
		return ErrRewriteRunning
	}
	l.mu.Lock()
	closed := l.closed // Close sets it holding rewriteMu, and waits for it
	l.mu.Unlock()
	if closed {
		l.rewriteMu.Unlock()
		return errClosed
	}
	go func() {
		defer l.rewriteMu.Unlock()
		if err := l.rewriteHeld(); err != nil {
			l.log.Error().Err(err).Msg("log rewrite failed")
		}
	}()
	return nil
}

// rewriteHeld is Rewrite; l.rewriteMu must be held.
func (l *Log) rewriteHeld() error {
	l.mu.Lock()
	closed := l.closed // Close sets it holding rewriteMu: no rewrite starts after
	l.mu.Unlock()
	if closed {
		return errClosed
	}
	start := time.Now()
	l.mu.Lock()
	l.stats.RewriteInProgress = true
	l.mu.Unlock()
	err := l.rewrite()
	l.mu.Lock()
	l.stats.RewriteInProgress = false
	l.stats.LastRewriteMillis = time.Since(start).Milliseconds()
	l.stats.LastRewriteAt = l.cfg.Now()
	if err != nil {
		l.stats.LastRewriteStatus = "err"
	} else {
		l.stats.LastRewriteStatus = "ok"
		l.stats.Rewrites++
	}
	l.mu.Unlock()
	if err == nil {
		l.log.Info().Int64("millis", time.Since(start).Milliseconds()).Int64("size", l.Stats().Size).Msg("log rewritten")
	}
	return err
}

func (l *Log) rewrite() error {
	// 1. A new incr file, named in the manifest before anything is written
	//    to it, then the switch.
	//    Both are new files numbered above every log file in the
	//    directory (Open saw to that), created exclusively: a leftover of
	//    that name is never appended to or replaced. The incr file is made
	//    durable before the manifest names it.
	l.mu.Lock()
	old := l.man
	incr := logFileName(l.next, "incr")
	base := logFileName(l.next+1, "base")
	l.next += 2
	l.mu.Unlock()
	f, err := l.cfg.FS.CreateNew(l.path(incr))
	if err != nil {
		return err
	}
	switched := manifest{base: old.base, incrs: append(append([]string(nil), old.incrs...), incr)}
	if err := l.cfg.FS.SyncDir(l.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	if err := l.writeManifest(switched); err != nil {
		f.Close()
		return err
	}
	if err := l.switchTo(f, switched); err != nil {
		return err
	}

	// 2. The snapshot, from the old files.
	tmp, err := store.New(l.cfg.Store, store.NewSeqGenerator())
	if err != nil {
		return err
	}
	var ls LoadStats
	tmp.BeginReplay()
	err = l.replay(tmp, old.files(), false, &ls)
	tmp.EndReplay()
	if err != nil {
		return err
	}
	// Dump as of the cut, not the wall clock: records after the cut may
	// still need rate admissions that a later "now" would trim.
	size, err := l.writeSnapshot(tmp, base, ls.LastNow)
	if err != nil {
		return err
	}

	// 3. The swap.
	final := manifest{base: base, incrs: []string{incr}}
	if err := l.writeManifest(final); err != nil {
		return err
	}
	l.mu.Lock()
	l.man = final
	l.total = size + l.size
	l.lastBase = l.total
	if l.syncErrOld { // the snapshot, fsynced, now holds what that file did
		l.log.Info().Msg("append-only log fsynced again: a rewrite covered the file whose fsync failed")
		l.syncErr, l.syncErrOld = nil, false
		// The snapshot holds every change the old file did: they are
		// durable, and their waiters (appendfsync always) may be answered.
		l.synced = max(l.synced, l.oldUpto)
		l.setStatus()
		l.cond.Broadcast()
	}
	if b := tmp.Bytes(); b > 0 {
		// At most 1: a snapshot of few jobs is mostly policies and
		// remembered tokens, and must not make later, larger stores look
		// too big to be worth compacting.
		l.snapshotRatio = min(float64(size)/float64(b), 1)
	}
	l.mu.Unlock()
	for _, name := range old.files() {
		if err := l.cfg.FS.Remove(l.path(name)); err != nil {
			l.log.Warn().Err(err).Str("file", name).Msg("could not remove an old log file")
		}
	}
	return nil
}

// switchTo makes f the file appended to, after writing all that is
// buffered to the old one. A failed fsync of the old file does not stop the
// rewrite (see below). It holds the writer's role only for the swap
// itself: the old file's fsync (up to a second of writes, or more on a slow
// disk) runs afterwards, while appends already flow to f, so the switch
// does not stall writers. A record is in the old file or in f, in order,
// and the snapshot reads the old files, for which written is enough.
func (l *Log) switchTo(f File, m manifest) error {
	l.mu.Lock()
	for l.writing && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return errClosed
	}
	// What is buffered belongs to the old file. With always, its waiters
	// are answered once it is fsynced: that fsync stays in the switch.
	l.flushLocked(l.cfg.Fsync == FsyncAlways) // returns with the role released
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		f.Close()
		return err
	}
	l.writing = true
	upto := l.written // all the old file will hold
	l.mu.Unlock()

	l.fileMu.Lock()
	old := l.file
	l.file = f
	l.fileMu.Unlock()

	l.mu.Lock()
	l.size = 0
	l.dirty = false
	l.man = m
	l.writing = false
	l.cond.Broadcast()
	l.mu.Unlock()

	t := time.Now()
	err := old.Sync()
	micros := time.Since(t).Microseconds()
	if cerr := old.Close(); cerr != nil {
		l.log.Warn().Err(cerr).Msg("closing the old log file")
	}
	if err == nil {
		// Everything written to the old file is on disk: waiters for it
		// (appendfsync always, after a failed fsync) may be answered.
		l.mu.Lock()
		l.afterSync(upto, nil, l.cfg.Now(), micros)
		l.setStatus()
		l.cond.Broadcast()
		l.mu.Unlock()
	}
	if err != nil {
		// What the old file holds may not be on disk, and it is written no
		// more, so no later fsync can cover it: changes are refused until
		// a snapshot does, the one this rewrite goes on to write (it reads
		// the old files) or, should it fail, a later one.
		l.mu.Lock()
		l.stats.WriteErrors++
		if l.failure() == nil {
			l.log.Error().Err(err).Msg("append-only log fsync failed before a rewrite: refusing writes until a rewrite succeeds")
		}
		l.syncErr, l.syncErrOld, l.oldUpto = err, true, upto
		l.setStatus()
		l.mu.Unlock()
	}
	return nil
}

// writeSnapshot dumps st into a new base file and returns its size.
func (l *Log) writeSnapshot(st *store.Store, name string, now int64) (int64, error) {
	tmpName := l.path(name + ".tmp")
	f, err := l.cfg.FS.CreateNew(tmpName)
	if err != nil {
		return 0, err // not removed: it is not ours
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	var buf []byte
	err = st.Dump(now, func(r *store.Record) error {
		buf = appendRecord(buf[:0], r)
		size += int64(len(buf))
		_, err := w.Write(buf)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.cfg.FS.Rename(tmpName, l.path(name))
	}
	if err != nil {
		l.cfg.FS.Remove(tmpName)
		return 0, err
	}
	return size, nil
}
