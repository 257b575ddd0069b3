package commands_test

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockedReserve starts a blocking JOBRESERVE on its own client and returns
// a channel with its result, once the server has registered the waiter.
func (ts *testServer) blockedReserve(t *testing.T, args ...any) <-chan []map[string]any {
	t.Helper()
	c := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := ts.waiters.Waiting()
	ch := make(chan []map[string]any, 1)
	go func() { ch <- reserve(t, c, args...) }()
	waitFor(t, "the client to block", func() bool { return ts.waiters.Waiting() > before })
	return ch
}

func receive(t *testing.T, ch <-chan []map[string]any) []map[string]any {
	t.Helper()
	select {
	case rs := <-ch:
		return rs
	case <-time.After(10 * time.Second):
		t.Fatal("blocked reserve never answered")
		return nil
	}
}

func TestBlockWokenByPush(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	got := ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "QUEUES", "other", "q")
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id})
	check.Fields(t, "job after blocked reserve", asMap(t, do(t, c, "JOBGET", id), jobFields...),
		map[string]any{"state": "reserved", "worker": "w"})
}

func TestBlockWokenByAckFreeingASlot(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	do(t, c, "POLICYSET", "CONCURRENCY", "k", 1)
	do(t, c, "JOBPUSH", "q", "h", "1", "CONCURRENCY", "k")
	id2 := do(t, c, "JOBPUSH", "q", "h", "2", "CONCURRENCY", "k").(string)
	tok := reserve(t, c, "w1", 30000, "QUEUES", "q")[0]["token"].(string)
	got := ts.blockedReserve(t, "w2", 30000, "BLOCK", 0, "QUEUES", "q")
	time.Sleep(50 * time.Millisecond)
	select {
	case rs := <-got:
		t.Fatalf("served past the concurrency cap: %v", rs)
	default:
	}
	do(t, c, "JOBACK", tok)
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id2})
}

func TestBlockWokenByRateWindowOpening(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	do(t, c, "POLICYSET", "RATELIMIT", "api", 1, 400)
	do(t, c, "JOBPUSH", "q", "h", "1", "RATELIMIT", "api")
	id2 := do(t, c, "JOBPUSH", "q", "h", "2", "RATELIMIT", "api").(string)
	first := time.Now().UnixMilli()
	if rs := reserve(t, c, "w1", 30000, "QUEUES", "q"); len(rs) != 1 {
		t.Fatal("first reserve")
	}
	got := ts.blockedReserve(t, "w2", 30000, "BLOCK", 0, "QUEUES", "q")
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id2})
	// Admitted no earlier than the window allows (expires_at = admission + lease).
	if admitted := rs[0]["expires_at"].(int64) - 30000; admitted < first+400 {
		t.Fatalf("admitted at %d, window opens at %d", admitted, first+400)
	}
}

func TestBlockWokenByResumeAndPolicyDelete(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	do(t, c, "QUEUEPAUSE", "q")
	do(t, c, "JOBPUSH", "q", "h", "1")
	got := ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "QUEUES", "q")
	do(t, c, "QUEUERESUME", "q")
	if rs := receive(t, got); len(rs) != 1 {
		t.Fatalf("resume: %v", rs)
	}
	do(t, c, "POLICYSET", "CONCURRENCY", "k", 1)
	do(t, c, "JOBPUSH", "r", "h", "1", "CONCURRENCY", "k")
	do(t, c, "JOBPUSH", "r", "h", "2", "CONCURRENCY", "k")
	reserve(t, c, "w", 30000, "QUEUES", "r")
	got = ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "QUEUES", "r")
	do(t, c, "POLICYDEL", "CONCURRENCY", "k")
	if rs := receive(t, got); len(rs) != 1 {
		t.Fatalf("policy delete: %v", rs)
	}
}

func TestBlockWokenByLeaseExpiry(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "1").(string)
	tok := reserve(t, c, "w1", 200, "QUEUES", "q")[0]["token"].(string)
	got := ts.blockedReserve(t, "w2", 30000, "BLOCK", 0, "QUEUES", "q")
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id})
	if err := doErr(t, c, "JOBACK", tok); !strings.HasPrefix(err, "EXPIRED") {
		t.Fatalf("late ack: %s", err)
	}
}

