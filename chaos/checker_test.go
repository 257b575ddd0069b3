package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps the checker's reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Logf(string, ...any) {}

// The checker reports each kind of violation it is for, from a made-up
// history, and nothing for the same history without them.
func TestCheckerFindsViolations(t *testing.T) {
	base := time.UnixMilli(1_000_000)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	h := newHistory()
	reserve := func(id, token, queue string, startMs, gotMs int) *resv {
		r := &resv{token: token, id: id, queue: queue, lease: lease, expiresAt: base.UnixMilli() + int64(startMs) + lease,
			sent: at(gotMs - 5), got: at(gotMs)}
		h.reserved(r)
		return r
	}
	op := func(kind, token, id string, sentMs int) {
		h.op(&tokOp{kind: kind, token: token, id: id, sent: at(sentMs), got: at(sentMs + 5), ok: true, definite: true})
	}
	final := map[string]map[string]string{}
	done := func(ids ...string) {
		for _, id := range ids {
			final[id] = map[string]string{"state": "succeeded"}
		}
	}

	// Clean: a job reserved, acked; another expired, reserved again, acked.
	reserve("a", "a.1", plainQueue, 0, 5)
	op("JOBACK", "a.1", "a", 10)
	reserve("b", "b.1", capQueue, 0, 5)
	reserve("b", "b.2", capQueue, 900, 905)
	op("JOBACK", "b.2", "b", 950)
	h.push("k1", plainQueue, "a", true)
	h.push("k2", capQueue, "b", false)
	h.push("k2", capQueue, "b", true)
	done("a", "b")
	c := &checker{t: &recorder{TB: t}, h: h, final: final}
	c.checkAll()
	if errs := c.t.(*recorder).errs; len(errs) > 0 || c.passed == 0 {
		t.Fatalf("a clean history: %d passed, reported %q", c.passed, errs)
	}

	// Each violation once.
	reserve("a", "a.2", plainQueue, 100, 40)  // handed out after its ack's reply
	reserve("c", "c.1", plainQueue, 0, 5)     // honoured after its lease
	op("JOBSTART", "c.1", "c", lease+50)      //
	reserve("d", "d.1", plainQueue, 0, 5)     // honoured after a later reservation
	reserve("d", "d.2", plainQueue, 100, 110) //
	op("JOBACK", "d.1", "d", 200)             //
	for i := range 3 {                        // three held under a cap of two
		reserve(fmt.Sprint("e", i), fmt.Sprint("e", i, ".1"), capQueue, 2000, 2005)
	}
	for i := range 6 { // six in one window of the rate limit
		reserve(fmt.Sprint("f", i), fmt.Sprint("f", i, ".1"), rateQueue, 3000+100*i, 3005+100*i)
	}
	h.push("k3", plainQueue, "x", true) // a key answering two ids, the first lost
	h.push("k3", plainQueue, "y", true)
	done("c", "d")
	c = &checker{t: &recorder{TB: t}, h: h, final: final}
	c.checkAll()
	errs := c.t.(*recorder).errs
	for _, want := range []string{
		"job a acked OK", "c.1 (job c) sent", "d.1 (job d) sent", "concurrency ck: 3 jobs",
		"rate limit rk: 6 reservations", "answered ids x and y", "answered id x, which the final leader does not have",
	} {
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e, want)
		}
		if !found {
			t.Errorf("no report of %q in %q", want, errs)
		}
	}
	if len(errs) != 7 || c.failed != 7 {
		t.Errorf("%d reports, %d failed checks, want 7: %q", len(errs), c.failed, errs)
	}
}
