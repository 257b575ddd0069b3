package commands_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/protocol"
	"sluice/store"
)

// rawConn speaks RESP to the server directly, so that a test sees every
// reply exactly as sent, as a transaction's client does.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

type respErr string

func (e respErr) Error() string { return string(e) }

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// send writes commands (pipelined) without reading.
func (c *rawConn) send(cmds ...[]string) {
	c.t.Helper()
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one reply: a string (simple or bulk), respErr, int64, []any
// or nil.
func (c *rawConn) read() any {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a reply: %v", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '+':
		return line[1:]
	case '-':
		return respErr(line[1:])
	case ':':
		n, _ := strconv.ParseInt(line[1:], 10, 64)
		return n
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.t.Fatal(err)
		}
		return string(buf[:n])
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil
		}
		out := make([]any, n)
		for i := range out {
			out[i] = c.read()
		}
		return out
	}
	c.t.Fatalf("unexpected reply line %q", line)
	return nil
}

// do sends one command and reads its reply.
func (c *rawConn) do(args ...string) any {
	c.t.Helper()
	c.send(args)
	return c.read()
}

func wantReply(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

func wantErrPrefix(t *testing.T, what string, got any, prefix string) {
	t.Helper()
	e, ok := got.(respErr)
	if !ok || !strings.HasPrefix(string(e), prefix) {
		t.Fatalf("%s: got %#v, want an error starting %q", what, got, prefix)
	}
}

func TestTransactionsFollowRedis(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.MultiMaxCommands = 4 })
	c := dialRaw(t, ts.addr)
	qlen := func() int64 { return c.do("QUEUELEN", "q").(int64) }

	wantReply(t, "EXEC without MULTI", c.do("EXEC"), respErr("ERR EXEC without MULTI"))
	wantReply(t, "DISCARD without MULTI", c.do("DISCARD"), respErr("ERR DISCARD without MULTI"))

	// Nested MULTI is refused and the transaction stays open, unharmed.
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "MULTI nested", c.do("MULTI"), respErr("ERR MULTI calls can not be nested"))
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "a"), "QUEUED")
	got := c.do("EXEC").([]any)
	if len(got) != 1 || qlen() != 1 {
		t.Fatalf("EXEC after a nested MULTI: %#v, queue length %d", got, qlen())
	}

	// A command refused while queueing aborts the whole transaction.
	for _, bad := range [][]string{
		{"NOSUCHCOMMAND", "x"},
		{"JOBPUSH", "q"},      // arity
		{"CLIENT", "ID", "x"}, // a subcommand's arity
	} {
		wantReply(t, "MULTI", c.do("MULTI"), "OK")
		wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "b"), "QUEUED")
		wantErrPrefix(t, fmt.Sprint(bad), c.do(bad...), "ERR ")
		wantReply(t, "queued after the error", c.do("JOBPUSH", "q", "h", "c"), "QUEUED")
		wantReply(t, "EXEC", c.do("EXEC"), respErr("EXECABORT Transaction discarded because of previous errors."))
		if n := qlen(); n != 1 {
			t.Fatalf("after an aborted transaction (%v) the queue holds %d jobs, want 1", bad, n)
		}
	}

	// Past the bound on queued commands: refused, and EXEC aborts.
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	for i := 0; i < 4; i++ {
		wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "d"), "QUEUED")
	}
	wantErrPrefix(t, "the fifth command", c.do("JOBPUSH", "q", "h", "e"), "ERR a transaction may queue at most 4 commands")
	wantReply(t, "EXEC", c.do("EXEC"), respErr("EXECABORT Transaction discarded because of previous errors."))
	if n := qlen(); n != 1 {
		t.Fatalf("queue holds %d jobs, want 1", n)
	}

	// A run-time error answers in its slot; the others apply.
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	c.do("JOBPUSH", "q", "h", "f")
	c.do("JOBACK", "no-such-token")
	c.do("JOBPUSH", "q", "h", "g", "PRIORITY", "high")
	c.do("QUEUELEN", "q")
	got = c.do("EXEC").([]any)
	if len(got) != 4 {
		t.Fatalf("EXEC: %#v", got)
	}
	if _, ok := got[0].(string); !ok {
		t.Fatalf("slot 0: %#v, want an id", got[0])
	}
	wantErrPrefix(t, "slot 1", got[1], "NORESERVATION")
	wantErrPrefix(t, "slot 2", got[2], "ERR")
	wantReply(t, "slot 3 sees slot 0's push", got[3], int64(2))

	// DISCARD drops the queue; WATCH is refused, UNWATCH is a no-op.
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "h"), "QUEUED")
	wantReply(t, "WATCH inside MULTI", c.do("WATCH", "x"), respErr("ERR WATCH inside MULTI is not allowed"))
	wantReply(t, "UNWATCH inside MULTI", c.do("UNWATCH"), "OK")
	wantReply(t, "DISCARD", c.do("DISCARD"), "OK")
	wantReply(t, "EXEC after DISCARD", c.do("EXEC"), respErr("ERR EXEC without MULTI"))
	wantErrPrefix(t, "WATCH", c.do("WATCH", "x"), "ERR WATCH is not supported")
	wantReply(t, "UNWATCH", c.do("UNWATCH"), "OK")
	if n := qlen(); n != 2 {
		t.Fatalf("queue holds %d jobs after DISCARD, want 2", n)
	}

	// An empty transaction answers an empty array.
	c.do("MULTI")
	wantReply(t, "empty EXEC", c.do("EXEC"), []any{})

	// A blocking reserve inside a transaction answers at once, as BLPOP
	// inside MULTI does in Redis: with no eligible job, null.
	c.do("MULTI")
	c.do("JOBRESERVE", "w", "1000", "BLOCK", "0", "QUEUES", "empty")
	c.do("JOBRESERVE", "w", "1000", "COUNT", "5", "BLOCK", "0", "QUEUES", "q")
	got = c.do("EXEC").([]any)
	if len(got) != 2 || got[0] != nil {
		t.Fatalf("EXEC of blocking reserves: %#v", got)
	}
	if rs, ok := got[1].([]any); !ok || len(rs) != 2 {
		t.Fatalf("the second reserve got %#v, want the queue's two jobs", got[1])
	}
}

