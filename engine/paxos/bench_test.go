package paxos

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkCore drives three replicas through Propose, Step, Ready and
// Advance, with no I/O at all: the cost of the protocol itself. Each
// proposal is one batch of 1, 64 or 256 commands of 64 bytes; the leader
// keeps a window of them in flight. Reports commands/s.
func BenchmarkCore(b *testing.B) {
	for _, batch := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			peers := []NodeID{1, 2, 3}
			nodes := make([]*RawNode, len(peers))
			for i, id := range peers {
				rn, err := NewRawNode(Config{ID: id, Peers: peers, Incarnation: 1, Rand: rand.New(rand.NewPCG(uint64(id), 1))})
				if err != nil {
					b.Fatal(err)
				}
				nodes[i] = rn
			}
			var queue, next []Message
			applied := 0
			round := func() {
				for _, rn := range nodes {
					if !rn.HasReady() {
						continue
					}
					rd := rn.Ready()
					queue = append(queue, rd.Messages...)
					queue = append(queue, rd.MessagesAfterPersist...)
					for _, e := range rd.Committed {
						if rn == nodes[0] {
							_ = ForEachCommand(e.Value, func(Command) bool { applied++; return true })
						}
					}
					rn.Advance(rd)
				}
				queue, next = next[:0], queue
				for _, m := range next {
					nodes[m.To-1].Step(m)
				}
			}
			nodes[0].startPoll()
			for i := 0; i < 20 && !nodes[0].IsLeader(); i++ {
				round()
			}
			if !nodes[0].IsLeader() {
				b.Fatal("no leader")
			}
			payload := make([]byte, 64)
			var value []byte
			for i := 0; i < batch; i++ {
				value = AppendCommand(value, Command{ClientID: 1, Seq: uint64(i + 1), Payload: payload})
			}
			applied = 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := nodes[0].Propose(value); err != nil {
					b.Fatal(err)
				}
				round()
			}
			for i := 0; i < 10; i++ {
				round()
			}
			b.StopTimer()
			b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}
