package metrics

import (
	"testing"

	"sluice/store"
)

// A circuit breaker's state and the end of its cooldown are gauges.
func TestBreakerGauges(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	now := int64(1_000_000)
	if err := st.SetBreaker(now, "handler:h", 1, 1000, 5000, 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := st.Push(now, store.PushOptions{Queue: "mail", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	h := m.Handler(Sources{Store: st, Now: func() int64 { return now }})
	expect(t, scrape(t, h), map[string]string{
		`sluice_policy_breaker_state{key="handler:h",kind="breaker"}`:              "0",
		`sluice_policy_breaker_open_until_seconds{key="handler:h",kind="breaker"}`: "0",
	})
	rs, err := st.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 60_000, Queues: []string{"mail"}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("reserve: %v %v", rs, err)
	}
	if _, err := st.Fail(now, rs[0].Token, store.FailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	expect(t, scrape(t, h), map[string]string{
		`sluice_policy_breaker_state{key="handler:h",kind="breaker"}`:              "2",
		`sluice_policy_breaker_open_until_seconds{key="handler:h",kind="breaker"}`: "1005",
		`sluice_policy_waiting_jobs{key="handler:h",kind="breaker"}`:               "1",
	})
	now += 5000
	expect(t, scrape(t, h), map[string]string{
		`sluice_policy_breaker_state{key="handler:h",kind="breaker"}`: "1",
	})
}