func TestBlockTimeout(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	start := time.Now()
	isNil(t, c, "JOBRESERVE", "w", 1000, "BLOCK", 200, "QUEUES", "q")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("BLOCK 200 returned after %v", d)
	}
	if ts.waiters.Waiting() != 0 {
		t.Fatal("timed-out waiter still registered")
	}
}

func TestBlockFIFO(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	var chans []<-chan []map[string]any
	for _, w := range []string{"w1", "w2", "w3"} {
		chans = append(chans, ts.blockedReserve(t, w, 30000, "BLOCK", 0, "QUEUES", "q"))
	}
	for i := range chans {
		id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
		rs := receive(t, chans[i])
		check.Len(t, "waiter "+strconv.Itoa(i+1)+"'s reservations", rs, 1)
		check.Fields(t, "waiter "+strconv.Itoa(i+1)+"'s reservation", rs[0], map[string]any{"id": id})
		if w := asMap(t, do(t, c, "JOBGET", id), jobFields...)["worker"]; w != []string{"w1", "w2", "w3"}[i] {
			t.Fatalf("job %d went to %v", i, w)
		}
	}
}

func TestBlockHandlerFilterDoesNotStarveOthers(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	onlyX := ts.blockedReserve(t, "wx", 30000, "BLOCK", 0, "HANDLERS", 1, "x", "QUEUES", "q")
	unfiltered := ts.blockedReserve(t, "wany", 30000, "BLOCK", 0, "QUEUES", "q")
	id := do(t, c, "JOBPUSH", "q", "y", "p").(string)
	rs := receive(t, unfiltered)
	check.Len(t, "the unfiltered waiter's reservations", rs, 1)
	check.Fields(t, "the unfiltered waiter's reservation", rs[0], map[string]any{"id": id})
	select {
	case rs := <-onlyX:
		t.Fatalf("filtered waiter got %v", rs)
	default:
	}
	idx := do(t, c, "JOBPUSH", "q", "x", "p").(string)
	rs = receive(t, onlyX)
	check.Len(t, "the filtered waiter's reservations", rs, 1)
	check.Fields(t, "the filtered waiter's reservation", rs[0], map[string]any{"id": idx})
}

// A client that disconnects while blocked gets nothing: the job pushed
// afterwards stays queued.
func TestBlockDisconnectLeavesJobQueued(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	// A pipelined PING before the blocking command is answered first.
	if _, err := nc.Write([]byte("PING\r\nJOBRESERVE w 30000 BLOCK 0 QUEUES q\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING before the blocking reserve: %q %v", line, err)
	}
	waitFor(t, "the client to block", func() bool { return ts.waiters.Waiting() == 1 })
	nc.Close()
	waitFor(t, "the waiter to go", func() bool { return ts.waiters.Waiting() == 0 })
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	if s := asMap(t, do(t, c, "JOBGET", id), jobFields...)["state"]; s != "queued" {
		t.Fatalf("job pushed after the disconnect is %v", s)
	}
	if n := do(t, c, "QUEUELEN", "q"); n != int64(1) {
		t.Fatalf("QUEUELEN %v", n)
	}
}

func TestShutdownAnswersBlockedReservesWithNull(t *testing.T) {
	ts := start(t)
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for i := 0; i < 3; i++ {
		c := ts.client(t, func(o *redis.Options) { o.PoolSize = 1; o.MaxRetries = -1 })
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- c.Do(ctx, "JOBRESERVE", "w", 1000, "BLOCK", 0, "QUEUES", "q").Err()
		}()
	}
	waitFor(t, "three waiters", func() bool { return ts.waiters.Waiting() == 3 })
	ts.shutdown(t)
	wg.Wait()
	close(results)
	for err := range results {
		if err != redis.Nil {
			t.Fatalf("blocked reserve at shutdown: %v, want null", err)
		}
	}
}

