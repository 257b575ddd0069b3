package store

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

func deadStore(t testing.TB, edit func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Shards = 2
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pushRun pushes a job to q and reserves it at now, returning its id and
// token.
func pushRun(t testing.TB, s *Store, now int64, p PushOptions) (string, string) {
	t.Helper()
	if p.Queue == "" {
		p.Queue, p.Handler = "q", "h"
	}
	id, err := s.Push(now, p)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 10_000, Queues: []string{p.Queue}})
	if err != nil || len(rs) != 1 || rs[0].ID != id {
		t.Fatalf("reserve: %v %v", rs, err)
	}
	return id, rs[0].Token
}

func wantState(t *testing.T, s *Store, now int64, id string, want State) Job {
	t.Helper()
	j, ok := s.Get(now, id)
	switch {
	case want == 0 && ok:
		t.Fatalf("job %s is %s, want it dropped", id, j.State)
	case want != 0 && !ok:
		t.Fatalf("job %s is gone, want %s", id, want)
	case ok && j.State != want:
		t.Fatalf("job %s is %s, want %s", id, j.State, want)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	return j
}

// Failed jobs have a retention of their own: they outlive the succeeded
// and cancelled ones, and their count bound is theirs alone.
func TestDeadLettersStay(t *testing.T) {
	s := deadStore(t, func(c *Config) {
		c.Retention, c.MaxRetained = 1000, 2
		c.FailedRetention, c.MaxFailed = 5000, 3
	})
	now := int64(100)
	var failed []string
	for i := 0; i < 4; i++ {
		id, tok := pushRun(t, s, now, PushOptions{})
		if _, err := s.Fail(now, tok, FailOptions{NoRetry: true}); err != nil {
			t.Fatal(err)
		}
		failed = append(failed, id)
		now++
	}
	for i := 0; i < 3; i++ { // three succeeded: past MaxRetained, yet no dead letter goes
		_, tok := pushRun(t, s, now, PushOptions{})
		if err := s.Ack(now, tok); err != nil {
			t.Fatal(err)
		}
	}
	wantState(t, s, now, failed[0], 0) // the oldest of four, past MaxFailed
	for _, id := range failed[1:] {
		wantState(t, s, now, id, Failed)
	}
	if st, _ := s.QueueStats(now, "q"); st.Failed != 3 {
		t.Fatalf("QUEUESTATS failed = %d, want 3", st.Failed)
	}
	now += 1000 // the others' retention ran out
	for _, id := range failed[1:] {
		wantState(t, s, now, id, Failed)
	}
	if n := s.Len(); n != 3 {
		t.Fatalf("Len = %d, want the 3 dead letters", n)
	}
	now += 4000 // and theirs
	for _, id := range failed[1:] {
		wantState(t, s, now, id, 0)
	}
}

// JOBCANCEL takes a failed job out of the dead letters: cancelled, it
// falls under the other retention.
func TestCancelFailedJob(t *testing.T) {
	s := deadStore(t, func(c *Config) { c.Retention = 1000 })
	id, tok := pushRun(t, s, 100, PushOptions{})
	if _, err := s.Fail(100, tok, FailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	ok, err := s.Cancel(200, id)
	if err != nil || !ok {
		t.Fatalf("Cancel of a failed job = %v, %v; want true", ok, err)
	}
	wantState(t, s, 200, id, Cancelled)
	if st, _ := s.QueueStats(200, "q"); st.Failed != 0 || st.FailedTotal != 1 {
		t.Fatalf("QUEUESTATS after the cancel: %+v", st)
	}
	if err := s.Retry(200, id); !errors.Is(err, ErrWrongState) {
		t.Fatalf("Retry of the cancelled job: %v", err)
	}
	if ok, err := s.Cancel(200, id); ok || err != nil {
		t.Fatalf("Cancel again = %v, %v; want false", ok, err)
	}
	wantState(t, s, 1199, id, Cancelled)
	wantState(t, s, 1200, id, 0)
}

// A job not reserved by its deadline ends expired, whether queued,
// scheduled or waiting for a retry; a reserved one is not touched.
func TestExpiry(t *testing.T) {
	s := deadStore(t, nil)
	q, err := s.Push(100, PushOptions{Queue: "a", Handler: "h", ExpiresIn: 50})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Push(100, PushOptions{Queue: "a", Handler: "h", RunAt: 180, Deadline: 200})
	if err != nil {
		t.Fatal(err)
	}
	late, err := s.Push(100, PushOptions{Queue: "b", Handler: "h", RunAt: 120, Deadline: 200})
	if err != nil {
		t.Fatal(err)
	}
	j := wantState(t, s, 100, q, Queued)
	if j.Deadline != 150 {
		t.Fatalf("deadline = %d, want 150", j.Deadline)
	}
	wantState(t, s, 149, q, Queued)
	j = wantState(t, s, 150, q, Expired)
	if j.UpdatedAt != 150 {
		t.Fatalf("expired at %d, want 150", j.UpdatedAt)
	}
	if rs, _ := s.Reserve(150, ReserveOptions{Worker: "w", Lease: 10, Queues: []string{"a"}}); len(rs) != 0 {
		t.Fatalf("an expired job was reserved: %v", rs)
	}
	wantState(t, s, 150, late, Queued) // due at 120, before its deadline
	wantState(t, s, 199, sc, Queued)
	wantState(t, s, 200, sc, Expired)
	wantState(t, s, 200, late, Expired)
	if st, _ := s.QueueStats(200, "a"); st.Expired != 2 || st.Queued+st.Scheduled != 0 {
		t.Fatalf("QUEUESTATS: %+v", st)
	}

	// Reserved past its deadline: left alone; failed then, its retry
	// waits past the deadline and so expires.
	id, tok := pushRun(t, s, 300, PushOptions{Queue: "c", Handler: "h", ExpiresIn: 10, MaxAttempts: 2})
	wantState(t, s, 400, id, Reserved)
	if st, err := s.Fail(400, tok, FailOptions{}); err != nil || st != RetryPending {
		t.Fatalf("Fail = %v, %v", st, err)
	}
	wantState(t, s, 400, id, Expired)

	// Released to run after its deadline: scheduled, it expires first.
	id, tok = pushRun(t, s, 500, PushOptions{Queue: "d", Handler: "h", ExpiresIn: 100})
	if err := s.Release(510, tok, 200); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, 599, id, Scheduled)
	wantState(t, s, 600, id, Expired)
}

// Bad expiry options are refused, and nothing is pushed.
func TestExpiryRefused(t *testing.T) {
	s := deadStore(t, nil)
	for _, p := range []PushOptions{
		{Deadline: 100},                // not after now
		{Deadline: 50},                 // in the past
		{RunAt: 500, Deadline: 400},    // before its run time
		{ExpiresIn: 10, Deadline: 500}, // both
		{ExpiresIn: -1},
		{Deadline: -1},
		{Timeout: -1},
	} {
		p.Queue, p.Handler = "q", "h"
		if _, err := s.Push(100, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Push(%+v) = %v, want ERR", p, err)
		}
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d jobs held after refused pushes", n)
	}
}

// TIMEOUT bounds a reservation whatever its lease: the attempt fails
// with error "timeout", retried with backoff or failed, and the lease's
// token answers EXPIRED.
func TestTimeout(t *testing.T) {
	s := deadStore(t, nil)
	id, tok := pushRun(t, s, 100, PushOptions{Timeout: 50, MaxAttempts: 2, Backoff: 10})
	j := wantState(t, s, 100, id, Reserved)
	if j.ExpiresAt != 150 || j.Timeout != 50 {
		t.Fatalf("expires_at %d timeout %d, want 150 and 50", j.ExpiresAt, j.Timeout)
	}
	if exp, err := s.Touch(120, tok, 1000); err != nil || exp != 150 {
		t.Fatalf("Touch = %d, %v; want 150 (the timeout)", exp, err)
	}
	j = wantState(t, s, 150, id, RetryPending)
	if j.LastError != TimeoutError || j.Attempt != 1 || j.RunAt != 160 {
		t.Fatalf("after the timeout: %+v", j)
	}
	if err := s.Ack(150, tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("Ack after the timeout = %v, want EXPIRED", err)
	}
	rs, err := s.Reserve(160, ReserveOptions{Worker: "w", Lease: 20, Queues: []string{"q"}})
	if err != nil || len(rs) != 1 || rs[0].ExpiresAt != 180 {
		t.Fatalf("second reserve: %v %v", rs, err)
	}
	if _, err := s.Start(165, rs[0].Token); err != nil { // a lease shorter than the timeout ends first
		t.Fatal(err)
	}
	wantState(t, s, 180, id, Queued)
	rs, err = s.Reserve(180, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("third reserve: %v %v", rs, err)
	}
	j = wantState(t, s, 230, id, Failed) // out of attempts
	if j.LastError != TimeoutError {
		t.Fatalf("last error %q", j.LastError)
	}
}

// BenchmarkDeadLetterMemory reports what a failed job (100-byte payload,
// a 20-byte error) costs while it is kept: the heap per job and the
// store's own estimate (Bytes, which --maxmemory limits).
func BenchmarkDeadLetterMemory(b *testing.B) {
	const n = 200_000
	payload := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := deadStore(b, func(c *Config) { c.Shards = 32 })
		for k := 0; k < n; k++ {
			if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		for k := 0; k < n; k += 100 {
			rs, err := s.Reserve(2, ReserveOptions{Worker: "w", Lease: 1000, Count: 100, Queues: []string{"q"}})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if _, err := s.Fail(3, r.Token, FailOptions{Error: "connection refused!!", HasError: true}); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st, _ := s.QueueStats(3, "q"); st.Failed != n {
			b.Fatalf("%d failed, want %d", st.Failed, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/job")
		b.ReportMetric(float64(s.Bytes())/n, "counted-bytes/job")
		runtime.KeepAlive(s)
	}
}

// BenchmarkSameDeadline: n jobs in 64 queues, their ids in no order,
// share one deadline, and one Tick expires them all, filing n timer-ended
// jobs into retention at one instant. Filing goes by a heap, so the Tick costs O(n log n); an
// insertion in id order cost O(n²) (10,000 jobs: 416 ms against 9 ms;
// 40,000: 9 s against 26 ms).
func BenchmarkSameDeadline(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s, _ := New(DefaultConfig(), NewRandomGenerator())
				for i := range n {
					id := fmt.Sprintf("%08x", uint32(i)*2654435761) // ids in no order, as clients may give them
					_, err := s.Push(1000, PushOptions{ID: id, Queue: "q" + strconv.Itoa(i%64), Handler: "h", Deadline: 5000})
					mustTB(b, err)
				}
				b.StartTimer()
				s.Tick(5000)
				b.StopTimer()
				if st, _ := s.QueueStats(5000, "q0"); st.Expired == 0 {
					b.Fatal("nothing expired")
				}
			}
		})
	}
}
