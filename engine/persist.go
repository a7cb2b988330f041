package engine

import (
	"fmt"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/wal"
)

// Persisting: the order in which a Ready is made durable, in one place.
//
// The core (engine/paxos) decides; this file makes its decisions durable
// and visible, in the order below, for each Ready. handleReady does it on
// the loop goroutine, and the persister goroutine (persist) finishes what
// must wait for the disk. The order is what makes a reply a promise: a
// Promise or an Accepted sent before the state it reports is on disk is a
// promise a crash can take back. (etcd's raft/node.go, Ready and
// Node.Advance, with its asynchronous storage writes, works the same way.)
//
//  1. Send Ready.Messages at once: they promise nothing about this
//     replica's disk, so a leader's Accepts travel to the followers while
//     it writes its own copy, and the fsyncs of leader and followers
//     overlap.
//  2. Persist Ready.HardState and Ready.Entries: one write, queued in the
//     WAL in Ready order (wal.Log.Enqueue), synced when Ready.MustSync.
//     The loop does not wait for it; the WAL merges the writes queued
//     during a flush into the next fdatasync.
//  3. Then, and only then, send Ready.MessagesAfterPersist: the replies
//     that promise durable state (a promise, an accepted entry, a
//     candidate's Prepare under its own new promise). The loop hands them
//     to the persister with the write's ticket; the persister waits for
//     the tickets in order (wal.Log.Wait) and sends them after the
//     fdatasync returned. It is the only sender of such replies. Those
//     addressed to this replica go back to the loop to be stepped. A reply
//     with no write of its own goes through the queue too: it may report
//     entries that an earlier, still pending write holds.
//  4. Apply Ready.Committed (apply.go), without waiting for step 3: a
//     committed entry is chosen, durable on a majority, whether or not
//     this replica's own copy is on disk yet. Then serve the reads whose
//     read index is applied (Ready.ReadStates).
//  5. Advance the core (RawNode.Advance), then start snapshot transfers
//     (Ready.SendSnapshots) and take a snapshot if the policy says so
//     (snapshot.go). The loop goes on stepping acknowledgements while the
//     disk works, so a commit needs a durable majority, which may or may
//     not include the leader's own copy yet.
//
// A failed write stops the replica: the persister sends nothing after it
// (the replies queued behind it would promise what is not on disk) and
// reports it on persistErr, and the loop stops with it (Node.fail).

// handleReady does what a Ready asks, in the order above: steps 1, 2, 4
// and 5 on the loop goroutine, step 3 handed to the persister.
func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	for _, m := range rd.Messages {
		n.send(m)
	}
	var job persistJob
	if rd.HardState != nil || len(rd.Entries) > 0 {
		// The WAL keeps the batch until it is written: it gets slices of
		// its own (the values are shared; nobody modifies them).
		b := wal.Batch{Entries: make([]wal.Entry, len(rd.Entries))}
		if hs := rd.HardState; hs != nil {
			b.HardState = &wal.HardState{Promised: toWALBallot(hs.Promised), Commit: hs.Commit}
		}
		for i, e := range rd.Entries {
			b.Entries[i] = wal.Entry{Slot: e.Slot, Ballot: toWALBallot(e.Ballot), Value: e.Value}
		}
		t, err := n.wal.Enqueue(b, rd.MustSync)
		if err != nil {
			return fmt.Errorf("engine: the write-ahead log refused a write: %w", err)
		}
		job.write, job.ticket = true, t
	}
	for _, m := range rd.MessagesAfterPersist {
		if uint64(m.To) == n.cfg.ID {
			job.self = append(job.self, m)
		} else {
			job.after = append(job.after, outbound{uint64(m.To), n.codec.encode(m)})
		}
	}
	if job.write || len(job.after) > 0 || len(job.self) > 0 {
		// Every reply goes through the queue, even with no write of its
		// own: it may report entries an earlier, still pending write holds.
		select {
		case n.persistQ <- job:
		case err := <-n.persistErr:
			return err
		}
	}
	if err := n.apply(rd.Committed); err != nil {
		return err
	}
	for _, rs := range rd.ReadStates {
		if r, ok := n.readsByCtx[rs.Context]; ok {
			delete(n.readsByCtx, rs.Context)
			r.index = rs.Index
			n.readsToServe = append(n.readsToServe, r)
		}
	}
	n.serveReads()
	n.rn.Advance(rd)
	for _, to := range rd.SendSnapshots {
		if _, running := n.senders[uint64(to)]; running {
			continue
		}
		if err := n.snapshotToSend(); err != nil {
			return err
		}
		n.startSnapshotSender(uint64(to))
	}
	return n.maybeSnapshot()
}

// persist waits, in order, for each queued write to be durable, then
// releases the replies that depended on it. This is the only place that
// sends replies promising durable state, and it sends them only after
// Wait has returned: after the fdatasync that made their state durable.
func (n *Node) persist() {
	defer close(n.persistDone)
	failed := false
	for job := range n.persistQ {
		if failed {
			continue // drain: nothing is sent after a failure
		}
		if job.write {
			if err := n.wal.Wait(job.ticket); err != nil {
				failed = true
				n.persistErr <- fmt.Errorf("engine: the write-ahead log failed: %w", err)
				continue
			}
			n.noteDurableState()
		}
		for _, m := range job.after {
			n.tr.Send(m.to, m.payload)
		}
		if len(job.self) > 0 {
			select {
			case n.selfCh <- job.self:
			case <-n.stop:
			}
		}
	}
}

// persistJob is one Ready's write and the replies that wait for it.
type persistJob struct {
	write  bool
	ticket wal.Ticket
	after  []outbound      // to other replicas
	self   []paxos.Message // to this replica
}

type outbound struct {
	to      uint64
	payload []byte
}

func (n *Node) send(m paxos.Message) {
	n.tr.Send(uint64(m.To), n.codec.encode(m))
}
