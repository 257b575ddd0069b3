package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"sluice/client"
	"sluice/store"
)

func TestPushGetAndOptions(t *testing.T) {
	c := startServer(t).client(t)
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	id := must[string](t)(c.Push(bg, "emails", "send", []byte("p\x00\r\nq"), &client.PushOptions{
		ID: "job-1", Priority: -3, Concurrency: "smtp", RateLimit: "api", At: at,
		MaxAttempts: 4, Backoff: 1500 * time.Millisecond,
	}))
	if id != "job-1" {
		t.Fatalf("id = %q", id)
	}
	j := must[*client.Job](t)(c.Get(bg, id))
	want := client.Job{ID: "job-1", Queue: "emails", Handler: "send", Payload: []byte("p\x00\r\nq"),
		State: client.StateScheduled, Priority: -3, ConcurrencyKey: "smtp", RateLimitKey: "api",
		MaxAttempts: 4, RunAt: at}
	if j.ID != want.ID || j.Queue != want.Queue || j.Handler != want.Handler || string(j.Payload) != string(want.Payload) ||
		j.State != want.State || j.Priority != want.Priority || j.ConcurrencyKey != want.ConcurrencyKey ||
		j.RateLimitKey != want.RateLimitKey || j.MaxAttempts != want.MaxAttempts || !j.RunAt.Equal(at) ||
		j.Attempt != 0 || j.Worker != "" || !j.ExpiresAt.IsZero() || j.HasLastError || j.BlockedBy != nil {
		t.Fatalf("job = %+v", j)
	}
	if j.CreatedAt.IsZero() || j.UpdatedAt.Before(j.CreatedAt) {
		t.Fatalf("times: created %v updated %v", j.CreatedAt, j.UpdatedAt)
	}

	// Generated ids; a delay schedules the job.
	gen := must[string](t)(c.Push(bg, "emails", "send", nil, nil))
	if gen == "" || gen == id {
		t.Fatalf("generated id %q", gen)
	}
	d := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{Delay: time.Minute}))
	if j := must[*client.Job](t)(c.Get(bg, d)); j.State != client.StateScheduled || j.MaxAttempts != 1 {
		t.Fatalf("delayed job = %+v", j)
	}

	// Errors come back typed.
	if _, err := c.Push(bg, "emails", "send", nil, &client.PushOptions{ID: "job-1"}); !errors.Is(err, client.ErrDupJob) {
		t.Fatalf("duplicate push: %v", err)
	}
	_, err := c.Push(bg, "emails", "send", nil, &client.PushOptions{Delay: time.Second, At: at})
	var se *client.Error
	if !errors.Is(err, client.ErrRequest) || !errors.As(err, &se) || se.Code != "ERR" {
		t.Fatalf("DELAY with AT: %v", err)
	}
	if _, err := c.Get(bg, "nope"); !errors.Is(err, client.ErrNoJob) {
		t.Fatalf("unknown job: %v", err)
	}

	// A push sent again with its idempotency key returns the first id.
	k1 := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{IdempotencyKey: "order-1"}))
	if k2 := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{IdempotencyKey: "order-1"})); k2 != k1 {
		t.Fatalf("repeated key: %s, first %s", k2, k1)
	}
}

