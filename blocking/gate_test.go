package blocking

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/store"
)

// gatedReserver is a real store whose Release tells the test when it runs.
type gatedReserver struct {
	*store.Store
	released chan string
}

func (g *gatedReserver) Release(now int64, token string, delay int64) error {
	g.released <- token
	return g.Store.Release(now, token, delay)
}

// stepParker parks until the test lets it go, then reports left as the
// test set it.
type stepParker struct {
	parked chan struct{} // receives when Park starts
	resume chan struct{} // Park returns when it receives
	gone   atomic.Bool
	left   bool // what Park reports
}

func (p *stepParker) Park(time.Time) bool {
	p.parked <- struct{}{}
	<-p.resume
	return p.left
}
func (p *stepParker) Wake()      {}
func (p *stepParker) Left() bool { return p.gone.Load() }

// A blocked reservation whose client leaves after work was handed to it
// gives the job back with the store's gate held shared, as every command
// does: never while a transaction holds it alone, where the release would
// be logged inside the transaction's unit and its notification collected
// from a second goroutine.
func TestReleaseOfALeftWaiterWaitsForTheGate(t *testing.T) {
	for _, tc := range []struct {
		name string
		left bool // Park reports the leaving (else: the hand-over is found first)
	}{{"park reports it", true}, {"found with the hand-over", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
			if err != nil {
				t.Fatal(err)
			}
			g := &gatedReserver{Store: s, released: make(chan string, 1)}
			const now = 1000
			r := New(g, zerolog.New(zerolog.NewTestWriter(t)), func() int64 { return now })
			s.SetNotify(r.Notify)
			p := &stepParker{parked: make(chan struct{}), resume: make(chan struct{}), left: tc.left}
			// As the server's Client.Block: the wait lets the gate go and
			// done takes it back.
			block := func() (Parker, func()) { s.Unshared(); return p, s.Shared }
			returned := make(chan []store.Reservation, 1)
			go func() {
				s.Shared()
				defer s.Unshared()
				res, _ := r.Reserve(store.ReserveOptions{Worker: "w", Lease: 60_000, Queues: []string{"q"}}, 0, block)
				returned <- res
			}()
			<-p.parked

			// A push, as a command: the waiter is served from here.
			s.Shared()
			id, err := s.Push(now, store.PushOptions{Queue: "q", Handler: "h"})
			s.Unshared()
			if err != nil {
				t.Fatal(err)
			}
			if r.Waiting() != 0 {
				t.Fatal("the waiter was not served")
			}
			p.gone.Store(true) // the client leaves
			s.BeginUnit()      // and another client's EXEC begins
			p.resume <- struct{}{}
			select {
			case tok := <-g.released:
				t.Fatalf("reservation %s released inside another client's transaction", tok)
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := s.Push(now, store.PushOptions{Queue: "other", Handler: "h"}); err != nil {
				t.Fatal(err)
			}
			if err := s.EndUnit(); err != nil {
				t.Fatal(err)
			}
			<-g.released
			if res := <-returned; res != nil {
				t.Fatalf("the client that left got %v", res)
			}
			j, ok := s.Get(now, id)
			if !ok || j.State != store.Queued {
				t.Fatalf("job %s: %+v, want queued again", id, j)
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
