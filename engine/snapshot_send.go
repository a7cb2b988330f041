package engine

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/storage"
)

// Sending a snapshot to a follower that needs slots the leader compacted.
//
// The leader's sender streams the snapshot in chunks, each with the CRC-32C
// of its bytes and the size and checksum of the whole, at most
// snapshotWindow chunks ahead of what the follower acknowledged, at no
// more than Config.SnapshotSendBytesPerSec. The follower writes chunks
// that arrive in order and whose CRC matches into a new snapshot in its
// store, and acknowledges with the offset it expects next; a chunk out of
// order or corrupt is refused by acknowledging the same offset again, and
// the sender resends from there. When a connection breaks, chunks are
// lost; the sender hears nothing, and after a timeout resends from the
// last acknowledged offset: the transfer resumes where it broke, it does
// not restart. The last chunk makes the follower check the whole
// snapshot's size and checksum, commit it (durable), restore its state
// machine from it, record the compaction point in its log, and only then
// acknowledge it as done.

// snapshotWindow is how many chunks a sender has unacknowledged.
const snapshotWindow = 4

// Frames of a transfer: a chunk from the sender, an acknowledgement back.
const (
	snapChunk = 1
	snapAck   = 2
)

// wireSnapshotFrame is a transfer's frame. It is a msgpack array of 12
// elements, which tells it from a protocol message (10): see decodeFrame.
type wireSnapshotFrame struct {
	Kind     uint8
	From, To uint64
	// Transfer names the transfer, uniquely across the lives of the
	// sender (see Node.nextTransferID): a follower that sees a new one
	// starts over, and a sender takes acks only of its own, so an ack
	// meant for a previous life's transfer never moves this one.
	Transfer uint64
	Slot     uint64     // the snapshot's slot
	Ballot   wireBallot // of the entry at Slot
	Size     uint64     // of the whole snapshot
	Checksum uint32     // CRC-32C of the whole snapshot
	Offset   uint64     // chunk: where Data goes; ack: the next offset expected
	Data     view
	DataCRC  uint32 // CRC-32C of Data
	Done     bool   // chunk: the last one; ack: installed (or not needed)
}

// snapshotFrameTag is the first byte of an encoded wireSnapshotFrame: a
// msgpack fixarray of 12 elements.
const snapshotFrameTag = 0x90 | 12

func isSnapshotFrame(b []byte) bool { return len(b) > 0 && b[0] == snapshotFrameTag }