func TestReserveLifecycle(t *testing.T) {
	c := startServer(t).client(t)
	a := must[string](t)(c.Push(bg, "q", "h1", []byte("a"), &client.PushOptions{Priority: 1, MaxAttempts: 3}))
	b := must[string](t)(c.Push(bg, "q", "h2", []byte("b"), nil))
	lease := 10 * time.Second

	// HANDLERS filters; an empty reply is an empty slice.
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Handlers: []string{"h3"}, Queues: []string{"q"}}))
	if len(res) != 0 {
		t.Fatalf("HANDLERS h3 reserved %+v", res)
	}
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Handlers: []string{"h2"}, Queues: []string{"other", "q"}}))
	if len(res) != 1 || res[0].ID != b || res[0].Handler != "h2" || string(res[0].Payload) != "b" || res[0].Queue != "q" {
		t.Fatalf("HANDLERS h2 reserved %+v", res)
	}
	rb := res[0]
	if rb.Token == "" || rb.Attempt != 0 || time.Until(rb.ExpiresAt) < 5*time.Second {
		t.Fatalf("reservation %+v", rb)
	}
	if j := must[*client.Job](t)(c.Get(bg, b)); j.State != client.StateReserved || j.Worker != "w" || !j.ExpiresAt.Equal(rb.ExpiresAt) {
		t.Fatalf("reserved job = %+v", j)
	}

	// Release with a delay schedules it; the token is spent.
	if err := c.Release(bg, rb.Token, time.Minute); err != nil {
		t.Fatal(err)
	}
	if j := must[*client.Job](t)(c.Get(bg, b)); j.State != client.StateScheduled || j.Attempt != 0 {
		t.Fatalf("released job = %+v", j)
	}
	if err := c.Release(bg, rb.Token, 0); !errors.Is(err, client.ErrNoReservation) {
		t.Fatalf("second release: %v", err)
	}

	// Start, touch, fail with a message and RETRYIN.
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Count: 5, Queues: []string{"q"}}))
	if len(res) != 1 || res[0].ID != a || res[0].Priority != 1 {
		t.Fatalf("COUNT 5 reserved %+v", res)
	}
	tok := res[0].Token
	if n := must[int64](t)(c.Start(bg, tok)); n != 1 {
		t.Fatalf("attempt %d", n)
	}
	if _, err := c.Start(bg, tok); !errors.Is(err, client.ErrWrongState) {
		t.Fatalf("second start: %v", err)
	}
	if exp := must[time.Time](t)(c.Touch(bg, tok, time.Hour)); time.Until(exp) < 50*time.Minute {
		t.Fatalf("touched expiry %v", exp)
	}
	if s := must[client.State](t)(c.Fail(bg, tok, client.FailOptions{Error: "boom\nline 2", Retry: client.RetryIn(0)})); s != client.StateRetryPending {
		t.Fatalf("fail → %s", s)
	}
	eventually(t, "the retry is queued", func() bool {
		j := must[*client.Job](t)(c.Get(bg, a))
		return j.State == client.StateQueued
	})
	if j := must[*client.Job](t)(c.Get(bg, a)); j.LastError != "boom\nline 2" || !j.HasLastError || j.Attempt != 1 {
		t.Fatalf("failed job = %+v", j)
	}

	// NORETRY fails for good despite attempts left; Retry revives it.
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Queues: []string{"q"}}))
	if len(res) != 1 || res[0].Attempt != 1 {
		t.Fatalf("reserved %+v", res)
	}
	if s := must[client.State](t)(c.Fail(bg, res[0].Token, client.FailOptions{Retry: client.NoRetry})); s != client.StateFailed {
		t.Fatalf("NORETRY → %s", s)
	}
	if err := c.Retry(bg, a); err != nil {
		t.Fatal(err)
	}
	if err := c.Retry(bg, a); !errors.Is(err, client.ErrWrongState) {
		t.Fatalf("retry of a queued job: %v", err)
	}

	// Ack, and ack again.
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Queues: []string{"q"}}))
	if len(res) != 1 || res[0].ID != a || res[0].Attempt != 0 {
		t.Fatalf("reserved %+v", res)
	}
	if err := c.Ack(bg, res[0].Token); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(bg, res[0].Token); !errors.Is(err, client.ErrNoReservation) {
		t.Fatalf("second ack: %v", err)
	}
	if j := must[*client.Job](t)(c.Get(bg, a)); j.State != client.StateSucceeded || !j.State.Terminal() {
		t.Fatalf("acked job = %+v", j)
	}

	// Cancel: 1 for a live job, 0 for a finished one; NOJOB for none.
	if ok := must[bool](t)(c.Cancel(bg, b)); !ok {
		t.Fatal("cancel of a scheduled job said 0")
	}
	if ok := must[bool](t)(c.Cancel(bg, a)); ok {
		t.Fatal("cancel of a succeeded job said 1")
	}
	if _, err := c.Cancel(bg, "nope"); !errors.Is(err, client.ErrNoJob) {
		t.Fatalf("cancel unknown: %v", err)
	}
}

