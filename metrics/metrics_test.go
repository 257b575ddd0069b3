package metrics

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/persistence"
	"sluice/store"
)

// scrape fetches the metrics page and returns its samples by "name{labels}".
func scrape(t *testing.T, h http.Handler) map[string]string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

func expect(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func newStore(t *testing.T) *store.Store {
	st, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A scripted workload on a store, then one scrape: every counter, gauge and
// histogram says what happened.
func TestScrapeAfterWorkload(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	st.SetObserver(m)
	now := int64(1_000_000)
	push := func(q, id string, extra func(*store.PushOptions)) {
		p := store.PushOptions{Queue: q, Handler: "h", ID: id, Payload: []byte("x")}
		if extra != nil {
			extra(&p)
		}
		if _, err := st.Push(now, p); err != nil {
			t.Fatal(err)
		}
	}
	reserve := func(q string) string {
		rs, err := st.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 60_000, Queues: []string{q}})
		if err != nil || len(rs) != 1 {
			t.Fatalf("reserve %s: %v %v", q, rs, err)
		}
		return rs[0].Token
	}
	if err := st.SetConcurrency(now, "smtp", 1); err != nil {
		t.Fatal(err)
	}
	push("mail", "m1", func(p *store.PushOptions) { p.ConcurrencyKey = "smtp" })
	push("mail", "m2", func(p *store.PushOptions) { p.ConcurrencyKey = "smtp" })
	push("mail", "m3", func(p *store.PushOptions) { p.MaxAttempts = 2 })
	now += 40 // m1 waited 40 ms
	tok := reserve("mail")
	now += 2
	st.Start(now, tok)
	now += 1500 // ran 1.5 s
	if err := st.Ack(now, tok); err != nil {
		t.Fatal(err)
	}
	reserve("mail") // m2 (the slot is free again); waited 1542 ms
	tok3 := reserve("mail")
	if s, _ := st.Fail(now, tok3, store.FailOptions{}); s != store.RetryPending {
		t.Fatalf("m3 is %v", s)
	}
	push("mail", "m4", func(p *store.PushOptions) { p.ConcurrencyKey = "smtp" }) // blocked by smtp
	push("audit", "a1", nil)
	st.Cancel(now, "a1")
	push("audit", "a2", nil)
	reserve("audit")
	now += 60_000 // the audit and mail leases expire (maintenance runs at the scrape)

	h := m.Handler(Sources{Store: st, MaxMemory: 1 << 20, Now: func() int64 { return now }})
	got := scrape(t, h)
	expect(t, got, map[string]string{
		`sluice_jobs_pushed_total{queue="mail"}`:     "4",
		`sluice_jobs_reserved_total{queue="mail"}`:   "3",
		`sluice_jobs_acked_total{queue="mail"}`:      "1",
		`sluice_jobs_retried_total{queue="mail"}`:    "1",
		`sluice_jobs_failed_total{queue="mail"}`:     "0",
		`sluice_jobs_expired_total{queue="mail"}`:    "1",
		`sluice_jobs_pushed_total{queue="audit"}`:    "2",
		`sluice_jobs_cancelled_total{queue="audit"}`: "1",
		`sluice_jobs_expired_total{queue="audit"}`:   "1",

		`sluice_job_wait_seconds_count{queue="mail"}`:            "3",
		`sluice_job_wait_seconds_sum{queue="mail"}`:              "3.124", // 0.04 + 1.542 + 1.542
		`sluice_job_wait_seconds_bucket{queue="mail",le="0.05"}`: "1",
		`sluice_job_wait_seconds_bucket{queue="mail",le="2.5"}`:  "3",
		`sluice_job_run_seconds_count{queue="mail"}`:             "1",
		`sluice_job_run_seconds_sum{queue="mail"}`:               "1.5",
		`sluice_job_run_seconds_bucket{queue="mail",le="1"}`:     "0",
		`sluice_job_run_seconds_bucket{queue="mail",le="2.5"}`:   "1",

		// m2 expired back to queued; m3 is due again; m4 waits for smtp.
		`sluice_jobs{queue="mail",state="queued"}`:                   "3",
		`sluice_jobs{queue="mail",state="reserved"}`:                 "0",
		`sluice_jobs{queue="audit",state="queued"}`:                  "1",
		`sluice_queue_paused{queue="mail"}`:                          "0",
		`sluice_queue_blocked_jobs{kind="concurrency",queue="mail"}`: "0",

		`sluice_policy_limit{key="smtp",kind="concurrency"}`:        "1",
		`sluice_policy_active{key="smtp",kind="concurrency"}`:       "0",
		`sluice_policy_waiting_jobs{key="smtp",kind="concurrency"}`: "0",
		`sluice_jobs_held`:       "6",
		`sluice_maxmemory_bytes`: "1.048576e+06",
	})
	if got["sluice_job_memory_bytes"] == "" || got["sluice_job_memory_bytes"] == "0" {
		t.Errorf("job memory not reported: %q", got["sluice_job_memory_bytes"])
	}
	if _, ok := got[`sluice_jobs_pushed_total{queue="other"}`]; ok {
		t.Error("other shown although no queue counts under it")
	}

	// A policy now blocks: the smtp gauge and the queue's blocked count show it.
	reserve("mail") // m2 or m4 takes the smtp slot
	got = scrape(t, h)
	expect(t, got, map[string]string{
		`sluice_policy_active{key="smtp",kind="concurrency"}`:        "1",
		`sluice_policy_waiting_jobs{key="smtp",kind="concurrency"}`:  "1",
		`sluice_queue_blocked_jobs{kind="concurrency",queue="mail"}`: "1",
	})
}

