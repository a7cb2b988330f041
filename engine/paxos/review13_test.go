package paxos

import (
	"strings"
	"testing"
)

// Tests from the review of the membership changes (issue 13).

// quiet makes every live replica but keep forget the leader it heard from,
// as an election timeout without one would, and drops what is in flight.
func (c *testCluster) quiet() {
	for _, nd := range c.nodes {
		if nd.up {
			nd.rn.becomeFollower(None)
			nd.rn.electionElapsed = nd.rn.cfg.ElectionTicks
		}
	}
	c.queue = nil
}

// checkChain fails unless each configuration the committed log of replica
// id chose is one change (ConfChange) from the one before it: a removed ID
// never comes back, and no change made is silently undone.
func (c *testCluster) checkChain(id NodeID) {
	c.t.Helper()
	prev := c.node(id).bootstrap.Latest()
	for _, e := range c.node(id).applied {
		if !IsConfigValue(e.Value) {
			continue
		}
		next, err := DecodeConfigValue(e.Value)
		if err != nil {
			c.t.Fatal(err)
		}
		eff, ok := NextConfiguration(prev, e.Value)
		if ok && !eff.Equal(next) {
			c.t.Fatalf("slot %d: NextConfiguration gave %v, the value says %v", e.Slot, eff, next)
		}
		for _, r := range prev.Removed {
			if !eff.IsRemoved(r) {
				c.t.Fatalf("slot %d: the configuration %v (removed %v) brings back %s, removed by the one before it, %v (removed %v)",
					e.Slot, eff, eff.Removed, r, prev, prev.Removed)
			}
		}
		prev = eff
	}
}

// TestRacingChangesFromTwoLeaders: two leaders each propose a change, each
// computed from the configuration it knows, and phase 1 of a third
// leadership recovers both, in consecutive slots of one window. A
// configuration value is a whole configuration, so the second one undoes
// the first: here the removal of 5 is chosen, then a configuration in
// which 5 is a voter again and nothing is removed. An ID removed is used
// again, and the operator who saw "removed" (perhaps of a replica whose
// disk died) has a dead voter back in the quorum.
//
// Schedule (5 voters, MaxMsgBytes 1 so that an Accept carries one slot):
// 1 leads, is cut off, and opens slot k+1 (a command) and k+2 (add
// learner 6, computed from {1..5}); nobody else gets them. 2 leads with
// {2,3,4} and proposes "remove 5" in slot k+1, computed from {1..5}; only
// 3 accepts it before 2 crashes. 1 leads again with {1,3,4,5}: slot k+1
// reports "remove 5" under 2's ballot, slot k+2 "add 6" under 1's old
// one; it proposes both, and both are chosen.
func TestRacingChangesFromTwoLeaders(t *testing.T) {
	c := newTestCluster(t, 5, func(cfg *Config) { cfg.MaxMsgBytes = 1 })
	c.trace = &strings.Builder{}
	c.elect(1)
	c.write(1, 1, 2)
	c.tickAll(1)
	k := c.node(1).rn.Status().Commit
	c.join() // 6, which 1 adds

	c.isolate(1)
	if err := c.propose(1, 1, 100, "cut off"); err != nil {
		t.Fatal(err)
	}
	c.process(1)
	if err := c.node(1).rn.ProposeChange(ConfChange{Type: AddLearner, ID: 6, PeerAddr: "p6"}); err != nil {
		t.Fatal(err)
	}
	c.process(1)
	c.queue = nil
	if e, ok := c.node(1).rn.log.entry(k + 2); !ok || !IsConfigValue(e.Value) {
		t.Fatalf("1's slot %d: %v", k+2, e)
	}

	c.quiet()
	c.elect(2)
	if err := c.node(2).rn.ProposeChange(ConfChange{Type: Remove, ID: 5}); err != nil {
		t.Fatal(err)
	}
	c.process(2)
	c.deliver(func(m Message) bool {
		return m.From == 2 && m.To == 3 && m.Type == MsgAccept && len(m.Entries) == 1 && m.Entries[0].Slot == k+1
	})
	c.process(3)
	c.crash(2)
	c.queue = nil

	c.heal()
	c.cut[[2]NodeID{1, 2}], c.cut[[2]NodeID{2, 1}] = true, true
	c.quiet()
	c.node(1).rn.becomeFollower(None)
	c.elect(1)
	c.tickAll(3)
	c.checkAgreement()
	// The schedule reaches the race: both changes are chosen, in slots k+1
	// and k+2.
	applied := c.node(1).applied
	if len(applied) < int(k+2) || !IsConfigValue(applied[k].Value) || !IsConfigValue(applied[k+1].Value) {
		t.Fatalf("slots %d and %d do not both hold a configuration: %v", k+1, k+2, c.appliedValues(1))
	}
	c.checkChain(1)
	if conf := c.node(1).rn.Status().Config; !conf.IsRemoved(5) {
		t.Fatalf("the configuration ends as %v, removed %v: 5's removal was chosen, and undone", conf, conf.Removed)
	}
}

// TestLateTimeoutNowAfterTheTransferWasGivenUp: the leader's MsgTimeoutNow
// is held up; after two election timeouts the leader gives the transfer
// up and carries on (the caller was told it failed), and commits more.
// Then the message arrives: the target took over, a leadership change
// nobody asked for any more. It now carries the leader's last slot, and a
// target that holds more of the leader's slots ignores it.
func TestLateTimeoutNowAfterTheTransferWasGivenUp(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.write(1, 1, 2)
	if err := c.node(1).rn.TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	var held []Message
	for i := 0; i < 100; i++ {
		progress := false
		for _, nd := range c.nodes {
			if c.process(nd.id) {
				progress = true
			}
		}
		for j, m := range c.queue {
			if m.Type == MsgTimeoutNow {
				held = append(held, m)
				c.queue = append(c.queue[:j:j], c.queue[j+1:]...)
				break
			}
		}
		if c.deliver(nil) > 0 {
			progress = true
		}
		if !progress {
			break
		}
	}
	if len(held) == 0 {
		t.Fatal("no TimeoutNow")
	}
	c.tickAll(2*DefaultElectionTicks + 2)
	if !c.node(1).rn.IsLeader() || c.node(1).rn.Status().ChangeInProgress {
		t.Fatalf("not abandoned: %+v", c.node(1).rn.Status())
	}
	c.write(1, 1, 3)
	c.queue = append(c.queue, held...)
	c.stabilize()
	if !c.node(1).rn.IsLeader() || c.node(3).rn.IsLeader() {
		t.Fatalf("after a TimeoutNow of a transfer given up: 1 leads %v, 3 leads %v", c.node(1).rn.IsLeader(), c.node(3).rn.IsLeader())
	}
	c.checkAgreement()
}
