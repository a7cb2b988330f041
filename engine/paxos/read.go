package paxos

// Linearizable reads by read index. A read may be served at a replica once
// its state machine has applied the leader's commit index as of the time
// the read arrived, provided the leader was still the leader at that time:
// it confirms that by a round of heartbeats answered by a majority under its
// ballot (an acceptor that answers has not promised any higher ballot, so
// no later leader can have committed anything yet). Reads that arrive
// together share a round.
//
// A new leader's commit index may lag what earlier leaders committed until
// it has committed everything phase 1 re-proposed (recoveryEnd); reads wait
// until then.

// readQueue is the leader's reads in progress.
type readQueue struct {
	// round is the newest confirmation round; open says it has not gone
	// out in heartbeats yet, so new reads can join it.
	round uint64
	open  bool
	// needBeat says heartbeats must go out at the next flush: for an open
	// round, or because the heartbeat interval passed.
	needBeat bool
	// waiting reads wait for the commit index to reach recoveryEnd;
	// pending reads wait for their round to be confirmed.
	waiting []readRequest
	pending []readRequest
}

type readRequest struct {
	from    NodeID
	context uint64
	index   uint64
	round   uint64
}

// request registers a read from replica from (possibly this one).
func (q *readQueue) request(n *RawNode, from NodeID, context uint64) {
	r := readRequest{from: from, context: context}
	if n.log.commit < n.ldr.recoveryEnd && !n.cfg.Knobs.ReadBeforeRecovery {
		q.waiting = append(q.waiting, r)
		return
	}
	q.start(n, r)
}

func (q *readQueue) start(n *RawNode, r readRequest) {
	if !q.open {
		q.round++
		q.open = true
		q.needBeat = true
		n.ldr.progress[n.ldr.idx(n.id)].readAck = q.round
	}
	r.index, r.round = n.log.commit, q.round
	q.pending = append(q.pending, r)
	q.confirm(n) // a single replica confirms alone
}

// release starts the reads that waited for the commit index to reach
// recoveryEnd.
func (q *readQueue) release(n *RawNode) {
	if len(q.waiting) == 0 || n.log.commit < n.ldr.recoveryEnd {
		return
	}
	waiting := q.waiting
	q.waiting = nil
	for _, r := range waiting {
		q.start(n, r)
	}
}

// confirm completes the reads whose round a majority has confirmed.
func (q *readQueue) confirm(n *RawNode) {
	if len(q.pending) == 0 {
		return
	}
	// A round is confirmed by a quorum of every configuration the leader
	// needs: any leader after it needs one of each of them too.
	confirmed := uint64(1<<64 - 1)
	for _, c := range n.ldr.quorums {
		quorum := c.quorum()
		if n.cfg.Knobs.ReadWithoutQuorum {
			quorum = 1 // the bug: the leader's own word is enough
		}
		confirmed = min(confirmed, n.ldr.readQuorumIn(c, quorum))
	}
	k := 0
	for k < len(q.pending) && q.pending[k].round <= confirmed {
		r := q.pending[k]
		if r.from == n.id {
			n.readStates = append(n.readStates, ReadState{Context: r.context, Index: r.index})
		} else {
			n.send(Message{Type: MsgReadIndexResp, To: r.from, Ballot: n.promised, Context: r.context, Slot: r.index})
		}
		k++
	}
	q.pending = q.pending[k:]
}

// followerReads are a follower's reads waiting for its leader's read
// index. One request is in flight at a time; reads that arrive meanwhile
// wait and go together in the next one, once the first is answered. (They
// cannot share the request in flight: its confirmation may predate them.)
// So a follower draws one request id per round trip, not per read, and the
// reads it holds are bounded by maxFollowerReads, not by a count of
// requests that may never be answered.
type followerReads struct {
	// inflight is the request sent, if any: its id, the callers'
	// contexts, and the ticks it has waited. It went to n.lead: a change of
	// leader clears both fields (becomeFollower).
	inflight *readBatch
	// waiting are the contexts of reads that arrived since.
	waiting []uint64
}

type readBatch struct {
	id       uint64
	contexts []uint64
	age      int
}

// add registers a read for context with the leader n follows.
func (f *followerReads) add(n *RawNode, context uint64) error {
	held := len(f.waiting)
	if f.inflight != nil {
		held += len(f.inflight.contexts)
	}
	if held >= maxFollowerReads {
		return ErrBusy
	}
	f.waiting = append(f.waiting, context)
	if f.inflight == nil {
		return f.send(n)
	}
	return nil
}

// send sends the waiting reads to the leader as one request.
func (f *followerReads) send(n *RawNode) error {
	id, ok := n.nextID()
	if !ok {
		f.waiting = nil
		return ErrIDsExhausted
	}
	f.inflight = &readBatch{id: id, contexts: f.waiting}
	f.waiting = nil
	n.send(Message{Type: MsgReadIndex, To: n.lead, Context: id})
	return nil
}

// tick resends a request unanswered for an election timeout (it or its
// answer was lost) with the reads that waited behind it, under a new id:
// a new request, confirmed after all of them arrived.
func (f *followerReads) tick(n *RawNode) {
	if f.inflight == nil {
		return
	}
	if f.inflight.age++; f.inflight.age < n.cfg.ElectionTicks {
		return
	}
	f.waiting = append(f.inflight.contexts, f.waiting...)
	f.inflight = nil
	if n.lead != None {
		_ = f.send(n) // on ErrIDsExhausted the reads are dropped; callers retry
	}
}

// handleReadIndexResp takes the leader's answer to the request in flight:
// only from the leader this replica follows, under its ballot, for that
// request. Anything else is a late answer (to an earlier request or life,
// or from a deposed leader) or a forgery, and serving a read on it could
// return stale data.
func (n *RawNode) handleReadIndexResp(m Message) {
	f := &n.freads
	b := f.inflight
	if b == nil || m.From != n.lead || m.Ballot != n.promised || n.role != follower || b.id != m.Context {
		return
	}
	f.inflight = nil
	if !m.Reject {
		for _, ctx := range b.contexts {
			n.readStates = append(n.readStates, ReadState{Context: ctx, Index: m.Slot})
		}
	}
	if len(f.waiting) > 0 {
		_ = f.send(n) // on ErrIDsExhausted the reads are dropped; callers retry
	}
}

// readQuorumIn returns the highest read round a quorum of c's voters
// confirmed.
func (l *leadership) readQuorumIn(c Configuration, quorum int) uint64 {
	var buf [16]uint64
	m := buf[:0]
	for i := range l.progress {
		if c.IsVoter(l.progress[i].id) {
			m = append(m, l.progress[i].readAck)
		}
	}
	if len(m) < quorum {
		return 0
	}
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && m[j] > m[j-1]; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
	return m[quorum-1]
}
