package engine

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLearnerThroughput measures the steady write throughput of three
// voters (real nodes on loopback, mutual TLS, fsync) without and with a
// caught-up learner attached: the learner must not slow the quorum (the
// issue allows 10% at most). 32 closed-loop writers submit b.N 64-byte
// commands to the leader per phase; phases alternate on one cluster
// (without, add a learner, with, remove it, ...) so that both see the
// same machine load, and the medians are reported, with their ratio:
//
//	go test -run '^$' -bench LearnerThroughput -benchtime 20000x ./engine
//
// All four replicas share this machine's cores: the learner's own work
// (receiving, fsyncing, applying) competes with the voters' for CPU,
// which a learner on its own machine would not.
func BenchmarkLearnerThroughput(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { learnerThroughput(b, false) })
	// Without fsync, the replicas do not compete for the disk: what is
	// left is the cost of the learner to the leader (one more stream to
	// encode, encrypt and send) and the CPU the learner takes.
	b.Run("nosync", func(b *testing.B) { learnerThroughput(b, true) })
}

func learnerThroughput(b *testing.B, noSync bool) {
	c := newTestCluster(b, 3, func(cfg *Config) { cfg.NoSync = noSync })
	c.useTrivialMachines()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c.leader()
	payload := bytes.Repeat([]byte{'x'}, 64)
	client := uint64(10_000)
	phase := func() float64 {
		leader := c.node(c.leader())
		const writers = 32
		var issued atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			client++
			go func(client uint64) {
				defer wg.Done()
				for seq := uint64(1); issued.Add(1) <= int64(b.N); seq++ {
					if _, err := leader.Submit(ctx, client, seq, payload); err != nil {
						b.Error(err)
						return
					}
				}
			}(client)
		}
		wg.Wait()
		return float64(b.N) / time.Since(start).Seconds()
	}
	var without, with []float64
	b.ResetTimer()
	for round, id := 0, uint64(4); round < 4; round, id = round+1, id+1 {
		// Odd rounds measure with the learner first.
		if round%2 == 0 {
			without = append(without, phase())
		}
		b.StopTimer()
		n := c.addLearner(ctx, id, func(cfg *Config) { cfg.NoSync = noSync })
		commit := c.node(c.leader()).Status().Commit
		waitFor(b, 60*time.Second, "the learner to catch up", func() bool { return n.Status().Applied >= commit })
		b.StartTimer()
		with = append(with, phase())
		b.StopTimer()
		if err := c.onLeader(ctx, func(l *Node) error { return l.RemoveReplica(ctx, id) }); err != nil {
			b.Fatal(err)
		}
		waitStopped(b, n, ErrRemoved)
		c.crash(id)
		b.StartTimer()
		if round%2 == 1 {
			without = append(without, phase())
		}
	}
	b.StopTimer()
	b.Logf("ops/s without a learner %.0f, with %.0f (in the order measured)", without, with)
	slices.Sort(without)
	slices.Sort(with)
	med := func(v []float64) float64 { return (v[1] + v[2]) / 2 }
	b.ReportMetric(med(without), "ops/s-without")
	b.ReportMetric(med(with), "ops/s-with-learner")
	b.ReportMetric(100*med(with)/med(without), "%-with/without")
}
