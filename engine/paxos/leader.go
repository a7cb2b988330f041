package paxos

// The leader: phase 2, pipelined. It packs proposals into slots, sends
// each follower the entries it lacks (a bounded window ahead of what the
// follower acknowledged), counts acknowledgements, and advances the commit
// index, which rides on the next Accept or heartbeat.

// leadership is the state of a leader.
type leadership struct {
	// progress is what the leader knows of each replica it sends to
	// (itself included): see refresh.
	progress []progress
	// sched is the configuration state if the leader's proposals are
	// chosen; quorums the configurations whose quorums it needs: those of
	// the slots it holds or may still open. simple says sched has one
	// configuration, so that nothing changes until a change is proposed.
	sched   ConfigState
	quorums []Configuration
	simple  bool
	// change is a configuration change waiting for a slot.
	change *ConfChange
	// transfer is the replica leadership is being handed to, or None;
	// transferSent says MsgTimeoutNow went; transferElapsed counts the
	// ticks since the transfer began.
	transfer        NodeID
	transferSent    bool
	transferElapsed int
	// stepDown says the configuration that removed this leader governs
	// every slot after its commit index: it opens no more slots, and hands
	// over and stops once a quorum of that configuration durably knows its
	// commit index (see retiring). lastSlot is the last slot a
	// configuration with it governs, once none after the commit index does.
	stepDown bool
	lastSlot uint64
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
	id NodeID
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
	// learner says the replica votes in none of the configurations the
	// leader needs quorums of (see wantsSend).
	learner bool
	// needSnap says the replica knows no configuration (it is joining):
	// it needs a snapshot whatever the leader compacted.
	needSnap bool
	// commit is the highest commit index the acceptor reported, durable
	// there (see retiring).
	commit uint64
	// retireAt, if not zero, says the replica is retiring: no
	// configuration that governs a slot after the commit index has it,
	// and retireAt is the last slot one that had it governed (see
	// retiring).
	retireAt uint64
}

