package paxos

import "testing"

// Status counts the campaigns a replica started, and tells how far a
// leader says the cluster committed even where the replica holds less:
// what a monitor needs to tell a replica that keeps up from one that
// lags.
func TestStatusElectionsAndLeaderCommit(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	for id, want := range map[NodeID]uint64{1: 1, 2: 0, 3: 0} {
		if got := c.node(id).rn.Status().Elections; got != want {
			t.Errorf("replica %s: Elections %d, want %d", id, got, want)
		}
	}

	c.isolate(3)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := c.propose(1, 7, seq, "x"); err != nil {
			t.Fatal(err)
		}
		c.stabilize()
	}
	ldr := c.node(1).rn.Status()
	if ldr.LeaderCommit != ldr.Commit || ldr.Commit < 3 {
		t.Fatalf("leader: Commit %d, LeaderCommit %d: want equal, at least 3", ldr.Commit, ldr.LeaderCommit)
	}
	behind := c.node(3).rn.Status()
	if behind.LeaderCommit >= ldr.Commit {
		t.Fatalf("replica 3, cut off: LeaderCommit %d, want below the leader's %d", behind.LeaderCommit, ldr.Commit)
	}

	// The leader's messages tell replica 3 its commit index, which
	// replica 3 cannot commit yet: it lacks the entries. A heartbeat, and
	// an Accept that starts past what it holds (which it refuses) both
	// tell it.
	c.heal()
	b := c.node(1).rn.promised
	r3 := c.node(3).rn
	r3.Step(Message{Type: MsgHeartbeat, From: 1, To: 3, Ballot: b, Commit: ldr.Commit - 1})
	if st := r3.Status(); st.LeaderCommit != ldr.Commit-1 || st.Commit >= ldr.Commit-1 {
		t.Fatalf("replica 3 after a heartbeat: Commit %d, LeaderCommit %d; want LeaderCommit %d above Commit", st.Commit, st.LeaderCommit, ldr.Commit-1)
	}
	r3.Step(Message{Type: MsgAccept, From: 1, To: 3, Ballot: b, Slot: ldr.LastSlot, Commit: ldr.Commit})
	if st := r3.Status(); st.LeaderCommit != ldr.Commit || st.Commit >= ldr.Commit-1 {
		t.Fatalf("replica 3 after a refused Accept: Commit %d, LeaderCommit %d; want LeaderCommit %d above Commit", st.Commit, st.LeaderCommit, ldr.Commit)
	}
	c.tickAll(2)
	if st := c.node(3).rn.Status(); st.Commit != ldr.Commit || st.LeaderCommit != ldr.Commit {
		t.Fatalf("replica 3 caught up: Commit %d, LeaderCommit %d, want both %d", st.Commit, st.LeaderCommit, ldr.Commit)
	}
	if got := c.node(3).rn.Status().Elections; got != 0 {
		t.Errorf("replica 3 started %d campaigns without a tick of its own", got)
	}
}
