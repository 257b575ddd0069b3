package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func shareStore(t *testing.T, cfg Config, shares ...Share) *Store {
	t.Helper()
	s, err := New(cfg, &fixedGen{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetShares(shares); err != nil {
		t.Fatal(err)
	}
	return s
}

// fixedGen makes ids of 7 bytes, so that every job's estimate is the same.
type fixedGen struct{ SeqGenerator }

func (g *fixedGen) AppendJobID(dst []byte, _ int64) []byte {
	return fmt.Appendf(dst, "j%06d", g.ids.Add(1))
}

func used(t *testing.T, s *Store, pattern string) int64 {
	t.Helper()
	for _, u := range s.Shares() {
		if u.Pattern == pattern {
			return u.Used
		}
	}
	t.Fatalf("no share %s in %v", pattern, s.Shares())
	return 0
}

func isShareFull(t *testing.T, err error, pattern string) {
	t.Helper()
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "'"+pattern+"'") {
		t.Fatalf("got %v, want FULL naming the share %s", err, pattern)
	}
}

// A share refuses the push that would take its queues past it, whatever
// the push's path, and the refusal changes nothing; other queues are not
// limited by it.
func TestShareRefusesPastItsLimit(t *testing.T) {
	one := JobBytes(1, 7, 0) // fixedGen's ids
	for _, tc := range []struct {
		name string
		push func(s *Store, now int64, q string) error
	}{
		{"packed", func(s *Store, now int64, q string) error {
			_, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("x")})
			return err
		}},
		{"scheduled", func(s *Store, now int64, q string) error {
			_, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("x"), RunAt: now + 1000})
			return err
		}},
		{"idempotent", func(s *Store, now int64, q string) error {
			_, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("x"), IdempotencyKey: "k" + string(rune('a'+now%26))})
			return err
		}},
		{"batch", func(s *Store, now int64, q string) error {
			ids, errs := make([]string, 1), make([]error, 1)
			s.PushMany(now, []PushOptions{{Queue: q, Handler: "h", Payload: []byte("x")}}, ids, errs)
			return errs[0]
		}},
		{"unit", func(s *Store, now int64, q string) error {
			s.BeginUnit()
			_, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("x")})
			if uerr := s.EndUnit(); uerr != nil {
				t.Fatal(uerr)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := shareStore(t, DefaultConfig(), Share{"team-a:*", 2 * one})
			now := int64(1000)
			for i := 0; i < 2; i++ {
				now++
				if err := tc.push(s, now, "team-a:mail"); err != nil {
					t.Fatalf("push %d: %v", i, err)
				}
			}
			now++
			isShareFull(t, tc.push(s, now, "team-a:sms"), "team-a:*")
			if s.Len() != 2 || used(t, s, "team-a:*") != 2*one {
				t.Errorf("after the refusal: %d jobs, share uses %d, want 2 and %d", s.Len(), used(t, s, "team-a:*"), 2*one)
			}
			if n, _ := s.QueueLen(now, "team-a:sms"); n != 0 {
				t.Errorf("the refused push left %d jobs", n)
			}
			for i := 0; i < 5; i++ {
				now++
				if err := tc.push(s, now, "team-b:mail"); err != nil {
					t.Fatalf("team-b: %v", err)
				}
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A queue matching several shares is checked against each; the usage of
// each is its own queues'.
func TestShareOverlapping(t *testing.T) {
	one := JobBytes(1, 7, 0)
	s := shareStore(t, DefaultConfig(), Share{"team-a:*", 10 * one}, Share{"*:mail", 2 * one})
	now := int64(1000)
	push := func(q string) error {
		now++
		_, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("x")})
		return err
	}
	for _, q := range []string{"team-a:mail", "team-b:mail"} {
		if err := push(q); err != nil {
			t.Fatal(err)
		}
	}
	isShareFull(t, push("team-a:mail"), "*:mail")
	for i := 0; i < 9; i++ {
		if err := push("team-a:sms"); err != nil {
			t.Fatal(err)
		}
	}
	isShareFull(t, push("team-a:sms"), "team-a:*")
	if got := used(t, s, "team-a:*"); got != 10*one {
		t.Errorf("team-a:* uses %d, want %d", got, 10*one)
	}
	if got := used(t, s, "*:mail"); got != 2*one {
		t.Errorf("*:mail uses %d, want %d", got, 2*one)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// Finished jobs count until retention drops them; a failed attempt's
// message counts; FLUSHALL empties every share.
func TestShareCountsWhatIsHeld(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Retention = 10_000
	cfg.FailedRetention = 10_000
	one := JobBytes(1, 7, 0)
	s := shareStore(t, cfg, Share{"q*", 2 * one})
	now := int64(1000)
	push := func() error {
		now++
		_, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", Payload: []byte("x")})
		return err
	}
	for i := 0; i < 2; i++ {
		if err := push(); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Reserve(now, ReserveOptions{Queues: []string{"q"}, Worker: "w", Lease: 5000, Count: 2})
	if err != nil || len(rs) != 2 {
		t.Fatal(rs, err)
	}
	if _, err := s.Fail(now, rs[0].Token, FailOptions{Error: "boom", HasError: true, NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if got := used(t, s, "q*"); got != 2*one+4 {
		t.Errorf("after a failure with a message: %d, want %d", got, 2*one+4)
	}
	if err := s.Ack(now, rs[1].Token); err != nil {
		t.Fatal(err)
	}
	isShareFull(t, push(), "q*") // finished jobs are still held
	now += cfg.Retention + 1
	if err := push(); err != nil { // their drop frees the share
		t.Fatalf("after the retention: %v", err)
	}
	if got := used(t, s, "q*"); got != one {
		t.Errorf("after the drops: %d, want %d", got, one)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(now); err != nil {
		t.Fatal(err)
	}
	if got := used(t, s, "q*"); got != 0 {
		t.Errorf("after FLUSHALL: %d", got)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// Shares set later count the jobs already held, even past the limit; a
// replayed log is never refused by a share, and counts too.
func TestShareSetLaterAndReplay(t *testing.T) {
	one := JobBytes(1, 7, 0)
	s := shareStore(t, DefaultConfig())
	j := &memJournal{}
	s.SetJournal(j)
	now := int64(1000)
	for i := 0; i < 3; i++ {
		now++
		if _, err := s.Push(now, PushOptions{Queue: "team-a:x", Handler: "h", Payload: []byte("x"), RunAt: now + int64(i%2)*1000}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetShares([]Share{{"team-a:*", one}}); err != nil {
		t.Fatal(err)
	}
	if got := used(t, s, "team-a:*"); got != 3*one {
		t.Errorf("a share set later uses %d, want %d", got, 3*one)
	}
	_, err := s.Push(now, PushOptions{Queue: "team-a:x", Handler: "h", Payload: []byte("x")})
	isShareFull(t, err, "team-a:*")

	r := shareStore(t, DefaultConfig(), Share{"team-a:*", one})
	r.BeginReplay()
	for i := range j.recs {
		if err := r.Replay(&j.recs[i]); err != nil {
			t.Fatalf("replay of record %d refused: %v", i, err)
		}
	}
	r.EndReplay()
	if r.Len() != 3 || used(t, r, "team-a:*") != 3*one {
		t.Errorf("replayed %d jobs, share uses %d; want 3 and %d", r.Len(), used(t, r, "team-a:*"), 3*one)
	}
	if err := r.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if err := r.SetShares(nil); err != nil || r.Shares() != nil {
		t.Fatal(err, r.Shares())
	}
	if _, err := r.Push(now, PushOptions{Queue: "team-a:x", Handler: "h", Payload: []byte("x")}); err != nil {
		t.Errorf("without shares: %v", err)
	}
}

// Bad shares are refused and change nothing.
func TestSetSharesRefusesBadOnes(t *testing.T) {
	s := shareStore(t, DefaultConfig(), Share{"a*", 100})
	for _, bad := range [][]Share{
		{{"", 1}}, {{"a b", 1}}, {{"x", 0}}, {{"x", -1}}, {{"x", 1}, {"x", 2}},
	} {
		if err := s.SetShares(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if got := s.Shares(); len(got) != 1 || got[0].Pattern != "a*" || got[0].Bytes != 100 {
		t.Errorf("shares now %v", got)
	}
}

// BenchmarkPushShared is BenchmarkPush into a queue that two shares match
// (both far from full): what the shares' check adds to a push.
func BenchmarkPushShared(b *testing.B) {
	s, err := New(DefaultConfig(), NewRandomGenerator())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.SetShares([]Share{{"q*", 1 << 62}, {"*", 1 << 62}}); err != nil {
		b.Fatal(err)
	}
	p := PushOptions{Queue: "q", Handler: "h", Payload: make([]byte, 100)}
	now := int64(1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1000 == 0 {
			now++
		}
		if _, err := s.Push(now, p); err != nil {
			b.Fatal(err)
		}
	}
}