// A pipeline of a whole transaction, as client libraries send it, gets
// its replies in order; pushes inside it are not batched together with
// pushes outside it.
func TestTransactionPipelined(t *testing.T) {
	ts := start(t)
	c := dialRaw(t, ts.addr)
	c.send([]string{"JOBPUSH", "p", "h", "1"}, []string{"MULTI"},
		[]string{"JOBPUSH", "p", "h", "2"}, []string{"JOBPUSH", "p", "h", "3"}, []string{"EXEC"},
		[]string{"JOBPUSH", "p", "h", "4"}, []string{"QUEUELEN", "p"})
	if _, ok := c.read().(string); !ok {
		t.Fatal("first push")
	}
	wantReply(t, "MULTI", c.read(), "OK")
	wantReply(t, "queued", c.read(), "QUEUED")
	wantReply(t, "queued", c.read(), "QUEUED")
	if got, ok := c.read().([]any); !ok || len(got) != 2 {
		t.Fatalf("EXEC: %#v", got)
	}
	if _, ok := c.read().(string); !ok {
		t.Fatal("last push")
	}
	wantReply(t, "QUEUELEN", c.read(), int64(4))
}

// No other client's command runs inside a transaction: a client reading
// the queue's length sees it before or after each EXEC of 50 pushes,
// never in between, and a client blocked on the queue is woken once the
// transaction is over, so it reserves all 50.
func TestExecIsIsolated(t *testing.T) {
	ts := start(t)
	const rounds, per = 100, 50
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() { // a reader hammering QUEUELEN
		defer wg.Done()
		r := dialRaw(t, ts.addr)
		for !stop.Load() {
			n := r.do("QUEUELEN", "iso").(int64)
			if n%per != 0 {
				errs <- fmt.Errorf("QUEUELEN saw %d: half a transaction", n)
				return
			}
		}
	}()
	w := dialRaw(t, ts.addr)
	c := dialRaw(t, ts.addr)
	for i := 0; i < rounds; i++ {
		// A worker blocked on another queue is served once per EXEC,
		// with everything the transaction pushed there.
		w.send([]string{"JOBRESERVE", "w", "60000", "COUNT", "1000", "BLOCK", "0", "QUEUES", "wake"})
		waitBlocked(t, ts, 1)
		tx := [][]string{{"MULTI"}}
		for j := 0; j < per; j++ {
			tx = append(tx, []string{"JOBPUSH", "iso", "h", strconv.Itoa(j)}, []string{"JOBPUSH", "wake", "h", strconv.Itoa(j)})
		}
		c.send(append(tx, []string{"EXEC"})...)
		for j := 0; j < 2*per+1; j++ {
			c.read()
		}
		if got, ok := c.read().([]any); !ok || len(got) != 2*per {
			t.Fatalf("EXEC: %d replies", len(got))
		}
		if rs, ok := w.read().([]any); !ok || len(rs) != per {
			t.Fatalf("round %d: the blocked worker reserved %d jobs, want %d", i, len(rs), per)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if n := ts.store.Len(); n != 2*rounds*per {
		t.Fatalf("store holds %d jobs, want %d", n, 2*rounds*per)
	}
}

// waitBlocked waits until n clients are blocked in JOBRESERVE.
func waitBlocked(t *testing.T, ts *testServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.waiters.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients blocked, want %d", ts.waiters.Waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// What a transaction queues counts in the client's buffers
// (--maxmemory-clients) until EXEC or DISCARD lets it go.
func TestQueuedCommandsCountInClientBuffers(t *testing.T) {
	ts := start(t)
	c := dialRaw(t, ts.addr)
	c.do("PING")
	before := ts.srv.Stats().ClientBuffers
	c.do("MULTI")
	payload := strings.Repeat("x", 100<<10)
	for i := 0; i < 20; i++ {
		wantReply(t, "queued", c.do("JOBPUSH", "q", "h", payload), "QUEUED")
	}
	if held := ts.srv.Stats().ClientBuffers - before; held < 20*100<<10 {
		t.Fatalf("client buffers grew by %d bytes for 2 MB queued", held)
	}
	wantReply(t, "DISCARD", c.do("DISCARD"), "OK")
	if held := ts.srv.Stats().ClientBuffers - before; held >= 100<<10 {
		t.Fatalf("client buffers still hold %d bytes more after DISCARD", held)
	}
}

// An argument too large to read, answered with an error while queueing,
// aborts the transaction as an unknown command does.
func TestOversizedArgumentAbortsTheTransaction(t *testing.T) {
	ts := start(t, func(s *setup) { s.maxPayload = 1 << 10 })
	c := dialRaw(t, ts.addr)
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "a"), "QUEUED")
	wantErrPrefix(t, "oversized", c.do("JOBPUSH", "q", "h", strings.Repeat("x", 200<<10)), "ERR argument of")
	wantErrPrefix(t, "EXEC", c.do("EXEC"), "EXECABORT")
	wantReply(t, "nothing applied", c.do("QUEUELEN", "q"), int64(0))
}

// EXEC's replies are all built before the first is written, so they are
// bounded: past 64 MiB the commands left do not run, and say so in their
// slots.
func TestExecRepliesAreBounded(t *testing.T) {
	ts := start(t)
	c := dialRaw(t, ts.addr)
	big := strings.Repeat("x", 1<<20-100)
	for i := 0; i < 4; i++ {
		wantReply(t, "push", c.do("JOBPUSH", "q", "h", big, "ID", "big"+strconv.Itoa(i)) != nil, true)
	}
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	const peeks = 20 // 4 MiB each
	for i := 0; i < peeks; i++ {
		wantReply(t, "queued", c.do("QUEUEPEEK", "q", "COUNT", "4"), "QUEUED")
	}
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "late"), "QUEUED")
	got, ok := c.do("EXEC").([]any)
	if !ok || len(got) != peeks+1 {
		t.Fatalf("EXEC: %T of %d", got, len(got))
	}
	ran := 0
	for _, r := range got[:peeks] {
		if _, isErr := r.(error); !isErr {
			ran++
		}
	}
	if ran < 16 || ran == peeks {
		t.Fatalf("%d of %d peeks ran: want the replies cut off past 64 MiB", ran, peeks)
	}
	wantErrPrefix(t, "the push after the cut", got[peeks], "ERR not run")
	wantReply(t, "nothing after the cut ran", c.do("QUEUELEN", "q"), int64(4))
}

