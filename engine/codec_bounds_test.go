package engine

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/paxos-go/paxos/engine/paxos"
)

// heapAllocated returns the bytes allocated on the heap so far.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapLive returns the bytes of live heap objects, after a GC.
func heapLive() uint64 {
	runtime.GC()
	return heapObjects()
}

// heapObjects returns the bytes of heap objects, live or not yet
// collected, without forcing a GC: sampled during an attack, it sees what
// the node holds (and a little garbage).
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// acceptWithEntries returns the frame of an Accept from replica 2 to 1
// with count entries, each encoded as entry (a whole msgpack value), in
// an array32.
func acceptWithEntries(count int, entry []byte) []byte {
	b := []byte{0x9a, byte(paxos.MsgAccept), 2, 1, 0x92, 5, 2, 0, 0}
	b = append(b, 0xdd)
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	b = append(b, bytes.Repeat(entry, count)...)
	return append(b, 0xc2, 0, 0xc0)
}

// A 4 MB Accept declaring 4 million nil entries (one byte each) is refused
// before anything is allocated for them; one of 4 MB of the smallest
// well-formed entries (6 bytes) decodes in exactly one allocation of its
// entries, 8 bytes of heap per byte of frame, and the replica refuses it.
// (Found by review: the first took a follower from 36 MB to 748 MB.)
func TestDecodeBoundsEntriesByFrame(t *testing.T) {
	nilEntries := acceptWithEntries(4<<20, []byte{0xc0})
	if len(nilEntries) < 4<<20 {
		t.Fatal("short frame")
	}
	mc := newMessageCodec()
	before := heapAllocated()
	if _, err := mc.decode(nilEntries); err == nil {
		t.Fatal("4 million nil entries decoded")
	}
	if got := heapAllocated() - before; got > 16<<10 {
		t.Fatalf("refusing 4 million nil entries allocated %d bytes", got)
	}

	// [slot 1, [0, 0], nil]: 6 bytes, the least an entry takes.
	small := acceptWithEntries(4<<20/minWireEntryBytes, []byte{0x93, 0x01, 0x92, 0x00, 0x00, 0xc0})
	live := heapLive()
	before = heapAllocated()
	m, err := mc.decode(small)
	if err != nil {
		t.Fatal(err)
	}
	allocs := heapAllocated() - before
	if bound := uint64(8*len(small)) + 16<<10; allocs > bound {
		t.Fatalf("decoding %d entries in %d bytes allocated %d bytes, above %d", len(m.Entries), len(small), allocs, bound)
	}
	rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Peers: []paxos.NodeID{1, 2, 3}, Incarnation: 1, Rand: newRand()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rn.Step(m); err == nil {
		t.Fatal("an Accept of empty values was taken")
	}
	m = paxos.Message{}
	if grown := int64(heapLive()) - int64(live); grown > 1<<20 {
		t.Fatalf("the live heap grew by %d bytes after the message was refused", grown)
	}
}

// libraryDecode decodes a message with the generic msgpack decoder, as
// the node did before: the reference the hand-written decoder must agree
// with wherever it accepts.
func libraryDecode(b []byte) (paxos.Message, error) {
	var wm wireMessage
	if err := decodeMsgpack(b, &wm); err != nil {
		return paxos.Message{}, err
	}
	m := paxos.Message{
		Type: paxos.MessageType(wm.Type), From: paxos.NodeID(wm.From), To: paxos.NodeID(wm.To),
		Ballot: paxos.Ballot{Round: wm.Ballot.Round, Node: paxos.NodeID(wm.Ballot.Node)},
		Slot:   wm.Slot, Commit: wm.Commit, Reject: wm.Reject, Context: wm.Context, Value: wm.Value,
	}
	for _, e := range wm.Entries {
		m.Entries = append(m.Entries, paxos.Entry{Slot: e.Slot, Ballot: paxos.Ballot{Round: e.Ballot.Round, Node: paxos.NodeID(e.Ballot.Node)}, Value: e.Value})
	}
	return m, nil
}

func sameMessage(a, b paxos.Message) bool {
	if a.Type != b.Type || a.From != b.From || a.To != b.To || a.Ballot != b.Ballot || a.Slot != b.Slot ||
		a.Commit != b.Commit || a.Reject != b.Reject || a.Context != b.Context || !sameValue(a.Value, b.Value) ||
		len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		x, y := a.Entries[i], b.Entries[i]
		if x.Slot != y.Slot || x.Ballot != y.Ballot || !sameValue(x.Value, y.Value) {
			return false
		}
	}
	return true
}

// sameValue compares values, nil and empty apart.
func sameValue(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

// randomMessage draws a message with fields of every width.
func randomMessage(rng *rand.Rand) paxos.Message {
	num := func() uint64 {
		switch rng.IntN(5) {
		case 0:
			return rng.Uint64N(128)
		case 1:
			return rng.Uint64N(1 << 8)
		case 2:
			return rng.Uint64N(1 << 16)
		case 3:
			return rng.Uint64N(1 << 32)
		}
		return rng.Uint64()
	}
	val := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		case 2:
			return make([]byte, rng.IntN(300))
		}
		return make([]byte, rng.IntN(70000))
	}
	m := paxos.Message{Type: paxos.MessageType(rng.IntN(13)), From: paxos.NodeID(num()), To: paxos.NodeID(num()),
		Ballot: paxos.Ballot{Round: num(), Node: paxos.NodeID(num())}, Slot: num(), Commit: num(),
		Reject: rng.IntN(2) == 0, Context: num(), Value: val()}
	for i := rng.IntN(20); i > 0; i-- {
		m.Entries = append(m.Entries, paxos.Entry{Slot: num(), Ballot: paxos.Ballot{Round: num(), Node: paxos.NodeID(num())}, Value: val()})
	}
	if rng.IntN(20) == 0 {
		m.Entries = make([]paxos.Entry, 70000) // an array32 header
	}
	return m
}

// The hand-written decoder reads back whatever encode writes, as the
// generic decoder does.
func TestDecodeAgreesWithEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mc := newMessageCodec()
	for i := 0; i < 300; i++ {
		m := randomMessage(rng)
		frame := mc.encode(m)
		got, err := mc.decode(frame)
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, paxos.DescribeMessage(m), err)
		}
		ref, err := libraryDecode(frame)
		if err != nil {
			t.Fatal(err)
		}
		if !sameMessage(got, m) || !sameMessage(ref, m) {
			t.Fatalf("message %d: decoded %s, want %s", i, paxos.DescribeMessage(got), paxos.DescribeMessage(m))
		}
	}
}
