package net

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkOneWay sends b.N messages from one transport to another over
// loopback TCP (plaintext: Insecure) and waits for all of them: messages/s
// and MB/s one way.
func BenchmarkOneWay(b *testing.B) {
	benchOneWay(b, func(b *testing.B) map[uint64]*Transport { return cluster(b, "bench", 1, 2) })
}

// BenchmarkOneWayTLS is BenchmarkOneWay over mutual TLS 1.3.
func BenchmarkOneWayTLS(b *testing.B) {
	p := newPKI(b, "bench")
	benchOneWay(b, func(b *testing.B) map[uint64]*Transport { return tlsCluster(b, p, []uint64{1, 2}, nil) })
}

func benchOneWay(b *testing.B, start func(*testing.B) map[uint64]*Transport) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ts := start(b)
			payload := make([]byte, size)
			// Warm the connection up.
			ts[1].Send(2, payload)
			<-ts[2].Receive()
			done := make(chan int)
			go func() {
				n := 0
				for n < b.N {
					n += len(<-ts[2].Receive())
				}
				done <- n
			}()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts[1].Send(2, payload)
				if i%1024 == 1023 {
					// Keep the queue from overflowing: the sender is far
					// faster than any socket.
					for {
						p := (*ts[1].peers.Load())[2]
						p.mu.Lock()
						n := len(p.queue)
						p.mu.Unlock()
						if n < ts[1].opts.QueueLen/2 {
							break
						}
						runtime.Gosched()
					}
				}
			}
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if d := ts[1].Stats().Dropped; d > 0 {
				b.Fatalf("dropped %d messages", d)
			}
		})
	}
}
