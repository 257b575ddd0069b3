package persistence

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"sluice/store"
)

// transaction runs a unit of pushes, a reservation and an ack, as EXEC
// would, and returns the ids it pushed.
func transaction(t *testing.T, st *store.Store, now int64, tag string) []string {
	t.Helper()
	st.BeginUnit()
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := st.Push(now, store.PushOptions{Queue: "tx", Handler: "h", Payload: []byte(fmt.Sprint(tag, i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rs, err := st.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"tx"}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("reserve: %v %v", rs, err)
	}
	if err := st.Ack(now, rs[0].Token); err != nil {
		t.Fatal(err)
	}
	if err := st.EndUnit(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// frames returns the offsets at which a file's frames start.
func frames(t *testing.T, data []byte) []int {
	t.Helper()
	var r store.Record
	var offs []int
	for off := 0; off < len(data); {
		n, _, err := readRecord(data[off:], &r, nil)
		if err != nil {
			t.Fatalf("reading at %d: %v", off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

func TestUnitIsOneFrameAndReplaysWhole(t *testing.T) {
	for _, fsync := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(fsync.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.Fsync = fsync
			st, l := open(t, cfg)
			now := int64(1000)
			if _, err := st.Push(now, store.PushOptions{Queue: "a", Handler: "h"}); err != nil {
				t.Fatal(err)
			}
			transaction(t, st, now, "x")
			// A unit that changes nothing logs nothing.
			st.BeginUnit()
			if err := st.EndUnit(); err != nil {
				t.Fatal(err)
			}
			want := dump(t, st, now)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(dir, "sluice.1.incr"))
			offs := frames(t, data)
			if len(offs) != 2 {
				t.Fatalf("%d frames, want the push and the unit", len(offs))
			}
			res, err := Check(OSFS{}, filepath.Join(dir, "sluice.1.incr"), false)
			if err != nil {
				t.Fatalf("check-aof: %v", err)
			}
			if res.Problem != "" {
				t.Fatalf("check-aof found a problem: %s", res.Problem)
			}
			if res.Records != 1+5+2 {
				t.Fatalf("check-aof counted %d records, want 8", res.Records)
			}
			st2, l2 := open(t, cfg)
			defer l2.Close()
			sameState(t, "reopened", dump(t, st2, now), want)
			if got := l2.Stats().Loaded.Records; got != 8 {
				t.Fatalf("replayed %d records, want 8", got)
			}
		})
	}
}

// TestTornUnitAtEveryOffset cuts the log inside a transaction's unit at
// every offset: the transaction is then wholly absent, never in part.
func TestTornUnitAtEveryOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	now := int64(1000)
	workload(st, rand.New(rand.NewPCG(7, 7)), &now, 200)
	before := dump(t, st, now)
	transaction(t, st, now, "torn")
	after := dump(t, st, now)
	l.Close()
	full, _ := os.ReadFile(filepath.Join(dir, "sluice.1.incr"))
	offs := frames(t, full)
	start := offs[len(offs)-1]
	if full[start+headerSize] != unitOp {
		t.Fatal("the transaction is not the log's last frame")
	}
	for cut := start; cut <= len(full); cut++ {
		d2 := t.TempDir()
		os.WriteFile(filepath.Join(d2, "sluice.1.incr"), full[:cut], 0o644)
		os.WriteFile(filepath.Join(d2, manifestName), []byte("sluice-log 1\nincr sluice.1.incr\n"), 0o644)
		cfg2 := testConfig(t, d2)
		cfg2.Logger = zerolog.Nop()
		st2, l2 := open(t, cfg2)
		want := before
		if cut == len(full) {
			want = after
		}
		sameState(t, fmt.Sprintf("cut at %d of %d", cut, len(full)), dump(t, st2, now), want)
		if err := st2.CheckInvariants(); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		l2.Close()
	}
}

// A unit whose frame is sound but whose inside is not is corruption: it is
// refused whole, not applied in part, and check-aof reports it.
func TestCorruptUnitInsideIsRefused(t *testing.T) {
	good := appendRecord(nil, &store.Record{Op: store.OpPush, Now: 1, ID: "a", Queue: "q", Handler: "h"})
	inner := append(append([]byte{}, good...), good[:len(good)-1]...) // the second record cut short
	data := appendUnit(nil, inner)
	var r store.Record
	if _, _, err := readRecord(data, &r, nil); err == nil || !errorsIsCorrupt(err) {
		t.Fatalf("want corruption, got %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, data, 0o644)
	res, err := Check(OSFS{}, path, false)
	if err != nil {
		t.Fatalf("check-aof: %v", err)
	}
	if res.Problem == "" {
		t.Fatalf("check-aof found no problem")
	}
	if res.Good != 0 {
		t.Fatalf("check-aof: %d good bytes, want 0", res.Good)
	}
}

func errorsIsCorrupt(err error) bool {
	for e := err; e != nil; {
		if e == errCorrupt {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

func TestUnitRoundTrip(t *testing.T) {
	recs := []store.Record{
		{Op: store.OpPush, Now: 1, ID: "a", Queue: "q", Handler: "h", Payload: []byte("p")},
		{Op: store.OpAck, Now: 2, ID: "a", Token: "t"},
	}
	var inner []byte
	for i := range recs {
		inner = appendRecord(inner, &recs[i])
	}
	buf := appendUnit(nil, inner)
	var r store.Record
	n, got, err := readRecord(buf, &r, nil)
	if err != nil || n != len(buf) {
		t.Fatalf("read %d of %d bytes: %v", n, len(buf), err)
	}
	if d := cmp.Diff(recs, got); d != "" {
		t.Fatalf("round trip (-sent +read):\n%s", d)
	}
}

// A transaction's unit stops taking changes before it grows too large to
// be read back as one record: its further changes are refused, those
// before stay one unit, and nothing is logged record by record.
func TestUnitRefusesChangesPastItsBound(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	l.unitLimit = 4 << 10
	now := int64(1000)
	st.BeginUnit()
	var took int
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		if _, err := st.Push(now, store.PushOptions{Queue: "tx", Handler: "h", Payload: make([]byte, 100)}); err != nil {
			refused = err
			break
		}
		took++
	}
	if err := st.EndUnit(); err != nil {
		t.Fatal(err)
	}
	if refused == nil || !strings.Contains(refused.Error(), "log unit holds more than") || took == 0 || took > 50 {
		t.Fatalf("%d pushes taken, then %v", took, refused)
	}
	if _, err := st.Push(now, store.PushOptions{Queue: "after", Handler: "h"}); err != nil {
		t.Fatalf("a push after the unit: %v", err)
	}
	want := dump(t, st, now)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "sluice.1.incr"))
	if offs := frames(t, data); len(offs) != 2 {
		t.Fatalf("%d frames, want the unit and the push after it", len(offs))
	}
	st2, l2 := open(t, cfg)
	defer l2.Close()
	sameState(t, "after a reopen", dump(t, st2, now), want)
}

// Appended tells the sequence number of the last record or unit appended,
// the one Wait needs for everything appended so far.
func TestAppendedCountsRecordsAndUnits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	st, l := open(t, cfg)
	id, err := st.Push(1000, store.PushOptions{Queue: "a", Handler: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Appended(); got != 1 {
		t.Fatalf("after one push Appended is %d, want 1", got)
	}
	transaction(t, st, 1000, "x") // one frame
	if got := l.Appended(); got != 2 {
		t.Fatalf("after a unit Appended is %d, want 2", got)
	}
	if err := st.SyncEnd(id); err != nil { // not ended: waits for all, harmless
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// While the log cannot be written, SyncEnd does not wait for it: a JOBWAIT
// answers as the end was applied instead of hanging until the disk comes
// back.
func TestSyncEndDoesNotWaitForAFailingLog(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Fsync = FsyncAlways
	ffs := &faultFS{}
	cfg.FS = ffs
	st, l := open(t, cfg)
	id, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st.Reserve(1, store.ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	if err := st.Ack(2, rs[0].Token); err != nil { // answered: the ack is fsynced
		t.Fatal(err)
	}
	errno := error(syscall.ENOSPC)
	ffs.writeErr.Store(&errno)
	pushed := make(chan struct{})
	go func() { // its write fails: it waits for the disk
		st.Push(3, store.PushOptions{Queue: "q", Handler: "h"})
		close(pushed)
	}()
	for deadline := time.Now().Add(5 * time.Second); l.Err() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the failed write was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- st.SyncEnd(id) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a guard against a hang, not a speed bar
		t.Fatal("SyncEnd waits for a log that cannot be written")
	}
	var none error
	ffs.writeErr.Store(&none)
	<-pushed
	l.Close()
}
