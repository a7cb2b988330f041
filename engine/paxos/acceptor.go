package paxos

import "bytes"

// The acceptor: what every replica does with the messages of proposers,
// whatever its role. Its durable state is the promised ballot and the log
// of accepted entries; every reply that reports that state goes out with
// sendAfterPersist.

// handlePrePrepare answers a poll for an election. It changes nothing: the
// poll only asks whether this acceptor would promise. It says yes when it
// has not heard from a leader within the election timeout, and the poller
// has committed at least as much as it has (so a replica that fell behind
// cannot lead and make everyone wait while it catches up).
func (n *RawNode) handlePrePrepare(m Message) {
	// (A replica that cannot lead, one removed, grants whatever the
	// poller's commit index: it would wait for itself in vain.)
	grant := !n.heardFromLeader() && (m.Commit >= n.log.commit || !n.canCampaign())
	n.send(Message{Type: MsgPrePromise, To: m.From, Ballot: n.promised, Commit: n.log.commit, Reject: !grant, Context: m.Context})
}

// handlePrepare is phase 1b. A ballot below the promise is refused with a
// Nack. A higher one is promised unless this acceptor heard from a live
// leader recently (a new candidate would only disrupt it). The promise
// reports every entry from the candidate's first uncommitted slot on.
func (n *RawNode) handlePrepare(m Message) {
	switch c := m.Ballot.Compare(n.promised); {
	case c < 0 && n.cfg.Knobs.AcceptLowerBallot:
		n.sendPromise(m.From, m.Ballot, m.Slot) // the bug: promise it anyway
		return
	case c < 0:
		n.send(Message{Type: MsgNack, To: m.From, Ballot: n.promised})
		return
	case c > 0:
		if n.heardFromLeader() && m.Context != PrepareTransfer {
			return
		}
		n.promise(m.Ballot)
		n.becomeFollower(None)
	}
	n.sendPromise(m.From, n.promised, m.Slot)
}

// sendPromise sends the phase 1b reply for ballot b (the promised one) to
// to, with the entries from fromSlot on.
func (n *RawNode) sendPromise(to NodeID, b Ballot, fromSlot uint64) {
	from := max(fromSlot, n.log.first())
	n.sendAfterPersist(Message{
		Type:    MsgPromise,
		To:      to,
		Ballot:  b,
		Slot:    n.log.compacted.Slot,
		Commit:  n.log.commit,
		Entries: n.log.slice(from, n.log.last()+1, int(^uint(0)>>1)),
	})
}

// acceptBallot handles the ballot of an Accept or heartbeat: a lower one is
// refused (false); a higher one is promised, and its sender is the leader.
func (n *RawNode) acceptBallot(m Message) bool {
	if m.Ballot.Less(n.promised) {
		if n.cfg.Knobs.AcceptLowerBallot {
			return true // the bug: take it anyway, and tell nobody
		}
		n.send(Message{Type: MsgNack, To: m.From, Ballot: n.promised})
		return false
	}
	if n.promised.Less(m.Ballot) {
		// A leader of a higher ballot went through phase 1 with a majority;
		// accepting under its ballot is promising it.
		n.promise(m.Ballot)
	}
	if n.role != follower || n.lead != m.From {
		n.becomeFollower(m.From)
	}
	n.electionElapsed = 0
	return true
}