func decodeSnapshotFrame(b []byte) (wireSnapshotFrame, error) {
	var f wireSnapshotFrame
	if err := decodeMsgpack(b, &f); err != nil {
		return f, fmt.Errorf("engine: malformed snapshot frame: %w", err)
	}
	if f.Kind != snapChunk && f.Kind != snapAck {
		return f, fmt.Errorf("engine: snapshot frame of unknown kind %d", f.Kind)
	}
	return f, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapSendResult is how a sender's transfer ended.
type snapSendResult struct {
	to uint64
	ok bool
}

// snapSender streams the latest snapshot to one follower. It runs on a
// goroutine of its own, started by the loop and stopped by Close; acks
// come from the loop through acks.
type snapSender struct {
	n    *Node
	to   uint64
	id   uint64 // the transfer's id
	acks chan wireSnapshotFrame
	quit chan struct{} // closed by the loop when this replica stops leading
	// usable says the newest snapshot carries the configuration state (a
	// follower needs it): one that does not is not sent.
	usable bool
}

// startSnapshotSender starts a transfer to follower to, unless one runs.
func (n *Node) startSnapshotSender(to uint64) {
	if _, ok := n.senders[to]; ok {
		return
	}
	s := &snapSender{n: n, to: to, id: n.nextTransferID(), acks: make(chan wireSnapshotFrame, 4*snapshotWindow), quit: make(chan struct{}), usable: n.snapHasConfig}
	n.senders[to] = s
	n.senderWG.Add(1)
	go func() {
		defer n.senderWG.Done()
		err := s.run()
		if err != nil {
			n.log.Warn("sending a snapshot failed", "to", to, "error", err)
		}
		select {
		case n.snapResults <- snapSendResult{to: to, ok: err == nil}:
		case <-n.stop:
		}
	}()
}

// fatalError is an error after which the replica cannot go on.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// errStopped ends a transfer because the node is closing or no longer
// leads.
var errStopped = errors.New("engine: node closing, or no longer the leader")

// stopSendersIfFollowing stops the transfers of a replica that no longer
// leads: the new leader sends its own, and two senders would keep
// restarting each other's transfer at the follower.
func (n *Node) stopSendersIfFollowing() {
	if n.rn.IsLeader() {
		return
	}
	for _, s := range n.senders {
		select {
		case <-s.quit:
		default:
			close(s.quit)
		}
	}
}

// run sends the latest snapshot and waits until the follower installed
// it. It gives up after maxSnapshotTimeouts timeouts in a row without
// progress.
func (s *snapSender) run() error {
	n := s.n
	m, ok, err := n.snaps.Latest()
	switch {
	case err != nil:
	case !ok:
		err = errors.New("no snapshot to send yet")
	case !s.usable:
		err = errors.New("the newest snapshot carries no configuration (version 1); waiting for a newer one")
	}
	if err != nil {
		// Wait a moment before reporting it: the core asks for another
		// transfer at once, and the loop writes a snapshot when it can.
		t := time.NewTimer(n.cfg.ElectionTimeout / 2)
		defer t.Stop()
		select {
		case <-t.C:
		case <-n.stop:
		case <-s.quit:
		}
		return fmt.Errorf("finding the snapshot to send: %w", err)
	}
	n.log.Info("sending a snapshot", "to", s.to, "slot", m.Slot, "bytes", m.Size)
	start := time.Now()
	src := &chunkSource{store: n.snaps, meta: m, chunk: n.cfg.SnapshotChunkBytes}
	defer src.close()
	timeout := 2 * n.cfg.ElectionTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var acked, sent uint64 // the follower has [0, acked); chunks up to sent went out
	// rewound is the offset last resent from on the follower's word: the
	// acks of the chunks behind a refused one all name its offset, and
	// one resend answers them all.
	rewound := ^uint64(0)
	var sentBytes int64
	stalls := 0
	for {
		// Send what the window allows, at the throttled rate.
		for sent < uint64(m.Size) {
			if (sent-acked)/uint64(n.cfg.SnapshotChunkBytes) >= snapshotWindow {
				break
			}
			data, err := src.at(sent)
			if err != nil {
				return err
			}
			if wait := time.Duration(float64(sentBytes) / float64(n.cfg.SnapshotSendBytesPerSec) * float64(time.Second)); wait > time.Since(start) {
				select {
				case <-time.After(wait - time.Since(start)):
				case <-n.stop:
					return errStopped
				case <-s.quit:
					return errStopped
				}
			}
			f := wireSnapshotFrame{
				Kind: snapChunk, From: n.cfg.ID, To: s.to, Transfer: s.id, Slot: m.Slot,
				Ballot: wireBallot{m.Ballot.Round, m.Ballot.Node}, Size: uint64(m.Size), Checksum: m.Checksum,
				Offset: sent, Data: data, DataCRC: crc32.Checksum(data, castagnoli),
				Done: sent+uint64(len(data)) >= uint64(m.Size),
			}
			n.tr.Send(s.to, encodeMsgpack(&f))
			sent += uint64(len(data))
			sentBytes += int64(len(data))
		}
		select {
		case <-n.stop:
			return errStopped
		case <-s.quit:
			return errStopped
		case a := <-s.acks:
			switch {
			case a.Transfer != s.id || a.Slot != m.Slot:
				// About another transfer (perhaps of an earlier life).
			case a.Done:
				n.log.Info("snapshot sent", "to", s.to, "slot", m.Slot, "bytes", m.Size, "took", time.Since(start))
				return nil
			case a.Offset > uint64(m.Size):
				return fmt.Errorf("follower acknowledged offset %d of a %d-byte snapshot", a.Offset, m.Size)
			case a.Offset > acked:
				// Progress: the window slides (past what was sent, if the
				// follower held more from an earlier transfer).
				acked, stalls = a.Offset, 0
				sent = max(sent, acked)
			case a.Offset == acked && a.Offset < sent && a.Offset != rewound:
				// No progress: the follower refused the chunk at acked
				// (corrupt, or out of order behind a lost one). Resend from
				// there, once for all the acks that will say the same.
				sent, rewound = a.Offset, a.Offset
			case a.Offset < acked && a.Offset == 0:
				// The follower started over (it restarted, or dropped the
				// transfer): so do we.
				acked, sent, rewound = 0, 0, 0
			}
		case <-timer.C:
			// Nothing for a while: the connection broke, or chunks were
			// dropped. Resume from the last acknowledged offset.
			if stalls++; stalls > maxSnapshotTimeouts {
				return fmt.Errorf("no progress after %d timeouts at offset %d of %d", maxSnapshotTimeouts, acked, m.Size)
			}
			sent, rewound = acked, acked
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(timeout)
	}
}

// maxSnapshotTimeouts bounds the timeouts in a row a sender waits through
// before it gives up (the core then asks for another transfer).
const maxSnapshotTimeouts = 5

// chunkSource reads a snapshot's chunks in order, reopening it to go
// back: a resume after a lost window rereads from the start of the file,
// which is rare and keeps memory to one chunk.
type chunkSource struct {
	store storage.SnapshotStore
	meta  storage.Meta
	chunk int
	r     io.ReadCloser
	pos   uint64
	buf   []byte
}

func (c *chunkSource) at(off uint64) ([]byte, error) {
	if c.r == nil || off < c.pos {
		c.close()
		r, _, err := c.store.Open(c.meta.Slot)
		if err != nil {
			return nil, err
		}
		c.r, c.pos = r, 0
	}
	if off > c.pos {
		if _, err := io.CopyN(io.Discard, c.r, int64(off-c.pos)); err != nil {
			return nil, fmt.Errorf("reading snapshot %d: %w", c.meta.Slot, err)
		}
		c.pos = off
	}
	n := min(uint64(c.chunk), uint64(c.meta.Size)-off)
	buf := make([]byte, n) // the transport keeps the frame; a fresh buffer each time
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, fmt.Errorf("reading snapshot %d: %w", c.meta.Slot, err)
	}
	c.pos += n
	if c.pos == uint64(c.meta.Size) {
		// Read to the end, so that the store's reader checks the checksum:
		// a snapshot that rotted in the store is not sent.
		if _, err := io.Copy(io.Discard, c.r); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", c.meta.Slot, err)
		}
	}
	return buf, nil
}

