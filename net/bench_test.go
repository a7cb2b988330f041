package net

import (
	"fmt"
	stdnet "net"
	"runtime"
	"testing"
	"time"
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

// BenchmarkReconnectAfterRestart: replica 2 is down for downFor (replica
// 1 sending it a heartbeat every 100 ms), then back on the same address; the op is the time from its return until
// replica 1 delivers to it again (ms/reconnect), with the defaults
// ("now": the cap for a peer lost recently, and the restarted peer dialing
// replica 1, which ends replica 1's wait), with one of the two, and with
// neither ("backoff-only", as before).
//
//	go test ./net -run '^$' -bench ReconnectAfterRestart -benchtime 5x
func BenchmarkReconnectAfterRestart(b *testing.B) {
	const downFor, heartbeat = time.Second, 100 * time.Millisecond
	for _, tc := range []struct {
		name      string
		window    time.Duration
		peerDials bool
	}{
		{"now", 0, true},
		{"recent-cap-only", 0, false},
		{"peer-dials-only", time.Nanosecond, true},
		{"backoff-only", time.Nanosecond, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr2 := freeAddrB(b)
			a, err := Listen(Options{ClusterID: "c", ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0", 2: addr2}, Insecure: true, RecentWindow: tc.window})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			start2 := func() *Transport {
				peers := map[uint64]string{2: addr2}
				if tc.peerDials {
					peers[1] = a.Addr().String()
				}
				t2, err := Listen(Options{ClusterID: "c", ID: 2, Peers: peers, Insecure: true, Admit: func(Hello, bool) error { return nil }})
				if err != nil {
					b.Fatal(err)
				}
				return t2
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				t2 := start2()
				deliverB(b, a, t2, "up")
				t2.Close()
				// Heartbeats, as a leader sends them, while replica 2 is
				// down: the writer finds its connection gone and dials.
				for end := time.Now().Add(downFor); time.Now().Before(end); time.Sleep(heartbeat) {
					a.Send(2, []byte("heartbeat"))
				}
				back := time.Now()
				t2 = start2()
				deliverB(b, a, t2, "back")
				total += time.Since(back)
				t2.Close()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/reconnect")
		})
	}
}

// deliverB sends from a to replica 2 every 5 ms until t2 receives it.
func deliverB(b *testing.B, a, t2 *Transport, payload string) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		a.Send(2, []byte(payload))
		select {
		case got := <-t2.Receive():
			for _, in := range got {
				if string(in.Payload) == payload {
					return
				}
			}
		case <-tick.C:
		case <-deadline:
			b.Fatalf("%q never arrived", payload)
		}
	}
}

func freeAddrB(b *testing.B) string {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
