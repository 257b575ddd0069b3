package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"sluice/blocking"
)

var (
	jobWaitDesc    = desc("jobwait_clients", "Clients waiting in JOBWAIT for a job to end.")
	jobWaitLatDesc = desc("jobwait_answer_seconds", "Time from a job's end to its JOBWAIT clients having their answer.")
)

// collectJobWaits reports JOBWAIT's clients and how fast they are answered.
func (c *collector) collectJobWaits(ch chan<- prometheus.Metric) {
	jw := c.src.JobWaits
	if jw == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(jobWaitDesc, prometheus.GaugeValue, float64(jw.Waiting()))
	counts, sum := jw.Latencies()
	bounds := make([]int64, len(blocking.LatencyBounds))
	for i, b := range blocking.LatencyBounds {
		bounds[i] = int64(b)
	}
	buckets, n := cumulative(bounds, 1e9, func(i int) uint64 { return counts[i] })
	ch <- prometheus.MustNewConstHistogram(jobWaitLatDesc, n, sum.Seconds(), buckets)
}
