package persistence

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"sluice/backpressure"
	"sluice/store"
)

func testConfig(t *testing.T, dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	cfg.Store.Shards = 4
	// Short enough that workload's keys expire, and maintenance logs that
	// it forgot them; few enough that the bound forgets some too.
	cfg.Store.IdempotencyWindow = 2000
	cfg.Store.IdempotencyKeys = 20
	cfg.RewritePercentage = 0
	return cfg
}

func open(t *testing.T, cfg Config) (*store.Store, *Log) {
	t.Helper()
	st, err := store.New(cfg.Store, store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return st, l
}

// dump applies what is due at now, then returns the state as records.
func dump(t *testing.T, st *store.Store, now int64) []store.Record {
	t.Helper()
	st.Tick(now)
	var out []store.Record
	if err := st.Dump(now, func(r *store.Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameState(t *testing.T, what string, got, want []store.Record) {
	t.Helper()
	for i := 0; i < len(got) && i < len(want); i++ {
		if d := cmp.Diff(want[i], got[i]); d != "" {
			t.Fatalf("%s: %v record %d differs (-want +got):\n%s", what, want[i].Op, i, d)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
}

// workload drives st with a mix of every kind of change.
func workload(st *store.Store, rng *rand.Rand, now *int64, n int) {
	var toks, ids []string
	pick := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return xs[rng.IntN(len(xs))]
	}
	for i := 0; i < n; i++ {
		switch rng.IntN(14) {
		case 0, 1, 2:
			p := store.PushOptions{Queue: pick([]string{"a", "b"}), Handler: "h", Payload: []byte(fmt.Sprint(i)),
				Priority: int64(rng.IntN(3)), ConcurrencyKey: pick([]string{"", "c", "t:1", "t:2"}), RateLimitKey: pick([]string{"", "r", "t:1", "t:2"}),
				MaxAttempts: 2, Backoff: 10, Group: pick([]string{"", "g1", "g2"})}
			if rng.IntN(4) == 0 {
				p.RunAt = *now + 50
			}
			if rng.IntN(3) == 0 {
				p.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(30))
			}
			if id, err := st.Push(*now, p); err == nil {
				ids = append(ids, id)
			}
		case 3, 4:
			rs, _ := st.Reserve(*now, store.ReserveOptions{Worker: pick([]string{"w", "v"}), Lease: 100, Count: 2,
				Queues: []string{"a", "b"}, RoundRobin: rng.IntN(2) == 0})
			for _, r := range rs {
				toks = append(toks, r.Token)
			}
		case 5:
			st.Start(*now, pick(toks))
		case 6:
			st.Ack(*now, pick(toks))
		case 7:
			st.Fail(*now, pick(toks), store.FailOptions{Error: "x", HasError: true})
		case 8:
			if rng.IntN(3) == 0 {
				st.ReleaseThrottle(*now, pick(toks), int64(rng.IntN(2))*30, pick([]string{"c", "t:1"}), int64(rng.IntN(200)))
			} else {
				st.Release(*now, pick(toks), int64(rng.IntN(2))*30)
			}
		case 9:
			st.Touch(*now, pick(toks), 200)
		case 10:
			st.Cancel(*now, pick(ids))
		case 11:
			switch rng.IntN(11) {
			case 9, 10: // circuit breakers that trip: set anew now and then, deleted rarely
				key := pick([]string{"key:c", "queue:b", "key:t:1"})
				if _, ok, _ := st.GetPolicy(*now, backpressure.Breaker, key); !ok || rng.IntN(10) == 0 {
					st.SetBreaker(*now, key, int64(1+rng.IntN(3)), 200, int64(20+rng.IntN(100)), int64(1+rng.IntN(2)))
				} else if rng.IntN(20) == 0 {
					st.DeletePolicy(*now, backpressure.Breaker, key)
				}
			case 5: // templates: every t: key a cap and a window of its own
				st.SetConcurrency(*now, "t:*", int64(1+rng.IntN(2)))
			case 6:
				st.SetRateLimit(*now, "t:*", int64(1+rng.IntN(3)), 150)
			case 7:
				st.Throttle(*now, pick([]string{"c", "r", "t:2"}), int64(rng.IntN(300)))
			case 8:
				st.SetWeight(*now, "g1", int64(1+rng.IntN(3)))
			case 0:
				st.SetConcurrency(*now, "c", int64(1+rng.IntN(3)))
			case 1:
				st.SetRateLimit(*now, "r", int64(1+rng.IntN(3)), 100)
			case 2:
				st.DeletePolicy(*now, backpressure.RateLimit, "r")
			case 3:
				st.Pause(*now, "b")
			case 4:
				st.Resume(*now, "b")
			}
		case 12:
			st.Retry(*now, pick(ids))
		default:
			*now += int64(rng.IntN(60))
		}
	}
}

func TestReopenRestoresState(t *testing.T) {
	for _, fsync := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(fsync.String(), func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Fsync = fsync
			st, l := open(t, cfg)
			now := int64(1000)
			workload(st, rand.New(rand.NewPCG(1, uint64(fsync))), &now, 2000)
			want := dump(t, st, now)
			if !slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == store.OpSnapIdem }) {
				t.Fatal("the workload left no idempotency key: the test does not cover them")
			}
			for _, op := range []store.Op{store.OpSnapGroup, store.OpWeight, store.OpSnapRotation} {
				if !slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == op && (r.Turn != 0 || op != store.OpSnapGroup) }) {
					t.Fatalf("the workload left no %v record: the test does not cover it", op)
				}
			}
			if !slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == store.OpThrottle }) ||
				!slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == store.OpSnapPolicy && r.PolicyKey == "t:*" }) ||
				!slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == store.OpSnapAdmissions && r.PolicyKey == "t:1" }) {
				t.Fatal("the workload left no throttle, template or template instance: the test does not cover them")
			}
			if !slices.ContainsFunc(want, func(r store.Record) bool { return r.Op == store.OpSnapBreaker && r.Until > 0 }) {
				t.Fatal("the workload left no breaker that failures opened: the test does not cover them")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			st2, l2 := open(t, cfg)
			defer l2.Close()
			sameState(t, "reopened", dump(t, st2, now), want)
			if err := st2.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			s := l2.Stats().Loaded
			if s.Skipped != 0 {
				t.Fatalf("load skipped %d records", s.Skipped)
			}
			if s.Truncated != 0 {
				t.Fatalf("load truncated %d bytes", s.Truncated)
			}
		})
	}
}

