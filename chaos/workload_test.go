package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The workload's queues and policies: one queue under a concurrency cap,
// one under a rate limit, one plain.
const (
	capQueue   = "capped"
	capKey     = "ck"
	capLimit   = 2
	rateQueue  = "rated"
	rateKey    = "rk"
	rateLimit  = 5
	ratePeriod = 1000 // ms
	plainQueue = "plain"
	lease      = 800 // ms, each reservation's
)

var queues = []string{capQueue, rateQueue, plainQueue}

// workload runs producers and workers against a group until stop, and
// records what they were told.
type workload struct {
	g   *group
	r   *router
	h   *history
	wg  sync.WaitGroup
	end atomic.Int64 // Unix ns: a push unanswered by then is given up (its retries end)
}

func setPolicies(t interface {
	Helper()
	Fatalf(string, ...any)
}, g *group) {
	t.Helper()
	r := &router{g: g}
	for _, args := range [][]any{
		{"POLICYSET", "CONCURRENCY", capKey, capLimit},
		{"POLICYSET", "RATELIMIT", rateKey, rateLimit, ratePeriod},
	} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := r.do(context.Background(), time.Second, args...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: %v", args, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// run starts producers and workers; they stop when ctx ends.
func (w *workload) run(ctx context.Context, producers, workers int) {
	for p := range producers {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.produce(ctx, p) }()
	}
	for k := range workers {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.work(ctx, k) }()
	}
}

