package paxos

// The leader: phase 2, pipelined. It packs proposals into slots, sends
// each follower the entries it lacks (a bounded window ahead of what the
// follower acknowledged), counts acknowledgements, and advances the commit
// index, which rides on the next Accept or heartbeat.

// leadership is the state of a leader.
type leadership struct {
	// progress is, by peer index, what the leader knows of each acceptor
	// (itself included).
	progress []progress
	// recoveryEnd is the last slot phase 1 re-proposed. Until the commit
	// index reaches it, the leader's commit index may be behind what
	// earlier leaders committed, so it serves no reads.
	recoveryEnd uint64
	// pending holds proposals waiting for a slot, oldest first.
	pending      [][]byte
	pendingBytes int
	// uncommittedBytes counts the values of slots above the commit index.
	uncommittedBytes int
	// commitSent is the commit index last sent to all followers.
	commitSent uint64
	// heartbeatElapsed counts ticks since the last heartbeat.
	heartbeatElapsed int
	reads            readQueue
}

// progress is the leader's view of one acceptor.
type progress struct {
	// match: every slot up to match holds the leader's value there.
	// next: the next slot to send. Invariant: match < next.
	match, next uint64
	// active says the acceptor answered since the last quorum check;
	// heard that it answered at all under this leadership.
	active, heard bool
	// matchAtLastBeat is match at the previous heartbeat: no progress
	// over a whole heartbeat interval means messages were lost.
	matchAtLastBeat uint64
	// readAck is the highest read round the acceptor confirmed.
	readAck uint64
	// snapshotting says the caller is sending the acceptor a snapshot
	// (it needs slots the leader compacted): no entries go to it
	// meanwhile.
	snapshotting bool
	// snapshotSent says the caller reported the snapshot installed: the
	// acceptor's report is awaited for one heartbeat.
	snapshotSent bool
}

func newLeadership(n *RawNode, recoveryEnd uint64) *leadership {
	l := &leadership{
		progress:    make([]progress, len(n.peers)),
		recoveryEnd: recoveryEnd,
		commitSent:  n.log.commit,
	}
	for i := range l.progress {
		l.progress[i] = progress{next: n.log.commit + 1, active: true}
	}
	for s := n.log.commit + 1; s <= n.log.last(); s++ {
		e, _ := n.log.entry(s)
		l.uncommittedBytes += len(e.Value)
	}
	return l
}

// propose queues value for a slot.
func (l *leadership) propose(n *RawNode, value []byte) error {
	if l.pendingBytes+l.uncommittedBytes+len(value) > n.cfg.MaxUncommittedBytes {
		return ErrBusy
	}
	l.pending = append(l.pending, value)
	l.pendingBytes += len(value)
	return nil
}

// openSlots moves pending proposals into new slots while the window has
// room. Proposals waiting meanwhile pile up into bigger batches: that is
// what the small window is for.
func (l *leadership) openSlots(n *RawNode) {
	for len(l.pending) > 0 && n.log.last()-n.log.commit < uint64(n.cfg.MaxInflightSlots) {
		k, size := 1, len(l.pending[0])
		for k < len(l.pending) && size+len(l.pending[k]) <= n.cfg.MaxBatchBytes {
			size += len(l.pending[k])
			k++
		}
		value := l.pending[0]
		if k > 1 {
			value = make([]byte, 0, size)
			for _, v := range l.pending[:k] {
				value = AppendBatch(value, v)
			}
		}
		clear(l.pending[:k])
		l.pending = l.pending[k:]
		l.pendingBytes -= size
		n.log.set(Entry{Slot: n.log.last() + 1, Ballot: n.promised, Value: value})
		l.uncommittedBytes += len(value)
		n.acceptedUpTo = n.log.last()
	}
	if len(l.pending) == 0 {
		l.pending = nil // let the backing array go
	}
}

// hasWork reports whether flush would do anything.
func (l *leadership) hasWork(n *RawNode) bool {
	if len(l.pending) > 0 && n.log.last()-n.log.commit < uint64(n.cfg.MaxInflightSlots) {
		return true
	}
	if l.commitSent < n.log.commit || l.reads.needBeat {
		return true
	}
	for i, p := range n.peers {
		if p != n.id && (l.canSend(n, i) || l.needsSnapshot(n, i)) {
			return true
		}
	}
	return false
}

// flush does, once per Ready, everything that sends: open slots for
// pending proposals, send each follower one Accept with what it lacks,
// and tell the others the commit index if it moved.
func (l *leadership) flush(n *RawNode) {
	l.openSlots(n)
	// A read round must reach everyone in a heartbeat, which carries the
	// round (Accepts do not); otherwise a heartbeat goes only where no
	// Accept carries the commit index.
	confirmRound := l.reads.open
	beat := l.reads.needBeat || l.commitSent < n.log.commit
	for i, p := range n.peers {
		if p == n.id {
			continue
		}
		sent := false
		if l.needsSnapshot(n, i) {
			l.progress[i].snapshotting = true
			n.snapshotsToSend = append(n.snapshotsToSend, p)
		}
		if l.canSend(n, i) {
			l.sendAccept(n, i)
			sent = true
		}
		if confirmRound || (beat && !sent) {
			l.sendHeartbeat(n, i)
		}
	}
	l.commitSent = n.log.commit
	l.reads.needBeat, l.reads.open = false, false
}

// canSend reports whether peer i lacks entries that the leader holds and
// the window lets them go.
func (l *leadership) canSend(n *RawNode, i int) bool {
	pr := &l.progress[i]
	return !pr.snapshotting && pr.next > n.log.compacted.Slot &&
		pr.next <= n.log.last() && pr.next-pr.match-1 < uint64(n.cfg.MaxInflightSlots)
}