func TestExpiredAndCancelledTokens(t *testing.T) {
	c := startServer(t).client(t)
	id := must[string](t)(c.Push(bg, "q", "h", nil, nil))
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: 50 * time.Millisecond, Queues: []string{"q"}}))
	if len(res) != 1 {
		t.Fatalf("reserved %+v", res)
	}
	eventually(t, "the lease expires", func() bool {
		return must[*client.Job](t)(c.Get(bg, id)).State == client.StateQueued
	})
	if _, err := c.Touch(bg, res[0].Token, time.Second); !errors.Is(err, client.ErrExpired) {
		t.Fatalf("touch after expiry: %v", err)
	}

	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Queues: []string{"q"}}))
	must[int64](t)(c.Start(bg, res[0].Token))
	must[bool](t)(c.Cancel(bg, id))
	_, err := c.Touch(bg, res[0].Token, time.Second)
	var se *client.Error
	if !errors.Is(err, client.ErrWrongState) || !errors.As(err, &se) || !strings.Contains(se.Message, "cancelled") {
		t.Fatalf("touch after cancel: %v", err)
	}
}

func TestBlockingReserveOutlivesReadTimeout(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t, func(o *client.Options) { o.ReadTimeout = 100 * time.Millisecond })
	producer := ts.client(t)

	// Nothing arrives: an empty result after BLOCK, not a timeout error.
	res, err := c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Second, Block: 300 * time.Millisecond, Queues: []string{"q"}})
	if err != nil || len(res) != 0 {
		t.Fatalf("empty blocking reserve: %v, %+v", res, err)
	}

	// A push after ReadTimeout has passed still reaches the blocked call.
	done := make(chan []client.Reservation, 1)
	go func() {
		res, err := c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Second, Block: 10 * time.Second, Queues: []string{"q"}})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	eventually(t, "the reserve blocks", func() bool {
		v, err := producer.Redis().Do(bg, "INFO", "clients").Text()
		return err == nil && strings.Contains(v, "blocked_clients:1")
	})
	time.Sleep(300 * time.Millisecond) // three times ReadTimeout
	id := must[string](t)(producer.Push(bg, "q", "h", []byte("x"), nil))
	got := <-done
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("blocked reserve got %+v", got)
	}

	// BlockForever waits too.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = producer.Push(bg, "q2", "h", nil, nil)
	}()
	res, err = c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Second, Block: client.BlockForever, Queues: []string{"q2"}})
	if err != nil || len(res) != 1 {
		t.Fatalf("BLOCK 0: %+v, %v", res, err)
	}
}

func TestQueues(t *testing.T) {
	c := startServer(t).client(t)
	for i, p := range []int64{0, 5, 5, -1} {
		must[string](t)(c.Push(bg, "b", "h", []byte{byte('0' + i)}, &client.PushOptions{Priority: p}))
	}
	must[string](t)(c.Push(bg, "a", "h", nil, &client.PushOptions{Delay: time.Hour}))
	if qs := must[[]string](t)(c.Queues(bg)); strings.Join(qs, ",") != "a,b" {
		t.Fatalf("queues %v", qs)
	}
	if n := must[int64](t)(c.QueueLen(bg, "b")); n != 4 {
		t.Fatalf("len %d", n)
	}
	peek := must[[]client.Job](t)(c.Peek(bg, "b", 3))
	var order []string
	for _, j := range peek {
		order = append(order, string(j.Payload))
	}
	if strings.Join(order, "") != "120" {
		t.Fatalf("peek order %v", order)
	}
	if all := must[[]client.Job](t)(c.Peek(bg, "b", 0)); len(all) != 4 {
		t.Fatalf("peek default: %d jobs", len(all))
	}

	if err := c.Pause(bg, "b"); err != nil {
		t.Fatal(err)
	}
	st := must[*client.QueueStats](t)(c.QueueStats(bg, "b"))
	if st.Queue != "b" || st.Status != "paused" || !st.Paused || st.Queued != 4 || st.PushedTotal != 4 {
		t.Fatalf("stats %+v", st)
	}
	if j := must[*client.Job](t)(c.Get(bg, peek[0].ID)); j.BlockedBy == nil || j.BlockedBy.Reason != client.BlockedPaused {
		t.Fatalf("blocked_by of a paused job: %+v", j.BlockedBy)
	}
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Second, Queues: []string{"b"}}))
	if len(res) != 0 {
		t.Fatalf("reserved from a paused queue: %+v", res)
	}
	if err := c.Resume(bg, "b"); err != nil {
		t.Fatal(err)
	}
	if st := must[*client.QueueStats](t)(c.QueueStats(bg, "b")); st.Status != "active" || st.Paused {
		t.Fatalf("stats after resume %+v", st)
	}
	if n := must[int64](t)(c.Purge(bg, "a")); n != 1 {
		t.Fatalf("purged %d", n)
	}
	if st := must[*client.QueueStats](t)(c.QueueStats(bg, "nothing")); st.Status != "idle" || st.Queued != 0 {
		t.Fatalf("unknown queue stats %+v", st)
	}
}

