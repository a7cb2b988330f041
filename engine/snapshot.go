package engine

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// A snapshot holds the state machine and the session table after a slot:
//
//	magic "PXSN" | version u8 | slot u64 | sessions length u32 | sessions | state machine...
//
// (big-endian; the state machine's part runs to the end).

const snapshotVersion = 1

var snapshotMagic = []byte("PXSN")

type snapshotResult struct {
	meta storage.Meta
	err  error
}

// Snapshot writes a snapshot of the state machine and the session table,
// as of the last applied slot, to the snapshot store, and returns its
// metadata once it is durable.
func (n *Node) Snapshot(ctx context.Context) (storage.Meta, error) {
	reply := make(chan snapshotResult, 1)
	n.mu.Lock()
	if n.closed {
		err := n.closedError()
		n.mu.Unlock()
		return storage.Meta{}, err
	}
	n.snapReqs = append(n.snapReqs, reply)
	n.mu.Unlock()
	n.wake()
	select {
	case r := <-reply:
		return r.meta, r.err
	case <-ctx.Done():
		return storage.Meta{}, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// maybeSnapshot runs the snapshot policy (see Config) after a Ready is
// done. A snapshot that fails to write (the state machine failed, say) is
// logged and tried again at the next threshold; a log that fails to
// compact, or a snapshot store that failed (storage.ErrFailed), stops the
// replica.
func (n *Node) maybeSnapshot() error {
	if n.cfg.DisableAutoSnapshots || n.applied <= n.lastSnapSlot {
		return nil
	}
	if n.applied-n.lastSnapSlot < n.cfg.SnapshotEverySlots && n.bytesSinceSnap < n.cfg.SnapshotEveryBytes {
		return nil
	}
	_, err := n.snapshotAndCompact()
	if isFatal(err) {
		return err
	}
	if err != nil {
		n.log.Error("automatic snapshot failed", "slot", n.applied, "error", err)
		n.lastSnapSlot, n.bytesSinceSnap = n.applied, 0
	}
	return nil
}

// snapshotAndCompact writes a snapshot as of the last applied slot,
// verifies it by reading it back, and only then compacts the log up to
// SnapshotTrailingSlots behind it and prunes older snapshots. A crash at
// any step leaves a replica that restarts: before the snapshot commits,
// the store does not show it; between it and the compaction, the log
// still holds everything; the compaction record is synced before any
// segment is deleted (wal.Log.Compact).
//
// A committed snapshot of the last applied slot that verifies is the
// state a new one would hold: it is kept, and nothing is written (a
// second snapshot of the slot could only put the first at risk).
func (n *Node) snapshotAndCompact() (storage.Meta, error) {
	m, err := storage.Verify(n.snaps, n.applied)
	switch {
	case err == nil:
		n.log.Debug("a snapshot of the last applied slot exists; not writing another", "slot", m.Slot)
	case n.applied != 0 && !errors.Is(err, storage.ErrNotFound):
		if errors.Is(err, storage.ErrFailed) {
			return m, fatalError{err}
		}
		n.log.Warn("the snapshot of the last applied slot does not verify; writing it again", "slot", n.applied, "error", err)
		fallthrough
	default:
		if m, err = n.writeSnapshot(); err != nil {
			return m, stopOnStoreFailure(err)
		}
		if _, err := storage.Verify(n.snaps, m.Slot); err != nil {
			return m, stopOnStoreFailure(fmt.Errorf("engine: the snapshot just written does not verify: %w", err))
		}
	}
	n.lastSnapSlot, n.bytesSinceSnap = m.Slot, 0
	if m.Slot > n.cfg.SnapshotTrailingSlots {
		to := min(m.Slot-n.cfg.SnapshotTrailingSlots, n.rn.Status().Applied)
		if to > n.rn.Compacted().Slot {
			c, err := n.rn.Compact(to)
			if err != nil {
				return m, fatalError{err}
			}
			if err := n.compactWAL(c); err != nil {
				return m, err
			}
		}
	}
	n.pruneSnapshots()
	return m, nil
}

// stopOnStoreFailure makes err fatal to the replica if the snapshot
// store failed (storage.ErrFailed): the store then refuses every call
// until it is reopened, so the replica stops, with the cause, as on a
// failed fsync of its log; once the cause is gone (the disk has room), a
// restart reopens the store and finds what it had committed.
func stopOnStoreFailure(err error) error {
	if errors.Is(err, storage.ErrFailed) && !isFatal(err) {
		return fatalError{err}
	}
	return err
}

// isFatal reports whether err stops the replica.
func isFatal(err error) bool {
	var fatal fatalError
	return errors.As(err, &fatal)
}

// compactWAL records compaction point c in the log, synced, and deletes
// the segments it covers. A failure stops the replica.
func (n *Node) compactWAL(c paxos.Compacted) error {
	if err := n.wal.Compact(wal.Compacted{Slot: c.Slot, Ballot: toWALBallot(c.Ballot)}); err != nil {
		return fatalError{fmt.Errorf("engine: compacting the write-ahead log to slot %d: %w", c.Slot, err)}
	}
	return nil
}

// pruneSnapshots keeps the newest SnapshotsKept snapshots. A transfer
// reading an older one fails and is retried with the newest.
func (n *Node) pruneSnapshots() {
	if err := n.snaps.Prune(n.cfg.SnapshotsKept); err != nil {
		n.log.Warn("pruning old snapshots failed", "error", err)
	}
}

// writeSnapshot snapshots the state as of the last applied slot. It runs
// on the loop, so nothing is applied meanwhile.
func (n *Node) writeSnapshot() (storage.Meta, error) {
	if n.applied == 0 {
		return storage.Meta{}, errors.New("engine: nothing applied yet to snapshot")
	}
	w, err := n.snaps.Create(n.applied, storage.Ballot{Round: n.appliedBallot.Round, Node: uint64(n.appliedBallot.Node)})
	if err != nil {
		return storage.Meta{}, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var sessions []byte
	sessionsBuf := &byteWriter{&sessions}
	n.sessions.WriteTo(sessionsBuf)
	bw.Write(snapshotHeader(n.applied, len(sessions)))
	bw.Write(sessions)
	err = n.sm.Snapshot(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		w.Abort()
		return storage.Meta{}, fmt.Errorf("engine: writing a snapshot: %w", err)
	}
	m, err := w.Commit()
	if err != nil {
		return storage.Meta{}, err
	}
	n.log.Info("snapshot written", "slot", m.Slot, "bytes", m.Size)
	return m, nil
}

// snapshotHeader is the start of a snapshot of slot whose session table
// takes sessionsLen bytes.
func snapshotHeader(slot uint64, sessionsLen int) []byte {
	hdr := append([]byte(nil), snapshotMagic...)
	hdr = append(hdr, snapshotVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, slot)
	return binary.BigEndian.AppendUint32(hdr, uint32(sessionsLen))
}

type byteWriter struct{ b *[]byte }

func (w *byteWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// restoreSnapshot restores the newest snapshot that verifies, if any. A
// snapshot that does not verify is skipped, with a warning, for an older
// one; but if the log was compacted beyond what the surviving snapshots
// cover, the replica cannot recover by itself and Start fails.
func (n *Node) restoreSnapshot(st wal.InitialState) error {
	list, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("engine: listing snapshots: %w", err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		m := list[i]
		if _, err := storage.Verify(n.snaps, m.Slot); err != nil {
			n.log.Warn("skipping a snapshot that does not verify", "slot", m.Slot, "error", err)
			continue
		}
		if err := n.loadSnapshot(m); err != nil {
			return err
		}
		break
	}
	if st.Compacted.Slot > n.applied {
		return fmt.Errorf("engine: the log is compacted up to slot %d, but no usable snapshot covers it (newest usable: slot %d)", st.Compacted.Slot, n.applied)
	}
	return nil
}

func (n *Node) loadSnapshot(m storage.Meta) error {
	r, _, err := n.snaps.Open(m.Slot)
	if err != nil {
		return err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 256<<10)
	hdr := make([]byte, len(snapshotMagic)+1+8+4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	if string(hdr[:4]) != string(snapshotMagic) || hdr[4] != snapshotVersion {
		return fmt.Errorf("engine: snapshot of slot %d is not a paxos-go snapshot of version %d", m.Slot, snapshotVersion)
	}
	slot := binary.BigEndian.Uint64(hdr[5:])
	// The session table's length is checked against the bytes the snapshot
	// has after the header before anything is allocated for it: a damaged
	// or hostile length must not make Start allocate 4 GiB.
	tableLen := int64(binary.BigEndian.Uint32(hdr[13:]))
	if slot != m.Slot || tableLen > m.Size-int64(len(hdr)) {
		return fmt.Errorf("engine: snapshot of slot %d has a malformed header: slot %d, a session table of %d bytes in a snapshot of %d", m.Slot, slot, tableLen, m.Size)
	}
	sessions := make([]byte, tableLen)
	if _, err := io.ReadFull(br, sessions); err != nil {
		return fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	table, err := session.Read(sessions)
	if err != nil {
		return fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	if err := n.sm.Restore(br); err != nil {
		return fmt.Errorf("engine: restoring the state machine from the snapshot of slot %d: %w", m.Slot, err)
	}
	n.sessions = table
	n.applied = m.Slot
	n.appliedBallot = paxos.Ballot{Round: m.Ballot.Round, Node: paxos.NodeID(m.Ballot.Node)}
	n.log.Info("restored a snapshot", "slot", m.Slot, "bytes", m.Size)
	return nil
}

// newRand returns a random source seeded from the operating system, for
// the core's election timeouts.
func newRand() *mrand.Rand {
	var seed [16]byte
	rand.Read(seed[:])
	return mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}
