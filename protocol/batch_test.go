package protocol

import (
	"strings"
	"sync"
	"testing"
)

// batchTable adds "put", whose batch handler records each batch it runs
// and answers a call with its argument, or an error for "bad".
func batchTable(t *testing.T, batches *[]string, mu *sync.Mutex) *Table {
	one := func(c *Client, args [][]byte) (any, error) {
		mu.Lock()
		*batches = append(*batches, string(args[1]))
		mu.Unlock()
		if string(args[1]) == "bad" {
			return nil, Error("ERR bad")
		}
		return string(args[1]), nil
	}
	return testTable(t, Command{Name: "put", Arity: 2, Handler: one,
		Batch: func(c *Client, calls [][][]byte, out []Result) {
			var names []string
			for i, args := range calls {
				names = append(names, string(args[1]))
				if string(args[1]) == "bad" {
					out[i].Err = Error("ERR bad")
				} else {
					out[i].Reply = string(args[1])
				}
			}
			mu.Lock()
			*batches = append(*batches, strings.Join(names, "+"))
			mu.Unlock()
		}})
}

// TestBatchKeepsThePipelinesOrder: calls of a batch command that arrive
// together run as one batch, anything else between them ends it, and every
// reply comes back in the order of the calls.
func TestBatchKeepsThePipelinesOrder(t *testing.T) {
	var batches []string
	var mu sync.Mutex
	srv, addr := startServer(t, DefaultConfig(), batchTable(t, &batches, &mu))
	c := dial(t, addr)
	c.send("put a\r\nput b\r\nput bad\r\nput c\r\nping\r\nput d\r\nput\r\nput e\r\nput f\r\nput g h\r\nput i\r\n")
	for i, want := range []string{"$a", "$b", "-ERR bad", "$c", "+PONG", "$d",
		"-ERR wrong number of arguments for 'put' command", "$e", "$f",
		"-ERR wrong number of arguments for 'put' command", "$i"} {
		if got := c.reply(); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	got := strings.Join(batches, " ")
	mu.Unlock()
	if got != "a+b+bad+c d e+f i" {
		t.Fatalf("ran %q, want \"a+b+bad+c d e+f i\"", got)
	}
	var calls, failed uint64
	for _, cs := range srv.CommandStats() {
		if cs.Name == "put" {
			calls, failed = cs.Calls, cs.Failed
		}
	}
	if calls != 8 || failed != 1 { // arity errors do not count
		t.Fatalf("put counted %d calls, %d failed; want 8 and 1", calls, failed)
	}
}

// TestBatchIsBounded: a pipeline longer than MaxBatch runs in batches of at
// most MaxBatch calls.
func TestBatchIsBounded(t *testing.T) {
	var batches []string
	var mu sync.Mutex
	_, addr := startServer(t, DefaultConfig(), batchTable(t, &batches, &mu))
	c := dial(t, addr)
	n := 3*MaxBatch + 5
	c.send(strings.Repeat("*2\r\n$3\r\nput\r\n$1\r\nx\r\n", n))
	for i := range n {
		if got := c.reply(); got != "$x" {
			t.Fatalf("reply %d = %q", i, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, b := range batches {
		k := strings.Count(b, "+") + 1
		if k > MaxBatch {
			t.Fatalf("a batch of %d calls", k)
		}
		total += k
	}
	if total != n {
		t.Fatalf("batches ran %d calls, want %d", total, n)
	}
}

// TestBatchWaitsForAuth: before AUTH, calls get NOAUTH one by one and no
// batch runs.
func TestBatchWaitsForAuth(t *testing.T) {
	var batches []string
	var mu sync.Mutex
	cfg := DefaultConfig()
	cfg.RequirePass = "pw"
	_, addr := startServer(t, cfg, batchTable(t, &batches, &mu))
	c := dial(t, addr)
	c.send("put a\r\nput b\r\nauth pw\r\nput c\r\nput d\r\n")
	for i, want := range []string{"-NOAUTH Authentication required.", "-NOAUTH Authentication required.", "+OK", "$c", "$d"} {
		if got := c.reply(); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(batches, " "); got != "c+d" {
		t.Fatalf("ran %q, want \"c+d\"", got)
	}
}

// TestBatchPanicFailsItsCalls: a batch handler that panics answers each of
// its calls with an internal error, and the connection goes on.
func TestBatchPanicFailsItsCalls(t *testing.T) {
	tb := testTable(t, Command{Name: "put", Arity: 2,
		Handler: func(c *Client, args [][]byte) (any, error) { return OK, nil },
		Batch:   func(c *Client, calls [][][]byte, out []Result) { panic("boom") }})
	_, addr := startServer(t, DefaultConfig(), tb)
	c := dial(t, addr)
	c.send("put a\r\nput b\r\n")
	for i := range 2 {
		if got := c.reply(); !strings.HasPrefix(got, "-ERR internal") {
			t.Fatalf("reply %d = %q", i, got)
		}
	}
	c.ping("after the panic")
}

func TestNewTableRefusesBlockingBatches(t *testing.T) {
	h := func(c *Client, args [][]byte) (any, error) { return OK, nil }
	bh := func(c *Client, calls [][][]byte, out []Result) {}
	for _, cmd := range []Command{
		{Name: "w", Arity: 1, Flags: Blocking, Handler: h, Batch: bh},
		{Name: "s", Arity: -2, Handler: h, Batch: bh, Subs: []Command{{Name: "s|x", Arity: 2}}},
	} {
		if _, err := NewTable([]Command{cmd}); err == nil {
			t.Errorf("%s: a batch handler was accepted", cmd.Name)
		}
	}
}

// TestBatchRunsForAUserWithRights: calls a user's rights allow run in
// batches as the default user's do; one they refuse (a key outside the
// user's patterns) ends the batch, answers NOPERM in its place and is
// logged once.
func TestBatchRunsForAUserWithRights(t *testing.T) {
	var batches []string
	var mu sync.Mutex
	put := *batchTable(t, &batches, &mu).Lookup([]byte("put"))
	put.Keys = func(args [][]byte) [][]byte { return args[1:2] }
	login := Command{Name: "login", Arity: 3, Flags: NoAuth, Handler: func(c *Client, args [][]byte) (any, error) {
		if err := c.Authenticate(string(args[1]), string(args[2])); err != nil {
			return nil, err
		}
		return OK, nil
	}}
	tb := testTable(t, put, login)
	srv, addr := startServer(t, DefaultConfig(), tb)
	if err := srv.ACL().SetUser("alice", []string{"on", ">pw", "~a*", "~b*", "+put"}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.send("login alice pw\r\n")
	if got := c.reply(); got != "+OK" {
		t.Fatalf("login: %q", got)
	}
	c.send("put a1\r\nput a2\r\nput zz\r\nput b1\r\nput b2\r\n")
	for i, want := range []string{"$a1", "$a2", "-NOPERM No permissions to access a key", "$b1", "$b2"} {
		if got := c.reply(); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	got := strings.Join(batches, " ")
	mu.Unlock()
	if got != "a1+a2 b1+b2" {
		t.Fatalf("ran %q, want \"a1+a2 b1+b2\"", got)
	}
	if log := srv.ACL().Log(10); len(log) != 1 || log[0].Count != 1 || log[0].Object != "zz" {
		t.Fatalf("ACL LOG holds %+v, want one refusal of zz", log)
	}
}
