package client

import (
	"errors"
	"testing"
	"time"
)

// replyErr stands in for go-redis's reply errors: it has the marker method
// go-redis uses to tell them from network errors.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestWrapErr(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  error
	}{
		{"NOJOB no such job", ErrNoJob},
		{"NORESERVATION no such reservation", ErrNoReservation},
		{"EXPIRED the reservation's lease has expired", ErrExpired},
		{"DUPJOB a job with this id already exists", ErrDupJob},
		{"WRONGSTATE job x cannot go from cancelled to running", ErrWrongState},
		{"FULL the server is at its job limit", ErrFull},
		{"MISCONF the append-only log cannot be written", ErrMisconf},
		{"NOAUTH Authentication required.", ErrNoAuth},
		{"WRONGPASS invalid username-password pair", ErrWrongPass},
		{"NOPROTO sorry", ErrNoProto},
		{"DENIED protected mode", ErrDenied},
		{"ERR syntax error", ErrRequest},
		{"EXPIRED", ErrExpired},
	} {
		err := wrapErr(replyErr(tc.reply))
		var e *Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.Message != tc.reply {
			t.Errorf("%q: got %v", tc.reply, err)
		}
		for _, other := range codes {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("%q also matches %v", tc.reply, other)
			}
		}
	}
	if err := wrapErr(replyErr("SOMECODE new")); err.(*Error).Code != "SOMECODE" {
		t.Errorf("unknown code: %v", err)
	}
	plain := errors.New("dial tcp: connection refused")
	if wrapErr(plain) != plain {
		t.Error("a network error was rewritten")
	}
}

func TestParseBlockedBy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BlockedBy
	}{
		{"paused", BlockedBy{Reason: BlockedPaused}},
		{"concurrency:db 3/3", BlockedBy{Reason: BlockedConcurrency, Key: "db", Active: 3, Limit: 3}},
		{"concurrency:a b 4/2", BlockedBy{Reason: BlockedConcurrency, Key: "a b", Active: 4, Limit: 2}},
		{"ratelimit:x until y until 1700000000000", BlockedBy{Reason: BlockedRateLimit, Key: "x until y", Until: time.UnixMilli(1700000000000)}},
		{"breaker:handler:a b open until 1700000000000", BlockedBy{Reason: BlockedBreaker, Key: "handler:a b", Until: time.UnixMilli(1700000000000)}},
		{"breaker:key:k half-open probes 2/3", BlockedBy{Reason: BlockedBreaker, Key: "key:k", Active: 2, Limit: 3}},
		{"something new", BlockedBy{}},
	} {
		got := parseBlockedBy(tc.in)
		tc.want.Text = tc.in
		if *got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func TestMilliseconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 0, 1: 1, time.Millisecond: 1, 1500 * time.Microsecond: 2, time.Second: 1000} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %d, want %d", d, got, want)
		}
	}
}
