package commands

import "testing"

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
