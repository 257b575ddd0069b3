package commands

import (
	"strings"
	"testing"
)

func TestOptionKeywords(t *testing.T) {
	for in, want := range map[string]string{"queues": "QUEUES", "Count": "COUNT", "BLOCK": "BLOCK", "withscores": "WITHSCORES", "qu": "QU"} {
		if got := upperKeyword([]byte(in)); got != want {
			t.Errorf("upperKeyword(%q) = %q, want %q", in, got, want)
		}
	}
	// A known keyword costs no allocation, whatever its case: JOBRESERVE
	// and JOBPUSH parse one or more per call.
	args := [][]byte{[]byte("queues"), []byte("q"), []byte("Count"), []byte("2")}
	if n := testing.AllocsPerRun(100, func() {
		o := options{args: args}
		for o.more() {
			if _, err := o.next(); err != nil {
				t.Fatal(err)
			}
			if _, err := o.value(); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("parsing known keywords: %v allocations, want 0", n)
	}
}

// JOBRESERVE may wait only when a BLOCK argument follows the lease: the
// connection then runs it outside its read session.
func TestReserveWaits(t *testing.T) {
	for _, c := range []struct {
		args string
		want bool
	}{
		{"JOBRESERVE w 1000 QUEUES q", false},
		{"JOBRESERVE w 1000 COUNT 5 QUEUES q r", false},
		{"JOBRESERVE w 1000 BLOCK 0 QUEUES q", true},
		{"jobreserve w 1000 count 2 block 50 queues q", true},
		{"JOBRESERVE w 1000 QUEUES block", true}, // a queue so named only costs the fast path
		{"JOBRESERVE block 1000 QUEUES q", false},
		{"JOBRESERVE w", false},
	} {
		var args [][]byte
		for _, a := range strings.Fields(c.args) {
			args = append(args, []byte(a))
		}
		if got := reserveWaits(args); got != c.want {
			t.Errorf("%s: %v, want %v", c.args, got, c.want)
		}
	}
}

// The connection asks reserveWaits about every JOBRESERVE it reads.
func TestReserveWaitsCostsNoAllocation(t *testing.T) {
	args := [][]byte{[]byte("JOBRESERVE"), []byte("w"), []byte("1000"), []byte("count"), []byte("2"), []byte("QUEUES"), []byte("q")}
	if n := testing.AllocsPerRun(100, func() { reserveWaits(args) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
