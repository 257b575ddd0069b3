package commands_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/store"
)

// FuzzCommands runs whole command sequences, decoded from the input,
// through a live server whose clock only moves when the sequence says so.
// After every command the store's invariants must hold, no command may
// fail inside (ERR internal error), and a command that answers an error
// must have changed nothing: the store dumped before and after it, at the
// same time, is the same.
func FuzzCommands(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 1, 0, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{20, 1, 1, 1, 0, 0, 0, 0, 1, 0, 2, 3, 0, 4, 0})
	f.Add([]byte("\x00\x02\x05\x01\x00\x01\x03\x02\x04\x01\x06\x00\x16\x03\x01\x07"))
	f.Add([]byte("\x13\x00\x01\x01\x00\x00\x00\x00\x01\x01\x01\x00\x00\x02\x00\x03\x00\x04\x00\x05"))
	f.Add([]byte("\x14\x01\x01\x02\x02\x00\x00\x00\x00\x01\x01\x16\x04\x01\x00\x01\x16\x02"))
	f.Add([]byte("\x00\x00\x00\x00\x09\x01\x00\x00\x00\x00\x0a\x02\x0b\x00\x16\x03\x01\x00\x00"))
	for seed := uint32(1); seed <= 4; seed++ { // longer runs, from a fixed generator
		b := make([]byte, 400)
		x := seed * 2654435761
		for i := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[i] = byte(x % 7) // small values: the pools' first, valid entries
			if i%9 == 0 {
				b[i] = byte(x)
			}
		}
		f.Add(b)
	}
	var clock atomic.Int64
	// Far ahead of the real clock, which the blocking timer reads: its
	// deadlines are then never due in the real time a run takes, and only
	// the sequence moves time.
	clock.Store(time.Now().AddDate(50, 0, 0).UnixMilli())
	var serial sync.Mutex
	ts := start(f, func(s *setup) { s.now = clock.Load; s.serial = &serial })
	c := ts.client(f, resp2, func(o *redis.Options) { o.PoolSize = 1; o.MaxRetries = -1 })
	f.Fuzz(func(t *testing.T, data []byte) {
		clock.Add(3_600_000)
		if err := c.Do(ctx, "FLUSHALL").Err(); err != nil {
			t.Fatal(err)
		}
		g := &seqGen{data: data}
		for steps := 0; steps < 64 && !g.done(); steps++ {
			args := g.command(&clock)
			if args == nil {
				continue
			}
			now := clock.Load()
			serial.Lock()
			before := dumpAt(t, ts.store, now)
			serial.Unlock()
			v, err := c.Do(ctx, args...).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				if strings.Contains(err.Error(), "internal error") {
					t.Fatalf("%q: %v", args, err)
				}
				serial.Lock()
				after := dumpAt(t, ts.store, now)
				serial.Unlock()
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("%q answered %q yet changed the store:\nbefore %+v\nafter  %+v", args, err, before, after)
				}
			}
			serial.Lock()
			bad := ts.store.CheckInvariants()
			serial.Unlock()
			if bad != nil {
				t.Fatalf("after %q: %v", args, bad)
			}
			g.learn(args, v)
			if testing.Verbose() {
				t.Logf("%q -> %v %v", args, v, err)
			}
		}
	})
}

