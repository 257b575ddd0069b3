package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"sluice/client"
	"sluice/internal/check"
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
	// Every field but the times the server sets (checked below) and
	// LastError (HasLastError says there is none).
	check.Equal(t, "job", *j, want, cmpopts.IgnoreFields(client.Job{}, "CreatedAt", "UpdatedAt", "LastError"))
	if j.CreatedAt.IsZero() || j.UpdatedAt.Before(j.CreatedAt) {
		t.Fatalf("times: created %v updated %v", j.CreatedAt, j.UpdatedAt)
	}

	// Generated ids; a delay schedules the job.
	gen := must[string](t)(c.Push(bg, "emails", "send", nil, nil))
	if gen == "" || gen == id {
		t.Fatalf("generated id %q", gen)
	}
	d := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{Delay: time.Minute}))
	j = must[*client.Job](t)(c.Get(bg, d))
	check.Field(t, "delayed job's State", j.State, client.StateScheduled)
	check.Field(t, "delayed job's MaxAttempts", j.MaxAttempts, 1)

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

	// A unique key: keep returns the holder, reject is ErrDupKey.
	u := &client.Unique{Key: "user-1", Scope: "queued", TTL: time.Minute}
	u1 := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{Unique: u}))
	if u2 := must[string](t)(c.Push(bg, "emails", "send", nil, &client.PushOptions{Unique: u})); u2 != u1 {
		t.Fatalf("kept key: %s, holder %s", u2, u1)
	}
	r := *u
	r.OnDuplicate = "reject"
	if _, err := c.Push(bg, "emails", "send", nil, &client.PushOptions{Unique: &r}); !errors.Is(err, client.ErrDupKey) {
		t.Fatalf("rejected key: %v", err)
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
	check.Len(t, "HANDLERS h2 reserved", res, 1)
	check.Field(t, "HANDLERS h2 reserved: ID", res[0].ID, b)
	check.Field(t, "HANDLERS h2 reserved: Handler", res[0].Handler, "h2")
	check.Field(t, "HANDLERS h2 reserved: Payload", string(res[0].Payload), "b")
	check.Field(t, "HANDLERS h2 reserved: Queue", res[0].Queue, "q")
	rb := res[0]
	if rb.Token == "" {
		t.Errorf("reservation without a token: %+v", rb)
	}
	check.Field(t, "reservation's Attempt", rb.Attempt, 0)
	if time.Until(rb.ExpiresAt) < 5*time.Second {
		t.Errorf("reservation's ExpiresAt %v is less than 5 s away", rb.ExpiresAt)
	}
	j := must[*client.Job](t)(c.Get(bg, b))
	check.Field(t, "reserved job's State", j.State, client.StateReserved)
	check.Field(t, "reserved job's Worker", j.Worker, "w")
	if !j.ExpiresAt.Equal(rb.ExpiresAt) {
		t.Errorf("reserved job's ExpiresAt = %v, want the reservation's %v", j.ExpiresAt, rb.ExpiresAt)
	}

	// Release with a delay schedules it; the token is spent.
	if err := c.Release(bg, rb.Token, time.Minute); err != nil {
		t.Fatal(err)
	}
	j = must[*client.Job](t)(c.Get(bg, b))
	check.Field(t, "released job's State", j.State, client.StateScheduled)
	check.Field(t, "released job's Attempt", j.Attempt, 0)
	if err := c.Release(bg, rb.Token, 0); !errors.Is(err, client.ErrNoReservation) {
		t.Fatalf("second release: %v", err)
	}

	// Start, touch, fail with a message and RETRYIN.
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Count: 5, Queues: []string{"q"}}))
	check.Len(t, "COUNT 5 reserved", res, 1)
	check.Field(t, "COUNT 5 reserved: ID", res[0].ID, a)
	check.Field(t, "COUNT 5 reserved: Priority", res[0].Priority, 1)
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
	j = must[*client.Job](t)(c.Get(bg, a))
	check.Field(t, "failed job's LastError", j.LastError, "boom\nline 2")
	check.Field(t, "failed job's HasLastError", j.HasLastError, true)
	check.Field(t, "failed job's Attempt", j.Attempt, 1)

	// NORETRY fails for good despite attempts left; Retry revives it.
	res = must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: lease, Queues: []string{"q"}}))
	check.Len(t, "reserved", res, 1)
	check.Field(t, "reserved: Attempt", res[0].Attempt, 1)
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
	check.Len(t, "reserved", res, 1)
	check.Field(t, "reserved: ID", res[0].ID, a)
	check.Field(t, "reserved: Attempt", res[0].Attempt, 0)
	if err := c.Ack(bg, res[0].Token); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(bg, res[0].Token); !errors.Is(err, client.ErrNoReservation) {
		t.Fatalf("second ack: %v", err)
	}
	j = must[*client.Job](t)(c.Get(bg, a))
	check.Field(t, "acked job's State", j.State, client.StateSucceeded)
	check.Field(t, "acked job's State.Terminal()", j.State.Terminal(), true)

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
	check.Field(t, "stats' Queue", st.Queue, "b")
	check.Field(t, "stats' Status", st.Status, "paused")
	check.Field(t, "stats' Paused", st.Paused, true)
	check.Field(t, "stats' Queued", st.Queued, 4)
	check.Field(t, "stats' PushedTotal", st.PushedTotal, 4)
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
	st = must[*client.QueueStats](t)(c.QueueStats(bg, "b"))
	check.Field(t, "stats after resume: Status", st.Status, "active")
	check.Field(t, "stats after resume: Paused", st.Paused, false)
	if n := must[int64](t)(c.Purge(bg, "a")); n != 1 {
		t.Fatalf("purged %d", n)
	}
	st = must[*client.QueueStats](t)(c.QueueStats(bg, "nothing"))
	check.Field(t, "unknown queue stats: Status", st.Status, "idle")
	check.Field(t, "unknown queue stats: Queued", st.Queued, 0)
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
	check.Len(t, "reserved", res, 2)
	check.Field(t, "reserved[0].ID", res[0].ID, c1)
	check.Field(t, "reserved[1].ID", res[1].ID, r1)

	b := must[*client.Job](t)(c.Get(bg, c2)).BlockedBy
	if b == nil {
		t.Fatal("concurrency blocked_by is nil")
	}
	check.Field(t, "concurrency blocked_by's Reason", b.Reason, client.BlockedConcurrency)
	check.Field(t, "concurrency blocked_by's Key", b.Key, "db pool")
	check.Field(t, "concurrency blocked_by's Active", b.Active, 1)
	check.Field(t, "concurrency blocked_by's Limit", b.Limit, 1)
	b = must[*client.Job](t)(c.Get(bg, r2)).BlockedBy
	if b == nil {
		t.Fatal("rate-limit blocked_by is nil")
	}
	check.Field(t, "rate-limit blocked_by's Reason", b.Reason, client.BlockedRateLimit)
	check.Field(t, "rate-limit blocked_by's Key", b.Key, "api")
	if time.Until(b.Until) < 50*time.Minute {
		t.Errorf("rate-limit blocked_by's Until %v is less than 50 minutes away", b.Until)
	}

	p := must[*client.Policy](t)(c.PolicyGet(bg, client.RateLimit, "api"))
	check.Field(t, "rate policy's Kind", p.Kind, client.RateLimit)
	check.Field(t, "rate policy's Key", p.Key, "api")
	check.Field(t, "rate policy's Limit", p.Limit, 1)
	check.Field(t, "rate policy's Period", p.Period, time.Hour)
	check.Field(t, "rate policy's Active", p.Active, 1)
	check.Field(t, "rate policy's Waiting", p.Waiting, 1)
	check.Field(t, "rate policy's NextFreeAt.IsZero()", p.NextFreeAt.IsZero(), false)
	p = must[*client.Policy](t)(c.PolicyGet(bg, client.Concurrency, "db pool"))
	check.Field(t, "concurrency policy's Kind", p.Kind, client.Concurrency)
	check.Field(t, "concurrency policy's Limit", p.Limit, 1)
	check.Field(t, "concurrency policy's Period", p.Period, 0)
	check.Field(t, "concurrency policy's Active", p.Active, 1)
	check.Field(t, "concurrency policy's Waiting", p.Waiting, 1)
	check.Field(t, "concurrency policy's NextFreeAt.IsZero()", p.NextFreeAt.IsZero(), true)
	list := must[[]client.Policy](t)(c.PolicyList(bg))
	check.Len(t, "policy list", list, 2)
	check.Field(t, "policy list[0].Kind", list[0].Kind, client.Concurrency)
	check.Field(t, "policy list[1].Kind", list[1].Kind, client.RateLimit)
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

