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
	id uint64
	// configs are the configurations a quorum of each of which must say
	// yes: those an election would need (electionConfigs).
	configs  []Configuration
	answered map[NodeID]bool // the answer of each replica that answered
}

// campaign is the state of a candidate in phase 1.
type campaign struct {
	ballot   Ballot
	fromSlot uint64 // the first slot the candidate is not sure is committed
	// transfer is the Context of its Prepares: PrepareTransfer when the
	// leader handed its leadership over.
	transfer uint64
	// promised are the replicas whose promise was counted (the candidate's
	// own once durable); asked those sent a Prepare.
	promised map[NodeID]bool
	asked    map[NodeID]bool
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
	n.poll = &poll{id: id, answered: map[NodeID]bool{},
		configs: n.electionConfigs()}
	n.recordPollAnswer(n.id, true)
	if n.role != preCandidate {
		return // a single replica: already a candidate
	}
	sent := map[NodeID]bool{n.id: true}
	for _, c := range n.poll.configs {
		for _, p := range c.Voters() {
			if !sent[p] {
				sent[p] = true
				n.send(Message{Type: MsgPrePrepare, To: p, Ballot: Ballot{Round: n.maxRound + 1, Node: n.id}, Commit: n.log.commit, Context: id})
			}
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
	p := n.poll
	if _, ok := p.answered[from]; ok {
		return
	}
	p.answered[from] = granted
	won := true
	for _, c := range p.configs {
		yes, no := 0, 0
		voters := c.Voters()
		for _, v := range voters {
			if g, ok := p.answered[v]; ok && g {
				yes++
			} else if ok {
				no++
			}
		}
		if no > len(voters)-c.quorum() {
			n.becomeFollower(None) // lost; wait for a leader, or the next timeout
			return
		}
		won = won && yes >= c.quorum()
	}
	if won {
		n.campaign()
	}
}

// campaign starts phase 1 with a ballot above every ballot seen. The
// candidate promises its own ballot like any acceptor, and sends Prepare
// only once that promise is durable: a proposer must remember every ballot
// it used, across crashes, or it may use one twice with two values (the
// ballot of a new campaign is above the promise it restarts with, so a
// durable promise is that memory). It counts its own promise, through the
// same path, once durable, and becomes leader only with it.
func (n *RawNode) campaign() { n.campaignWith(0) }

// campaignWith is campaign, its Prepares carrying context (see
// PrepareTransfer).
func (n *RawNode) campaignWith(context uint64) {
	if n.maxRound >= MaxRound {
		n.becomeFollower(None) // no ballot above the highest seen exists: see MaxRound
		return
	}
	b := Ballot{Round: n.maxRound + 1, Node: n.id}
	n.elections++
	n.becomeFollower(None)
	n.role = candidate
	n.promise(b)
	n.camp = &campaign{ballot: b, fromSlot: n.log.commit + 1, transfer: context,
		promised: map[NodeID]bool{}, asked: map[NodeID]bool{n.id: true}}
	n.askRequired(n.requiredConfigs())
	n.sendPromise(n.id, b, n.camp.fromSlot)
}

// askRequired sends Prepare to every voter of confs, the configurations
// the campaign needs a quorum of (requiredConfigs), that it has not asked
// yet.
func (n *RawNode) askRequired(confs []Configuration) {
	c := n.camp
	for _, conf := range confs {
		for _, p := range conf.Voters() {
			if c.asked[p] {
				continue
			}
			c.asked[p] = true
			m := Message{Type: MsgPrepare, From: n.id, To: p, Ballot: c.ballot, Slot: c.fromSlot, Context: c.transfer}
			if n.cfg.Knobs.ReuseBallot {
				n.msgs = append(n.msgs, m) // the bug: out before the ballot is durable
			} else {
				n.msgsAfterPersist = append(n.msgsAfterPersist, m)
			}
		}
	}
}

// requiredConfigs returns the configurations phase 1 needs a quorum of
// each of: every one that governs a slot from the first the candidate has
// not committed to the window past the last slot anyone reported, where
// the configuration of a slot is computed from the values the candidate
// will propose (see doc.go). It grows as promises report more.
func (n *RawNode) requiredConfigs() []Configuration {
	c := n.camp
	end := max(c.fromSlot+uint64(len(c.best)), n.log.last()+1) - 1
	cs := n.confs
	for s := c.fromSlot; s <= end; s++ {
		if v := n.recoveredValue(s); IsConfigValue(v) {
			cs = cs.applyAt(s, v, n.window())
		}
	}
	if n.cfg.Knobs.Phase1FirstConfig {
		return n.confs.governing(c.fromSlot, c.fromSlot+n.window()-1) // the bug
	}
	return cs.governing(c.fromSlot, end+n.window())
}

// recoveredValue is the value the candidate will propose for slot s
// (from its first uncommitted slot on): the value reported under the
// highest ballot, its own entry, or a no-op.
func (n *RawNode) recoveredValue(s uint64) []byte {
	c := n.camp
	k := int(s - c.fromSlot)
	own, ok := n.log.entry(s)
	reported := k < len(c.best) && c.best[k].Value != nil
	if reported && ok && n.cfg.Knobs.AdoptLowestBallot && own.Ballot.Less(c.best[k].Ballot) {
		reported = false // the bug: the lower of the two wins
	}
	switch {
	case reported && (!ok || !c.best[k].Ballot.Less(own.Ballot)) || reported && n.cfg.Knobs.AdoptLowestBallot:
		return c.best[k].Value
	case ok:
		return own.Value
	}
	return NoopValue()
}

// hasQuorums reports whether the campaign has its own durable promise and
// a quorum of promises from every configuration of confs, those it needs
// (requiredConfigs).
func (n *RawNode) hasQuorums(confs []Configuration) bool {
	c := n.camp
	if !c.promised[n.id] && !n.cfg.Knobs.ReuseBallot {
		return false
	}
	for _, conf := range confs {
		k := 0
		for _, v := range conf.Voters() {
			if c.promised[v] {
				k++
			}
		}
		if k < conf.quorum() {
			return false
		}
	}
	return true
}

// handlePromise counts a promise and merges the entries it reports; with a
// majority that includes its own durable promise, the candidate becomes
// leader. A promise that reports, for some slot, another value under a
// ballot another promise reported there is a protocol violation (one
// ballot has one value per slot): it is refused whole.
func (n *RawNode) handlePromise(m Message) error {
	c := n.camp
	if c.promised[m.From] {
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
	c.promised[m.From] = true
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
	// Computed once: it scans the slots the campaign recovers.
	confs := n.requiredConfigs()
	n.askRequired(confs)
	if n.hasQuorums(confs) {
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
	end := max(c.fromSlot+uint64(len(c.best)), n.log.last()+1) - 1
	for s := c.fromSlot; s <= end; s++ {
		n.log.set(Entry{Slot: s, Ballot: c.ballot, Value: n.recoveredValue(s)})
	}
	n.acceptedUpTo = end
	n.becomeFollower(n.id)
	n.role = leader
	n.ldr = newLeadership(n, end)
	// Proposals kept from an earlier leadership of this replica (see
	// stash) are this leadership's to propose.
	n.ldr.pending, n.ldr.pendingBytes = n.stash, n.stashBytes
	n.stash, n.stashBytes = nil, 0
	// Announce the new leadership at once (a heartbeat to whoever gets no
	// Accept), so that followers know whom to follow and forward to.
	n.ldr.reads.needBeat = true
}