func (c *chunkSource) close() {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
}

// snapReceiver is a transfer a follower is receiving. The loop owns it.
type snapReceiver struct {
	from     uint64
	transfer uint64
	slot     uint64
	ballot   storage.Ballot
	size     uint64
	checksum uint32
	next     uint64
	w        storage.Writer
	h        hash.Hash32
}

// handleSnapshotFrame handles a transfer's frame from peer from, on the
// loop.
func (n *Node) handleSnapshotFrame(from uint64, f wireSnapshotFrame) error {
	if f.From != from || f.To != n.cfg.ID {
		return fmt.Errorf("snapshot frame from %d to %d on the connection of %d", f.From, f.To, from)
	}
	if f.Kind == snapAck {
		if s, ok := n.senders[from]; ok {
			select {
			case s.acks <- f:
			default: // the sender is behind; it will time out and resume
			}
		}
		return nil
	}
	ack := wireSnapshotFrame{Kind: snapAck, From: n.cfg.ID, To: from, Transfer: f.Transfer, Slot: f.Slot, Ballot: f.Ballot}
	reply := func() { n.tr.Send(from, encodeMsgpack(&ack)) }
	if !n.rn.WantsSnapshot(f.Slot) {
		// Caught up meanwhile (or a stale transfer): nothing to install.
		ack.Done = true
		reply()
		return nil
	}
	if lead := n.rn.Leader(); lead != paxos.None && uint64(lead) != from {
		// Not from the leader this replica follows: a deposed leader's
		// transfer, which would compete with the leader's. Its sender gives
		// up after a few timeouts.
		return nil
	}
	r := n.incoming
	if r != nil && r.from == from && f.Transfer < r.transfer {
		// A late chunk of an older transfer from the same sender (ids grow
		// across its lives): it must not restart the newer one.
		return nil
	}
	if r == nil || r.from != from || r.transfer != f.Transfer || r.slot != f.Slot {
		if f.Offset != 0 {
			ack.Offset = 0 // a transfer we know nothing of: from the start
			reply()
			return nil
		}
		n.abortIncoming()
		b := storage.Ballot{Round: f.Ballot.Round, Node: f.Ballot.Node}
		w, err := n.snaps.Create(f.Slot, b)
		if err != nil {
			return stopOnStoreFailure(fmt.Errorf("creating a snapshot to receive: %w", err))
		}
		r = &snapReceiver{from: from, transfer: f.Transfer, slot: f.Slot, ballot: b, size: f.Size, checksum: f.Checksum, w: w, h: storage.NewChecksum()}
		n.incoming = r
		n.log.Info("receiving a snapshot", "from", from, "slot", f.Slot, "bytes", f.Size)
	}
	switch {
	case f.Offset != r.next || f.Size != r.size || f.Checksum != r.checksum:
		// Out of order, or a duplicate: say where we are.
	case crc32.Checksum(f.Data, castagnoli) != f.DataCRC:
		n.log.Warn("refused a corrupt snapshot chunk", "from", from, "slot", f.Slot, "offset", f.Offset)
	case r.next+uint64(len(f.Data)) > r.size:
		n.log.Warn("refused a snapshot chunk past the snapshot's size", "from", from, "slot", f.Slot, "offset", f.Offset)
	default:
		if _, err := r.w.Write(f.Data); err != nil {
			n.abortIncoming()
			return stopOnStoreFailure(fmt.Errorf("writing a received snapshot: %w", err))
		}
		r.h.Write(f.Data)
		r.next += uint64(len(f.Data))
		if f.Done && r.next == r.size {
			return n.finishIncoming(ack)
		}
	}
	ack.Offset = r.next
	reply()
	return nil
}

