package engine

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
)

// BenchmarkPipelining compares one client with Window (64) commands
// outstanding (SubmitAsync) against 64 clients with one each (Submit), on
// three replicas on loopback (mutual TLS, fsync), 64-byte commands: the
// issue asks the one client for at least half the throughput of the 64.
// Each phase writes b.N commands; the phases alternate on one cluster
// (64 clients, one client, three times each) so that both see the same
// machine load, and the medians are reported with their ratio:
//
//	go test -run '^$' -bench Pipelining -benchtime 20000x ./engine
//
// client-port goes through the Go client and the leader's client port;
// in-process calls the leader's Node directly.
func BenchmarkPipelining(b *testing.B) {
	b.Run("client-port", func(b *testing.B) { pipelining(b, true) })
	b.Run("in-process", func(b *testing.B) { pipelining(b, false) })
}

func pipelining(b *testing.B, port bool) {
	c := newTestCluster(b, 3, nil)
	c.useTrivialMachines()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	leader := c.leader()
	payload := bytes.Repeat([]byte{'x'}, 64)
	newClient := func() *client.Client {
		return client.New([]string{c.client[leader]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	}
	nextID := uint64(10_000)
	// clients: Window closed-loop clients, one command outstanding each.
	clients := func() float64 {
		n := c.node(leader)
		var issued atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range Window {
			nextID++
			wg.Add(1)
			go func(id uint64) {
				defer wg.Done()
				var cl *client.Client
				if port {
					cl = newClient()
					defer cl.Close()
				}
				for seq := uint64(1); issued.Add(1) <= int64(b.N); seq++ {
					var err error
					if port {
						_, err = cl.Submit(ctx, payload)
					} else {
						_, err = n.Submit(ctx, id, seq, payload)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			}(nextID)
		}
		wg.Wait()
		return float64(b.N) / time.Since(start).Seconds()
	}
	// window: one client, Window commands outstanding, each waited for in
	// order and replaced by the next.
	window := func() float64 {
		n := c.node(leader)
		nextID++
		id := nextID
		var cl *client.Client
		if port {
			cl = newClient()
			defer cl.Close()
		}
		var fromPort []*client.Future
		var inProcess []*Future
		start := time.Now()
		for seq := 1; seq <= b.N; seq++ {
			if port {
				fromPort = append(fromPort, cl.SubmitAsync(ctx, payload)) // waits for room in the window
				if len(fromPort) == Window {
					if _, err := fromPort[0].Wait(ctx); err != nil {
						b.Fatal(err)
					}
					fromPort = fromPort[1:]
				}
				continue
			}
			if len(inProcess) == Window {
				if _, err := inProcess[0].Wait(ctx); err != nil {
					b.Fatal(err)
				}
				inProcess = inProcess[1:]
			}
			oldest := uint64(seq) - uint64(len(inProcess))
			inProcess = append(inProcess, n.SubmitAsync(id, uint64(seq), oldest, payload))
		}
		for _, f := range fromPort {
			if _, err := f.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
		for _, f := range inProcess {
			if _, err := f.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return float64(b.N) / time.Since(start).Seconds()
	}
	var many, one []float64
	b.ResetTimer()
	for range 3 {
		many = append(many, clients())
		one = append(one, window())
	}
	b.StopTimer()
	if c.leaderNow() != leader {
		b.Fatal("the leader changed during the run")
	}
	b.Logf("ops/s, 64 clients %.0f, one client with 64 outstanding %.0f (in the order measured)", many, one)
	slices.Sort(many)
	slices.Sort(one)
	b.ReportMetric(many[1], "ops/s-64-clients")
	b.ReportMetric(one[1], "ops/s-1-client-64-outstanding")
	b.ReportMetric(100*one[1]/many[1], "%-one/64")
}

// leaderNow returns the replica that leads now, or 0.
func (c *testCluster) leaderNow() uint64 {
	for id, n := range c.running() {
		if n.Status().Role == RoleLeader {
			return id
		}
	}
	return 0
}
