package metrics

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sluice/blocking"
	"sluice/persistence"
	"sluice/protocol"
	"sluice/store"
)

// Sources are what a scrape reads besides the event counters.
type Sources struct {
	Store     *store.Store
	Server    *protocol.Server
	Log       func() persistence.Stats // nil when the log is off
	MaxMemory int64                    // bytes; 0: no limit
	Now       func() int64             // Unix ms; time.Now by default
	Raft      func() RaftStats         // nil when the node is in no group
	JobWaits  *blocking.JobWaits       // JOBWAIT's clients; nil: none
}

// Registry returns a Prometheus registry with sluice's collector and the
// Go runtime and process collectors.
func (m *Metrics) Registry(src Sources) *prometheus.Registry {
	if src.Now == nil {
		src.Now = func() int64 { return time.Now().UnixMilli() }
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{m: m, src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler(src Sources) http.Handler {
	return promhttp.HandlerFor(m.Registry(src), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

const ns = "sluice"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	eventDescs = func() (out [numEvents]*prometheus.Desc) {
		help := [numEvents]string{
			"Jobs pushed.",
			"Reservations made (a job reserved again after its lease expired counts again).",
			"Jobs acknowledged (succeeded).",
			"Jobs that failed for good (attempts exhausted or NORETRY).",
			"Failed attempts scheduled to run again, and failed jobs queued again by JOBRETRY.",
			"Leases that ran out (the job went back to its queue).",
			"Jobs cancelled (JOBCANCEL, QUEUEPURGE).",
		}
		for i, n := range EventNames {
			out[i] = desc("jobs_"+n+"_total", help[i], "queue")
		}
		return
	}()
	waitDesc = desc("job_wait_seconds", "Time from a job entering queued (push, release, due time or lease expiry) to its reservation.", "queue")
	runDesc  = desc("job_run_seconds", "Time from JOBSTART (or the reservation, without one) to JOBACK.", "queue")

	jobsDesc     = desc("jobs", "Jobs held, by queue and state.", "queue", "state")
	pausedDesc   = desc("queue_paused", "1 if the queue is paused.", "queue")
	deadDesc     = desc("dead_letters", "Failed jobs held (kept until retried, cancelled or past failed-retention), by queue.", "queue")
	throttleDesc = desc("queue_blocked_jobs", "Queued jobs a policy refuses now, by the kind of policy.", "queue", "kind")

	policyWaitDesc   = desc("policy_waiting_jobs", "Queued jobs blocked by the policy now.", "kind", "key")
	policyActiveDesc = desc("policy_active", "Active jobs (concurrency) or admissions in the window (rate limit).", "kind", "key")
	policyLimitDesc  = desc("policy_limit", "The policy's limit.", "kind", "key")
	policyUntilDesc  = desc("policy_throttled_until_seconds", "When the key's throttle ends (Unix time); kind is throttle.", "kind", "key")
	breakerStateDesc = desc("policy_breaker_state", "A circuit breaker's state: 0 closed, 1 half-open, 2 open (the worst under one label).", "kind", "key")
	breakerOpenDesc  = desc("policy_breaker_open_until_seconds", "When an open circuit breaker turns half-open (Unix time); 0 when none is open.", "kind", "key")

	cmdDesc       = desc("command_duration_seconds", "Time spent running commands (not waiting blocked), by command.", "command")
	cmdFailedDesc = desc("command_errors_total", "Commands that replied with an error, by command.", "command")

	connectedDesc = desc("connected_clients", "Client connections open.")
	blockedDesc   = desc("blocked_clients", "Clients waiting in JOBRESERVE ... BLOCK or JOBWAIT, or running JOBBULK.")
	connsDesc     = desc("connections_received_total", "Connections accepted.")
	rejectedDesc  = desc("rejected_connections_total", "Connections refused (maxclients, protected mode, shutdown).")
	netInDesc     = desc("net_input_bytes_total", "Bytes read from clients.")
	netOutDesc    = desc("net_output_bytes_total", "Bytes written to clients.")

	heldDesc      = desc("jobs_held", "Jobs held, terminal ones still retained included (DBSIZE).")
	memDesc       = desc("job_memory_bytes", "Estimated memory of the jobs held (what --maxmemory limits).")
	maxMemDesc    = desc("maxmemory_bytes", "The --maxmemory limit; 0: none.")
	slowlogDesc   = desc("slowlog_length", "Entries in the slow log.")
	aofSizeDesc   = desc("aof_size_bytes", "Bytes in the append-only log's files.")
	aofBaseDesc   = desc("aof_base_size_bytes", "Bytes in the log right after the last rewrite or load.")
	aofFsyncDesc  = desc("aof_last_fsync_seconds", "How long the last fsync of the log took.")
	aofFsyncHist  = desc("aof_fsync_seconds", "How long fsyncs of the log took.")
	aofErrDesc    = desc("aof_write_errors_total", "Failed writes or fsyncs of the log.")
	aofOKDesc     = desc("aof_write_ok", "1 while the log can be written; 0 while changes are refused (MISCONF).")
	aofRewrDesc   = desc("aof_rewrites_total", "Log rewrites (compactions) finished.")
	aofRewrIPDesc = desc("aof_rewrite_in_progress", "1 while a log rewrite runs.")

	cronEntriesDesc = desc("cron_entries", "Periodic entries held (CRONSET).")
	cronFiredDesc   = desc("cron_fired_total", "Jobs pushed by periodic entries' ticks since the node started.")

	waitingDesc = desc("jobs_waiting", "Jobs waiting for the jobs they were pushed AFTER (state waiting), in every queue.")
	batchesDesc = desc("batches_open", "Batches not complete (BATCHOPEN, not yet closed or with jobs pending).")
)

var stateNames = []string{"queued", "scheduled", "reserved", "running", "retry_pending", "failed", "expired"}

type collector struct {
	m   *Metrics
	src Sources
}

// Describe sends nothing: the collector is unchecked, as its label values
// come and go.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	// Queues first: reading them runs the store's due maintenance, whose
	// expiries the event counters read next then include.
	c.collectQueues(ch)
	c.collectPolicies(ch)
	c.collectEvents(ch)
	c.collectServer(ch)
	c.collectLog(ch)
	c.collectRaft(ch)
}

func (c *collector) collectEvents(ch chan<- prometheus.Metric) {
	for _, qs := range c.m.labeled() {
		for i, d := range eventDescs {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(qs.event(i)), qs.label)
		}
		ch <- qs.wait.metric(waitDesc, qs.label)
		ch <- qs.run.metric(runDesc, qs.label)
	}
}

// metric reads h as a Prometheus histogram in seconds. The count is taken
// from the buckets so the two always agree.
func (h *histogram) metric(d *prometheus.Desc, label string) prometheus.Metric {
	buckets, n := cumulative(DurationBounds[:], 1000, func(i int) uint64 { return h.buckets[i].Load() })
	return prometheus.MustNewConstHistogram(d, n, float64(h.sum.Load())/1000, buckets, label)
}

// cumulative turns per-bucket counts (count(i) for bucket i of bounds, then
// one more for the rest) into Prometheus's cumulative buckets, whose upper
// bounds are bounds divided by unit, and returns them with the total count.
func cumulative[B int64 | uint64](bounds []B, unit float64, count func(i int) uint64) (map[float64]uint64, uint64) {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += count(i)
		buckets[float64(b)/unit] = cum
	}
	return buckets, cum + count(len(bounds))
}

type queueGauges struct {
	states             [7]int64
	paused             bool
	blockedConcurrency int64
	blockedRateLimit   int64
}

func (c *collector) collectQueues(ch chan<- prometheus.Metric) {
	st := c.src.Store
	now := c.src.Now()
	byLabel := map[string]*queueGauges{}
	for _, qs := range c.m.labeled() { // every label known: zeros for queues now empty
		byLabel[qs.label] = &queueGauges{}
	}
	for _, name := range st.Queues(now) {
		s, err := st.QueueStats(now, name)
		if err != nil {
			continue
		}
		c.m.mu.Lock()
		label := c.m.queueLocked(name).label
		c.m.mu.Unlock()
		g := byLabel[label]
		if g == nil {
			g = &queueGauges{}
			byLabel[label] = g
		}
		for i, v := range []int64{s.Queued, s.Scheduled, s.Reserved, s.Running, s.RetryPending, s.Failed, s.Expired} {
			g.states[i] += v
		}
		g.paused = g.paused || s.Paused
		g.blockedConcurrency += s.BlockedConcurrency
		g.blockedRateLimit += s.BlockedRateLimit
	}
	for label, g := range byLabel {
		for i, state := range stateNames {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(g.states[i]), label, state)
		}
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, b2f(g.paused), label)
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(g.states[5]), label)
		ch <- prometheus.MustNewConstMetric(throttleDesc, prometheus.GaugeValue, float64(g.blockedConcurrency), label, "concurrency")
		ch <- prometheus.MustNewConstMetric(throttleDesc, prometheus.GaugeValue, float64(g.blockedRateLimit), label, "ratelimit")
	}
}

