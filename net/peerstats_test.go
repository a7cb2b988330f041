package net

import (
	stdnet "net"
	"testing"
	"time"
)

// PeerStats shows a peer nobody answers for as disconnected with what
// waits for it queued, and a peer that answers as connected, its queue
// drained; a peer that goes away turns disconnected again.
func TestPeerStats(t *testing.T) {
	// Replica 3's address: a port that was free a moment ago, where nobody
	// listens.
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	ts := cluster(t, "c-peerstats", 1, 2)
	ts[1].SetPeers(map[uint64]string{1: ts[1].Addr().String(), 2: ts[2].Addr().String(), 3: dead})

	ts[1].Send(3, make([]byte, 100))
	ts[1].Send(3, make([]byte, 50))
	stats := func() map[uint64]PeerStats {
		m := map[uint64]PeerStats{}
		for _, s := range ts[1].PeerStats() {
			m[s.ID] = s
		}
		return m
	}
	if s := stats()[3]; s.Connected || s.QueueBytes != 150 {
		t.Errorf("peer 3, down: %+v, want disconnected with 150 bytes queued", s)
	}
	ts[1].Send(2, []byte("hello"))
	receive(t, ts[2], 1)
	waitFor(t, 10*time.Second, "peer 2 shows connected with an empty queue", func() bool {
		s := stats()[2]
		return s.Connected && s.QueueBytes == 0
	})
	if got := len(ts[1].PeerStats()); got != 2 {
		t.Errorf("%d peers reported, want 2 (not the transport itself)", got)
	}

	ts[2].Close()
	waitFor(t, 10*time.Second, "peer 2 shows disconnected once it is gone", func() bool {
		ts[1].Send(2, []byte("anyone?")) // a write is what finds the connection dead
		return !stats()[2].Connected
	})
}
