package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	paxosnet "github.com/paxos-go/paxos/net"
)

// run is the node's loop: feed the core what arrived, act on its Ready.
func (n *Node) run() {
	defer close(n.done)
	defer close(n.persistQ) // the persister finishes what was queued, then stops
	ticker := time.NewTicker(n.cfg.HeartbeatInterval)
	defer ticker.Stop()
	recv := n.tr.Receive()
	for {
		// err is what stops the replica: a failed write, or a snapshot
		// that could not be installed whole.
		var err error
		select {
		case <-n.stop:
			return
		case err = <-n.persistErr:
		case err = <-n.refusedCh:
		case <-ticker.C:
			n.rn.Tick()
			n.sweep()
			n.checkQuiet()
		case batch := <-recv:
			n.quietTicks = 0
			err = n.stepAll(batch)
		case msgs := <-n.selfCh:
			n.stepSelf(msgs)
		case r := <-n.snapResults:
			delete(n.senders, r.to)
			n.rn.ReportSnapshot(paxos.NodeID(r.to), r.ok)
		case <-n.kick:
		}
		// Take whatever else is waiting without blocking, so that one
		// Ready covers all of it.
	drain:
		for i := 0; i < 64 && err == nil; i++ {
			select {
			case batch := <-recv:
				err = n.stepAll(batch)
			case msgs := <-n.selfCh:
				n.stepSelf(msgs)
			default:
				break drain
			}
		}
		if err == nil {
			err = n.takeRequests()
		}
		if err == nil {
			n.unpark()
			n.driveChanges()
			if n.rn.HasReady() {
				err = n.handleReady()
			}
		}
		if err == nil {
			err = n.afterTurn()
		}
		if err != nil {
			n.fail(err)
			return
		}
		if len(n.senders) > 0 {
			n.stopSendersIfFollowing()
		}
	}
}

func (n *Node) stepSelf(msgs []paxos.Message) {
	for _, m := range msgs {
		if err := n.rn.Step(m); err != nil {
			n.log.Error("stepping a message to self", "error", err)
		}
	}
}

// stepAll decodes and steps messages from peers. A message that does not
// decode, or claims another sender than its connection's, is dropped. It
// returns an error only when the replica cannot go on (installing a
// snapshot failed midway).
func (n *Node) stepAll(batch []paxosnet.Inbound) error {
	for _, in := range batch {
		if isSnapshotFrame(in.Payload) {
			f, err := decodeSnapshotFrame(in.Payload)
			if err == nil {
				err = n.handleSnapshotFrame(in.From, f)
			}
			var fatal fatalError
			if errors.As(err, &fatal) {
				return err
			}
			if err != nil {
				n.log.Warn("dropped a snapshot frame", "from", in.From, "error", err)
			}
			continue
		}
		m, err := n.codec.decode(in.Payload)
		if err == nil && uint64(m.From) != in.From {
			err = fmt.Errorf("message from replica %d on the connection of replica %d", m.From, in.From)
		}
		if err == nil {
			err = n.rn.Step(m)
		}
		switch {
		case errors.Is(err, paxos.ErrProtocolViolation):
			// A message no correct replica sends: a bug, a damaged replica
			// or a stranger. Refused whole; say so loudly.
			n.log.Error("refused a message that breaks the protocol", "from", in.From, "error", err)
		case err != nil:
			n.log.Warn("dropped a message", "from", in.From, "error", err)
		}
	}
	return nil
}

