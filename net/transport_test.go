package net

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paxos-go/paxos/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts insecure transports for ids on loopback ports chosen now.
func cluster(t testing.TB, clusterID string, ids ...uint64) map[uint64]*Transport {
	t.Helper()
	return startCluster(t, clusterID, ids, func(_ uint64, o *Options) { o.Insecure = true })
}

// startCluster starts transports for ids on loopback ports chosen now;
// mod sets each one's options (Insecure or TLS, at least).
func startCluster(t testing.TB, clusterID string, ids []uint64, mod func(id uint64, o *Options)) map[uint64]*Transport {
	t.Helper()
	lns := map[uint64]stdnet.Listener{}
	peers := map[uint64]string{}
	for _, id := range ids {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], peers[id] = ln, ln.Addr().String()
	}
	ts := map[uint64]*Transport{}
	for _, id := range ids {
		opts := Options{ClusterID: clusterID, ID: id, Peers: peers, Listener: lns[id], ReconnectMin: time.Millisecond, ReconnectMax: 50 * time.Millisecond}
		mod(id, &opts)
		tr, err := Listen(opts)
		if err != nil {
			t.Fatal(err)
		}
		ts[id] = tr
		t.Cleanup(func() { tr.Close() })
	}
	return ts
}

// receive waits for n payloads on tr, with a deadline.
func receive(t *testing.T, tr *Transport, n int) []Inbound {
	t.Helper()
	var got []Inbound
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case b := <-tr.Receive():
			got = append(got, b...)
		case <-deadline:
			t.Fatalf("received %d of %d messages before the deadline", len(got), n)
		}
	}
	return got
}

func TestSendAndReceiveInOrder(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	for i := 0; i < 1000; i++ {
		ts[1].Send(2, []byte(fmt.Sprint(i)))
	}
	got := receive(t, ts[2], 1000)
	for i, in := range got {
		if in.From != 1 || string(in.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: from %d %q", i, in.From, in.Payload)
		}
	}
}

func TestWrongClusterIsRefused(t *testing.T) {
	ts := cluster(t, "prod", 1, 2)
	// A replica of another cluster that believes replica 1 is its peer.
	intruder, err := Listen(Options{ClusterID: "staging", ID: 2, Peers: map[uint64]string{1: ts[1].Addr().String(), 2: "127.0.0.1:0"}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	intruder.Send(1, []byte("hello"))
	deadline := time.Now().Add(10 * time.Second)
	for ts[1].Stats().Refused == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ts[1].Stats().Refused == 0 {
		t.Fatal("a connection from another cluster was not refused")
	}
	select {
	case b := <-ts[1].Receive():
		t.Fatalf("received %q from another cluster", b[0].Payload)
	default:
	}
}

func TestHandshakeRefusals(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	for _, tc := range []struct {
		hello Hello
		want  string
	}{
		{Hello{ClusterID: "c2", NodeID: 2, Kind: KindPeer}, "wrong cluster"},
		{Hello{ClusterID: "c1", NodeID: 9, Kind: KindPeer}, "not a member"},
		{Hello{ClusterID: "c1", NodeID: 1, Kind: KindPeer}, "which is this replica"},
		{Hello{ClusterID: "c1", NodeID: 2, Kind: wire.KindClient}, "peer port"},
	} {
		c, err := stdnet.Dial("tcp", ts[1].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = wire.ClientHandshake(c, tc.hello, 0, 5*time.Second)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want a refusal saying %q", tc.hello, err, tc.want)
		}
	}
}

// TestOversizedFrameIsRefusedWithoutAllocating sends a frame header of
// 1 GiB: the reader must close the connection without allocating it.
func TestOversizedFrameIsRefusedWithoutAllocating(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	c, err := stdnet.Dial("tcp", ts[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := wire.ClientHandshake(c, Hello{ClusterID: "c1", NodeID: 2, Kind: KindPeer}, 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30)
	c.Write(hdr[:])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection not closed after an oversized frame: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("allocated %d bytes for a refused frame", grew)
	}
}

// TestReconnectAfterPeerRestart restarts replica 2 on the same address:
// replica 1's writer must reconnect and deliver what it sends afterwards.
func TestReconnectAfterPeerRestart(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	ts[1].Send(2, []byte("before"))
	receive(t, ts[2], 1)
	addr := ts[2].Addr().String()
	peers := map[uint64]string{1: ts[1].Addr().String(), 2: addr}
	ts[2].Close()
	var again *Transport
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		again, err = Listen(Options{ClusterID: "c1", ID: 2, Peers: peers, Insecure: true})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the port is still being released
	}
	defer again.Close()
	// Messages sent while the connection is being re-established may be
	// lost (the protocol retransmits); keep sending until one arrives.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case b := <-again.Receive():
			if string(b[0].Payload) != "after" {
				t.Fatalf("got %q", b[0].Payload)
			}
			return
		case <-tick.C:
			ts[1].Send(2, []byte("after"))
		case <-deadline:
			t.Fatal("no message after the peer restarted")
		}
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	// A peer that is never reachable: everything queues, and the queue
	// keeps the newest QueueLen messages.
	ln, _ := stdnet.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	tr, err := Listen(Options{ClusterID: "c1", ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0", 2: dead}, QueueLen: 10, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 25; i++ {
		tr.Send(2, []byte{byte(i)})
	}
	if d := tr.Stats().Dropped; d != 15 {
		t.Fatalf("dropped %d, want 15", d)
	}
	p := (*tr.peers.Load())[2]
	p.mu.Lock()
	first := p.queue[0][0]
	p.mu.Unlock()
	if first != 15 {
		t.Fatalf("oldest queued message is %d, want 15", first)
	}
}
