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
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// A snapshot holds the configuration state, the session table and the
// state machine after a slot:
//
//	magic "PXSN" | version u8 (2) | slot u64
//	| config length u32 | config state
//	| sessions length u32 | sessions | state machine...
//
//	config state = count u8 | (from u64 | length u32 | configuration value)*
//
// (big-endian; the state machine's part runs to the end). The
// configuration state is the configurations of the slots after the
// snapshot's slot (paxos.ConfigState, compacted to the slot), each value
// as paxos.EncodeConfigValue writes it: it travels with the snapshot to a
// replica that installs it, which learns the configuration from it (a
// joining replica knows none before).
//
// Version 1, written before membership changes, has no configuration
// part (magic | 1 | slot | sessions length | sessions | state machine):
// it still loads, and the replica then keeps the configuration it had
// (the bootstrap configuration, at a restart: version 1 predates any
// change to it).

const (
	snapshotVersion       = 2
	legacySnapshotVersion = 1
)

// maxConfigStateBytes bounds the configuration part of a snapshot, checked
// before it is allocated: a configuration state holds at most
// 2*ConfigWindow+2 configurations of at most MaxMembers members.
const maxConfigStateBytes = 16 << 20

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
	written := false // a new snapshot, for the event
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
		written = true
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
	if written {
		n.events.emit(SnapshotTaken{Slot: m.Slot, Bytes: m.Size})
	}
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
	start := time.Now()
	w, err := n.snaps.Create(n.applied, storage.Ballot{Round: n.appliedBallot.Round, Node: uint64(n.appliedBallot.Node)})
	if err != nil {
		return storage.Meta{}, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var sessions []byte
	sessionsBuf := &byteWriter{&sessions}
	n.sessions.WriteTo(sessionsBuf)
	bw.Write(snapshotHeader(n.applied, n.confs, len(sessions)))
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
	n.snapHasConfig = true
	n.metrics.snapshotTaken(time.Since(start), m.Size)
	n.log.Info("snapshot written", "slot", m.Slot, "bytes", m.Size)
	return m, nil
}

// snapshotHeader is the start of a snapshot of slot with configuration
// state cs, whose session table takes sessionsLen bytes.
func snapshotHeader(slot uint64, cs paxos.ConfigState, sessionsLen int) []byte {
	hdr := append([]byte(nil), snapshotMagic...)
	hdr = append(hdr, snapshotVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, slot)
	conf := encodeConfigState(cs)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(conf)))
	hdr = append(hdr, conf...)
	return binary.BigEndian.AppendUint32(hdr, uint32(sessionsLen))
}

// legacySnapshotHeader is the start of a snapshot of version 1 (no
// configuration), for tests of old data directories.
func legacySnapshotHeader(slot uint64, sessionsLen int) []byte {
	hdr := append([]byte(nil), snapshotMagic...)
	hdr = append(hdr, legacySnapshotVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, slot)
	return binary.BigEndian.AppendUint32(hdr, uint32(sessionsLen))
}

// encodeConfigState encodes cs as a snapshot holds it (see above).
func encodeConfigState(cs paxos.ConfigState) []byte {
	b := []byte{byte(len(cs))}
	for _, sc := range cs {
		v := paxos.EncodeConfigValue(sc.Config)
		b = binary.BigEndian.AppendUint64(b, sc.From)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// decodeConfigState decodes and checks a snapshot's configuration state.
func decodeConfigState(b []byte) (paxos.ConfigState, error) {
	if len(b) < 1 {
		return nil, errors.New("empty configuration state")
	}
	count := int(b[0])
	b = b[1:]
	var cs paxos.ConfigState
	for i := 0; i < count; i++ {
		if len(b) < 12 {
			return nil, fmt.Errorf("configuration %d: truncated", i)
		}
		from, size := binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:])
		b = b[12:]
		if uint64(size) > uint64(len(b)) {
			return nil, fmt.Errorf("configuration %d: %d bytes declared, %d left", i, size, len(b))
		}
		c, err := paxos.DecodeConfigValue(b[:size])
		if err != nil {
			return nil, fmt.Errorf("configuration %d: %w", i, err)
		}
		b = b[size:]
		cs = append(cs, paxos.ScheduledConfig{From: from, Config: c})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(b))
	}
	if err := cs.Validate(); err != nil {
		return nil, err
	}
	return cs, nil
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
		cs, err := n.loadSnapshot(m, false)
		if err != nil {
			return err
		}
		n.restoredConfs = cs
		n.metrics.snapshotRestored(m.Size)
		break
	}
	if st.Compacted.Slot > n.applied {
		return fmt.Errorf("engine: the log is compacted up to slot %d, but no usable snapshot covers it (newest usable: slot %d)", st.Compacted.Slot, n.applied)
	}
	return nil
}