// Past MaxLabels queues (and policy keys), the rest add up under other, and
// a queue keeps its label after it empties.
func TestLabelsAreBounded(t *testing.T) {
	st := newStore(t)
	m := New(Config{MaxLabels: 2})
	st.SetObserver(m)
	now := int64(1_000_000)
	for _, q := range []string{"a", "b", "c", "d", "other", "bad\xff"} {
		if _, err := st.Push(now, store.PushOptions{Queue: q, Handler: "h", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		st.SetConcurrency(now, k, 1)
	}
	if _, err := st.Purge(now, "a"); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m.Handler(Sources{Store: st, Now: func() int64 { return now }}))
	expect(t, got, map[string]string{
		`sluice_jobs_pushed_total{queue="a"}`:       "1",
		`sluice_jobs_cancelled_total{queue="a"}`:    "1",
		`sluice_jobs_pushed_total{queue="b"}`:       "1",
		`sluice_jobs_pushed_total{queue="other"}`:   "4",
		`sluice_jobs{queue="a",state="queued"}`:     "0",
		`sluice_jobs{queue="other",state="queued"}`: "4",

		`sluice_policy_limit{key="k1",kind="concurrency"}`:     "1",
		`sluice_policy_limit{key="k2",kind="concurrency"}`:     "1",
		`sluice_policy_active{key="other",kind="concurrency"}`: "0",
	})
	for k := range got {
		if strings.Contains(k, `queue="c"`) || strings.Contains(k, `key="k3"`) {
			t.Errorf("%s: past the label bound", k)
		}
	}
	if _, ok := got[`sluice_policy_limit{key="other",kind="concurrency"}`]; ok {
		t.Error("a sum of limits is shown for other")
	}
	if tot := m.Totals(); tot[Pushed] != 6 || tot[Cancelled] != 1 {
		t.Fatalf("Totals %v", tot)
	}
}

func TestInvalidUTF8QueueIsScraped(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	st.SetObserver(m)
	for _, q := range []string{"bad\xff", "bad\xfe"} { // both sanitize to "bad\uFFFD"
		if _, err := st.Push(1, store.PushOptions{Queue: q, Handler: "h", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	got := scrape(t, m.Handler(Sources{Store: st, Now: func() int64 { return 1 }}))
	expect(t, got, map[string]string{
		`sluice_jobs_pushed_total{queue="bad` + "\uFFFD" + `"}`: "1",
		`sluice_jobs_pushed_total{queue="other"}`:               "1",
	})
}

// BenchmarkCycleObserved is store's BenchmarkCycle with Metrics installed:
// compare with `go test -bench Cycle ./store/` for the cost of the hook.
func BenchmarkCycleObserved(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := "observer=none"
		if observed {
			name = "observer=metrics"
		}
		b.Run(name, func(b *testing.B) {
			st, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
			if err != nil {
				b.Fatal(err)
			}
			if observed {
				st.SetObserver(New(DefaultConfig()))
			}
			payload := make([]byte, 100)
			opts := store.ReserveOptions{Worker: "w", Lease: 30_000, Queues: []string{"q"}}
			now := int64(1_000_000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now++
				if _, err := st.Push(now, store.PushOptions{Queue: "q", Handler: "h", Payload: payload}); err != nil {
					b.Fatal(err)
				}
				rs, err := st.Reserve(now, opts)
				if err != nil || len(rs) != 1 {
					b.Fatalf("reserve: %v %v", rs, err)
				}
				if _, err := st.Start(now, rs[0].Token); err != nil {
					b.Fatal(err)
				}
				if err := st.Ack(now, rs[0].Token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestLogMetrics(t *testing.T) {
	st, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	var stats persistence.Stats
	stats.Size = 4096
	stats.LastFsyncMicros = 300
	for _, us := range []int64{80, 300, 300, 2_000_000} {
		stats.Fsyncs.Counts[bucketOf(us)]++
		stats.Fsyncs.SumMicros += us
	}
	m := New(DefaultConfig())
	got := scrape(t, m.Handler(Sources{Store: st, Log: func() persistence.Stats { return stats }, Now: func() int64 { return 1 }}))
	want := map[string]string{
		"sluice_aof_size_bytes":                        "4096",
		"sluice_aof_last_fsync_seconds":                "0.0003",
		`sluice_aof_fsync_seconds_bucket{le="0.0001"}`: "1",
		`sluice_aof_fsync_seconds_bucket{le="0.0005"}`: "3",
		`sluice_aof_fsync_seconds_bucket{le="1"}`:      "3",
		`sluice_aof_fsync_seconds_bucket{le="+Inf"}`:   "4",
		"sluice_aof_fsync_seconds_count":               "4",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func bucketOf(us int64) int {
	i := 0
	for i < len(persistence.FsyncBounds) && us > persistence.FsyncBounds[i] {
		i++
	}
	return i
}

// Expired jobs and dead letters show per queue.
func TestScrapeExpiredAndDeadLetters(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	st.SetObserver(m)
	now := int64(1_000_000)
	for _, p := range []store.PushOptions{
		{Queue: "q", Handler: "h", ID: "e1", ExpiresIn: 10},
		{Queue: "q", Handler: "h", ID: "f1", RunAt: now + 1},
		{Queue: "q", Handler: "h", ID: "f2", RunAt: now + 1},
	} {
		if _, err := st.Push(now, p); err != nil {
			t.Fatal(err)
		}
	}
	now += 20
	rs, err := st.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 60_000, Count: 2, Queues: []string{"q"}})
	if err != nil || len(rs) != 2 {
		t.Fatalf("reserve: %v %v", rs, err)
	}
	for _, r := range rs {
		if _, err := st.Fail(now, r.Token, store.FailOptions{NoRetry: true}); err != nil {
			t.Fatal(err)
		}
	}
	h := m.Handler(Sources{Store: st, Now: func() int64 { return now }})
	expect(t, scrape(t, h), map[string]string{
		`sluice_jobs{queue="q",state="expired"}`: "1",
		`sluice_jobs{queue="q",state="failed"}`:  "2",
		`sluice_dead_letters{queue="q"}`:         "2",
	})
}

// Waiting jobs and open batches show as gauges.
func TestScrapeWaitingAndBatches(t *testing.T) {
	st := newStore(t)
	m := New(DefaultConfig())
	st.SetObserver(m)
	now := int64(1_000_000)
	if err := st.OpenBatch(now, store.BatchOptions{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.PushOptions{
		{Queue: "q", Handler: "h", ID: "a", Batch: "b"},
		{Queue: "q", Handler: "h", ID: "w1", After: []string{"a"}},
		{Queue: "r", Handler: "h", ID: "w2", After: []string{"a"}},
	} {
		if _, err := st.Push(now, p); err != nil {
			t.Fatal(err)
		}
	}
	h := m.Handler(Sources{Store: st, Now: func() int64 { return now }})
	expect(t, scrape(t, h), map[string]string{
		`sluice_jobs_waiting`: "2",
		`sluice_batches_open`: "1",
	})
}