func (c *collector) collectPolicies(ch chan<- prometheus.Metric) {
	type sums struct {
		waiting, active, limit, until int64
		state                         int64 // breakers: 0 closed, 1 half-open, 2 open
		own                           bool
	}
	byLabel := map[policyKey]*sums{}
	var order []policyKey
	for _, p := range c.src.Store.Policies(c.src.Now()) {
		kind := p.Kind.String()
		c.m.mu.Lock()
		label := c.m.policyLabelLocked(kind, p.Key)
		c.m.mu.Unlock()
		k := policyKey{kind, label}
		s := byLabel[k]
		if s == nil {
			s = &sums{own: label != Other}
			byLabel[k] = s
			order = append(order, k)
		}
		s.waiting += p.Waiting
		s.active += p.Active
		s.limit += p.Limit
		s.until = max(s.until, p.NextFreeAt)
		switch p.State {
		case "open":
			s.state = 2
		case "half-open":
			s.state = max(s.state, 1)
		}
	}
	sort.Slice(order, func(i, j int) bool {
		return order[i].kind < order[j].kind || (order[i].kind == order[j].kind && order[i].key < order[j].key)
	})
	for _, k := range order {
		s := byLabel[k]
		ch <- prometheus.MustNewConstMetric(policyWaitDesc, prometheus.GaugeValue, float64(s.waiting), k.kind, k.key)
		ch <- prometheus.MustNewConstMetric(policyActiveDesc, prometheus.GaugeValue, float64(s.active), k.kind, k.key)
		switch {
		case k.kind == "throttle": // the latest end, under Other too
			ch <- prometheus.MustNewConstMetric(policyUntilDesc, prometheus.GaugeValue, float64(s.until)/1000, k.kind, k.key)
		case k.kind == "breaker": // the worst state and the latest end, under Other too
			ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, float64(s.state), k.kind, k.key)
			ch <- prometheus.MustNewConstMetric(breakerOpenDesc, prometheus.GaugeValue, float64(s.until)/1000, k.kind, k.key)
		case s.own: // a sum of limits means nothing
			ch <- prometheus.MustNewConstMetric(policyLimitDesc, prometheus.GaugeValue, float64(s.limit), k.kind, k.key)
		}
	}
}

