package net

import (
	stdnet "net"
	"testing"
	"time"
)

// TestRecentPeerBackoffCapped: the wait before dialing a peer again stays
// at most RecentReconnectMax (jittered: 1.5 times it) for RecentWindow
// after a connection to it was lost, however many dials failed; a peer
// never reached, or lost long ago, backs off to ReconnectMax.
func TestRecentPeerBackoffCapped(t *testing.T) {
	opts, err := Options{ClusterID: "c", ListenAddr: "127.0.0.1:0", Insecure: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{opts: opts}
	now := time.Now()
	for _, tc := range []struct {
		name    string
		lost    time.Time
		maxWait time.Duration
	}{
		{"lost a moment ago", now.Add(-time.Second), opts.RecentReconnectMax * 3 / 2},
		{"never connected", time.Time{}, opts.ReconnectMax * 3 / 2},
		{"lost long ago", now.Add(-time.Minute), opts.ReconnectMax * 3 / 2},
	} {
		p := &peer{lost: tc.lost}
		backoff := opts.ReconnectMin
		var longest time.Duration
		for range 30 {
			longest = max(longest, tr.nextBackoff(p, &backoff, now))
		}
		if longest > tc.maxWait {
			t.Errorf("%s: waited %v between dials, want at most %v", tc.name, longest, tc.maxWait)
		}
		if tc.maxWait > time.Second && longest < opts.ReconnectMax/2 {
			t.Errorf("%s: the backoff did not grow: at most %v after 30 failures", tc.name, longest)
		}
	}
	if max := opts.RecentReconnectMax * 3 / 2; max > 100*time.Millisecond {
		t.Fatalf("a restarted peer may wait %v to be dialed again, want within 100 ms", max)
	}
}

// TestInboundEndsDialWait: a peer that connects to this replica is up, so
// the writer's wait to dial it ends at once. The writer here backs off an
// hour: only that signal can bring it to dial again.
func TestInboundEndsDialWait(t *testing.T) {
	addrs := map[uint64]string{1: freeLoopback(t), 2: freeLoopback(t)}
	slow := func(id uint64) Options {
		return Options{ClusterID: "c", ID: id, Peers: addrs, Insecure: true, ReconnectMin: time.Hour, ReconnectMax: time.Hour}
	}
	a, err := Listen(slow(1))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Send(2, []byte("hello"))
	pa := (*a.peers.Load())[2]
	waitUntil(t, "a's first dial failed", func() bool { return pa.failedDials.Load() == 1 })
	b, err := Listen(slow(2)) // b dials a as it starts
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Delivered, though a's wait after its failed dial was half an hour
	// at least.
	got := receive(t, b, 1)
	if string(got[0].Payload) != "hello" || pa.failedDials.Load() != 1 {
		t.Fatalf("got %q after %d failed dials, want hello after 1", got[0].Payload, pa.failedDials.Load())
	}
}

// freeLoopback returns a loopback address that was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitUntil waits for cond, with a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
