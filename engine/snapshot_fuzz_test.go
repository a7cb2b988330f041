package engine

import (
	"bytes"
	"hash/crc32"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
	"github.com/paxos-go/paxos/internal/memfs"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// sentFrames is a transport that keeps what is sent.
type sentFrames struct{ frames [][]byte }

func (s *sentFrames) Send(_ uint64, p []byte) { s.frames = append(s.frames, p) }

// newFollowerForFrames assembles the parts of a follower that snapshot
// frames touch: core, store, log (in memory), state machine.
func newFollowerForFrames(t testing.TB) (*Node, *sentFrames, *logMachine) {
	w, _, err := wal.Open("/wal", wal.Options{FS: memfs.New(), SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Peers: []paxos.NodeID{1, 2, 3}, Incarnation: 1, Rand: newRand()})
	if err != nil {
		t.Fatal(err)
	}
	sent, sm := &sentFrames{}, &logMachine{}
	n := &Node{
		cfg: Config{ID: 1, SnapshotsKept: 2}, log: hclog.NewNullLogger(), sm: sm, wal: w,
		snaps: storage.NewMem(), rn: rn, sessions: session.New(0), senders: map[uint64]*snapSender{},
	}
	n.tr = &frameTransport{sent}
	t.Cleanup(func() { w.Close() })
	return n, sent, sm
}

type frameTransport struct{ *sentFrames }

func (frameTransport) Receive() <-chan []paxosnet.Inbound { return nil }
func (frameTransport) Close() error                       { return nil }

// snapshotBytes is a snapshot of slot holding the given log lines.
func snapshotBytes(slot uint64, lines ...string) []byte {
	var sessions bytes.Buffer
	session.New(0).WriteTo(&sessions)
	b := append(snapshotHeader(slot, paxos.Bootstrap([]paxos.NodeID{1, 2, 3}, nil, nil), sessions.Len()), sessions.Bytes()...)
	for _, l := range lines {
		b = append(b, l+"\n"...)
	}
	return b
}

// chunkFrames cuts data into the frames of a transfer from replica 2.
func chunkFrames(slot uint64, data []byte, chunk int) [][]byte {
	return transferFrames(1<<40|1, slot, data, chunk)
}

// transferFrames cuts data into the frames of transfer id from replica 2.
func transferFrames(id, slot uint64, data []byte, chunk int) [][]byte {
	sum := crc32.Checksum(data, castagnoli)
	var frames [][]byte
	for off := 0; off < len(data); off += chunk {
		part := data[off:min(off+chunk, len(data))]
		f := wireSnapshotFrame{Kind: snapChunk, From: 2, To: 1, Transfer: id, Slot: slot, Ballot: wireBallot{Round: 4, Node: 2},
			Size: uint64(len(data)), Checksum: sum, Offset: uint64(off), Data: part,
			DataCRC: crc32.Checksum(part, castagnoli), Done: off+chunk >= len(data)}
		frames = append(frames, encodeMsgpack(&f))
	}
	return frames
}

// FuzzSnapshotFrames feeds a follower a valid transfer's frames with one
// of them replaced by arbitrary bytes: nothing may panic, and whatever it
// installs must be the snapshot sent, never a corrupted one.
//
//	go test -fuzz=FuzzSnapshotFrames ./engine
func FuzzSnapshotFrames(f *testing.F) {
	data := snapshotBytes(40, "alpha", "beta", "gamma", "delta")
	frames := chunkFrames(40, data, 16)
	for i := range frames {
		f.Add(i, frames[i])
		bad := bytes.Clone(frames[i])
		bad[len(bad)-8] ^= 1
		f.Add(i, bad)
	}
	f.Add(0, []byte{snapshotFrameTag})
	f.Add(1, []byte{snapshotFrameTag, 0xcc, 9})
	f.Fuzz(func(t *testing.T, at int, replacement []byte) {
		n, _, sm := newFollowerForFrames(t)
		for i, fr := range frames {
			if i == at%len(frames) {
				fr = replacement
			}
			if !isSnapshotFrame(fr) {
				continue
			}
			wf, err := decodeSnapshotFrame(fr)
			if err != nil {
				continue
			}
			if err := n.handleSnapshotFrame(2, wf); err != nil {
				if _, fatal := err.(fatalError); fatal {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
		}
		if got := sm.entries(); n.applied != 0 && (n.applied != 40 || len(got) != 4 || got[3] != "delta") {
			t.Fatalf("installed slot %d with %q", n.applied, got)
		}
	})
}

// TestSnapshotFramesInstall is the happy path of the fuzz test, asserted:
// a whole transfer installs the snapshot and is acknowledged as done; a
// transfer with a corrupt chunk is acknowledged at that chunk's offset.
func TestSnapshotFramesInstall(t *testing.T) {
	data := snapshotBytes(40, "alpha", "beta", "gamma", "delta")
	n, sent, sm := newFollowerForFrames(t)
	for _, fr := range chunkFrames(40, data, 16) {
		wf, err := decodeSnapshotFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.handleSnapshotFrame(2, wf); err != nil {
			t.Fatal(err)
		}
	}
	last, err := decodeSnapshotFrame(sent.frames[len(sent.frames)-1])
	if err != nil || !last.Done || n.applied != 40 || len(sm.entries()) != 4 || n.rn.Compacted().Slot != 40 {
		t.Fatalf("after the transfer: last ack %+v (%v), applied %d, state %q, compacted %d", last, err, n.applied, sm.entries(), n.rn.Compacted().Slot)
	}

	n, sent, _ = newFollowerForFrames(t)
	frames := chunkFrames(40, data, 16)
	frames[1] = bytes.Clone(frames[1])
	frames[1][len(frames[1])-8] ^= 1 // in the chunk's data
	for _, fr := range frames[:3] {
		wf, _ := decodeSnapshotFrame(fr)
		n.handleSnapshotFrame(2, wf)
	}
	for i, want := range []uint64{16, 16, 16} {
		a, _ := decodeSnapshotFrame(sent.frames[i])
		if a.Offset != want || a.Done {
			t.Fatalf("ack %d: offset %d done %v, want offset %d: the corrupt chunk 16 must be refused", i, a.Offset, a.Done, want)
		}
	}
	if n.applied != 0 {
		t.Fatal("a transfer with a corrupt chunk was installed")
	}
}

// TestSnapshotTransferOfEarlierLifeIgnored: the sender restarts mid-transfer
// and sends the same snapshot again under a new transfer id; the follower
// starts over with it, acknowledges it under its id, and a late chunk of
// the earlier life's transfer neither restarts nor corrupts it.
func TestSnapshotTransferOfEarlierLifeIgnored(t *testing.T) {
	data := snapshotBytes(40, "alpha", "beta", "gamma", "delta")
	old, cur := transferFrames(1<<40|7, 40, data, 16), transferFrames(2<<40|1, 40, data, 16)
	n, sent, sm := newFollowerForFrames(t)
	step := func(fr []byte) {
		t.Helper()
		wf, err := decodeSnapshotFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.handleSnapshotFrame(2, wf); err != nil {
			t.Fatal(err)
		}
	}
	step(old[0])
	step(old[1])
	step(cur[0])
	step(old[0]) // late, from the earlier life
	step(old[2])
	for _, fr := range cur[1:] {
		step(fr)
	}
	if n.applied != 40 || len(sm.entries()) != 4 {
		t.Fatalf("applied %d, state %q: the new transfer did not install", n.applied, sm.entries())
	}
	last, _ := decodeSnapshotFrame(sent.frames[len(sent.frames)-1])
	if !last.Done || last.Transfer != 2<<40|1 {
		t.Fatalf("last ack %+v: want done, for transfer %d", last, uint64(2<<40|1))
	}
}