// finishIncoming checks a fully received snapshot, commits it and
// installs it, then tells the sender.
func (n *Node) finishIncoming(ack wireSnapshotFrame) error {
	r := n.incoming
	n.incoming = nil
	if sum := r.h.Sum32(); sum != r.checksum {
		r.w.Abort()
		n.log.Error("refused a received snapshot: checksum mismatch", "slot", r.slot, "got", sum, "want", r.checksum)
		ack.Offset = 0
		n.tr.Send(r.from, encodeMsgpack(&ack))
		return nil
	}
	// Commit makes the snapshot durable before anything refers to it.
	m, err := r.w.Commit()
	if err != nil {
		return stopOnStoreFailure(fmt.Errorf("committing a received snapshot: %w", err))
	}
	if err := n.installSnapshot(m); err != nil {
		// The state machine may be half restored: the replica must stop.
		return fatalError{err}
	}
	ack.Offset, ack.Done = r.size, true
	n.tr.Send(r.from, encodeMsgpack(&ack))
	n.events.emit(SnapshotInstalled{Slot: m.Slot, Bytes: m.Size, From: r.from})
	return nil
}

// installSnapshot restores the state machine from the committed snapshot
// m, records the compaction point in the log (durably) and tells the core,
// with the configuration state the snapshot carries: the configurations
// of the slots after it (a joining replica learns its configuration so).
func (n *Node) installSnapshot(m storage.Meta) error {
	cs, err := n.loadSnapshot(m, n.joining)
	if err != nil {
		return fmt.Errorf("engine: installing a received snapshot: %w", err)
	}
	if cs == nil {
		// Version 1, from a leader of an older version: it predates
		// configuration changes, so the configuration is the one this
		// replica has. (A joining replica has none: loadSnapshot refused
		// it before restoring anything.)
		cs = n.confs
		if cs == nil {
			cs = paxos.ConfigState{{From: 1, Config: n.rn.Status().Config}}
		}
	}
	c := paxos.Compacted{Slot: m.Slot, Ballot: paxos.Ballot{Round: m.Ballot.Round, Node: paxos.NodeID(m.Ballot.Node)}}
	if err := n.compactWAL(c); err != nil {
		return err
	}
	if !n.rn.InstallSnapshot(c, cs) {
		return fmt.Errorf("engine: the core refused a snapshot of slot %d with configuration state %v", m.Slot, cs)
	}
	n.confs = cs.Compact(m.Slot)
	n.syncPeers()
	if n.joining {
		n.joining = false
		n.log.Info("joined the cluster: learned the configuration from the leader's snapshot", "slot", m.Slot, "configuration", n.confs.Latest())
	}
	// The snapshot and the compaction point are durable: the replica holds
	// state, and says so from now on.
	n.freshState.Store(false)
	n.setPeerState(func(s *paxosnet.PeerState) { s.Fresh, s.Joining = false, false })
	n.lastSnapSlot, n.bytesSinceSnap = m.Slot, 0
	n.pruneSnapshots()
	n.metrics.snapshotInstalled(m.Size)
	n.log.Info("installed a snapshot from the leader", "slot", m.Slot, "bytes", m.Size)
	return nil
}

func (n *Node) abortIncoming() {
	if n.incoming != nil {
		n.incoming.w.Abort()
		n.incoming = nil
	}
}
