package client_test

import (
	"errors"
	"testing"
	"time"

	"sluice/client"
	"sluice/internal/check"
)

func TestCron(t *testing.T) {
	c := startServer(t).client(t)
	created := must[bool](t)(c.CronSet(bg, "beat", "@every 1s", "ticks", "tick", []byte("p\x00"), &client.CronOptions{
		TZ: "Europe/Berlin", Priority: 2, Concurrency: "ck", MaxAttempts: 3, Backoff: 5 * time.Second}))
	if !created {
		t.Fatal("a new entry should be reported created")
	}
	e := must[*client.Cron](t)(c.CronGet(bg, "beat"))
	check.Field(t, "Schedule", e.Schedule, "@every 1s")
	check.Field(t, "TZ", e.TZ, "Europe/Berlin")
	check.Field(t, "Payload", string(e.Payload), "p\x00")
	check.Field(t, "Concurrency", e.Concurrency, "ck")
	check.Field(t, "Backoff", e.Backoff, 5*time.Second)
	if e.NextRunAt.IsZero() || e.NextRunAt.After(time.Now().Add(time.Second)) || !e.LastRunAt.IsZero() {
		t.Fatalf("times: next %v last %v", e.NextRunAt, e.LastRunAt)
	}
	// The first tick pushes a job with the entry's options, and wakes a
	// worker waiting for it.
	js := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute,
		Block: 10 * time.Second, Queues: []string{"ticks"}}))
	if len(js) != 1 {
		t.Fatalf("a blocked reserve got %v", js)
	}
	j := must[*client.Job](t)(c.Get(bg, js[0].ID))
	check.Field(t, "Priority", j.Priority, int64(2))
	check.Field(t, "MaxAttempts", j.MaxAttempts, int64(3))
	if j.CreatedAt.UnixMilli()%1000 != 0 {
		t.Fatalf("the job was created at %v, not on its tick", j.CreatedAt)
	}
	if created := must[bool](t)(c.CronSet(bg, "beat", "0 9 * * 1-5", "ticks", "tick", nil, nil)); created {
		t.Fatal("replacing should not report created")
	}
	list := must[[]client.Cron](t)(c.CronList(bg))
	if len(list) != 1 || list[0].TZ != "UTC" || list[0].Fired < 1 || list[0].LastRunAt.IsZero() {
		t.Fatalf("CronList %+v", list)
	}
	if _, err := c.CronSet(bg, "bad", "every minute", "q", "h", nil, nil); !errors.Is(err, client.ErrRequest) {
		t.Fatalf("a bad schedule: %v", err)
	}
	if !must[bool](t)(c.CronDel(bg, "beat")) || must[bool](t)(c.CronDel(bg, "beat")) {
		t.Fatal("CronDel should report the entry once")
	}
	if _, err := c.CronGet(bg, "beat"); !errors.Is(err, client.ErrNoCron) {
		t.Fatalf("CronGet after CronDel: %v", err)
	}
}
