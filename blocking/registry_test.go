package blocking

import (
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/store"
)

// fakeStore hands out one reservation per pushed job and records releases.
// Its Reserve can be held on a gate to open race windows on purpose.
type fakeStore struct {
	mu       sync.Mutex
	jobs     []string
	released []string
	calls    atomic.Int64
	gate     chan chan struct{} // when set, Reserve calls after the second wait for a signal
}

func (f *fakeStore) Reserve(now int64, o store.ReserveOptions) ([]store.Reservation, error) {
	n := f.calls.Add(1)
	if f.gate != nil && n > 2 {
		proceed := make(chan struct{})
		f.gate <- proceed
		<-proceed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.jobs) == 0 {
		return nil, nil
	}
	id := f.jobs[0]
	f.jobs = f.jobs[1:]
	return []store.Reservation{{Token: id + ".t", ID: id}}, nil
}

func (f *fakeStore) Release(now int64, token string, delay int64) error {
	f.mu.Lock()
	f.released = append(f.released, token)
	f.mu.Unlock()
	return nil
}

func (f *fakeStore) push(id string) {
	f.mu.Lock()
	f.jobs = append(f.jobs, id)
	f.mu.Unlock()
}

func noBlock() (Parker, func()) { return newParker(make(chan struct{})), func() {} }

// chanParker is a client's side of a wait for tests: gone is closed when
// the client leaves.
type chanParker struct {
	gone <-chan struct{}
	wake chan struct{}
}

func newParker(gone <-chan struct{}) *chanParker {
	return &chanParker{gone: gone, wake: make(chan struct{}, 1)}
}

func (p *chanParker) Park(deadline time.Time) bool {
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-p.gone:
		return true
	case <-p.wake:
	case <-timer:
	}
	return p.Left()
}

func (p *chanParker) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *chanParker) Left() bool {
	select {
	case <-p.gone:
		return true
	default:
		return false
	}
}

func newTestRegistry(t *testing.T, f *fakeStore) *Registry {
	return New(f, zerolog.New(zerolog.NewTestWriter(t)), func() int64 { return time.Now().UnixMilli() })
}

func TestReleaseWhenWaiterVanishesDuringReserve(t *testing.T) {
	f := &fakeStore{gate: make(chan chan struct{})}
	r := newTestRegistry(t, f)
	done := make(chan []store.Reservation)
	go func() {
		res, _ := r.Reserve(store.ReserveOptions{Queues: []string{"q"}}, 100*time.Millisecond, noBlock)
		done <- res
	}()
	waitUntil(t, func() bool { return r.Waiting() == 1 && f.calls.Load() == 2 })
	// A push wakes the waiter from another goroutine; that reservation is
	// held at the gate until the waiter has timed out.
	f.push("j1")
	go r.Notify("q")
	proceed := <-f.gate
	if res := <-done; res != nil {
		t.Fatalf("timed-out waiter got %v", res)
	}
	close(proceed)
	waitUntil(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.released) == 1 && f.released[0] == "j1.t"
	})
	if r.Waiting() != 0 {
		t.Fatal("waiter still counted")
	}
}

func TestGoneClientReleasesAHandedOverReservation(t *testing.T) {
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	gone := make(chan struct{})
	blocked := make(chan struct{})
	done := make(chan []store.Reservation)
	go func() {
		res, _ := r.Reserve(store.ReserveOptions{Queues: []string{"q"}}, 0, func() (Parker, func()) {
			close(blocked)
			return newParker(gone), func() {}
		})
		done <- res
	}()
	<-blocked
	// Serve and disconnect at once: whichever the waiter sees, the job must
	// not be lost.
	f.push("j1")
	close(gone)
	r.Notify("q")
	res := <-done
	if len(res) != 0 {
		t.Fatalf("a gone client was handed %v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.jobs) == 0 && len(f.released) != 1 {
		t.Fatalf("job reserved for a gone client and not released (released %v)", f.released)
	}
}

func TestCloseAnswersWaitersAndRefusesNewOnes(t *testing.T) {
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Reserve(store.ReserveOptions{Queues: []string{"q", "r"}}, 0, noBlock)
			if res != nil || err != nil {
				t.Errorf("got %v %v", res, err)
			}
		}()
	}
	waitUntil(t, func() bool { return r.Waiting() == 5 })
	r.Close()
	wg.Wait()
	if r.Waiting() != 0 {
		t.Fatalf("%d still waiting", r.Waiting())
	}
	res, err := r.Reserve(store.ReserveOptions{Queues: []string{"q"}}, 0, noBlock)
	if res != nil || err != nil {
		t.Fatal("reserve after Close waited or got work")
	}
}

// Notify with nobody waiting costs one atomic load and never calls the store.
func TestNotifyWithoutWaitersDoesNothing(t *testing.T) {
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	f.push("j1")
	r.Notify("q")
	if f.calls.Load() != 0 {
		t.Fatal("store called with no waiter")
	}
}

type fakeClock struct {
	mu       sync.Mutex
	deadline int64
	ticks    []int64
}

func (f *fakeClock) NextDeadline() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deadline
}