func TestBlockWokenByRetryAndDelayedRelease(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "1", "MAXATTEMPTS", 3).(string)
	tok := reserve(t, c, "w1", 30000, "QUEUES", "q")[0]["token"].(string)
	got := ts.blockedReserve(t, "w2", 30000, "BLOCK", 0, "QUEUES", "q")
	do(t, c, "JOBFAIL", tok, "RETRYIN", 150)
	rs := receive(t, got)
	check.Len(t, "retry", rs, 1)
	check.Fields(t, "retry", rs[0], map[string]any{"id": id, "attempt": int64(1)})
	got = ts.blockedReserve(t, "w3", 30000, "BLOCK", 0, "QUEUES", "q")
	do(t, c, "JOBRELEASE", rs[0]["token"], "DELAY", 150)
	rs = receive(t, got)
	check.Len(t, "delayed release", rs, 1)
	check.Fields(t, "delayed release", rs[0], map[string]any{"id": id})
}

// A client blocked on several queues is served from whichever gets work,
// and only once.
func TestBlockOnSeveralQueues(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	got := ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "COUNT", 1, "QUEUES", "a", "b", "c")
	id := do(t, c, "JOBPUSH", "c", "h", "1").(string)
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id})
	do(t, c, "JOBPUSH", "a", "h", "2")
	time.Sleep(50 * time.Millisecond)
	if n := do(t, c, "QUEUELEN", "a"); n != int64(1) {
		t.Fatalf("a served waiter took a second job: QUEUELEN a = %v", n)
	}
	if ts.waiters.Waiting() != 0 {
		t.Fatal("waiter still registered on the other queues")
	}
}

// Workers that block, take jobs and ack them, among clients that send a
// blocking reserve and hang up at once (before, during or after the
// hand-over), lose no job and deliver none twice: each pushed job is acked
// exactly once. A job handed to a client that hung up is released, or
// comes back when its lease ends, and the blocked workers are woken for it.
func TestBlockChurnLosesNoJob(t *testing.T) {
	ts := start(t)
	prod := ts.client(t)
	const jobs, workers, quitters = 200, 6, 3
	var mu sync.Mutex
	acked := map[string]int{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
			for {
				select {
				case <-done:
					return
				default:
				}
				v, err := c.Do(ctx, "JOBRESERVE", "w"+strconv.Itoa(w), 1000, "BLOCK", 100, "QUEUES", "q").Result()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					t.Errorf("worker %d: JOBRESERVE: %v", w, err)
					return
				}
				for _, r := range v.([]any) {
					tok, id := check.MapField(r, "token").(string), check.MapField(r, "id").(string)
					if err := c.Do(ctx, "JOBACK", tok).Err(); err != nil {
						continue // its lease ran out first: it is handed out again
					}
					mu.Lock()
					acked[id]++
					mu.Unlock()
				}
			}
		}()
	}
	for q := range quitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(q), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				nc, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Errorf("quitter %d: %v", q, err)
					return
				}
				_, _ = nc.Write([]byte("JOBRESERVE quitter 1000 BLOCK 0 QUEUES q\r\n"))
				time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
				nc.Close()
			}
		}()
	}
	ids := map[string]bool{}
	for i := range jobs {
		ids[do(t, prod, "JOBPUSH", "q", "h", strconv.Itoa(i)).(string)] = true
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == jobs {
			break
		}
		if time.Now().After(deadline) {
			close(done)
			wg.Wait()
			t.Fatalf("%d of %d jobs acked; QUEUELEN %v", n, jobs, do(t, prod, "QUEUELEN", "q"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	for id, n := range acked {
		if !ids[id] || n != 1 {
			t.Errorf("job %s acked %d times (pushed: %v)", id, n, ids[id])
		}
	}
	if n := do(t, prod, "QUEUELEN", "q"); n != int64(0) {
		t.Errorf("QUEUELEN %v after every job was acked", n)
	}
	waitFor(t, "every waiter to go", func() bool { return ts.waiters.Waiting() == 0 })
}
