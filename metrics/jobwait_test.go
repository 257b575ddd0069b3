package metrics

import (
	"testing"
	"time"

	"sluice/blocking"
	"sluice/store"
)

// JOBWAIT's clients are scraped, and the answers timed (none yet).
func TestJobWaitMetrics(t *testing.T) {
	st := newStore(t)
	jw := blocking.NewJobWaits(st, func() int64 { return 1 })
	id, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		jw.Wait(id, 0, true, func() (blocking.Parker, func()) { return woken(make(chan struct{}, 1)), func() {} })
	}()
	for jw.Waiting() == 0 {
		select {
		case <-done:
			t.Fatal("the wait ended")
		default:
		}
	}
	h := New(DefaultConfig()).Handler(Sources{Store: st, JobWaits: jw})
	expect(t, scrape(t, h), map[string]string{
		`sluice_jobwait_clients`:              "1",
		`sluice_jobwait_answer_seconds_count`: "0",
	})
	jw.Close()
	<-done
}

// woken is a Parker whose client stays; Wake ends its Park.
type woken chan struct{}

func (w woken) Park(time.Time) bool { <-w; return false }
func (w woken) Wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}
func (w woken) Left() bool { return false }