// loadSnapshot restores the state machine and the session table from the
// committed snapshot m, and returns its configuration state: nil for a
// snapshot of version 1, which has none, and which needConfig refuses
// before anything is restored.
func (n *Node) loadSnapshot(m storage.Meta, needConfig bool) (paxos.ConfigState, error) {
	r, _, err := n.snaps.Open(m.Slot)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 256<<10)
	hdr := make([]byte, len(snapshotMagic)+1+8+4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	if string(hdr[:4]) != string(snapshotMagic) || (hdr[4] != snapshotVersion && hdr[4] != legacySnapshotVersion) {
		return nil, fmt.Errorf("engine: snapshot of slot %d is not a paxos-go snapshot of version %d or %d", m.Slot, legacySnapshotVersion, snapshotVersion)
	}
	slot := binary.BigEndian.Uint64(hdr[5:])
	// Each length is checked against the bytes the snapshot has after it
	// before anything is allocated for it: a damaged or hostile length
	// must not make Start allocate 4 GiB.
	left := m.Size - int64(len(hdr))
	var cs paxos.ConfigState
	if hdr[4] == snapshotVersion {
		confLen := int64(binary.BigEndian.Uint32(hdr[13:]))
		if slot != m.Slot || confLen > left-4 || confLen > maxConfigStateBytes {
			return nil, fmt.Errorf("engine: snapshot of slot %d has a malformed header: slot %d, a configuration state of %d bytes in a snapshot of %d", m.Slot, slot, confLen, m.Size)
		}
		conf := make([]byte, confLen+4)
		if _, err := io.ReadFull(br, conf); err != nil {
			return nil, fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
		}
		if cs, err = decodeConfigState(conf[:confLen]); err != nil {
			return nil, fmt.Errorf("engine: snapshot of slot %d: malformed configuration state: %w", m.Slot, err)
		}
		copy(hdr[13:], conf[confLen:]) // the session table's length follows
		left -= confLen + 4
	}
	if cs == nil && needConfig {
		return nil, fmt.Errorf("engine: snapshot of slot %d is of version 1 and carries no configuration, which a joining replica needs", m.Slot)
	}
	tableLen := int64(binary.BigEndian.Uint32(hdr[13:]))
	if slot != m.Slot || tableLen > left {
		return nil, fmt.Errorf("engine: snapshot of slot %d has a malformed header: slot %d, a session table of %d bytes in a snapshot of %d", m.Slot, slot, tableLen, m.Size)
	}
	sessions := make([]byte, tableLen)
	if _, err := io.ReadFull(br, sessions); err != nil {
		return nil, fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	table, err := session.Read(sessions)
	if err != nil {
		return nil, fmt.Errorf("engine: snapshot of slot %d: %w", m.Slot, err)
	}
	if err := n.sm.Restore(br); err != nil {
		return nil, fmt.Errorf("engine: restoring the state machine from the snapshot of slot %d: %w", m.Slot, err)
	}
	n.sessions = table
	n.applied = m.Slot
	n.appliedBallot = paxos.Ballot{Round: m.Ballot.Round, Node: paxos.NodeID(m.Ballot.Node)}
	n.snapHasConfig = cs != nil
	if cs != nil {
		n.log.Info("restored a snapshot", "slot", m.Slot, "bytes", m.Size, "configuration", cs.Latest())
	} else {
		n.log.Info("restored a snapshot of version 1 (no configuration)", "slot", m.Slot, "bytes", m.Size)
	}
	return cs, nil
}

// newRand returns a random source seeded from the operating system, for
// the core's election timeouts.
func newRand() *mrand.Rand {
	var seed [16]byte
	rand.Read(seed[:])
	return mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

// snapshotToSend makes sure the newest snapshot carries the configuration
// state before it is sent to a follower, which needs it (a joining one
// knows no configuration without it): with none yet, or one of version 1,
// it writes one now. Only a failure that stops the replica is returned;
// otherwise the transfer fails and the core asks for it again.
func (n *Node) snapshotToSend() error {
	if n.snapHasConfig {
		return nil
	}
	_, err := n.snapshotAndCompact()
	if isFatal(err) {
		return err
	}
	if err != nil {
		n.log.Warn("no snapshot to send a follower yet", "error", err)
	} else if !n.snapHasConfig {
		n.log.Warn("the newest snapshot is of version 1 (no configuration): it is not sent until a newer one is written", "slot", n.lastSnapSlot)
	}
	return nil
}