// Templates, throttles and their blocked_by through the client.
func TestTemplatesAndThrottles(t *testing.T) {
	c := startServer(t).client(t)
	if err := c.PolicySetConcurrency(bg, "tenant:*", 1); err != nil {
		t.Fatal(err)
	}
	must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Concurrency: "tenant:a"}))
	a2 := must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Concurrency: "tenant:a"}))
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 10, Queues: []string{"q"}}))
	check.Len(t, "reserved", res, 1)
	p := must[*client.Policy](t)(c.PolicyGet(bg, client.Concurrency, "tenant:a"))
	check.Field(t, "instance's Template", p.Template, "tenant:*")
	check.Field(t, "instance's Limit", p.Limit, 1)
	check.Field(t, "instance's Waiting", p.Waiting, 1)

	until := must[time.Time](t)(c.PolicyThrottle(bg, "tenant:a", time.Hour))
	if time.Until(until) < 50*time.Minute {
		t.Fatalf("throttle ends at %v", until)
	}
	// A worker's shorter throttle keeps the longer end.
	if err := c.ReleaseThrottle(bg, res[0].Token, 0, "tenant:a", time.Second); err != nil {
		t.Fatal(err)
	}
	b := must[*client.Job](t)(c.Get(bg, a2)).BlockedBy
	if b == nil {
		t.Fatal("throttled job's blocked_by is nil")
	}
	check.Field(t, "blocked_by's Reason", b.Reason, client.BlockedThrottled)
	check.Field(t, "blocked_by's Key", b.Key, "tenant:a")
	check.Field(t, "blocked_by's Until", b.Until.UnixMilli(), until.UnixMilli())
	tp := must[*client.Policy](t)(c.PolicyGet(bg, client.Throttle, "tenant:a"))
	check.Field(t, "throttle's NextFreeAt", tp.NextFreeAt.UnixMilli(), until.UnixMilli())
	check.Field(t, "throttle's Waiting", tp.Waiting, 2)
	if lifted := must[time.Time](t)(c.PolicyThrottle(bg, "tenant:a", 0)); !lifted.IsZero() {
		t.Fatalf("lifting returned %v", lifted)
	}
	if _, err := c.PolicyGet(bg, client.Throttle, "tenant:a"); !errors.Is(err, client.ErrNoPolicy) {
		t.Fatalf("get lifted throttle: %v", err)
	}
}

