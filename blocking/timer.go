package blocking

import (
	"time"

	"github.com/rs/zerolog"
)

// Maintainer is the part of the store the timer drives.
type Maintainer interface {
	NextDeadline() int64 // Unix ms; 0: nothing scheduled
	Tick(now int64)
}

// Timer runs the store's maintenance when it is due: one goroutine that
// sleeps until NextDeadline and is re-armed by Kick (the store's timer
// hook). Start it with Run; stop it by closing the stop channel.
type Timer struct {
	m    Maintainer
	now  func() time.Time
	kick chan struct{}
}

// NewTimer returns a timer over m.
func NewTimer(m Maintainer) *Timer {
	return &Timer{m: m, now: time.Now, kick: make(chan struct{}, 1)}
}

// Kick says an earlier deadline may exist. Never blocks.
func (t *Timer) Kick() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Run is the timer goroutine. It returns when stop is closed.
func (t *Timer) Run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var lastTick int64
	for {
		d := t.m.NextDeadline()
		now := t.now()
		nowMs := now.UnixMilli()
		var wait time.Duration
		switch {
		case d == 0:
			wait = time.Hour
		case d <= nowMs && nowMs != lastTick:
			t.m.Tick(nowMs)
			lastTick = nowMs
			continue
		case d <= nowMs:
			// Ticked at this millisecond already and the deadline is still
			// past: do not spin; look again at the next millisecond.
			wait = time.Millisecond
		default:
			wait = time.UnixMilli(d).Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-t.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// Store is what Attach wires up: the store's reservations and maintenance,
// and the hooks it calls when work may have become eligible (notify) and
// when its next deadline moved earlier (timer).
type Store interface {
	Reserver
	Maintainer
	SetNotify(fn func(queue string))
	SetTimerHook(fn func())
}

// Attach builds the registry of blocked reservations and the maintenance
// timer over st and installs their hooks on it, as a server needs them.
// The caller runs the timer (Run) and closes the registry on shutdown.
func Attach(st Store, log zerolog.Logger, now func() int64) (*Registry, *Timer) {
	waiters := New(st, log, now)
	timer := NewTimer(st)
	st.SetNotify(waiters.Notify)
	st.SetTimerHook(timer.Kick)
	return waiters, timer
}
