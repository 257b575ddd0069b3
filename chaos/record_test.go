package chaos

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// router sends writes to the node it believes leads, and moves on to the
// next node when that one refuses (READONLY), gives up (TRYAGAIN) or does
// not answer.
type router struct {
	g   *group
	cur atomic.Int32
}

// do runs one write once and reports the node it went to.
func (r *router) do(ctx context.Context, timeout time.Duration, args ...any) (any, error) {
	i := r.cur.Load()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := r.g.nodes[i].cl.Do(ctx, args...).Result()
	if err != nil && !errors.Is(err, redis.Nil) && !definite(err) {
		r.cur.CompareAndSwap(i, (i+1)%int32(len(r.g.nodes)))
	}
	return v, err
}

// pushRec is what became of one idempotency key: every attempt's reply.
type pushRec struct {
	key, queue string
	ids        []string // ids answered (all must be the same)
	attempts   int
}

// resv is a reservation a worker was handed.
type resv struct {
	token, id, queue string
	lease, expiresAt int64
	sent, got        time.Time
}

// start is the store's time of the reservation.
func (r *resv) start() int64 { return r.expiresAt - r.lease }

// tokOp is one attempt of a command on a token (JOBSTART, JOBACK, JOBFAIL,
// JOBRELEASE) and its outcome.
type tokOp struct {
	kind      string
	token, id string
	sent, got time.Time
	ok        bool   // the server honoured the token
	err       string // the error reply or the failure, when not ok
	definite  bool   // the server answered (ok or an error reply of its own)
}

// history is everything the clients were told, with times.
type history struct {
	mu      sync.Mutex
	pushes  map[string]*pushRec
	resvs   []*resv
	byToken map[string]*resv
	ops     []*tokOp
	odd     []string     // replies no correct server gives
	replies atomic.Int64 // replies received, of any kind
	errs    atomic.Int64 // attempts without a definite reply
}

func newHistory() *history {
	return &history{pushes: map[string]*pushRec{}, byToken: map[string]*resv{}}
}

func (h *history) push(key, queue, id string, answered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pushes[key]
	if p == nil {
		p = &pushRec{key: key, queue: queue}
		h.pushes[key] = p
	}
	p.attempts++
	if answered {
		p.ids = append(p.ids, id)
	}
}

func (h *history) reserved(r *resv) {
	h.mu.Lock()
	h.resvs = append(h.resvs, r)
	h.byToken[r.token] = r
	h.mu.Unlock()
}

func (h *history) op(o *tokOp) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

func (h *history) unexpected(s string) {
	h.mu.Lock()
	h.odd = append(h.odd, s)
	h.mu.Unlock()
}
