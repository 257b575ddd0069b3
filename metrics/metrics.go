package metrics

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"sluice/store"
)

// Config tunes Metrics.
type Config struct {
	MaxLabels int // queues (and, separately, policy keys) named in labels; default 100
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{MaxLabels: 100} }

// Other is the label that stands for every queue or key past MaxLabels.
const Other = "other"

// The job events counted per queue.
const (
	Pushed = iota
	Reserved
	Acked
	Failed
	Retried
	Expired
	Cancelled
	numEvents
)

// EventNames name the events, in order, for metric names and INFO.
var EventNames = [numEvents]string{"pushed", "reserved", "acked", "failed", "retried", "expired", "cancelled"}

// DurationBounds are the upper bounds, in milliseconds, of the wait and run
// time histograms' buckets; a last bucket holds the rest.
var DurationBounds = [...]int64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000}

// Metrics counts job events per queue (it is the store's Observer) and
// reads everything else when collected.
type Metrics struct {
	cfg Config

	mu     sync.Mutex             // protects queues, qused, keys
	queues map[string]*queueStats // by queue name: the named ones and those counted under other
	qnamed int                    // queues with a label of their own
	qused  map[string]bool        // labels given to queues
	keys   map[policyKey]string   // policy key → its label (Other past the bound)
	kused  map[string]bool        // labels given to policy keys, per kind
	other  *queueStats
	// otherUsed: some queue counts under other (its series are shown from
	// then on).
	otherUsed bool
}

type policyKey struct{ kind, key string }

// queueStats are one label's event counters. Reservations are counted by
// the wait histogram alone (every reservation observes its wait).
type queueStats struct {
	label  string
	events [numEvents]atomic.Uint64 // by event, but Reserved
	wait   histogram                // push (or re-entry into queued) → reservation
	run    histogram                // start → ack
}

// event is the count of event i.
func (q *queueStats) event(i int) uint64 {
	if i == Reserved {
		return q.wait.count()
	}
	return q.events[i].Load()
}

// histogram counts observations per bucket; the count is the buckets' sum,
// so an observation costs two atomic adds.
type histogram struct {
	sum     atomic.Int64 // ms
	buckets [len(DurationBounds) + 1]atomic.Uint64
}

func (h *histogram) observe(ms int64) {
	i := 0
	for i < len(DurationBounds) && ms > DurationBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(ms)
}

func (h *histogram) count() uint64 {
	var n uint64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

// New returns Metrics with no events counted.
func New(cfg Config) *Metrics {
	if cfg.MaxLabels < 1 {
		cfg.MaxLabels = DefaultConfig().MaxLabels
	}
	return &Metrics{
		cfg:    cfg,
		queues: make(map[string]*queueStats),
		qused:  map[string]bool{Other: true},
		keys:   make(map[policyKey]string),
		kused:  make(map[string]bool),
		other:  &queueStats{label: Other},
	}
}

var _ store.Observer = (*Metrics)(nil)

// Queue is the store's request for a queue's observer.
func (m *Metrics) Queue(name string) store.QueueObserver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queueLocked(name)
}

// queueLocked returns name's counters, giving it a label of its own while
// there is room. Lock must be held.
func (m *Metrics) queueLocked(name string) *queueStats {
	if qs := m.queues[name]; qs != nil {
		return qs
	}
	qs := m.other
	if label := labelFor(name); m.qnamed < m.cfg.MaxLabels && !m.qused[label] {
		qs = &queueStats{label: label}
		m.qused[label] = true
		m.qnamed++
	}
	m.queues[name] = qs
	m.otherUsed = m.otherUsed || qs == m.other
	if len(m.queues) > 4*m.cfg.MaxLabels+1024 {
		// Names counted under other need not be remembered: forget them
		// so the map stays bounded (they map to other again next time).
		for n, q := range m.queues {
			if q == m.other {
				delete(m.queues, n)
			}
		}
	}
	return qs
}

// policyLabel is the label of a policy key (Other past the bound).
// Lock must be held.
func (m *Metrics) policyLabelLocked(kind, key string) string {
	pk := policyKey{kind, key}
	if l, ok := m.keys[pk]; ok {
		return l
	}
	label := Other
	used := kind + "\x00" + labelFor(key)
	if l := labelFor(key); l != Other && len(m.kused) < m.cfg.MaxLabels && !m.kused[used] {
		label = l
		m.kused[used] = true
	}
	if label != Other || len(m.keys) < 4*m.cfg.MaxLabels+1024 {
		m.keys[pk] = label
	}
	return label
}

// labelFor is a name as a label value: valid UTF-8 (Prometheus requires
// it); a name that is not gets its invalid bytes replaced, and a clash with
// another name's label sends it to other.
func labelFor(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	return strings.ToValidUTF8(name, "\uFFFD")
}

func (q *queueStats) Pushed()    { q.events[Pushed].Add(1) }
func (q *queueStats) Failed()    { q.events[Failed].Add(1) }
func (q *queueStats) Retried()   { q.events[Retried].Add(1) }
func (q *queueStats) Expired()   { q.events[Expired].Add(1) }
func (q *queueStats) Cancelled() { q.events[Cancelled].Add(1) }

func (q *queueStats) Reserved(waited int64) { q.wait.observe(max(waited, 0)) }

func (q *queueStats) Acked(ran int64) {
	q.events[Acked].Add(1)
	if ran >= 0 {
		q.run.observe(ran)
	}
}

// Totals are the event counts over every queue, in EventNames order
// (INFO stats).
func (m *Metrics) Totals() [numEvents]uint64 {
	var out [numEvents]uint64
	for _, qs := range m.labeled() {
		for i := range out {
			out[i] += qs.event(i)
		}
	}
	return out
}

// labeled lists the counters of every label, other last once it is used.
func (m *Metrics) labeled() []*queueStats {
	m.mu.Lock()
	out := make([]*queueStats, 0, m.qnamed+1)
	for _, qs := range m.queues {
		if qs != m.other {
			out = append(out, qs)
		}
	}
	other := m.otherUsed
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	if other {
		out = append(out, m.other)
	}
	return out
}

// Durations are the wait and run time histograms of a queue, each a count
// per bucket of DurationBounds and one more for the rest; ok is false when
// the queue has none of its own (never seen, or counted under other).
func (m *Metrics) Durations(queue string) (wait, run []uint64, ok bool) {
	m.mu.Lock()
	qs := m.queues[queue]
	m.mu.Unlock()
	if qs == nil || qs == m.other {
		return nil, nil, false
	}
	return qs.wait.counts(), qs.run.counts(), true
}

// counts copies the buckets.
func (h *histogram) counts() []uint64 {
	out := make([]uint64, len(h.buckets))
	for i := range h.buckets {
		out[i] = h.buckets[i].Load()
	}
	return out
}
