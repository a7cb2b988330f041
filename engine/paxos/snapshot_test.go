package paxos

import (
	"slices"
	"strings"
	"testing"
)

// TestLeaderCommitsOnAnInstalledSnapshotsReport is a bug the simulator's
// reconfiguration runs found (seed 101338 of a soak): a follower that
// installs a snapshot tells the leader where it stands with a rejecting
// MsgAccepted (Slot: the snapshot's slot). The leader took that as the
// follower's match but never tried to advance its commit index on it, and
// the follower, holding everything the leader sent, had nothing more to
// acknowledge. A leader restarted from a snapshot beyond the commit index
// it had persisted (it had applied more than its lost last write said)
// sent that snapshot to all its followers; with its pipeline full of
// slots above its commit index, it opened no new slot, and its commit
// index never moved again.
func TestLeaderCommitsOnAnInstalledSnapshotsReport(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.trace = &strings.Builder{}
	l := c.elect(1)
	c.cut[[2]NodeID{1, 3}] = true // only 2's word will count
	// The leader fills its pipeline, one slot at a time; its Accepts to 2
	// are lost, its own acceptances arrive.
	for i := range DefaultMaxInflightSlots {
		if err := c.propose(1, 7, uint64(i+1), "P x"); err != nil {
			t.Fatal(err)
		}
		c.process(1)
		c.queue = slices.DeleteFunc(c.queue, func(m Message) bool { return m.To != 1 })
		c.deliver(nil)
	}
	st := l.Status()
	if st.Commit != 0 || st.LastSlot != DefaultMaxInflightSlots {
		t.Fatalf("setup: commit %d, last slot %d", st.Commit, st.LastSlot)
	}
	// 2 catches up to the leader's last slot from a snapshot (of a replica
	// that had applied it), and says so.
	last, _ := l.log.entry(st.LastSlot)
	if !c.node(2).rn.InstallSnapshot(Compacted{Slot: st.LastSlot, Ballot: last.Ballot}, Bootstrap([]NodeID{1, 2, 3}, nil, nil)) {
		t.Fatal("2 refused the snapshot")
	}
	// (The harness keeps logs from slot 1: the snapshot's slots stand in
	// for what 2 restored, as applied and durable.)
	held := l.log.slice(1, st.LastSlot+1, 1<<30)
	c.node(2).entries, c.node(2).applied = slices.Clone(held), slices.Clone(held)
	c.stabilize()
	c.tickAll(3)
	if got := l.Status().Commit; got != st.LastSlot {
		t.Fatalf("leader's commit index %d after 2 reported holding slot %d from a snapshot: a quorum {1,2} holds every slot\n%s", got, st.LastSlot, c.trace)
	}
	if err := c.propose(1, 7, 100, "P after"); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if got := c.appliedValues(2); got[len(got)-1] != "[7.100:P after]" {
		t.Fatalf("2 applied %v, not the next proposal", got)
	}
}