func (c *collector) collectServer(ch chan<- prometheus.Metric) {
	st := c.src.Store
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(st.Len()))
	ch <- prometheus.MustNewConstMetric(memDesc, prometheus.GaugeValue, float64(st.Bytes()))
	ch <- prometheus.MustNewConstMetric(maxMemDesc, prometheus.GaugeValue, float64(c.src.MaxMemory))
	ch <- prometheus.MustNewConstMetric(cronEntriesDesc, prometheus.GaugeValue, float64(st.CronEntries()))
	ch <- prometheus.MustNewConstMetric(cronFiredDesc, prometheus.CounterValue, float64(st.CronFired()))
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(st.WaitingJobs()))
	ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.GaugeValue, float64(st.OpenBatches()))
	c.collectJobWaits(ch)
	srv := c.src.Server
	if srv == nil {
		return
	}
	s := srv.Stats()
	ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, float64(s.Connected))
	ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.GaugeValue, float64(s.Blocked))
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.CounterValue, float64(s.TotalConnections))
	ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(s.RejectedConnections))
	ch <- prometheus.MustNewConstMetric(netInDesc, prometheus.CounterValue, float64(s.NetInputBytes))
	ch <- prometheus.MustNewConstMetric(netOutDesc, prometheus.CounterValue, float64(s.NetOutputBytes))
	ch <- prometheus.MustNewConstMetric(slowlogDesc, prometheus.GaugeValue, float64(srv.SlowlogLen()))
	for _, cs := range srv.CommandStats() {
		buckets, n := cumulative(protocol.LatencyBounds[:], 1e6, func(i int) uint64 { return cs.Buckets[i] })
		ch <- prometheus.MustNewConstHistogram(cmdDesc, n, float64(cs.Usec)/1e6, buckets, cs.Name)
		ch <- prometheus.MustNewConstMetric(cmdFailedDesc, prometheus.CounterValue, float64(cs.Failed), cs.Name)
	}
}

func (c *collector) collectLog(ch chan<- prometheus.Metric) {
	if c.src.Log == nil {
		return
	}
	s := c.src.Log()
	ch <- prometheus.MustNewConstMetric(aofSizeDesc, prometheus.GaugeValue, float64(s.Size))
	ch <- prometheus.MustNewConstMetric(aofBaseDesc, prometheus.GaugeValue, float64(s.BaseSize))
	ch <- prometheus.MustNewConstMetric(aofFsyncDesc, prometheus.GaugeValue, float64(s.LastFsyncMicros)/1e6)
	buckets, n := cumulative(persistence.FsyncBounds[:], 1e6, func(i int) uint64 { return s.Fsyncs.Counts[i] })
	ch <- prometheus.MustNewConstHistogram(aofFsyncHist, n, float64(s.Fsyncs.SumMicros)/1e6, buckets)
	ch <- prometheus.MustNewConstMetric(aofErrDesc, prometheus.CounterValue, float64(s.WriteErrors))
	ch <- prometheus.MustNewConstMetric(aofOKDesc, prometheus.GaugeValue, b2f(s.Status != "err"))
	ch <- prometheus.MustNewConstMetric(aofRewrDesc, prometheus.CounterValue, float64(s.Rewrites))
	ch <- prometheus.MustNewConstMetric(aofRewrIPDesc, prometheus.GaugeValue, b2f(s.RewriteInProgress))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