// produce pushes jobs with idempotency keys, each retried until some node
// answers it (or the run's end). Producer 0 sends its pushes in pipelines
// of four first, producer 1 in transactions (MULTI/EXEC) of four, then
// each one that got no answer on its own.
func (w *workload) produce(ctx context.Context, p int) {
	rng := rand.New(rand.NewPCG(uint64(p), 1))
	for i := 0; ctx.Err() == nil; i++ {
		if p < 2 {
			w.pipelined(rng, fmt.Sprintf("p%d-%d", p, i), p == 1)
		} else {
			w.pushOne(rng, fmt.Sprintf("p%d-%d", p, i))
		}
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
}

func pushArgs(rng *rand.Rand, key string) (string, []any) {
	q := queues[rng.IntN(len(queues))]
	args := []any{"JOBPUSH", q, "h", key, "IDEMPOTENCY", key, "MAXATTEMPTS", 5, "BACKOFF", 30}
	switch q {
	case capQueue:
		args = append(args, "CONCURRENCY", capKey)
	case rateQueue:
		args = append(args, "RATELIMIT", rateKey)
	}
	return q, args
}

// pipelined sends four pushes in one pipeline (or transaction) to the node
// thought to lead, then retries each unanswered one alone.
func (w *workload) pipelined(rng *rand.Rand, prefix string, tx bool) {
	type push struct {
		key, q string
		args   []any
		cmd    *redis.Cmd
	}
	var ps []*push
	for k := range 4 {
		key := fmt.Sprintf("%s.%d", prefix, k)
		q, args := pushArgs(rng, key)
		ps = append(ps, &push{key: key, q: q, args: args})
	}
	i := w.r.cur.Load()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	pipe := w.g.nodes[i].cl.Pipeline()
	if tx {
		pipe = w.g.nodes[i].cl.TxPipeline()
	}
	for _, p := range ps {
		p.cmd = pipe.Do(ctx, p.args...)
	}
	pipe.Exec(ctx)
	cancel()
	for _, p := range ps {
		v, err := p.cmd.Result()
		switch {
		case err == nil:
			w.h.replies.Add(1)
			w.answered(p.key, p.q, v)
		case definite(err):
			w.h.replies.Add(1)
			w.h.push(p.key, p.q, "", false)
			w.h.unexpected(fmt.Sprintf("push %s refused: %v", p.key, err))
		default:
			w.h.errs.Add(1)
			w.h.push(p.key, p.q, "", false)
			w.r.cur.CompareAndSwap(i, (i+1)%int32(len(w.g.nodes)))
			w.retryPush(p.key, p.q, p.args)
		}
	}
}

// answered records a push's reply, which must be an id.
func (w *workload) answered(key, q string, v any) {
	id, ok := v.(string)
	if !ok {
		w.h.unexpected(fmt.Sprintf("push %s answered %v (%T), not an id", key, v, v))
	}
	w.h.push(key, q, id, ok)
}

func (w *workload) pushOne(rng *rand.Rand, key string) {
	q, args := pushArgs(rng, key)
	w.retryPush(key, q, args)
}

func (w *workload) retryPush(key, q string, args []any) {
	for {
		v, err := w.r.do(context.Background(), time.Second, args...)
		if err == nil {
			w.h.replies.Add(1)
			w.answered(key, q, v)
			break
		}
		w.h.push(key, q, "", false)
		if definite(err) {
			w.h.replies.Add(1)
			w.h.unexpected(fmt.Sprintf("push %s refused: %v", key, err))
			break
		}
		w.h.errs.Add(1)
		if time.Now().UnixNano() > w.end.Load() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// work reserves and handles jobs: mostly start and ack, sometimes a fail,
// a release, an ack from reserved, or an ack sent after the lease ended
// (which must be refused if the job was handed out again meanwhile).
func (w *workload) work(ctx context.Context, k int) {
	rng := rand.New(rand.NewPCG(uint64(k), 2))
	worker := fmt.Sprintf("w%d", k)
	for ctx.Err() == nil {
		args := []any{"JOBRESERVE", worker, lease}
		if k%2 == 1 {
			args = append(args, "BLOCK", 200)
		}
		args = append(args, "QUEUES", capQueue, rateQueue, plainQueue)
		sent := time.Now()
		v, err := w.r.do(ctx, time.Second, args...)
		got := time.Now()
		if errors.Is(err, redis.Nil) {
			w.h.replies.Add(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			if definite(err) {
				w.h.unexpected(fmt.Sprintf("JOBRESERVE refused: %v", err))
			}
			w.h.errs.Add(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.h.replies.Add(1)
		for _, m := range v.([]any) {
			f := fields(m)
			exp, _ := strconv.ParseInt(f["expires_at"], 10, 64)
			r := &resv{token: f["token"], id: f["id"], queue: f["queue"], lease: lease, expiresAt: exp, sent: sent, got: got}
			w.h.reserved(r)
			w.handle(ctx, rng, r)
		}
	}
}

func (w *workload) handle(ctx context.Context, rng *rand.Rand, r *resv) {
	switch n := rng.IntN(100); {
	case n < 60:
		if w.tokenOp(ctx, "JOBSTART", r) {
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			w.tokenOp(ctx, "JOBACK", r)
		}
	case n < 75:
		if w.tokenOp(ctx, "JOBSTART", r) {
			w.tokenOp(ctx, "JOBFAIL", r, "ERROR", "chaos", "RETRYIN", 30)
		}
	case n < 85:
		w.tokenOp(ctx, "JOBRELEASE", r)
	case n < 95:
		w.tokenOp(ctx, "JOBSTART", r)
		select { // past the lease: the job may be handed out again meanwhile
		case <-time.After(time.Duration(lease+100+rng.IntN(300)) * time.Millisecond):
		case <-ctx.Done():
		}
		w.tokenOp(ctx, "JOBACK", r)
	default:
		w.tokenOp(ctx, "JOBACK", r)
	}
}

// tokenOp runs a command on r's token, again while no node gives a
// definite answer (for up to 3 s), and reports whether the token was
// honoured.
func (w *workload) tokenOp(ctx context.Context, kind string, r *resv, extra ...any) bool {
	args := append([]any{kind, r.token}, extra...)
	deadline := time.Now().Add(3 * time.Second)
	for {
		o := &tokOp{kind: kind, token: r.token, id: r.id, sent: time.Now()}
		_, err := w.r.do(context.Background(), time.Second, args...)
		o.got = time.Now()
		o.ok, o.definite = err == nil, definite(err)
		if err != nil {
			o.err = err.Error()
		}
		w.h.op(o)
		if o.definite {
			w.h.replies.Add(1)
			return o.ok
		}
		w.h.errs.Add(1)
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fields reads a map reply (a flat array of pairs in RESP2).
func fields(v any) map[string]string {
	out := map[string]string{}
	a, _ := v.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		switch x := a[i+1].(type) {
		case string:
			out[k] = x
		case int64:
			out[k] = strconv.FormatInt(x, 10)
		case nil:
			out[k] = "<nil>"
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}