// dumpAt is the store's state as records, after what is due at now.
func dumpAt(t *testing.T, st *store.Store, now int64) []store.Record {
	t.Helper()
	st.Tick(now)
	var out []store.Record
	if err := st.Dump(now, func(r *store.Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// seqGen decodes fuzz input into commands: each byte picks a command, an
// argument from a small pool (so that commands meet the same queues, keys
// and jobs), or whether an optional argument follows.
type seqGen struct {
	data   []byte
	pos    int
	ids    []string // job ids the server has answered with
	tokens []string // tokens it has handed out
}

func (g *seqGen) done() bool { return g.pos >= len(g.data) }

func (g *seqGen) next() int {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return int(b)
}

// pick draws from pool, whose first entries (up to the first "|") are
// the ordinary ones: seven draws in eight take one of those.
func (g *seqGen) pick(pool []string) string {
	b := g.next()
	good := slices.Index(pool, "|")
	if good < 0 {
		return pool[b%len(pool)]
	}
	if b%8 != 7 {
		return pool[(b/8)%good]
	}
	rest := pool[good+1:]
	return rest[(b/8)%len(rest)]
}

var (
	seqQueues   = []string{"q0", "q1", "q2", "|", " q0 ", "", strings.Repeat("q", 1025)}
	seqHandlers = []string{"h0", "h1", "|", "h2", ""}
	seqKeys     = []string{"k0", "k1", "|", "k2", ""}
	seqNumbers  = []string{"1", "2", "5", "1000", "60000", "|", "0", "-1", "3600000",
		"9223372036854775807", "-9223372036854775808", "99999999999999999999", "x", "1.5", ""}
	seqPayloads = []string{"p", "{\"a\":1}", "|", "", "\x00\xff"}
	seqErrors   = []string{"boom", "|", "", "a\r\nb"}
)

func (g *seqGen) id() string {
	if b := g.next(); len(g.ids) > 0 && b%8 != 7 {
		return g.ids[(b/8)%len(g.ids)]
	}
	return g.pick([]string{"j0", "j1", "nope", ""})
}

func (g *seqGen) token() string {
	if b := g.next(); len(g.tokens) > 0 && b%8 != 7 {
		return g.tokens[len(g.tokens)-1-(b/8)%len(g.tokens)] // the newest first
	}
	return g.pick([]string{"nope", "", "j0.AAAAAAAAAAAAA"})
}

// options appends up to a few KEYWORD value pairs drawn from kw (the
// last keyword in kw is one the command does not know).
func (g *seqGen) options(args []any, kw []string) []any {
	for n := g.next() % 4; n > 0 && !g.done(); n-- {
		k := g.pick(kw)
		args = append(args, k)
		switch {
		case g.next()%32 == 31: // a missing value
		case k == "ID":
			args = append(args, g.pick([]string{"j0", "j1", "j2", ""}))
		case k == "CONCURRENCY" || k == "RATELIMIT":
			args = append(args, g.pick(seqKeys))
		case k == "IDEMPOTENCY":
			args = append(args, g.pick([]string{"i0", "i1", " ", ""}))
		case k == "ERROR":
			args = append(args, g.pick(seqErrors))
		case k == "NORETRY":
		default:
			args = append(args, g.pick(seqNumbers))
		}
	}
	return args
}

func (g *seqGen) command(clock *atomic.Int64) []any {
	switch g.next() % 23 {
	case 0:
		return g.options([]any{"JOBPUSH", g.pick(seqQueues), g.pick(seqHandlers), g.pick(seqPayloads)},
			[]string{"ID", "PRIORITY", "CONCURRENCY", "RATELIMIT", "DELAY", "AT", "MAXATTEMPTS", "BACKOFF", "IDEMPOTENCY", "|", "BOGUS"})
	case 1:
		args := g.options([]any{"JOBRESERVE", g.pick([]string{"w0", "w1", "|", ""}), g.pick(seqNumbers)}, []string{"COUNT", "|", "BOGUS"})
		if g.next()%4 == 0 {
			args = append(args, "HANDLERS", "1", g.pick(seqHandlers))
		}
		args = append(args, "QUEUES", g.pick(seqQueues))
		if g.next()%2 == 0 {
			args = append(args, g.pick(seqQueues))
		}
		return args
	case 2:
		return []any{"JOBSTART", g.token()}
	case 3:
		return []any{"JOBACK", g.token()}
	case 4:
		return g.options([]any{"JOBFAIL", g.token()}, []string{"ERROR", "RETRYIN", "NORETRY", "|", "BOGUS"})
	case 5:
		return []any{"JOBTOUCH", g.token(), g.pick(seqNumbers)}
	case 6:
		return g.options([]any{"JOBRELEASE", g.token()}, []string{"DELAY", "|", "BOGUS"})
	case 7:
		return []any{"JOBCANCEL", g.id()}
	case 8:
		return []any{"JOBRETRY", g.id()}
	case 9:
		return []any{"JOBGET", g.id()}
	case 10:
		return []any{"QUEUEPAUSE", g.pick(seqQueues)}
	case 11:
		return []any{"QUEUERESUME", g.pick(seqQueues)}
	case 12:
		return g.options([]any{"QUEUEPEEK", g.pick(seqQueues)}, []string{"COUNT", "|", "BOGUS"})
	case 13:
		return []any{"QUEUEPURGE", g.pick(seqQueues)}
	case 14:
		return []any{"QUEUESTATS", g.pick(seqQueues)}
	case 15:
		return []any{"QUEUELEN", g.pick(seqQueues)}
	case 16:
		return []any{"POLICYSET", "CONCURRENCY", g.pick(seqKeys), g.pick(seqNumbers)}
	case 17:
		return []any{"POLICYSET", "RATELIMIT", g.pick(seqKeys), g.pick(seqNumbers), g.pick(seqNumbers)}
	case 18:
		return []any{"POLICYDEL", g.pick([]string{"CONCURRENCY", "RATELIMIT", "|", "OTHER"}), g.pick(seqKeys)}
	case 19:
		return []any{"POLICYGET", g.pick([]string{"CONCURRENCY", "RATELIMIT"}), g.pick(seqKeys)}
	case 20:
		return []any{g.pick([]string{"POLICYLIST", "QUEUES", "DBSIZE"})}
	case 21:
		// Time passes: a little, past leases and backoffs, or past windows.
		clock.Add([]int64{1, 500, 1001, 60_001, 3_600_001}[g.next()%5])
		return nil
	default:
		// Several pushes in one pipeline-like burst, to meet the batch path.
		return []any{"JOBPUSH", g.pick(seqQueues), g.pick(seqHandlers), "p", "PRIORITY", g.pick(seqNumbers)}
	}
}

// learn keeps the ids and tokens a reply carries for later commands.
func (g *seqGen) learn(args []any, v any) {
	switch args[0] {
	case "JOBPUSH":
		if id, ok := v.(string); ok && len(g.ids) < 64 {
			g.ids = append(g.ids, id)
		}
	case "JOBRESERVE":
		rs, _ := v.([]any)
		for _, r := range rs {
			if m, ok := r.([]any); ok && len(m) >= 2 && len(g.tokens) < 64 {
				if tok, ok := m[1].(string); ok {
					g.tokens = append(g.tokens, tok)
				}
			}
		}
	}
}