func TestPoliciesAndBlockedBy(t *testing.T) {
	c := startServer(t).client(t)
	if err := c.PolicySetConcurrency(bg, "db pool", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.PolicySetRateLimit(bg, "api", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.PolicySetConcurrency(bg, "k", 0); !errors.Is(err, client.ErrRequest) {
		t.Fatalf("limit 0: %v", err)
	}
	c1 := must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Concurrency: "db pool"}))
	c2 := must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Concurrency: "db pool"}))
	r1 := must[string](t)(c.Push(bg, "r", "h", nil, &client.PushOptions{RateLimit: "api"}))
	r2 := must[string](t)(c.Push(bg, "r", "h", nil, &client.PushOptions{RateLimit: "api"}))
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 10, Queues: []string{"q", "r"}}))
	if len(res) != 2 || res[0].ID != c1 || res[1].ID != r1 {
		t.Fatalf("reserved %+v", res)
	}

	b := must[*client.Job](t)(c.Get(bg, c2)).BlockedBy
	if b == nil || b.Reason != client.BlockedConcurrency || b.Key != "db pool" || b.Active != 1 || b.Limit != 1 {
		t.Fatalf("concurrency blocked_by %+v", b)
	}
	b = must[*client.Job](t)(c.Get(bg, r2)).BlockedBy
	if b == nil || b.Reason != client.BlockedRateLimit || b.Key != "api" || time.Until(b.Until) < 50*time.Minute {
		t.Fatalf("rate-limit blocked_by %+v", b)
	}

	p := must[*client.Policy](t)(c.PolicyGet(bg, client.RateLimit, "api"))
	if p.Kind != client.RateLimit || p.Key != "api" || p.Limit != 1 || p.Period != time.Hour || p.Active != 1 || p.Waiting != 1 || p.NextFreeAt.IsZero() {
		t.Fatalf("rate policy %+v", p)
	}
	p = must[*client.Policy](t)(c.PolicyGet(bg, client.Concurrency, "db pool"))
	if p.Kind != client.Concurrency || p.Limit != 1 || p.Period != 0 || p.Active != 1 || p.Waiting != 1 || !p.NextFreeAt.IsZero() {
		t.Fatalf("concurrency policy %+v", p)
	}
	list := must[[]client.Policy](t)(c.PolicyList(bg))
	if len(list) != 2 || list[0].Kind != client.Concurrency || list[1].Kind != client.RateLimit {
		t.Fatalf("policy list %+v", list)
	}
	if ok := must[bool](t)(c.PolicyDel(bg, client.Concurrency, "db pool")); !ok {
		t.Fatal("del said 0")
	}
	if ok := must[bool](t)(c.PolicyDel(bg, client.Concurrency, "db pool")); ok {
		t.Fatal("second del said 1")
	}
	if _, err := c.PolicyGet(bg, client.Concurrency, "db pool"); !errors.Is(err, client.ErrNoPolicy) {
		t.Fatalf("get deleted: %v", err)
	}
	if j := must[*client.Job](t)(c.Get(bg, c2)); j.BlockedBy != nil {
		t.Fatalf("blocked after the policy went: %+v", j.BlockedBy)
	}
}

func TestFull(t *testing.T) {
	c := startServer(t, serverOption{config: func(cfg *store.Config) { cfg.MaxJobs = 1 }}).client(t)
	must[string](t)(c.Push(bg, "q", "h", nil, nil))
	if _, err := c.Push(bg, "q", "h", nil, nil); !errors.Is(err, client.ErrFull) {
		t.Fatalf("push beyond MaxJobs: %v", err)
	}
}

func TestMisconf(t *testing.T) {
	c := startServer(t, serverOption{journal: brokenLog{}}).client(t)
	_, err := c.Push(bg, "q", "h", nil, nil)
	var se *client.Error
	if !errors.Is(err, client.ErrMisconf) || !errors.As(err, &se) || !strings.Contains(se.Message, "no space left") {
		t.Fatalf("push with a broken log: %v", err)
	}
	if _, err := c.Get(bg, "x"); !errors.Is(err, client.ErrNoJob) {
		t.Fatalf("reads still work: %v", err)
	}
}
