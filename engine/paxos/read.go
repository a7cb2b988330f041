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
		n.ldr.progress[n.peerIndex(n.id)].readAck = q.round
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
	var buf [16]progress
	acks := buf[:0]
	for _, pr := range n.ldr.progress {
		acks = append(acks, progress{match: pr.readAck})
	}
	quorum := n.quorum
	if n.cfg.Knobs.ReadWithoutQuorum {
		quorum = 1 // the bug: the leader's own word is enough
	}
	confirmed := quorumMatch(acks, quorum)
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
