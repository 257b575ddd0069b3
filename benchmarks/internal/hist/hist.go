// Package hist is a log-linear latency histogram in the manner of
// HdrHistogram: values below 2^subBits are counted exactly, larger ones in
// buckets whose width is 1/2^(subBits-1) of their magnitude, so every
// recorded value is reproduced to better than 1% at a fixed, small memory
// cost and recording is a couple of shifts and an increment. Each load
// generator goroutine owns one histogram; they are merged at the end.
package hist

import (
	"math"
	"math/bits"
	"time"
)

const (
	subBits  = 7
	subCount = 1 << subBits // exact values below this
	halfSub  = subCount / 2
	maxShift = 64 - subBits
	nBuckets = subCount + maxShift*halfSub
)

// Histogram counts durations in nanoseconds. The zero value is ready to use.
type Histogram struct {
	counts [nBuckets]uint64
	total  uint64
	sum    float64
	min    uint64
	max    uint64
}

func index(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	mant := v >> uint(shift) // in [halfSub, subCount)
	return subCount + (shift-1)*halfSub + int(mant-halfSub)
}

// value is the midpoint of bucket i.
func value(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	j := i - subCount
	shift := j/halfSub + 1
	mant := uint64(j%halfSub + halfSub)
	return mant<<uint(shift) + (uint64(1)<<uint(shift))/2
}

// Record counts one duration (negative durations count as zero).
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[index(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is how many values were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Mean is the exact mean of the recorded values.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Max is the largest recorded value, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the value at quantile q in [0, 1]: the smallest bucket
// midpoint such that at least q of the values are at or below its bucket,
// clamped to the exact minimum and maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := value(i)
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
