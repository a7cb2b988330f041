package paxos

import (
	"bytes"
	"fmt"
)

// Becoming leader: a poll (pre-vote), then phase 1 (Prepare/Promise).

// poll is the state of a pre-candidate: who answered its MsgPrePrepare.
type poll struct {
	// id is the Context of this poll's messages, unique across the lives
	// of this replica, so that answers to older polls, of this life or an
	// earlier one, are ignored.
	id       uint64
	granted  int
	rejected int
	answered []bool // by peer index
}

// campaign is the state of a candidate in phase 1.
type campaign struct {
	ballot   Ballot
	fromSlot uint64 // the first slot the candidate is not sure is committed
	promised []bool // by peer index
	count    int
	// best holds, for each slot from fromSlot on, the entry reported under
	// the highest ballot so far: the value phase 2 must propose there.
	best []Entry
}

// startPoll asks every replica whether it would take part in an election.
// Nothing changes anywhere until a majority says yes: a replica cut off
// from the others keeps polling, but never raises its ballot, so it cannot
// disrupt the leader when it returns.
func (n *RawNode) startPoll() {
	if n.maxRound >= MaxRound {
		return // no ballot above the highest seen exists: see MaxRound
	}
	id, ok := n.nextID()
	if !ok {
		return // this life's ids are used up; see ErrIDsExhausted
	}
	if n.cfg.Knobs.ReuseBallot {
		// The bug: poll ids restart at 1 in every life.
		id = 1
		if n.poll != nil {
			id = n.poll.id + 1
		}
	}
	n.becomeFollower(None)
	n.role = preCandidate
	n.poll = &poll{id: id, answered: make([]bool, len(n.peers))}
	n.recordPollAnswer(n.id, true)
	if n.role != preCandidate {
		return // a single replica: already a candidate
	}
	for _, p := range n.peers {
		if p != n.id {
			n.send(Message{Type: MsgPrePrepare, To: p, Ballot: Ballot{Round: n.maxRound + 1, Node: n.id}, Commit: n.log.commit, Context: id})
		}
	}
}

func (n *RawNode) handlePrePromise(m Message) {
	if m.Context != n.poll.id {
		return
	}
	n.recordPollAnswer(m.From, !m.Reject)
}

func (n *RawNode) recordPollAnswer(from NodeID, granted bool) {
	i := n.peerIndex(from)
	if n.poll.answered[i] {
		return
	}
	n.poll.answered[i] = true
	if granted {
		n.poll.granted++
	} else {
		n.poll.rejected++
	}
	switch {
	case n.poll.granted >= n.quorum:
		n.campaign()
	case n.poll.rejected > len(n.peers)-n.quorum:
		n.becomeFollower(None) // lost; wait for a leader, or the next timeout
	}
}

// campaign starts phase 1 with a ballot above every ballot seen. The
// candidate promises its own ballot like any acceptor, and sends Prepare
// only once that promise is durable: a proposer must remember every ballot
// it used, across crashes, or it may use one twice with two values (the
// ballot of a new campaign is above the promise it restarts with, so a
// durable promise is that memory). It counts its own promise, through the
// same path, once durable, and becomes leader only with it.
func (n *RawNode) campaign() {
	if n.maxRound >= MaxRound {
		n.becomeFollower(None) // no ballot above the highest seen exists: see MaxRound
		return
	}
	b := Ballot{Round: n.maxRound + 1, Node: n.id}
	n.becomeFollower(None)
	n.role = candidate
	n.promise(b)
	n.camp = &campaign{ballot: b, fromSlot: n.log.commit + 1, promised: make([]bool, len(n.peers))}
	for _, p := range n.peers {
		if p == n.id {
			continue
		}
		m := Message{Type: MsgPrepare, From: n.id, To: p, Ballot: b, Slot: n.camp.fromSlot}
		if n.cfg.Knobs.ReuseBallot {
			n.msgs = append(n.msgs, m) // the bug: out before the ballot is durable
		} else {
			n.msgsAfterPersist = append(n.msgsAfterPersist, m)
		}
	}
	n.sendPromise(n.id, b, n.camp.fromSlot)
}

