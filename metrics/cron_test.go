package metrics

import (
	"testing"

	"sluice/store"
)

// The entries and their firings are scraped; a tick's job counts as a push
// of its queue.
func TestCronMetrics(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	st.SetObserver(m)
	now := int64(1_000_000)
	for _, name := range []string{"a", "b"} {
		if _, err := st.CronSet(now, store.CronOptions{Name: name, Spec: "@every 1s", Queue: "beat", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Tick(now + 1000)                                                         // both fire
	h := m.Handler(Sources{Store: st, Now: func() int64 { return now + 2000 }}) // and again at the scrape
	expect(t, scrape(t, h), map[string]string{
		`sluice_cron_entries`:                    "2",
		`sluice_cron_fired_total`:                "4",
		`sluice_jobs_pushed_total{queue="beat"}`: "4",
	})
}