func (f *fakeClock) Tick(now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deadline != 0 && now >= f.deadline {
		f.ticks = append(f.ticks, now)
		f.deadline = 0
	}
}

func TestTimerTicksAtDeadlineAndIsRearmedByKick(t *testing.T) {
	f := &fakeClock{}
	tm := NewTimer(f)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { tm.Run(stop); close(done) }()
	defer func() { close(stop); <-done }()

	time.Sleep(20 * time.Millisecond) // the timer now sleeps with no deadline
	due := time.Now().Add(100 * time.Millisecond).UnixMilli()
	f.mu.Lock()
	f.deadline = due
	f.mu.Unlock()
	tm.Kick()
	waitUntil(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.ticks) == 1
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ticks[0] < due {
		t.Fatalf("ticked at %d, before the deadline %d", f.ticks[0], due)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A waiter on many queues is tried once when it starts to wait (its first
// attempt, then one for all its queues), not once per queue; a push to any
// of them still reaches it.
func TestWaiterOnManyQueuesIsTriedOnce(t *testing.T) {
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	queues := make([]string, 1000)
	for i := range queues {
		queues[i] = "q" + strconv.Itoa(i)
	}
	blocked := make(chan struct{})
	done := make(chan []store.Reservation)
	go func() {
		res, _ := r.Reserve(store.ReserveOptions{Queues: queues}, 0, func() (Parker, func()) {
			close(blocked)
			return newParker(make(chan struct{})), func() {}
		})
		done <- res
	}()
	<-blocked
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d attempts before waiting, want 2", n)
	}
	f.mu.Lock()
	f.jobs = append(f.jobs, "j1")
	f.mu.Unlock()
	r.Notify("q777")
	if res := <-done; len(res) != 1 || res[0].ID != "j1" {
		t.Fatalf("got %v", res)
	}
}

// Registering a waiter costs in proportion to its own queues, whoever else
// waits on them: the other waiters are not tried again (nothing new is
// eligible for them) and no per-queue list of them is built. Before, each
// new waiter on n queues shared by w waiters retried all w and built a
// snapshot of w waiters per queue: 100 clients on 65,000 queues took 37 s
// of CPU to register.
func TestRegistrationCostIsPerQueueOfItsOwn(t *testing.T) {
	const nq, others = 1000, 50
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	queues := make([]string, nq)
	for i := range queues {
		queues[i] = "q" + strconv.Itoa(i)
	}
	register := func() {
		blocked := make(chan struct{})
		go func() {
			_, _ = r.Reserve(store.ReserveOptions{Queues: queues}, 0, func() (Parker, func()) {
				close(blocked)
				return newParker(make(chan struct{})), func() {}
			})
		}()
		<-blocked
	}
	for range others {
		register()
	}
	defer r.Close()
	calls := f.calls.Load()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	register()
	runtime.ReadMemStats(&after)
	if n := f.calls.Load() - calls; n != 2 {
		t.Errorf("registering one more waiter made %d store attempts, want 2 (its own)", n)
	}
	if per := (after.TotalAlloc - before.TotalAlloc) / nq; per > 256 {
		t.Errorf("registering one more waiter allocated %d bytes per queue, want at most 256", per)
	}
}

// BenchmarkRegister100Waiters registers 100 blocked clients, each on the
// same 1000 queues (the default max-reserve-queues), and closes them.
func BenchmarkRegister100Waiters(b *testing.B) {
	queues := make([]string, 1000)
	for i := range queues {
		queues[i] = "q" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := New(&fakeStore{}, zerolog.Nop(), func() int64 { return 0 })
		for range 100 {
			blocked := make(chan struct{})
			go func() {
				_, _ = r.Reserve(store.ReserveOptions{Queues: queues}, 0, func() (Parker, func()) {
					close(blocked)
					return newParker(make(chan struct{})), func() {}
				})
			}()
			<-blocked
		}
		r.Close()
	}
}

// Interrupt answers every waiter with its error and keeps taking new
// waits, which are served as before.
func TestInterruptAnswersWaitersWithAnError(t *testing.T) {
	f := &fakeStore{}
	r := newTestRegistry(t, f)
	defer r.Close()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := r.Reserve(store.ReserveOptions{Queues: []string{"q", "other"}}, 0, noBlock)
			errs <- err
		}()
	}
	waitUntil(t, func() bool { return r.Waiting() == 3 })
	stop := errors.New("UNBLOCKED the node stopped leading")
	r.Interrupt(stop)
	for range 3 {
		if err := <-errs; err != stop {
			t.Fatalf("waiter answered %v, want %v", err, stop)
		}
	}
	if r.Waiting() != 0 {
		t.Fatalf("%d still waiting", r.Waiting())
	}
	got := make(chan []store.Reservation, 1)
	go func() {
		res, _ := r.Reserve(store.ReserveOptions{Queues: []string{"q"}}, 0, noBlock)
		got <- res
	}()
	waitUntil(t, func() bool { return r.Waiting() == 1 })
	f.push("j1")
	r.Notify("q")
	if res := <-got; len(res) != 1 {
		t.Fatalf("a wait after Interrupt got %v", res)
	}
}