func TestBreakers(t *testing.T) {
	c := startServer(t).client(t)
	target := client.BreakerHandler("mail")
	if err := c.PolicySetBreaker(bg, target, 1, time.Minute, time.Hour, 2); err != nil {
		t.Fatal(err)
	}
	must[string](t)(c.Push(bg, "q", "mail", nil, nil))
	waiting := must[string](t)(c.Push(bg, "q", "mail", nil, nil))
	res := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Queues: []string{"q"}}))
	check.Len(t, "reserved", res, 1)
	if _, err := c.Fail(bg, res[0].Token, client.FailOptions{}); err != nil {
		t.Fatal(err)
	}
	p := must[*client.Policy](t)(c.PolicyGet(bg, client.Breaker, target))
	check.Field(t, "State", p.State, client.BreakerOpen)
	check.Field(t, "Cooldown", p.Cooldown, time.Hour)
	check.Field(t, "Probes", p.Probes, 2)
	check.Field(t, "Waiting", p.Waiting, 1)
	if time.Until(p.NextFreeAt) < 50*time.Minute {
		t.Fatalf("open until %v", p.NextFreeAt)
	}
	b := must[*client.Job](t)(c.Get(bg, waiting)).BlockedBy
	if b == nil {
		t.Fatal("blocked_by is nil")
	}
	check.Field(t, "blocked_by's Reason", b.Reason, client.BlockedBreaker)
	check.Field(t, "blocked_by's Key", b.Key, target)
	check.Field(t, "blocked_by's Until", b.Until.UnixMilli(), p.NextFreeAt.UnixMilli())
	list := must[[]client.Policy](t)(c.PolicyList(bg))
	check.Len(t, "PolicyList", list, 1)
	if ok := must[bool](t)(c.PolicyDel(bg, client.Breaker, target)); !ok {
		t.Fatal("PolicyDel found no breaker")
	}
	if _, err := c.PolicyGet(bg, client.Breaker, target); !errors.Is(err, client.ErrNoPolicy) {
		t.Fatalf("get deleted breaker: %v", err)
	}
}

// Expiry and timeout options reach the server and come back in Get.
func TestPushExpiryAndTimeout(t *testing.T) {
	c := startServer(t).client(t)
	dl := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	id := must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Deadline: dl, Timeout: 1500 * time.Millisecond}))
	j := must[*client.Job](t)(c.Get(bg, id))
	if !j.Deadline.Equal(dl) || j.Timeout != 1500*time.Millisecond {
		t.Fatalf("deadline %v timeout %v, want %v and 1.5s", j.Deadline, j.Timeout, dl)
	}
	before := time.Now()
	id = must[string](t)(c.Push(bg, "q", "h", nil, &client.PushOptions{Expires: time.Minute}))
	j = must[*client.Job](t)(c.Get(bg, id))
	if j.Deadline.Before(before.Add(time.Minute-time.Second)) || j.Timeout != 0 {
		t.Fatalf("deadline %v timeout %v", j.Deadline, j.Timeout)
	}
	_, err := c.Push(bg, "q", "h", nil, &client.PushOptions{Expires: time.Minute, Deadline: dl})
	if !errors.Is(err, client.ErrRequest) {
		t.Fatalf("EXPIRES with DEADLINE: %v", err)
	}
	if s := must[*client.QueueStats](t)(c.QueueStats(bg, "q")); s.Expired != 0 || s.Queued != 2 {
		t.Fatalf("stats %+v", s)
	}
}
