package load

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"sluice/benchmarks/internal/wire"
)

// Targets are the servers the load generator can drive. Each maps the
// abstract operations (push, reserve, ack) onto one system's idiom:
//
//	sluice        JOBPUSH / JOBRESERVE / JOBSTART / JOBACK
//	redis-list    LPUSH / BLMOVE into a per-worker processing list / LREM
//	redis-stream  XADD / XREADGROUP / XACK (one consumer group)
//	beanstalkd    put / reserve-with-timeout / delete
var Targets = []string{"sluice", "redis-list", "redis-stream", "beanstalkd"}

// Names shared by every target so runs are comparable.
const (
	queue   = "bench"   // sluice queue, redis list key, beanstalkd tube
	stream  = "bench:s" // redis stream key
	group   = "g"       // redis stream consumer group
	handler = "h"       // sluice handler of the work that flows
)

// ErrUnsupported is returned for an operation a target has no equivalent
// of (JOBSTART anywhere but sluice).
var ErrUnsupported = errors.New("not supported by this target")

// Job is one reservation. Its byte slices are valid until the next read on
// the client that returned it.
type Job struct {
	Token     []byte // sluice token, redis list element, stream entry id
	ID        uint64 // beanstalkd job id
	Payload   []byte
	ExpiresAt int64 // sluice: server time of lease end, Unix ms
}

// PushSpec is the optional part of a push (sluice only; peers ignore it).
type PushSpec struct {
	Handler     string // default "h"
	Concurrency string
	RateLimit   string
	Priority    int64
}

// ReserveSpec says how to ask for work.
type ReserveSpec struct {
	Block   time.Duration // 0: do not wait
	Lease   time.Duration // sluice lease; default 60s
	Handler string        // sluice HANDLERS filter of one handler, if set
}

// Client is one connection to a target. Send* only buffer; Flush writes;
// Recv* read answers in order, so callers pipeline by sending several
// commands before reading.
type Client interface {
	SendPush(payload []byte, s *PushSpec)
	RecvPush() error
	Flush() error
	Reserve(s *ReserveSpec) (Job, bool, error)
	SendAck(j *Job)
	RecvAck() error
	Start(j *Job) error
	Close() error
}

// Dial opens connection number i (i names the worker: its consumer name,
// processing list or worker id).
func Dial(target, addr string, i int) (Client, error) {
	switch target {
	case "sluice", "redis-list", "redis-stream":
		c, err := wire.DialRESP(addr)
		if err != nil {
			return nil, err
		}
		w := "w" + strconv.Itoa(i)
		switch target {
		case "sluice":
			return &sluiceClient{c: c, worker: []byte(w)}, nil
		case "redis-list":
			return &listClient{c: c, proc: []byte(queue + ":proc:" + w)}, nil
		default:
			return &streamClient{c: c, consumer: []byte(w)}, nil
		}
	case "beanstalkd":
		b, err := wire.DialBeanstalk(addr, queue)
		if err != nil {
			return nil, err
		}
		return &beanstalkClient{b: b}, nil
	}
	return nil, fmt.Errorf("unknown target %q (want one of %s)", target, strings.Join(Targets, ", "))
}

// Setup prepares a fresh server for a run: the stream's consumer group.
func Setup(target, addr string) error {
	if target != "redis-stream" {
		return nil
	}
	c, err := wire.DialRESP(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		err = nil
	}
	return err
}

var (
	bJobPush    = []byte("JOBPUSH")
	bJobReserve = []byte("JOBRESERVE")
	bJobAck     = []byte("JOBACK")
	bJobStart   = []byte("JOBSTART")
	bQueue      = []byte(queue)
	bHandler    = []byte(handler)
	bPriority   = []byte("PRIORITY")
	bConc       = []byte("CONCURRENCY")
	bRate       = []byte("RATELIMIT")
	bBlock      = []byte("BLOCK")
	bHandlers   = []byte("HANDLERS")
	bOne        = []byte("1")
	bQueues     = []byte("QUEUES")
)

type sluiceClient struct {
	c      *wire.RESP
	worker []byte
	args   [][]byte
	num    []byte // lease digits
	num2   []byte // block digits
}

func (s *sluiceClient) SendPush(payload []byte, p *PushSpec) {
	h := bHandler
	if p != nil && p.Handler != "" {
		h = []byte(p.Handler)
	}
	s.args = append(s.args[:0], bJobPush, bQueue, h, payload)
	if p != nil {
		if p.Priority != 0 {
			s.args = append(s.args, bPriority, strconv.AppendInt(nil, p.Priority, 10))
		}
		if p.Concurrency != "" {
			s.args = append(s.args, bConc, []byte(p.Concurrency))
		}
		if p.RateLimit != "" {
			s.args = append(s.args, bRate, []byte(p.RateLimit))
		}
	}
	s.c.Send(s.args...)
}

