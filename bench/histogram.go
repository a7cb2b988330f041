package bench

import (
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets: exact below 64 ns,
// then 64 buckets per power of two (at most 1.6% apart), up to about 18
// minutes. A client records into its own, in constant memory however long
// the run: a slice of every latency grew by 8 bytes a command, which in a
// long run outgrew the replicas being measured.
type histogram struct {
	counts [histBuckets]uint32
	n      uint64
}

const (
	histSub     = 64 // buckets per power of two
	histMaxExp  = 40 // 2^40 ns, about 18 minutes; longer is counted there
	histBuckets = histSub + (histMaxExp-6+1)*histSub
)

func histBucket(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns < histSub {
		return int(ns)
	}
	k := bits.Len64(ns) - 1 // ns is in [2^k, 2^(k+1))
	if k > histMaxExp {
		return histBuckets - 1
	}
	return histSub + (k-6)*histSub + int(ns>>(k-6))&(histSub-1)
}

// histValue is the middle of bucket i.
func histValue(i int) time.Duration {
	if i < histSub {
		return time.Duration(i)
	}
	k, sub := (i-histSub)/histSub+6, uint64((i-histSub)%histSub)
	lo := (histSub + sub) << (k - 6)
	return time.Duration(lo + (uint64(1)<<(k-6))/2)
}

func (h *histogram) record(d time.Duration) {
	h.counts[histBucket(d)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the recorded
// ones lie (the middle of its bucket), or 0 if none was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(h.n-1, uint64(q*float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen > rank {
			return histValue(i)
		}
	}
	return histValue(histBuckets - 1)
}
