package paxos

// Becoming leader: a poll (pre-vote), then phase 1 (Prepare/Promise).

// poll is the state of a pre-candidate: who answered its MsgPrePrepare.
type poll struct {
	id       uint64 // Context of this poll's messages, to ignore older polls' answers
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
	id := uint64(1)
	if n.poll != nil {
		id = n.poll.id + 1
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
// candidate promises its own ballot like any acceptor, and counts its own
// promise only once that promise is durable (it sends it to itself after
// persisting).
func (n *RawNode) campaign() {
	b := Ballot{Round: n.maxRound + 1, Node: n.id}
	n.becomeFollower(None)
	n.role = candidate
	n.promise(b)
	n.camp = &campaign{ballot: b, fromSlot: n.log.commit + 1, promised: make([]bool, len(n.peers))}
	for _, p := range n.peers {
		if p != n.id {
			n.send(Message{Type: MsgPrepare, To: p, Ballot: b, Slot: n.camp.fromSlot})
		}
	}
	n.sendPromise(n.id, b, n.camp.fromSlot)
}

// handlePromise counts a promise and merges the entries it reports; with a
// majority, the candidate becomes leader.
func (n *RawNode) handlePromise(m Message) {
	c := n.camp
	i := n.peerIndex(m.From)
	if c.promised[i] {
		return
	}
	if m.Slot >= c.fromSlot {
		// The acceptor compacted slots this candidate has not committed:
		// their values are chosen, but neither side can report them. This
		// replica is behind; let one that is not lead, and catch up.
		n.becomeFollower(None)
		return
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
		if c.best[k].Value == nil || c.best[k].Ballot.Less(e.Ballot) {
			c.best[k] = e
		}
	}
	if c.count >= n.quorum {
		n.becomeLeader()
	}
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
		switch {
		case k < len(c.best) && c.best[k].Value != nil && (!ok || !c.best[k].Ballot.Less(own.Ballot)):
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