func newLeadership(n *RawNode, recoveryEnd uint64) *leadership {
	l := &leadership{
		recoveryEnd: recoveryEnd,
		commitSent:  n.log.commit,
		transfer:    None,
	}
	l.refresh(n)
	// Its own commit index is durable here: the Ready that persisted its
	// promise of this ballot (synced) carried it, and a candidate's commit
	// index does not move. (Later ones it reports itself: see Ready.)
	if i := l.idx(n.id); i >= 0 {
		l.progress[i].commit = n.log.commit
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
	if l.transfer != None || l.stepDown {
		return // handing over: proposals wait, and go to the next leader
	}
	if l.change != nil && n.log.last()-n.log.commit < uint64(n.cfg.MaxInflightSlots) {
		slot := n.log.last() + 1
		next, err := l.sched.Latest().Apply(*l.change, slot)
		l.change = nil
		if err == nil { // checked when proposed, against the same configuration
			value := EncodeConfigValue(next)
			n.log.set(Entry{Slot: slot, Ballot: n.promised, Value: value})
			l.uncommittedBytes += len(value)
			n.acceptedUpTo = slot
			l.refresh(n)
		}
	}
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
	l.pad(n)
}

// pad fills, with no-ops, the slots up to where a chosen or proposed
// configuration starts to govern, when no proposals do: the change takes
// effect, and its window closes, without waiting for traffic.
func (l *leadership) pad(n *RawNode) {
	for l.padDue(n) {
		n.log.set(Entry{Slot: n.log.last() + 1, Ballot: n.promised, Value: NoopValue()})
		l.uncommittedBytes++
		n.acceptedUpTo = n.log.last()
	}
}

// padDue reports whether pad would fill the next slot: no proposal waits,
// a configuration starts to govern after it, and the window has room.
func (l *leadership) padDue(n *RawNode) bool {
	return !l.simple && len(l.pending) == 0 && n.log.last()+1 < l.sched[len(l.sched)-1].From && n.log.last()-n.log.commit < n.window()
}

// hasWork reports whether flush would do anything.
func (l *leadership) hasWork(n *RawNode) bool {
	if l.stepDown {
		if l.handsOver(n) {
			return true
		}
	} else {
		if l.transfer == None && (len(l.pending) > 0 || l.change != nil) && n.log.last()-n.log.commit < uint64(n.cfg.MaxInflightSlots) {
			return true
		}
		if l.padDue(n) {
			return true
		}
	}
	if l.handoverDue(n) {
		return true
	}
	if l.commitSent < n.log.commit || l.reads.needBeat {
		return true
	}
	for i := range l.progress {
		if l.progress[i].id != n.id && (l.wantsSend(n, i) || l.needsSnapshot(n, i)) {
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
	for i := range l.progress {
		p := l.progress[i].id
		if p == n.id {
			continue
		}
		sent := false
		if l.needsSnapshot(n, i) {
			l.progress[i].snapshotting = true
			l.progress[i].needSnap = false
			n.snapshotsToSend = append(n.snapshotsToSend, p)
		}
		if l.wantsSend(n, i) {
			l.sendAccept(n, i)
			sent = true
		}
		if l.progress[i].learner {
			// A learner counts in no quorum: it confirms no read round, and
			// hears the commit index at the heartbeat interval only.
			if l.reads.needBeat && !sent {
				l.sendHeartbeat(n, i)
			}
			continue
		}
		if confirmRound || (beat && !sent) {
			l.sendHeartbeat(n, i)
		}
	}
	l.commitSent = n.log.commit
	l.reads.needBeat, l.reads.open = false, false
	l.handover(n)
}

// wantsSend reports whether the leader sends peer i an Accept now. A
// learner gets one only once a window's worth of slots waits for it, or at
// the heartbeat interval: it counts in no quorum, so nobody waits for it,
// and fewer, bigger messages cost it (one write each) and the leader less
// than one per slot, on the machine they may share with the voters.
func (l *leadership) wantsSend(n *RawNode, i int) bool {
	if !l.canSend(n, i) {
		return false
	}
	pr := &l.progress[i]
	return !pr.learner || l.reads.needBeat || n.log.last()+1-pr.next >= uint64(n.cfg.MaxInflightSlots)
}

// sendLimit is the last slot the leader may send an Accept for: its last,
// and no more than the window past its commit index, so that it knows the
// configuration of every slot it proposes (see doc.go).
func (l *leadership) sendLimit(n *RawNode) uint64 {
	if n.cfg.Knobs.ImmediateConfig {
		return n.log.last() // the bug: propose past what the leader knows governs
	}
	return min(n.log.last(), n.log.commit+n.window())
}

// limitFor is sendLimit for peer i: a retiring replica gets no slot after
// the last one it governed.
func (l *leadership) limitFor(n *RawNode, i int) uint64 {
	if r := l.progress[i].retireAt; r > 0 {
		return min(l.sendLimit(n), r)
	}
	return l.sendLimit(n)
}

// canSend reports whether peer i lacks entries that the leader holds and
// the window lets them go.
func (l *leadership) canSend(n *RawNode, i int) bool {
	pr := &l.progress[i]
	return !pr.snapshotting && !pr.needSnap && pr.next > n.log.compacted.Slot &&
		pr.next <= l.limitFor(n, i) && pr.next-pr.match-1 < uint64(n.cfg.MaxInflightSlots)
}

// needsSnapshot reports whether peer i needs slots the leader compacted
// and no snapshot is on its way to it yet. A retiring replica gets one
// only once it may learn it was removed (a snapshot tells it the commit
// index too: see retiring).
func (l *leadership) needsSnapshot(n *RawNode, i int) bool {
	pr := &l.progress[i]
	if pr.retireAt > 0 && l.durableCommit(n) < pr.retireAt {
		return false
	}
	return !pr.snapshotting && (pr.next <= n.log.compacted.Slot || pr.needSnap)
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
	hi := min(l.limitFor(n, i), pr.match+uint64(n.cfg.MaxInflightSlots)) + 1
	ents := n.log.slice(pr.next, hi, n.cfg.MaxMsgBytes)
	n.send(Message{Type: MsgAccept, To: pr.id, Ballot: n.promised, Slot: pr.next - 1, Entries: ents, Commit: l.commitFor(n, i)})
	pr.next += uint64(len(ents))
}

func (l *leadership) sendHeartbeat(n *RawNode, i int) {
	n.send(Message{Type: MsgHeartbeat, To: l.progress[i].id, Ballot: n.promised, Commit: l.commitFor(n, i), Context: l.reads.round})
}

// handleAccepted counts an acceptor's acknowledgement, or rewinds what to
// send it when it could not take the entries.
func (n *RawNode) handleAccepted(m Message) {
	l := n.ldr
	i := l.idx(m.From)
	if i < 0 {
		return // not a replica this leader sends to (any more)
	}
	pr := &l.progress[i]
	pr.active, pr.heard = true, true
	pr.commit = max(pr.commit, m.Commit)
	if m.Reject && m.Context == AcceptedNeedSnapshot && m.Slot == 0 {
		pr.needSnap, pr.match, pr.next = true, 0, 1
		return
	}
	if m.Reject {
		// m.Slot is where the acceptor's run of our values ends: send from
		// there. (A stale rejection can only make us send again.)
		// (m.Slot is clamped to the log: a larger one, from a confused or
		// hostile acceptor, must not wrap next past 2^64.) It may be news,
		// and commit slots: an acceptor that installed a snapshot reports
		// it so, and may have nothing more to acknowledge.
		l.matched(n, i, min(m.Slot, n.log.last()))
		pr.next = pr.match + 1
		return
	}
	l.matched(n, i, m.Slot)
}

// maybeCommit advances the commit index to the highest slot a majority of
// acceptors hold the leader's values up to.
func (n *RawNode) maybeCommit() {
	l := n.ldr
	c := l.committable(n)
	if c <= n.log.commit {
		return
	}
	for s := n.log.commit + 1; s <= c; s++ {
		e, _ := n.log.entry(s)
		l.uncommittedBytes -= len(e.Value)
	}
	prev := n.log.commit
	n.log.commit = c
	if !l.simple {
		n.noteCommitted(prev)
		l.refresh(n)
	}
	l.reads.release(n)
	if !l.simple || len(n.confs) > 1 || n.confs.Latest().IsRemoved(n.id) {
		l.stepDown = n.removed() // acted on at the next Ready
	}
}

// committable returns the highest slot up to which every slot is held by
// a quorum of the configuration that governs it: slot by slot through the
// leader's schedule, a range governed by one configuration at a time.
func (l *leadership) committable(n *RawNode) uint64 {
	c, last := n.log.commit, n.log.last()
	for c < last {
		conf, end := l.sched.At(c+1), last
		for _, sc := range l.sched {
			if sc.From > c+1 {
				end = min(end, sc.From-1)
				break
			}
		}
		quorum := conf.quorum()
		if n.cfg.Knobs.CommitOnMinority {
			quorum = 1
		}
		m := min(l.quorumIn(conf, quorum), end)
		if m <= c {
			break
		}
		c = m
		if m < end {
			break
		}
	}
	return c
}

// handleHeartbeatResp notes the acceptor is alive, how far it holds our
// values, and which read round it confirmed.
func (n *RawNode) handleHeartbeatResp(m Message) {
	l := n.ldr
	i := l.idx(m.From)
	if i < 0 {
		return
	}
	pr := &l.progress[i]
	pr.active, pr.heard = true, true
	pr.commit = max(pr.commit, m.Commit)
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
		for i := range l.progress {
			if l.progress[i].id == n.id {
				l.progress[i].active = true
			}
		}
		for _, c := range l.quorums {
			active := 0
			for i := range l.progress {
				if l.progress[i].active && c.IsVoter(l.progress[i].id) {
					active++
				}
			}
			if active < c.quorum() {
				n.becomeFollower(None)
				return
			}
		}
		for i := range l.progress {
			l.progress[i].active = false
		}
	}
	if l.transfer != None {
		if l.transferElapsed++; l.transferElapsed >= 2*n.cfg.ElectionTicks {
			l.transfer = None // the target did not take over: carry on
		}
	}
	l.heartbeatElapsed++
	if l.heartbeatElapsed < n.cfg.HeartbeatTicks {
		return
	}
	l.heartbeatElapsed = 0
	l.pruneRetired()
	for i := range l.progress {
		if l.progress[i].id == n.id {
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