// lastRecordStart returns the offset of the last record in a file.
func lastRecordStart(t *testing.T, data []byte) int {
	var r store.Record
	off, last := 0, 0
	for off < len(data) {
		n, _, err := readRecord(data[off:], &r, nil)
		if err != nil {
			t.Fatalf("reading at %d: %v", off, err)
		}
		last = off
		off += n
	}
	return last
}

func TestTornTailAtEveryOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	now := int64(1000)
	workload(st, rand.New(rand.NewPCG(2, 2)), &now, 200)
	before := dump(t, st, now)
	if _, err := st.Push(now, store.PushOptions{Queue: "a", Handler: "h", Payload: []byte("the last one")}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path := filepath.Join(dir, "sluice.1.incr")
	full, _ := os.ReadFile(path)
	start := lastRecordStart(t, full)
	for cut := start; cut < len(full); cut++ {
		d2 := t.TempDir()
		os.WriteFile(filepath.Join(d2, "sluice.1.incr"), full[:cut], 0o644)
		os.WriteFile(filepath.Join(d2, manifestName), []byte("sluice-log 1\nincr sluice.1.incr\n"), 0o644)
		cfg2 := testConfig(t, d2)
		cfg2.Logger = zerolog.Nop()
		st2, l2 := open(t, cfg2)
		sameState(t, fmt.Sprintf("cut at %d", cut), dump(t, st2, now), before)
		if got := l2.Stats().Loaded.Truncated; got != int64(cut-start) {
			t.Fatalf("cut at %d: truncated %d bytes, want %d", cut, got, cut-start)
		}
		// The log goes on working after the cut.
		if _, err := st2.Push(now, store.PushOptions{Queue: "a", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
		l2.Close()
		if fi, _ := os.Stat(filepath.Join(d2, "sluice.1.incr")); fi.Size() <= int64(start) {
			t.Fatalf("cut at %d: new record not appended after the good prefix", cut)
		}
	}
}

func TestCorruptionMidFileRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	now := int64(1000)
	workload(st, rand.New(rand.NewPCG(3, 3)), &now, 300)
	l.Close()
	path := filepath.Join(dir, "sluice.1.incr")
	orig, _ := os.ReadFile(path)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 50; i++ {
		data := append([]byte(nil), orig...)
		pos := rng.IntN(len(data) / 2) // mid-file: plenty of records follow
		data[pos] ^= 1 << rng.IntN(8)
		os.WriteFile(path, data, 0o644)
		st2, _ := store.New(cfg.Store, store.NewSeqGenerator())
		_, err := Open(cfg, st2)
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("flip at %d: %v, want a CorruptError", pos, err)
		}
		if ce.File != path || ce.Offset > int64(pos) {
			t.Fatalf("flip at %d: reported %s offset %d", pos, ce.File, ce.Offset)
		}
		res, err := Check(OSFS{}, path, true)
		if err != nil || !res.Fixed || res.Good != ce.Offset {
			t.Fatalf("check --fix: %+v %v", res, err)
		}
		st3, l3 := open(t, cfg)
		if err := st3.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		l3.Close()
	}
}