// unwritable is a store whose log cannot be written, as EXEC sees it.
type unwritable struct {
	*store.Store
	began atomic.Int64
}

func (u *unwritable) Writable() error { return store.ErrMisconf }
func (u *unwritable) BeginUnit()      { u.began.Add(1); u.Store.BeginUnit() }

// While the log cannot be written, EXEC of a transaction that writes is
// refused before it waits for the gate (a transaction waiting there keeps
// every later command waiting too); one that only reads still runs.
func TestExecOfWritesRefusedWhileTheLogFails(t *testing.T) {
	var u *unwritable
	ts := start(t, func(s *setup) {
		s.atomic = func(st *store.Store) protocol.Atomic { u = &unwritable{Store: st}; return u }
	})
	c := dialRaw(t, ts.addr)
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "p"), "QUEUED")
	wantErrPrefix(t, "EXEC", c.do("EXEC"), "MISCONF")
	if n := u.began.Load(); n != 0 {
		t.Fatalf("the refused EXEC began %d units", n)
	}
	wantReply(t, "nothing applied", c.do("QUEUELEN", "q"), int64(0))
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("QUEUELEN", "q"), "QUEUED")
	if got, ok := c.do("EXEC").([]any); !ok || len(got) != 1 {
		t.Fatalf("EXEC of a read: %#v", got)
	}
}