func (s *sluiceClient) RecvPush() error { return s.c.Skip() }
func (s *sluiceClient) Flush() error    { return s.c.Flush() }
func (s *sluiceClient) Close() error    { return s.c.Close() }

func (s *sluiceClient) Reserve(r *ReserveSpec) (Job, bool, error) {
	lease := r.Lease
	if lease <= 0 {
		lease = time.Minute
	}
	s.num = strconv.AppendInt(s.num[:0], lease.Milliseconds(), 10)
	s.args = append(s.args[:0], bJobReserve, s.worker, s.num)
	if r.Block > 0 {
		s.num2 = strconv.AppendInt(s.num2[:0], r.Block.Milliseconds(), 10)
		s.args = append(s.args, bBlock, s.num2)
	}
	if r.Handler != "" {
		s.args = append(s.args, bHandlers, bOne, []byte(r.Handler))
	}
	s.args = append(s.args, bQueues, bQueue)
	s.c.Send(s.args...)
	if err := s.c.Flush(); err != nil {
		return Job{}, false, err
	}
	rep, err := s.c.Read()
	if err != nil {
		return Job{}, false, err
	}
	if rep.Kind == '-' {
		return Job{}, false, wire.ServerError(rep.Str)
	}
	if rep.Null || len(rep.Arr) == 0 {
		return Job{}, false, nil
	}
	m := &rep.Arr[0]
	tok, pl, exp := m.Field("token"), m.Field("payload"), m.Field("expires_at")
	if tok == nil || pl == nil || exp == nil {
		return Job{}, false, fmt.Errorf("JOBRESERVE: unexpected reply shape")
	}
	return Job{Token: tok.Str, Payload: pl.Str, ExpiresAt: exp.Int}, true, nil
}

func (s *sluiceClient) SendAck(j *Job) { s.c.Send(bJobAck, j.Token) }
func (s *sluiceClient) RecvAck() error { return s.c.Skip() }

func (s *sluiceClient) Start(j *Job) error {
	s.c.Send(bJobStart, j.Token)
	if err := s.c.Flush(); err != nil {
		return err
	}
	return s.c.Skip()
}

var (
	bLPush  = []byte("LPUSH")
	bBLMove = []byte("BLMOVE")
	bLRem   = []byte("LREM")
	bRight  = []byte("RIGHT")
	bLeft   = []byte("LEFT")
	bNoWait = []byte("0.01") // BLMOVE timeout 0 would wait forever
)

type listClient struct {
	c    *wire.RESP
	proc []byte
	num  []byte
}

func (l *listClient) SendPush(payload []byte, _ *PushSpec) { l.c.Send(bLPush, bQueue, payload) }
func (l *listClient) RecvPush() error                      { return l.c.Skip() }
func (l *listClient) Flush() error                         { return l.c.Flush() }
func (l *listClient) Close() error                         { return l.c.Close() }
func (l *listClient) Start(*Job) error                     { return ErrUnsupported }

func (l *listClient) Reserve(r *ReserveSpec) (Job, bool, error) {
	t := bNoWait
	if r.Block > 0 {
		l.num = strconv.AppendFloat(l.num[:0], r.Block.Seconds(), 'f', 3, 64)
		t = l.num
	}
	l.c.Send(bBLMove, bQueue, l.proc, bRight, bLeft, t)
	if err := l.c.Flush(); err != nil {
		return Job{}, false, err
	}
	rep, err := l.c.Read()
	if err != nil {
		return Job{}, false, err
	}
	if rep.Kind == '-' {
		return Job{}, false, wire.ServerError(rep.Str)
	}
	if rep.Null {
		return Job{}, false, nil
	}
	return Job{Token: rep.Str, Payload: rep.Str}, true, nil
}

func (l *listClient) SendAck(j *Job) { l.c.Send(bLRem, l.proc, bOne, j.Token) }

func (l *listClient) RecvAck() error {
	r, err := l.c.Read()
	if err != nil {
		return err
	}
	if r.Kind == '-' {
		return wire.ServerError(r.Str)
	}
	if r.Int != 1 {
		return fmt.Errorf("LREM removed %d elements, want 1", r.Int)
	}
	return nil
}