// faultFS wraps the real file system with injectable failures.
type faultFS struct {
	OSFS
	writeErr atomic.Pointer[error]
	syncErr  atomic.Pointer[error]
	syncGate chan struct{} // when set, Sync waits for a value
	syncs    atomic.Int64
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFS) OpenAppend(path string) (File, error) {
	file, err := f.OSFS.OpenAppend(path)
	if err != nil {
		return nil, err
	}
	return &faultFile{file, f}, nil
}

func (f *faultFS) CreateNew(path string) (File, error) {
	file, err := f.OSFS.CreateNew(path)
	if err != nil {
		return nil, err
	}
	return &faultFile{file, f}, nil
}

func (f *faultFile) Write(p []byte) (int, error) {
	if e := f.fs.writeErr.Load(); e != nil && *e != nil {
		// A short write, as a full disk gives.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, *e
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.syncGate != nil {
		<-f.fs.syncGate
	}
	f.fs.syncs.Add(1)
	if e := f.fs.syncErr.Load(); e != nil && *e != nil {
		return *e
	}
	return f.File.Sync()
}

func TestAlwaysRepliesOnlyAfterFsync(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncAlways
	ffs := &faultFS{syncGate: make(chan struct{})}
	cfg.FS = ffs
	st, l := open(t, cfg)
	defer func() { close(ffs.syncGate); l.Close() }()
	const clients = 20
	var replied atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
				t.Error(err)
			}
			replied.Add(1)
		}()
	}
	time.Sleep(100 * time.Millisecond) // give every push the time to reach its wait
	if n := replied.Load(); n != 0 {
		t.Fatalf("%d pushes replied before any fsync completed", n)
	}
	for replied.Load() < clients {
		ffs.syncGate <- struct{}{} // let one fsync through
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if n := ffs.syncs.Load(); n >= clients {
		t.Fatalf("%d fsyncs for %d concurrent pushes: no group commit", n, clients)
	}
	var counted uint64
	for _, c := range l.Stats().Fsyncs.Counts {
		counted += c
	}
	if counted == 0 || counted > uint64(ffs.syncs.Load()) {
		t.Fatalf("fsync histogram counts %d of %d fsyncs", counted, ffs.syncs.Load())
	}
}

func TestWriteFailureRefusesWritesUntilRecovered(t *testing.T) {
	for _, errno := range []error{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			ffs := &faultFS{}
			cfg.FS = ffs
			st, l := open(t, cfg)
			id, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Flush(); err != nil { // that push is on disk before the failure
				t.Fatal(err)
			}
			ffs.writeErr.Store(&errno)
			// With everysec the reply does not wait for the write: this push
			// may be acknowledged before the writer fails (or refused if the
			// writer failed first); its failed write makes the log refuse
			// what follows.
			if _, err := st.Push(2, store.PushOptions{Queue: "q", Handler: "h", ID: "first"}); err != nil && !errors.Is(err, store.ErrMisconf) {
				t.Fatalf("push as the failure starts: %v", err)
			}
			for deadline := time.Now().Add(5 * time.Second); l.Err() == nil; {
				if time.Now().After(deadline) {
					t.Fatal("the failed write was not noticed")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := st.Push(3, store.PushOptions{Queue: "q", Handler: "h"}); !errors.Is(err, store.ErrMisconf) {
				t.Fatalf("later push: %v", err)
			}
			if _, ok := st.Get(3, id); !ok {
				t.Fatal("reads must keep working")
			}
			var none error
			ffs.writeErr.Store(&none)
			deadline := time.Now().Add(5 * time.Second)
			for l.Err() != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := st.Push(4, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
				t.Fatalf("writes should resume: %v", err)
			}
			want := dump(t, st, 4)
			l.Close()
			st2, l2 := open(t, testConfig(t, dir))
			defer l2.Close()
			// The push acknowledged as the failure started was kept by the
			// retry, so the reloaded state equals the live one.
			sameState(t, "after recovery", dump(t, st2, 4), want)
		})
	}
}

func TestRewriteUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	var now atomic.Int64
	now.Store(1000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			q := fmt.Sprintf("q%d", w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				t := now.Add(1)
				p := store.PushOptions{Queue: q, Handler: "h", Payload: []byte("payload")}
				if rng.IntN(3) == 0 {
					p.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(50)) // shared by the writers
				}
				st.Push(t, p)
				if rs, _ := st.Reserve(t, store.ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{q}}); len(rs) > 0 && rng.IntN(2) == 0 {
					st.Ack(t, rs[0].Token)
				}
			}
		}(w)
	}
	for i := 0; i < 3; i++ {
		time.Sleep(50 * time.Millisecond)
		if err := l.Rewrite(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	want := withoutRetentionOrder(dump(t, st, now.Load()))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 { // manifest, base, incr
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files after rewrites: %v", names)
	}
	st2, l2 := open(t, cfg)
	defer l2.Close()
	sameState(t, "after rewrites", withoutRetentionOrder(dump(t, st2, now.Load())), want)
}

// withoutRetentionOrder sorts the retained-jobs list: with concurrent
// writers, two jobs of different queues finishing at once may be filed in
// retention in one order and logged in the other.
func withoutRetentionOrder(recs []store.Record) []store.Record {
	for i := range recs {
		if recs[i].Op == store.OpSnapRetained {
			r := &recs[i]
			idx := make([]int, len(r.RetainedIDs))
			for k := range idx {
				idx[k] = k
			}
			sort.Slice(idx, func(a, b int) bool { return r.RetainedIDs[idx[a]] < r.RetainedIDs[idx[b]] })
			ss, ts := make([]string, len(idx)), make([]int64, len(idx))
			for k, v := range idx {
				ss[k], ts[k] = r.RetainedIDs[v], r.Times[v]
			}
			r.RetainedIDs, r.Times = ss, ts
		}
	}
	return recs
}

// TestRewriteCrashAtEveryStep fails each file operation of a rewrite in
// turn and checks that the log still loads to the state before it.
func TestRewriteCrashAtEveryStep(t *testing.T) {
	for step := 0; ; step++ {
		dir := t.TempDir()
		cfg := testConfig(t, dir)
		st, l := open(t, cfg)
		now := int64(1000)
		workload(st, rand.New(rand.NewPCG(4, 4)), &now, 300)
		want := dump(t, st, now)
		cfs := &crashFS{failAt: step}
		l.cfg.FS = cfs
		err := l.Rewrite()
		l.cfg.FS = OSFS{}
		l.Close()
		st2, l2 := open(t, testConfig(t, dir))
		sameState(t, fmt.Sprintf("crash at step %d", step), dump(t, st2, now), want)
		l2.Close()
		if err == nil { // no step left to fail
			if step < 5 {
				t.Fatalf("only %d steps seen", step)
			}
			return
		}
	}
}

// crashFS fails the failAt-th mutating call and every later one.
type crashFS struct {
	OSFS
	calls, failAt int
}

func (c *crashFS) fail() error {
	c.calls++
	if c.calls > c.failAt {
		return errors.New("crash")
	}
	return nil
}
func (c *crashFS) OpenAppend(p string) (File, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.OSFS.OpenAppend(p)
}
func (c *crashFS) CreateNew(p string) (File, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.OSFS.CreateNew(p)
}
func (c *crashFS) Create(p string) (File, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.OSFS.Create(p)
}
func (c *crashFS) Rename(a, b string) error {
	if err := c.fail(); err != nil {
		return err
	}
	return c.OSFS.Rename(a, b)
}
func (c *crashFS) Remove(p string) error {
	if err := c.fail(); err != nil {
		return err
	}
	return c.OSFS.Remove(p)
}
func (c *crashFS) SyncDir(d string) error {
	if err := c.fail(); err != nil {
		return err
	}
	return c.OSFS.SyncDir(d)
}

func FuzzReadRecord(f *testing.F) {
	f.Add(appendRecord(nil, &store.Record{Op: store.OpPush, ID: "x", Payload: []byte("p")}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(appendUnit(nil, append(appendRecord(nil, &store.Record{Op: store.OpPush, ID: "x"}),
		appendRecord(nil, &store.Record{Op: store.OpAck, ID: "x"})...)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r store.Record
		n, recs, err := readRecord(data, &r, nil)
		if err != nil {
			return
		}
		if len(recs) > 0 {
			var inner []byte
			for i := range recs {
				inner = appendRecord(inner, &recs[i])
			}
			_, again, err := readRecord(appendUnit(nil, inner), &r, nil)
			if err != nil {
				t.Fatalf("decoded unit does not read again: %v", err)
			}
			if d := cmp.Diff(recs, again); d != "" {
				t.Fatalf("decoded unit does not round-trip (-first +again):\n%s", d)
			}
			return
		}
		again := appendRecord(nil, &r)
		var r2 store.Record
		if _, _, err := readRecord(again, &r2, nil); err != nil {
			t.Fatalf("decoded record does not read again: %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Fatalf("decoded record does not round-trip (-first +again):\n%s", d)
		}
		_ = n
	})
}

// gatedCreateFS holds the creation of a rewrite's snapshot file until
// released, so the test can act while a rewrite is in progress.
type gatedCreateFS struct {
	faultFS
	creating chan struct{} // closed when a snapshot's creation starts
	release  chan struct{}
	once     sync.Once
}

func (f *gatedCreateFS) CreateNew(path string) (File, error) {
	if strings.HasSuffix(path, ".base.tmp") {
		f.once.Do(func() { close(f.creating) })
		<-f.release
	}
	return f.faultFS.CreateNew(path)
}

// An automatic rewrite runs beside the once-a-second fsync: with everysec,
// what is written keeps reaching the disk while a long rewrite works.
func TestEverysecFsyncsDuringARewrite(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncEverySec
	cfg.RewritePercentage = 100
	cfg.RewriteMinSize = 1
	fs := &gatedCreateFS{creating: make(chan struct{}), release: make(chan struct{})}
	cfg.FS = fs
	st, l := open(t, cfg)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(fs.release) }) }
	defer func() { release(); l.Close() }()
	if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	churn(t, st, 50) // a log a rewrite would shrink
	select {
	case <-fs.creating: // the automatic rewrite is building its snapshot
	case <-time.After(10 * time.Second):
		t.Fatal("no automatic rewrite started")
	}
	before := fs.syncs.Load()
	if _, err := st.Push(2, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fs.syncs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no fsync while a rewrite was in progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
}

// churn reserves and releases the queued job of queue q n times: records
// that a snapshot does not need.
func churn(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		rs, err := st.Reserve(10, store.ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
		if err != nil || len(rs) != 1 {
			t.Fatalf("reserve: %v %v", rs, err)
		}
		if err := st.Release(10, rs[0].Token, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// An automatic rewrite starts only when it would at least halve the log:
// a log of live jobs alone is left as it is, however much it grew.
func TestAutomaticRewriteOnlyWhenItShrinksTheLog(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.RewritePercentage = 100
	cfg.RewriteMinSize = 1
	st, l := open(t, cfg)
	defer l.Close()
	payload := make([]byte, 100)
	for i := 0; i < 1000; i++ {
		if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if l.rewriteDue() {
		t.Fatalf("a rewrite is due for a log of %d bytes holding only %d live jobs", l.Stats().Size, st.Len())
	}
	churn(t, st, 10000)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if !l.rewriteDue() {
		t.Fatalf("no rewrite is due for a log of %d bytes, mostly reservations since released", l.Stats().Size)
	}
	// After a rewrite, the ratio it measured keeps the next one from
	// starting until the log has grown again and holds garbage.
	if err := l.Rewrite(); err != nil {
		t.Fatal(err)
	}
	if l.rewriteDue() {
		t.Fatalf("a rewrite is due right after one (log %d bytes)", l.Stats().Size)
	}
}

// A failed fsync is cleared only by an fsync that covers what it missed:
// not by a later write without one (the writer's, with everysec or no).
func TestFailedFsyncIsClearedOnlyByAnFsync(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncNo
	ffs := &faultFS{}
	cfg.FS = ffs
	st, l := open(t, cfg)
	defer l.Close()
	if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("EIO")
	ffs.syncErr.Store(&bad)
	if err := l.Flush(); !errors.Is(err, bad) {
		t.Fatalf("flush: %v, want the fsync error", err)
	}
	l.mu.Lock()
	l.flushLocked(false) // what the writer goroutine does
	l.mu.Unlock()
	if err := l.Err(); !errors.Is(err, bad) {
		t.Fatalf("after a write without fsync: %v, want the fsync error still", err)
	}
	if _, err := st.Push(2, store.PushOptions{Queue: "q", Handler: "h"}); !errors.Is(err, store.ErrMisconf) {
		t.Fatalf("push after the failed fsync: %v, want MISCONF", err)
	}
	var none error
	ffs.syncErr.Store(&none)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Push(3, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatalf("push once fsyncs work again: %v", err)
	}
}

// failCreateFS fails creating snapshot files while its flag is set.
type failCreateFS struct {
	faultFS
	fail atomic.Bool
}

func (f *failCreateFS) CreateNew(path string) (File, error) {
	if f.fail.Load() && strings.HasSuffix(path, ".base.tmp") {
		return nil, errors.New("ENOSPC")
	}
	return f.faultFS.CreateNew(path)
}

// A failed fsync of the file a rewrite switches away from cannot be retried
// on that file: the rewrite goes on, and its fsynced snapshot is what
// clears the failure. Until a rewrite succeeds, changes are refused.
func TestOldFilesFsyncFailureIsClearedByASnapshot(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncNo
	ffs := &failCreateFS{}
	cfg.FS = ffs
	var clock atomic.Int64
	clock.Store(1_000_000)
	cfg.Now = clock.Load
	st, l := open(t, cfg)
	defer l.Close()
	if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("EIO")
	var none error
	ffs.syncErr.Store(&bad)
	ffs.fail.Store(true)
	if err := l.Rewrite(); err == nil {
		t.Fatal("the rewrite succeeded without a snapshot")
	}
	ffs.syncErr.Store(&none)
	if s := l.Stats(); s.Status != "err" || s.WriteErrors == 0 || s.LastError != "EIO" {
		t.Fatalf("after the failed fsync: status %q, %d write errors, last %q", s.Status, s.WriteErrors, s.LastError)
	}
	if err := l.Flush(); err == nil { // fsyncs the new file: not enough
		t.Fatal("an fsync of the new file cleared the old file's failure")
	}
	if _, err := st.Push(2, store.PushOptions{Queue: "q", Handler: "h"}); !errors.Is(err, store.ErrMisconf) {
		t.Fatalf("push before a rewrite covered the file: %v, want MISCONF", err)
	}
	if l.rewriteDue() {
		t.Fatal("another rewrite is due right after one failed")
	}
	clock.Add(rewriteRetry)
	if !l.rewriteDue() {
		t.Fatal("no rewrite is due although only one can clear the failure")
	}
	ffs.fail.Store(false)
	if err := l.Rewrite(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Status != "ok" || s.LastError != "" {
		t.Fatalf("after the snapshot: status %q, last %q", s.Status, s.LastError)
	}
	if _, err := st.Push(3, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatalf("push after the snapshot: %v", err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	st2, l2 := open(t, cfg)
	defer l2.Close()
	if n := st2.Len(); n != 2 {
		t.Fatalf("%d jobs after reopening, want 2", n)
	}
}

// StartRewrite returns at once; while a rewrite runs, another is refused
// with Redis's message.
func TestStartRewriteRefusesASecond(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	fs := &gatedCreateFS{creating: make(chan struct{}), release: make(chan struct{})}
	cfg.FS = fs
	st, l := open(t, cfg)
	if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := l.StartRewrite(); err != nil {
		t.Fatal(err)
	}
	<-fs.creating // the first is writing its snapshot
	err := l.StartRewrite()
	if !errors.Is(err, ErrRewriteRunning) || err.Error() != "Background append only file rewriting already in progress" {
		t.Fatalf("second StartRewrite: %v", err)
	}
	close(fs.release)
	if err := l.Close(); err != nil { // waits for the rewrite
		t.Fatal(err)
	}
	if s := l.Stats(); s.Rewrites != 1 || s.LastRewriteStatus != "ok" {
		t.Fatalf("after Close: %d rewrites, status %q", s.Rewrites, s.LastRewriteStatus)
	}
	if err := l.StartRewrite(); err == nil {
		t.Fatal("StartRewrite after Close was accepted")
	}
}

// A rewrite asked for after Close (a BGREWRITEAOF whose goroutine lost the
// race with shutdown) is refused and leaves the files alone.
func TestRewriteAfterCloseIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	if err := l.Rewrite(); err == nil {
		t.Fatal("a rewrite after Close was accepted")
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Fatalf("files before %d, after %d", len(before), len(after))
	}
	st2, l2 := open(t, cfg)
	defer l2.Close()
	if n := st2.Len(); n != 1 {
		t.Fatalf("%d jobs after reopening, want 1", n)
	}
}

// Records appended while another holds the writer's role (a rewrite's
// switch, a retry) are written once it lets go, without waiting for Close.
func TestWriterCatchesUpAfterAnotherWriter(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncEverySec
	st, l := open(t, cfg)
	defer l.Close()
	l.mu.Lock()
	l.writing = true // as switchTo does
	l.mu.Unlock()
	for i := int64(1); i <= 2; i++ {
		if _, err := st.Push(i, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the writer sees the first kick while the role is held
	}
	l.mu.Lock()
	l.writing = false
	l.cond.Broadcast()
	l.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for {
		l.mu.Lock()
		written, appended := l.written, l.appended
		l.mu.Unlock()
		if written == appended {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records written, 2 s after the role was released", written, appended)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With appendfsync always, a change whose write or fsync fails is already
// in memory: Wait must not answer it with the failure (the client would
// retry, and the retried write would bring back both), but wait for the
// retry that writes and fsyncs it, then succeed. New changes are refused
// before they apply while the log fails.
func TestAlwaysWaitsThroughAFailureInsteadOfRefusing(t *testing.T) {
	for _, which := range []string{"write", "fsync"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.Fsync = FsyncAlways
			ffs := &faultFS{}
			cfg.FS = ffs
			st, l := open(t, cfg)
			bad := error(syscall.ENOSPC)
			if which == "write" {
				ffs.writeErr.Store(&bad)
			} else {
				ffs.syncErr.Store(&bad)
			}
			done := make(chan error, 1)
			go func() {
				_, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h", ID: "applied"})
				done <- err
			}()
			for deadline := time.Now().Add(5 * time.Second); l.Err() == nil; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the failure was not noticed")
				}
			}
			if _, err := st.Push(2, store.PushOptions{Queue: "q", Handler: "h", ID: "refused"}); !errors.Is(err, store.ErrMisconf) {
				t.Fatalf("a push while the log fails: %v, want MISCONF", err)
			}
			if _, ok := st.Get(2, "refused"); ok {
				t.Fatal("the refused push changed the store")
			}
			select {
			case err := <-done:
				t.Fatalf("the applied push was answered (%v) before its record was on disk", err)
			case <-time.After(50 * time.Millisecond):
			}
			var none error
			ffs.writeErr.Store(&none)
			ffs.syncErr.Store(&none)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("the applied push, once written: %v", err)
				}
			case <-time.After(10 * time.Second): // the retry runs every second
				t.Fatal("the applied push was never answered")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			st2, l2 := open(t, testConfig(t, dir))
			defer l2.Close()
			if _, ok := st2.Get(3, "applied"); !ok {
				t.Error("the acknowledged push is not in the log")
			}
			if _, ok := st2.Get(3, "refused"); ok {
				t.Error("the refused push is in the log")
			}
		})
	}
}

// Abandon ends waits that a forced exit will not see through.
func TestAbandonEndsWaits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncAlways
	ffs := &faultFS{}
	cfg.FS = ffs
	st, l := open(t, cfg)
	bad := error(syscall.ENOSPC)
	ffs.writeErr.Store(&bad)
	done := make(chan error, 1)
	go func() {
		_, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"})
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); l.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failure was not noticed")
		}
	}
	l.Abandon()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an abandoned wait reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Abandon did not end the wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Drain(ctx); err == nil || !strings.Contains(err.Error(), "1 changes not written") {
		t.Fatalf("Drain with the disk full: %v", err)
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close with the disk full reported success")
	}
}
