package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkCluster runs a 3-replica cluster in this process on loopback
// TCP, with real WALs (fsync on) in temporary directories, and C
// closed-loop clients submitting 64-byte commands to the leader. It
// reports ops/s and the p50 and p99 latency of a command.
func BenchmarkCluster(b *testing.B) {
	for _, clients := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchCluster(b, 3, clients, 64)
		})
	}
}

func benchCluster(b *testing.B, size, clients, payloadSize int) {
	c := newTestCluster(b, size, func(cfg *Config) {
		cfg.ClientAddr = ""
		cfg.WAL.SegmentBytes = 0 // the default, 64 MiB, pre-written
	})
	c.useTrivialMachines()
	benchWith(b, c, clients, payloadSize)
}

// benchWith runs the closed-loop clients against the leader of c.
func benchWith(b *testing.B, c *testCluster, clients, payloadSize int) {
	leader := c.node(c.leader())
	payload := make([]byte, payloadSize)
	per := max(b.N/clients, 1)
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			client := uint64(w + 1)
			for seq := uint64(1); seq <= uint64(per); seq++ {
				t0 := time.Now()
				if _, err := leader.Submit(ctx, client, seq, payload); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