var (
	bXAdd       = []byte("XADD")
	bXReadGroup = []byte("XREADGROUP")
	bXAck       = []byte("XACK")
	bStream     = []byte(stream)
	bGroup      = []byte("GROUP")
	bGroupName  = []byte(group)
	bCount      = []byte("COUNT")
	bStreams    = []byte("STREAMS")
	bStar       = []byte("*")
	bGT         = []byte(">")
	bField      = []byte("p")
)

type streamClient struct {
	c        *wire.RESP
	consumer []byte
	args     [][]byte
	num      []byte
}

func (s *streamClient) SendPush(payload []byte, _ *PushSpec) {
	s.c.Send(bXAdd, bStream, bStar, bField, payload)
}
func (s *streamClient) RecvPush() error  { return s.c.Skip() }
func (s *streamClient) Flush() error     { return s.c.Flush() }
func (s *streamClient) Close() error     { return s.c.Close() }
func (s *streamClient) Start(*Job) error { return ErrUnsupported }

func (s *streamClient) Reserve(r *ReserveSpec) (Job, bool, error) {
	s.args = append(s.args[:0], bXReadGroup, bGroup, bGroupName, s.consumer, bCount, bOne)
	if r.Block > 0 {
		s.num = strconv.AppendInt(s.num[:0], r.Block.Milliseconds(), 10)
		s.args = append(s.args, bBlock, s.num)
	}
	s.args = append(s.args, bStreams, bStream, bGT)
	s.c.Send(s.args...)
	if err := s.c.Flush(); err != nil {
		return Job{}, false, err
	}
	rep, err := s.c.Read()
	if err != nil {
		return Job{}, false, err
	}
	if rep.Kind == '-' {
		return Job{}, false, wire.ServerError(rep.Str)
	}
	if rep.Null || len(rep.Arr) == 0 {
		return Job{}, false, nil
	}
	// [[stream, [[id, [field, value]]]]]
	st := rep.Arr[0].Arr
	if len(st) != 2 || len(st[1].Arr) == 0 {
		return Job{}, false, nil
	}
	e := st[1].Arr[0].Arr
	if len(e) != 2 || len(e[1].Arr) != 2 {
		return Job{}, false, fmt.Errorf("XREADGROUP: unexpected reply shape")
	}
	return Job{Token: e[0].Str, Payload: e[1].Arr[1].Str}, true, nil
}

func (s *streamClient) SendAck(j *Job) { s.c.Send(bXAck, bStream, bGroupName, j.Token) }

func (s *streamClient) RecvAck() error {
	r, err := s.c.Read()
	if err != nil {
		return err
	}
	if r.Kind == '-' {
		return wire.ServerError(r.Str)
	}
	if r.Int != 1 {
		return fmt.Errorf("XACK acknowledged %d entries, want 1", r.Int)
	}
	return nil
}

type beanstalkClient struct {
	b *wire.Beanstalk
}

func (b *beanstalkClient) SendPush(payload []byte, _ *PushSpec) { b.b.SendPut(1024, 0, 60, payload) }
func (b *beanstalkClient) RecvPush() error {
	_, err := b.b.RecvPut()
	return err
}
func (b *beanstalkClient) Flush() error     { return b.b.Flush() }
func (b *beanstalkClient) Close() error     { return b.b.Close() }
func (b *beanstalkClient) Start(*Job) error { return ErrUnsupported }

func (b *beanstalkClient) Reserve(r *ReserveSpec) (Job, bool, error) {
	secs := 0
	if r.Block > 0 {
		secs = int((r.Block + time.Second - 1) / time.Second)
	}
	id, data, ok, err := b.b.Reserve(secs)
	return Job{ID: id, Payload: data}, ok, err
}

func (b *beanstalkClient) SendAck(j *Job) { b.b.SendDelete(j.ID) }
func (b *beanstalkClient) RecvAck() error { return b.b.RecvDelete() }

// Flush empties a server between standalone runs: FLUSHALL for RESP
// servers; for beanstalkd (which has no such command) every ready job of
// the benchmark tube is reserved and deleted.
func Flush(target, addr string) error {
	if target != "beanstalkd" {
		c, err := wire.DialRESP(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("FLUSHALL")
		return err
	}
	b, err := wire.DialBeanstalk(addr, queue)
	if err != nil {
		return err
	}
	defer b.Close()
	for {
		id, _, ok, err := b.Reserve(0)
		if err != nil || !ok {
			return err
		}
		b.SendDelete(id)
		if err := b.Flush(); err != nil {
			return err
		}
		if err := b.RecvDelete(); err != nil {
			return err
		}
	}
}
