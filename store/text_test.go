package store

import (
	"strings"
	"testing"
)

// TestIDsAndTokensKept: ids and tokens read the same whether the store
// keeps them in the job record or not, whatever their length, and a token
// handed out never changes when the job is reserved again.
func TestIDsAndTokensKept(t *testing.T) {
	gens := map[string]func() Generator{
		"seq":    func() Generator { return NewSeqGenerator() },
		"random": func() Generator { return NewRandomGenerator() },
	}
	for name, gen := range gens {
		for _, idLen := range []int{0, 1, 15, 16, 17, 30, 31, 32, 33, 100} {
			s, err := New(DefaultConfig(), gen())
			must(t, err)
			id := strings.Repeat("x", idLen)
			got, err := s.Push(1, PushOptions{Queue: "q", Handler: "h", ID: id})
			must(t, err)
			if idLen > 0 && got != id {
				t.Fatalf("%s/%d: push returned id %q", name, idLen, got)
			}
			id = got
			var tokens []string
			var copies []string
			for round := 0; round < 3; round++ {
				rs, err := s.Reserve(int64(2+round), ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
				must(t, err)
				if len(rs) != 1 {
					t.Fatalf("%s/%d: %d jobs reserved, want 1", name, idLen, len(rs))
				}
				if rs[0].ID != id {
					t.Fatalf("%s/%d: reserved job %q, want %q", name, idLen, rs[0].ID, id)
				}
				if !strings.HasPrefix(rs[0].Token, id+".") || len(rs[0].Token) <= len(id)+1 {
					t.Fatalf("%s/%d: token %q is not %q and a generated part", name, idLen, rs[0].Token, id+".")
				}
				for i, tok := range tokens {
					if tok == rs[0].Token || tok != copies[i] {
						t.Fatalf("%s/%d: token %q reused or changed (was %q)", name, idLen, tok, copies[i])
					}
				}
				tokens = append(tokens, rs[0].Token)
				copies = append(copies, strings.Clone(rs[0].Token))
				if round < 2 {
					must(t, s.Release(int64(2+round), rs[0].Token, 0))
				}
			}
			if err := s.Ack(9, tokens[0]); err != ErrNoReservation {
				t.Fatalf("%s/%d: ack with an old token: %v", name, idLen, err)
			}
			must(t, s.Ack(9, tokens[2]))
			j, ok := s.Get(9, id)
			if !ok {
				t.Fatalf("%s/%d: get %q: not found", name, idLen, id)
			}
			if j.ID != id {
				t.Fatalf("%s/%d: get %q: id %q", name, idLen, id, j.ID)
			}
			if j.State != Succeeded {
				t.Fatalf("%s/%d: get %q: state %s, want succeeded", name, idLen, id, j.State)
			}
			must(t, s.CheckInvariants())
		}
	}
}