// takeRequests hands the core the commands and reads that callers
// queued, and takes the snapshots asked for. It returns an error only
// when the replica cannot go on (a snapshot's compaction of the log, or
// the snapshot store, failed): the caller that asked gets it too.
func (n *Node) takeRequests() error {
	n.mu.Lock()
	hold := n.holdBatch()
	batch, reads, snaps := n.batch, n.reads, n.snapReqs
	if hold {
		batch = nil
	} else {
		n.batch, n.batchBytes = nil, 0
	}
	n.reads, n.snapReqs = nil, nil
	n.mu.Unlock()
	if len(batch) > 0 {
		if n.rn.IsLeader() {
			n.inflight, n.gatherTarget = len(batch), 0
		}
		// Encoded here, once, in a buffer of its exact size: appended to a
		// growing buffer as they came, a batch of 1 KiB commands was
		// copied about twice over, a quarter of a loaded leader's CPU.
		if err := n.rn.Propose(paxos.EncodeBatch(batch)); err != nil {
			if errors.Is(err, paxos.ErrNoLeader) && n.leaderRecently() {
				// A leader was known a moment ago: a transfer, or an
				// election, is under way. Wait for the next one rather
				// than fail.
				n.park(batch)
			} else {
				n.failCommands(batch, n.proposeError(err))
			}
		}
	}
	for _, r := range reads {
		n.startRead(r)
	}
	for i, reply := range snaps {
		m, err := n.snapshotAndCompact()
		reply <- snapshotResult{m, err}
		if isFatal(err) {
			for _, r := range snaps[i+1:] {
				r <- snapshotResult{err: fmt.Errorf("%w: %w", ErrClosed, err)}
			}
			return err
		}
	}
	return nil
}

// batchDelay is the longest a leader holds commands back to fill a batch.
const batchDelay = 300 * time.Microsecond

// holdBatch decides whether the leader keeps the commands it has for a
// moment instead of proposing them now. A slot costs an fdatasync on every
// replica, so a slot should carry as many commands as there are:
//
//   - While a slot is uncommitted, new commands wait: they ride in the
//     next slot, proposed at the commit.
//   - When the slot commits, its clients are answered and most come
//     straight back with their next command; the leader waits, at most
//     batchDelay, until about as many as the committed slot carried are
//     back, on top of those that were already waiting. Without this, the
//     clients split into two halves that alternate, each slot carrying
//     half of them.
//
// A lone client is never held: it waits for itself. Called with n.mu held.
func (n *Node) holdBatch() bool {
	if len(n.batch) == 0 || !n.rn.IsLeader() || n.batchBytes >= n.cfg.MaxBatchBytes/2 {
		return false
	}
	st := n.rn.Status()
	if st.LastSlot > st.Commit {
		return true // proposed at the commit, with everything gathered by then
	}
	if n.inflight > 0 {
		// The slot just committed: wait for its clients too.
		n.gatherTarget = len(n.batch) + n.inflight*9/10
		n.gatherSince = time.Now()
		n.inflight = 0
	}
	if len(n.batch) >= n.gatherTarget {
		return false
	}
	wait := batchDelay - time.Since(n.gatherSince)
	if wait <= 0 {
		return false
	}
	if n.batchTimer == nil {
		n.batchTimer = time.AfterFunc(wait, n.wake)
	} else {
		n.batchTimer.Reset(wait)
	}
	return true
}

func (n *Node) proposeError(err error) error {
	switch {
	case errors.Is(err, paxos.ErrNoLeader):
		return n.notLeader()
	case errors.Is(err, paxos.ErrBusy):
		return ErrBusy
	}
	return err
}

func (n *Node) notLeader() error {
	e := &NotLeaderError{}
	if l := n.rn.Leader(); l != paxos.None {
		e.LeaderKnown, e.LeaderID = true, uint64(l)
		e.LeaderAddr = n.clientAddrOf(uint64(l))
	}
	return e
}

// sweep proposes again the commands that have waited an election timeout
// (their proposal may have been lost with a leader), and asks again for
// the read indexes that have not come back.
func (n *Node) sweep() {
	now := time.Now()
	if now.Sub(n.lastSweep) < n.cfg.ElectionTimeout/2 {
		return
	}
	n.lastSweep = now
	n.mu.Lock()
	for k, w := range n.waiters {
		if now.Sub(w.proposed) >= n.cfg.ElectionTimeout {
			w.proposed = now
			n.batch = append(n.batch, paxos.Command{ClientID: k.client, Seq: k.seq, Oldest: w.oldest, Payload: w.payload})
			n.batchBytes += len(w.payload)
		}
	}
	n.mu.Unlock()
	for ctx, r := range n.readsByCtx {
		if now.Sub(r.started) >= n.cfg.ElectionTimeout {
			delete(n.readsByCtx, ctx)
			n.startRead(r)
		}
	}
}
