package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles compares the histogram's quantiles with exact
// ones over latencies spread from nanoseconds to seconds: within the
// bucket width, 1/64 of the value.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b histogram
	var all []time.Duration
	for i := 0; i < 100_000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		if i%1000 == 0 {
			d = time.Duration(rng.IntN(64)) // the exact range
		}
		all = append(all, d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	slices.Sort(all)
	if a.n != uint64(len(all)) {
		t.Fatalf("count %d, want %d", a.n, len(all))
	}
	for _, q := range []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1} {
		want := all[min(len(all)-1, int(q*float64(len(all))))]
		got := a.quantile(q)
		if diff := (got - want).Abs(); float64(diff) > float64(want)/64+1 {
			t.Errorf("quantile %v: %v, want %v (within 1/64)", q, got, want)
		}
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
}

// TestHistogramBuckets checks that every bucket's middle falls in that
// bucket, and that huge and negative latencies are clamped.
func TestHistogramBuckets(t *testing.T) {
	for i := 0; i < histBuckets; i++ {
		if got := histBucket(histValue(i)); got != i {
			t.Fatalf("the middle of bucket %d (%v) falls in bucket %d", i, histValue(i), got)
		}
	}
	if histBucket(-time.Second) != 0 || histBucket(time.Duration(1<<62)) != histBuckets-1 {
		t.Error("out-of-range latencies are not clamped")
	}
}