// Clients blocked in JOBRESERVE that leave while jobs are handed to them
// give those jobs back under the gate, as commands change the store: never
// inside another client's EXEC, whose unit would log the release and
// collect its notification from a second goroutine (run with -race).
func TestBlockedClientsLeavingDuringExecs(t *testing.T) {
	ts := start(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var pushed atomic.Int64
	const batch = 20 // transactions pipelined, so that units follow each other closely
	for k := 0; k < 2; k++ {
		wg.Add(1)
		go func() { // clients running transactions back to back
			defer wg.Done()
			c := dialRaw(t, ts.addr)
			for i := 0; !stop.Load(); i++ {
				var tx [][]string
				for b := 0; b < batch; b++ {
					tx = append(tx, []string{"MULTI"}, []string{"JOBPUSH", "q", "h", strconv.Itoa(i)},
						[]string{"JOBPUSH", "other", "h", strconv.Itoa(i)}, []string{"EXEC"})
				}
				c.send(tx...)
				for b := 0; b < batch; b++ {
					for j := 0; j < 3; j++ {
						c.read()
					}
					if got, ok := c.read().([]any); !ok || len(got) != 2 {
						t.Errorf("EXEC: %v", got)
						return
					}
					pushed.Add(2)
				}
			}
		}()
	}
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func() { // clients that block, then leave
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				nc, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = nc.Write([]byte("JOBRESERVE w 60000 BLOCK 0 QUEUES q\r\n"))
				if i%2 == 1 {
					time.Sleep(time.Duration(i%7) * 50 * time.Microsecond)
				}
				nc.Close()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	waitBlocked(t, ts, 0)
	// A reserve sent just before its client hung up may still be running:
	// check the store with the gate held alone, as a transaction does,
	// so that no command runs meanwhile.
	ts.store.BeginUnit()
	err := ts.store.CheckInvariants()
	if uerr := ts.store.EndUnit(); err == nil {
		err = uerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := ts.store.Len(); n != pushed.Load() {
		t.Fatalf("store holds %d jobs, want the %d pushed", n, pushed.Load())
	}
}

// MONITOR inside MULTI is refused, and the transaction aborts, as Redis
// refuses its no-multi commands.
func TestMonitorRefusedInsideMulti(t *testing.T) {
	ts := start(t)
	c := dialRaw(t, ts.addr)
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "a"), "QUEUED")
	wantReply(t, "MONITOR", c.do("MONITOR"), respErr("ERR Command not allowed inside a transaction"))
	wantErrPrefix(t, "EXEC", c.do("EXEC"), "EXECABORT")
	wantReply(t, "nothing applied", c.do("QUEUELEN", "q"), int64(0))
}

// A monitor sees a transaction's commands as they run in EXEC, between
// MULTI and EXEC, as Redis shows them.
func TestMonitorSeesTransactions(t *testing.T) {
	ts := start(t)
	mon := dialRaw(t, ts.addr)
	wantReply(t, "MONITOR", mon.do("MONITOR"), "OK")
	c := dialRaw(t, ts.addr)
	wantReply(t, "MULTI", c.do("MULTI"), "OK")
	wantReply(t, "queued", c.do("JOBPUSH", "q", "h", "p"), "QUEUED")
	if got, ok := c.do("EXEC").([]any); !ok || len(got) != 1 {
		t.Fatalf("EXEC: %#v", got)
	}
	for _, want := range []string{`"MULTI"`, `"JOBPUSH" "q" "h" "p"`, `"EXEC"`} {
		line, _ := mon.read().(string)
		if !strings.HasSuffix(line, "] "+want) {
			t.Fatalf("monitor line %q, want one ending in %s", line, want)
		}
	}
}