// handlePromise counts a promise and merges the entries it reports; with a
// majority that includes its own durable promise, the candidate becomes
// leader. A promise that reports, for some slot, another value under a
// ballot another promise reported there is a protocol violation (one
// ballot has one value per slot): it is refused whole.
func (n *RawNode) handlePromise(m Message) error {
	c := n.camp
	i := n.peerIndex(m.From)
	if c.promised[i] {
		return nil
	}
	if m.Slot >= c.fromSlot {
		// The acceptor compacted slots this candidate has not committed:
		// their values are chosen, but neither side can report them. This
		// replica is behind; let one that is not lead, and catch up.
		n.becomeFollower(None)
		return nil
	}
	if len(m.Entries) > 0 && m.Entries[0].Slot != c.fromSlot {
		// A promise reports the log from the prepared slot on (or says it
		// compacted past it, above): anything else is malformed, and an
		// entry far ahead would make the merge below allocate to reach it.
		n.violations++
		return fmt.Errorf("%w: Promise from %s reports slots from %d, not from the prepared slot %d", ErrProtocolViolation, m.From, m.Entries[0].Slot, c.fromSlot)
	}
	if err := n.checkReported(m); err != nil {
		return err
	}
	c.promised[i] = true
	c.count++
	for _, e := range m.Entries {
		if e.Slot < c.fromSlot {
			continue
		}
		k := int(e.Slot - c.fromSlot)
		for len(c.best) <= k {
			c.best = append(c.best, Entry{})
		}
		better := c.best[k].Ballot.Less(e.Ballot)
		if n.cfg.Knobs.AdoptLowestBallot {
			better = e.Ballot.Less(c.best[k].Ballot) // the bug
		}
		if c.best[k].Value == nil || better {
			c.best[k] = e
		}
	}
	if c.count >= n.quorum && (c.promised[n.peerIndex(n.id)] || n.cfg.Knobs.ReuseBallot) {
		n.becomeLeader()
	}
	return nil
}

// checkReported checks a promise's entries against those the campaign
// already holds, reported or its own, for one value per (slot, ballot).
func (n *RawNode) checkReported(m Message) error {
	c := n.camp
	if n.cfg.Knobs.AckConflictingValue {
		return nil
	}
	for _, e := range m.Entries {
		if e.Slot < c.fromSlot {
			continue
		}
		if k := int(e.Slot - c.fromSlot); k < len(c.best) && c.best[k].Value != nil && c.best[k].Ballot == e.Ballot && !bytes.Equal(c.best[k].Value, e.Value) {
			return n.violation(m, e.Slot, e.Ballot)
		}
		if own, ok := n.log.entry(e.Slot); ok && own.Ballot == e.Ballot && !bytes.Equal(own.Value, e.Value) {
			return n.violation(m, e.Slot, e.Ballot)
		}
	}
	return nil
}

// violation counts a message that reports another value for slot under
// ballot b than this replica knows there, and describes it.
func (n *RawNode) violation(m Message, slot uint64, b Ballot) error {
	n.violations++
	return fmt.Errorf("%w: %s from %s reports another value for slot %d under ballot %s than this replica holds or was told", ErrProtocolViolation, m.Type, m.From, slot, b)
}

// becomeLeader ends phase 1. For every slot from the candidate's first
// uncommitted one to the last any promise reported, it proposes, under its
// own ballot, the value accepted under the highest ballot (the only value
// that can have been chosen there), or a no-op where nobody reported one.
// Its own log counts as a report: entries it holds beyond the reports were
// never chosen, so re-proposing them is as good as anything.
func (n *RawNode) becomeLeader() {
	c := n.camp
	end := max(c.fromSlot+uint64(len(c.best))-1, n.log.last())
	for s := c.fromSlot; s <= end; s++ {
		e := Entry{Slot: s, Ballot: c.ballot, Value: NoopValue()}
		k := int(s - c.fromSlot)
		own, ok := n.log.entry(s)
		reported := k < len(c.best) && c.best[k].Value != nil
		if reported && ok && n.cfg.Knobs.AdoptLowestBallot && own.Ballot.Less(c.best[k].Ballot) {
			reported = false // the bug: the lower of the two wins
		}
		switch {
		case reported && (!ok || !c.best[k].Ballot.Less(own.Ballot)) || reported && n.cfg.Knobs.AdoptLowestBallot:
			e.Value = c.best[k].Value
		case ok:
			e.Value = own.Value
		}
		n.log.set(e)
	}
	n.acceptedUpTo = end
	n.becomeFollower(n.id)
	n.role = leader
	n.ldr = newLeadership(n, end)
	// Announce the new leadership at once (a heartbeat to whoever gets no
	// Accept), so that followers know whom to follow and forward to.
	n.ldr.reads.needBeat = true
}
