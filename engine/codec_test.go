package engine

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
)

func TestMessageRoundTrip(t *testing.T) {
	mc := newMessageCodec()
	m := paxos.Message{
		Type: paxos.MsgAccept, From: 1, To: 2, Ballot: paxos.Ballot{Round: 7, Node: 1}, Slot: 41, Commit: 40,
		Entries: []paxos.Entry{{Slot: 42, Ballot: paxos.Ballot{Round: 7, Node: 1}, Value: paxos.AppendCommand(nil, paxos.Command{ClientID: 3, Seq: 4, Payload: []byte("x")})}},
		Context: 9, Value: []byte("v"),
	}
	got, err := mc.decode(mc.encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if paxos.DescribeMessage(got) != paxos.DescribeMessage(m) || !bytes.Equal(got.Value, m.Value) {
		t.Fatalf("got %s, want %s", paxos.DescribeMessage(got), paxos.DescribeMessage(m))
	}
}

// TestMessageValuesAreViews checks the two promises of view: on the wire
// a value is exactly what a []byte field makes (msgpack bin), and a
// decoded value is a view of the frame, not a copy, however long.
func TestMessageValuesAreViews(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	type plainEntry struct {
		Slot   uint64
		Ballot wireBallot
		Value  []byte
	}
	type plainMessage struct {
		Type         uint8
		From, To     uint64
		Ballot       wireBallot
		Slot, Commit uint64
		Entries      []plainEntry
		Reject       bool
		Context      uint64
		Value        []byte
	}
	for _, v := range [][]byte{nil, {}, []byte("small"), big} {
		m := paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2, Slot: 3,
			Entries: []paxos.Entry{{Slot: 4, Value: v}}, Value: v}
		frame := newMessageCodec().encode(m)
		want := encodeMsgpack(&plainMessage{Type: uint8(m.Type), From: 1, To: 2, Slot: 3, Entries: []plainEntry{{Slot: 4, Value: v}}, Value: v})
		if !bytes.Equal(frame, want) {
			t.Fatalf("value of %d bytes: encoded differently from a []byte field", len(v))
		}
		got, err := newMessageCodec().decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range [][]byte{got.Value, got.Entries[0].Value} {
			if !bytes.Equal(d, v) || (d == nil) != (v == nil) {
				t.Fatalf("value of %d bytes (nil %v) decoded as %d bytes (nil %v)", len(v), v == nil, len(d), d == nil)
			}
			if len(d) > 0 && !within(d, frame) {
				t.Errorf("value of %d bytes was copied out of the frame", len(v))
			}
		}
	}
}

// within reports whether b lies inside buf's memory.
func within(b, buf []byte) bool {
	start, end := uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&buf[len(buf)-1]))
	p := uintptr(unsafe.Pointer(&b[0]))
	return start <= p && p+uintptr(len(b)-1) <= end
}

// BenchmarkDecodeAccept decodes an Accept carrying a 256 KiB batch, the
// size of a slot's value under load with 1 KiB commands.
func BenchmarkDecodeAccept(b *testing.B) {
	mc := newMessageCodec()
	frame := mc.encode(paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2,
		Entries: []paxos.Entry{{Slot: 1, Value: make([]byte, 256<<10)}}})
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := mc.decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeMessage feeds arbitrary bytes to the message decoder and, if
// they decode, to a replica: nothing may panic. What the hand-written
// decoder accepts, the generic msgpack decoder must read the same way,
// and it must encode back to the same bytes when written in the
// encoder's own forms.
//
//	go test -fuzz=FuzzDecodeMessage ./engine
func FuzzDecodeMessage(f *testing.F) {
	mc := newMessageCodec()
	for _, m := range []paxos.Message{
		{Type: paxos.MsgPrepare, From: 2, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 1},
		{Type: paxos.MsgAccept, From: 2, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Entries: []paxos.Entry{{Slot: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Value: paxos.NoopValue()}}},
		{Type: paxos.MsgPromise, From: 3, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 1}, Entries: []paxos.Entry{{Slot: 5, Value: []byte{1, 1, 1, 0}}}},
		{Type: paxos.MsgPropose, From: 3, To: 1, Value: paxos.AppendCommand(nil, paxos.Command{ClientID: 1, Seq: 1})},
	} {
		f.Add(mc.encode(m))
	}
	f.Add([]byte{0x9a, 0xcc, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := newMessageCodec().decode(data)
		if err != nil {
			return
		}
		ref, err := libraryDecode(data)
		if err != nil || !sameMessage(m, ref) {
			t.Fatalf("the generic decoder reads %s (%v), the node's %s", paxos.DescribeMessage(ref), err, paxos.DescribeMessage(m))
		}
		again, err := newMessageCodec().decode(newMessageCodec().encode(m))
		if err != nil || !sameMessage(again, m) {
			t.Fatalf("re-encoded: %s (%v), want %s", paxos.DescribeMessage(again), err, paxos.DescribeMessage(m))
		}
		rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Peers: []paxos.NodeID{1, 2, 3}, Incarnation: 1, Rand: newRand()})
		if err != nil {
			t.Fatal(err)
		}
		m.To = 1
		rn.Step(m)
		rn.Ready()
	})
}

// FuzzDecodeClientRequest feeds arbitrary bytes to the client request
// decoder, as the client port reads them from a connection: nothing may
// panic, allocation is bounded by the frame, and what decodes encodes
// back to a request that decodes the same.
//
//	go test -fuzz=FuzzDecodeClientRequest ./engine
func FuzzDecodeClientRequest(f *testing.F) {
	for _, r := range []clientproto.Request{
		{ID: 1, Op: clientproto.OpSubmit, ClientID: 7, Seq: 1, Payload: []byte("P hello"), Redirect: true},
		{ID: 1 << 40, Op: clientproto.OpQuery, Payload: []byte{'G', 0, 0}},
		{ID: 3, Op: clientproto.OpStatus},
	} {
		f.Add(encodeMsgpack(&r))
	}
	f.Add([]byte{0x96, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		before := heapAllocated()
		var req clientproto.Request
		err := decodeMsgpack(data, &req)
		if got := heapAllocated() - before; got > uint64(64<<10+16*len(data)) {
			t.Fatalf("decoding %d bytes allocated %d", len(data), got)
		}
		if err != nil {
			return
		}
		var again clientproto.Request
		if err := decodeMsgpack(encodeMsgpack(&req), &again); err != nil ||
			again.ID != req.ID || again.Op != req.Op || again.ClientID != req.ClientID || again.Seq != req.Seq ||
			again.Redirect != req.Redirect || !bytes.Equal(again.Payload, req.Payload) {
			t.Fatalf("round trip: %+v (%v), want %+v", again, err, req)
		}
	})
}