// handleAccept is phase 2b. The entries follow slot m.Slot, which this
// acceptor must hold under the same ballot, or know to be committed: then
// every slot from its commit index to the end of the message holds the
// leader's value, which is what Accepted claims. Otherwise it refuses and
// says where it can continue from. (The leader's values are under its
// ballot, except those it knows are chosen, which it sends a lagging
// acceptor under their original ballots, with a commit index that covers
// them.)
//
// Entries this acceptor holds beyond the message stay: they may have been
// chosen, and a later leader may need to learn them from here. (Persisting
// rewrites them after the new entries, since a persisted entry replaces
// everything after it.)
//
// An entry for a slot this acceptor holds under the same ballot but with
// another value is a protocol violation (one ballot has one value per
// slot; only a proposer that used a ballot twice, or a stranger, sends
// that): the whole message is refused, never acknowledged.
func (n *RawNode) handleAccept(m Message) error {
	if err := n.checkOneValuePerBallot(m); err != nil {
		return err
	}
	if !n.acceptBallot(m) {
		return nil
	}
	// Even an Accept this acceptor cannot take (it lacks the slots before)
	// tells how far the leader committed: a replica that lags learns how
	// far (Status.LeaderCommit).
	n.leaderCommit = max(n.leaderCommit, m.Commit)
	if len(n.confs) == 0 {
		// Joining: nothing can be taken before a snapshot says what
		// governs the slots.
		n.sendAfterPersist(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: 0, Reject: true, Context: AcceptedNeedSnapshot})
		return nil
	}
	if prev := m.Slot; prev > n.log.commit {
		if pb, ok := n.log.ballotAt(prev); !ok || pb != m.Ballot {
			n.sendAfterPersist(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: n.acceptedUpTo, Commit: n.hardState().Commit, Reject: true})
			return nil
		}
	}
	for _, e := range m.Entries {
		if e.Slot <= n.log.commit {
			continue // chosen already; the value is the same
		}
		if cur, ok := n.log.entry(e.Slot); ok && cur.Ballot == e.Ballot {
			continue // a duplicate (checkOneValuePerBallot saw the same value)
		}
		if e.Slot > n.log.last()+1 {
			break // cannot happen with well-formed messages: entries are consecutive
		}
		n.log.set(e)
	}
	if k := len(m.Entries); k > 0 {
		n.acceptedUpTo = max(n.acceptedUpTo, m.Entries[k-1].Slot)
	}
	n.advanceCommit(m.Commit)
	n.sendAfterPersist(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: n.acceptedUpTo, Commit: n.hardState().Commit})
	return nil
}

// checkOneValuePerBallot refuses an Accept that offers, for a slot this
// acceptor holds, another value under the ballot it holds there.
func (n *RawNode) checkOneValuePerBallot(m Message) error {
	if n.cfg.Knobs.AckConflictingValue {
		return nil // the bug: keep ours, and acknowledge theirs
	}
	for _, e := range m.Entries {
		if cur, ok := n.log.entry(e.Slot); ok && cur.Ballot == e.Ballot && !bytes.Equal(cur.Value, e.Value) {
			return n.violation(m, e.Slot, e.Ballot)
		}
	}
	return nil
}

// advanceCommit learns the leader's commit index: every slot up to it that
// this acceptor holds under the leader's ballot holds the chosen value.
// (Slots beyond acceptedUpTo may hold an earlier leader's values, which
// need not be chosen: the leader's commit index says nothing about them.)
func (n *RawNode) advanceCommit(leaderCommit uint64) {
	n.leaderCommit = max(n.leaderCommit, leaderCommit)
	upTo := n.acceptedUpTo
	if n.cfg.Knobs.CommitBeyondLeader {
		upTo = n.log.last() // the bug
	}
	if c := min(leaderCommit, upTo); c > n.log.commit {
		prev := n.log.commit
		n.log.commit = c
		n.noteCommitted(prev)
	}
	if n.capCommit > 0 && min(leaderCommit, upTo) >= n.capUntil {
		n.capCommit, n.capUntil = 0, 0 // a leader told it its last slot committed
	}
}

// handleHeartbeat keeps the leader alive here, learns its commit index and
// answers with how far this acceptor holds the leader's entries, and its
// commit index (durable once the answer leaves: see retiring).
func (n *RawNode) handleHeartbeat(m Message) {
	if !n.acceptBallot(m) {
		return
	}
	n.advanceCommit(m.Commit)
	n.sendAfterPersist(Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Slot: n.acceptedUpTo, Commit: n.hardState().Commit, Context: m.Context})
	if len(n.confs) == 0 {
		// Joining: ask for the snapshot now rather than wait for an Accept.
		n.sendAfterPersist(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: 0, Reject: true, Context: AcceptedNeedSnapshot})
	}
}