// needsSnapshot reports whether peer i needs slots the leader compacted
// and no snapshot is on its way to it yet.
func (l *leadership) needsSnapshot(n *RawNode, i int) bool {
	pr := &l.progress[i]
	return !pr.snapshotting && pr.next <= n.log.compacted.Slot
}

// matched notes that peer i holds the leader's values up to slot.
func (l *leadership) matched(n *RawNode, i int, slot uint64) {
	pr := &l.progress[i]
	if slot > pr.match {
		pr.match = min(slot, n.log.last())
		pr.next = max(pr.next, pr.match+1)
		n.maybeCommit()
	}
	if pr.match >= n.log.compacted.Slot {
		pr.snapshotting, pr.snapshotSent = false, false // it caught up, by snapshot or otherwise
	}
}

func (l *leadership) sendAccept(n *RawNode, i int) {
	pr := &l.progress[i]
	hi := min(n.log.last(), pr.match+uint64(n.cfg.MaxInflightSlots)) + 1
	ents := n.log.slice(pr.next, hi, n.cfg.MaxMsgBytes)
	n.send(Message{Type: MsgAccept, To: n.peers[i], Ballot: n.promised, Slot: pr.next - 1, Entries: ents, Commit: n.log.commit})
	pr.next += uint64(len(ents))
}

func (l *leadership) sendHeartbeat(n *RawNode, i int) {
	n.send(Message{Type: MsgHeartbeat, To: n.peers[i], Ballot: n.promised, Commit: n.log.commit, Context: l.reads.round})
}

// handleAccepted counts an acceptor's acknowledgement, or rewinds what to
// send it when it could not take the entries.
func (n *RawNode) handleAccepted(m Message) {
	l := n.ldr
	i := n.peerIndex(m.From)
	pr := &l.progress[i]
	pr.active, pr.heard = true, true
	if m.Reject {
		// m.Slot is where the acceptor's run of our values ends: send from
		// there. (A stale rejection can only make us send again.)
		// (m.Slot is clamped to the log: a larger one, from a confused or
		// hostile acceptor, must not wrap next past 2^64.)
		hint := min(m.Slot, n.log.last())
		pr.match = max(pr.match, hint)
		pr.next = pr.match + 1
		if pr.match >= n.log.compacted.Slot {
			pr.snapshotting, pr.snapshotSent = false, false
		}
		return
	}
	l.matched(n, i, m.Slot)
}

// maybeCommit advances the commit index to the highest slot a majority of
// acceptors hold the leader's values up to.
func (n *RawNode) maybeCommit() {
	l := n.ldr
	quorum := n.quorum
	if n.cfg.Knobs.CommitOnMinority {
		quorum = 1
	}
	c := quorumMatch(l.progress, quorum)
	if c <= n.log.commit {
		return
	}
	for s := n.log.commit + 1; s <= c; s++ {
		e, _ := n.log.entry(s)
		l.uncommittedBytes -= len(e.Value)
	}
	n.log.commit = c
	l.reads.release(n)
}

// quorumMatch returns the highest slot that at least quorum acceptors
// have matched.
func quorumMatch(prs []progress, quorum int) uint64 {
	var buf [16]uint64
	m := buf[:0]
	for _, pr := range prs {
		m = append(m, pr.match)
	}
	// Sort descending; clusters are small, insertion sort is enough.
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && m[j] > m[j-1]; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
	return m[quorum-1]
}

// handleHeartbeatResp notes the acceptor is alive, how far it holds our
// values, and which read round it confirmed.
func (n *RawNode) handleHeartbeatResp(m Message) {
	l := n.ldr
	i := n.peerIndex(m.From)
	pr := &l.progress[i]
	pr.active, pr.heard = true, true
	l.matched(n, i, m.Slot)
	if m.Context > pr.readAck {
		pr.readAck = m.Context
		l.reads.confirm(n)
	}
}

// tickLeader sends heartbeats, resends what seems lost, and steps down if
// a majority has not answered for an election timeout: a leader cut off
// from the majority must stop taking proposals it cannot commit.
func (n *RawNode) tickLeader() {
	l := n.ldr
	n.electionElapsed++
	if n.electionElapsed >= n.cfg.ElectionTicks {
		n.electionElapsed = 0
		active := 0
		for i := range l.progress {
			if l.progress[i].active || n.peers[i] == n.id {
				active++
			}
			l.progress[i].active = false
		}
		if active < n.quorum {
			n.becomeFollower(None)
			return
		}
	}
	l.heartbeatElapsed++
	if l.heartbeatElapsed < n.cfg.HeartbeatTicks {
		return
	}
	l.heartbeatElapsed = 0
	for i, p := range n.peers {
		if p == n.id {
			continue
		}
		pr := &l.progress[i]
		if pr.heard && pr.match < n.log.last() && pr.match == pr.matchAtLastBeat {
			// No progress over a whole heartbeat interval: what was sent
			// beyond match was lost (or is very late). Send it again. (Until
			// an acceptor answers, match says nothing about it: its answer
			// to a heartbeat will.)
			pr.next = pr.match + 1
		}
		pr.matchAtLastBeat = pr.match
		if pr.snapshotSent {
			// Installed, said the caller, but the acceptor has not said
			// so for a heartbeat: ask for the snapshot again.
			pr.snapshotting, pr.snapshotSent = false, false
		}
	}
	l.reads.needBeat = true
}
