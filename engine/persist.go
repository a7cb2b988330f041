package engine

import (
	"fmt"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/wal"
)

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

// handleReady does what a Ready asks, in the order the core requires:
//
//  1. Messages that depend on nothing durable go at once: the leader's
//     Accepts travel while it writes its own log.
//  2. The hard state and entries are queued in the WAL, in Ready order,
//     and the replies that promise durable state are handed to the
//     persister, which sends them only once the WAL has synced the write
//     (or a later one: the WAL writes in order). The loop does not wait:
//     it goes on stepping acknowledgements and proposals while the disk
//     works, and the WAL merges the writes that queue meanwhile into one
//     fdatasync.
//  3. Committed entries are applied now. They are chosen, durable on a
//     majority, whether or not this replica's own copy is on disk yet.
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

func (n *Node) send(m paxos.Message) {
	n.tr.Send(uint64(m.To), n.codec.encode(m))
}
