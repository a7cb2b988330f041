package net

import (
	"errors"
	stdnet "net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSetPeersAddsAndRemoves: a replica added with SetPeers is taken and
// reached; once removed, its connection is closed, its new ones are
// refused and messages to it are dropped.
func TestSetPeersAddsAndRemoves(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := map[uint64]string{1: ts[1].Addr().String(), 2: ts[2].Addr().String(), 3: ln.Addr().String()}
	t3, err := Listen(Options{ClusterID: "c1", ID: 3, Peers: peers, Listener: ln, Insecure: true,
		ReconnectMin: time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer t3.Close()

	// Replica 1 does not know replica 3 yet: refused.
	t3.Send(1, []byte("too early"))
	waitFor(t, 10*time.Second, "replica 1 to refuse replica 3", func() bool { return ts[1].Stats().Refused > 0 })

	ts[1].SetPeers(peers)
	if got := ts[1].Peers(); got[3] != peers[3] || len(got) != 2 {
		t.Fatalf("Peers() = %v after adding replica 3", got)
	}
	deliver(t, t3, 3, ts[1], 1, "added")
	deliver(t, ts[1], 1, t3, 3, "welcome")

	// Removed: the connection from 3 closes and new ones are refused.
	refused := ts[1].Stats().Refused
	ts[1].SetPeers(map[uint64]string{1: peers[1], 2: peers[2]})
	drain(ts[1])
	dropped := ts[1].Stats().Dropped
	ts[1].Send(3, []byte("to a removed replica"))
	if ts[1].Stats().Dropped != dropped+1 {
		t.Fatal("a message to a removed replica was not dropped")
	}
	waitFor(t, 10*time.Second, "replica 3 to be refused again", func() bool {
		t3.Send(1, []byte("after removal"))
		return ts[1].Stats().Refused > refused
	})
	for _, in := range drain(ts[1]) {
		if in.From == 3 {
			t.Fatalf("received %q from a removed replica", in.Payload)
		}
	}
}

// TestSetPeersAddressChange: a replica that moved is reached at its new
// address.
func TestSetPeersAddressChange(t *testing.T) {
	ts := cluster(t, "c1", 1, 2)
	deliver(t, ts[1], 1, ts[2], 2, "before")
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := Listen(Options{ClusterID: "c1", ID: 2, Peers: map[uint64]string{1: ts[1].Addr().String()}, Listener: ln, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	ts[1].SetPeers(map[uint64]string{1: ts[1].Addr().String(), 2: ln.Addr().String()})
	deliver(t, ts[1], 1, moved, 2, "after")
}

// TestAdmitRefusalReachesDialer: a refusal with a code is reported to
// the dialer's OnRefused, with the listener's reason.
func TestAdmitRefusalReachesDialer(t *testing.T) {
	got := make(chan *RefusedError, 16)
	ts := startCluster(t, "c1", []uint64{1, 2}, func(id uint64, o *Options) {
		o.Insecure = true
		if id == 2 {
			o.Admit = func(h Hello, known bool) error {
				if h.NodeID == 1 && h.Fresh {
					return &PeerRefusal{Code: RefusalDataLost, Reason: "replica 1 lost its data"}
				}
				return nil
			}
		}
		if id == 1 {
			o.State = PeerState{Fresh: true}
			o.OnRefused = func(peer uint64, e *RefusedError) {
				if peer == 2 {
					select {
					case got <- e:
					default:
					}
				}
			}
		}
	})
	ts[1].Send(2, []byte("hello"))
	select {
	case e := <-got:
		if e.Code != RefusalDataLost || e.Reason != "replica 1 lost its data" || !errors.Is(e, ErrRefused) {
			t.Fatalf("OnRefused got %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dialer was not told of the refusal")
	}
	// The refusal stands only for what the Hello says: once replica 1
	// says it holds state, it is taken.
	ts[1].SetState(PeerState{})
	deliver(t, ts[1], 1, ts[2], 2, "now with state")
}

// TestAdmitLearnsAddress: a replica that knows no peers (joining) and
// admits a dialer it does not know answers it at the address its Hello
// gives.
func TestAdmitLearnsAddress(t *testing.T) {
	lns := map[uint64]stdnet.Listener{}
	for _, id := range []uint64{1, 2} {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
	}
	t1, err := Listen(Options{ClusterID: "c1", ID: 1, Listener: lns[1], Insecure: true,
		Peers: map[uint64]string{2: lns[2].Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	t2, err := Listen(Options{ClusterID: "c1", ID: 2, Listener: lns[2], Insecure: true,
		Admit: func(Hello, bool) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Close()
	deliver(t, t1, 1, t2, 2, "to the joiner")
	if got := t2.Peers()[1]; got != lns[1].Addr().String() {
		t.Fatalf("the joiner learned %q for replica 1, want %s", got, lns[1].Addr())
	}
	deliver(t, t2, 2, t1, 1, "answer")
}

// TestSetStateSaysItAgain: after SetState, the peers see a Hello with the
// new state (the connections are made again).
func TestSetStateSaysItAgain(t *testing.T) {
	var mu sync.Mutex
	var hellos []Hello
	ts := startCluster(t, "c1", []uint64{1, 2}, func(id uint64, o *Options) {
		o.Insecure = true
		if id == 1 {
			o.State = PeerState{Fresh: true, Joining: true}
		}
		if id == 2 {
			o.Admit = func(h Hello, known bool) error {
				mu.Lock()
				hellos = append(hellos, h)
				mu.Unlock()
				if !known {
					return errors.New("unknown")
				}
				return nil
			}
		}
	})
	seen := func(fresh, joining bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hellos {
			if h.NodeID == 1 && h.Fresh == fresh && h.Joining == joining && strings.HasPrefix(h.PeerAddr, "127.0.0.1:") {
				return true
			}
		}
		return false
	}
	deliver(t, ts[1], 1, ts[2], 2, "first")
	if !seen(true, true) {
		t.Fatalf("the first Hello does not say fresh and joining: %+v", hellos)
	}
	ts[1].SetState(PeerState{})
	waitFor(t, 10*time.Second, "a Hello saying not fresh", func() bool {
		ts[1].Send(2, []byte("again"))
		return seen(false, false)
	})
}
