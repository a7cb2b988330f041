package engine

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/paxos-go/paxos/engine/paxos"
)

// Messages between replicas travel as msgpack arrays; entry values are
// the core's binary batches, carried as msgpack bin without re-encoding:
//
//	message = [type, from, to, [round, node], slot, commit,
//	           [[slot, [round, node], value]...], reject, context, value]

var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.StructToArray = true
	// Bounds what a decoder allocates up front for a length read from the
	// wire; longer collections grow as their bytes are actually read.
	h.MaxInitLen = 4096
	return h
}()

type wireBallot struct {
	Round uint64
	Node  uint64
}

type wireEntry struct {
	Slot   uint64
	Ballot wireBallot
	Value  view
}

type wireMessage struct {
	Type    uint8
	From    uint64
	To      uint64
	Ballot  wireBallot
	Slot    uint64
	Commit  uint64
	Entries []wireEntry
	Reject  bool
	Context uint64
	Value   view
}

// messageCodec encodes and decodes messages, reusing its buffers. It is
// not safe for concurrent use: the node's loop owns one.
// view is a []byte that decodes as a view of the decoder's input instead
// of a copy. It is on the wire exactly what []byte is (msgpack bin), but
// msgpack decodes a []byte by growing it MaxInitLen bytes at a time and
// copying all of it at each step: quadratic in the value's length. A 256
// KiB batch took 8.7 ms to decode that way and takes 1 µs as a view;
// profiling 1 KiB commands at 256 clients found 56% of the CPU there.
// Every decoder here reads a buffer its caller owns (a received frame),
// so the view may outlive the decode.
type view []byte

// MarshalBinary returns v itself: msgpack writes it as bin.
func (v view) MarshalBinary() ([]byte, error) { return v, nil }

// UnmarshalBinary keeps data, the bin's bytes in the input, without
// copying. (An empty bin stays empty, not nil, as with []byte.)
func (v *view) UnmarshalBinary(data []byte) error {
	if data == nil {
		data = []byte{}
	}
	*v = data
	return nil
}

type messageCodec struct {
	enc     *codec.Encoder
	dec     *codec.Decoder
	scratch []byte
	wm      wireMessage
}

func newMessageCodec() *messageCodec {
	mc := &messageCodec{scratch: make([]byte, 0, 1024)}
	mc.enc = codec.NewEncoderBytes(&mc.scratch, msgpackHandle)
	mc.dec = codec.NewDecoderBytes(nil, msgpackHandle)
	return mc
}

// encode returns m's encoding in a new slice, which the caller owns.
func (mc *messageCodec) encode(m paxos.Message) []byte {
	wm := &mc.wm
	*wm = wireMessage{
		Type: uint8(m.Type), From: uint64(m.From), To: uint64(m.To),
		Ballot: wireBallot{m.Ballot.Round, uint64(m.Ballot.Node)},
		Slot:   m.Slot, Commit: m.Commit, Reject: m.Reject, Context: m.Context, Value: m.Value,
		Entries: wm.Entries[:0],
	}
	for _, e := range m.Entries {
		wm.Entries = append(wm.Entries, wireEntry{Slot: e.Slot, Ballot: wireBallot{e.Ballot.Round, uint64(e.Ballot.Node)}, Value: e.Value})
	}
	mc.enc.ResetBytes(&mc.scratch)
	if err := mc.enc.Encode(wm); err != nil {
		panic(fmt.Sprintf("engine: encoding a message: %v", err)) // a fixed struct: a bug
	}
	clear(wm.Entries) // do not keep the values alive
	return append([]byte(nil), mc.scratch...)
}

// decode decodes a message. Its values are views of b, which the caller
// hands over (a received frame belongs to its receiver).
func (mc *messageCodec) decode(b []byte) (paxos.Message, error) {
	var wm wireMessage
	mc.dec.ResetBytes(b)
	if err := mc.dec.Decode(&wm); err != nil {
		return paxos.Message{}, fmt.Errorf("engine: malformed message: %w", err)
	}
	if n := mc.dec.NumBytesRead(); n != len(b) {
		return paxos.Message{}, fmt.Errorf("engine: malformed message: %d trailing bytes", len(b)-n)
	}
	m := paxos.Message{
		Type: paxos.MessageType(wm.Type), From: paxos.NodeID(wm.From), To: paxos.NodeID(wm.To),
		Ballot: paxos.Ballot{Round: wm.Ballot.Round, Node: paxos.NodeID(wm.Ballot.Node)},
		Slot:   wm.Slot, Commit: wm.Commit, Reject: wm.Reject, Context: wm.Context, Value: wm.Value,
	}
	if len(wm.Entries) > 0 {
		m.Entries = make([]paxos.Entry, len(wm.Entries))
		for i, e := range wm.Entries {
			m.Entries[i] = paxos.Entry{Slot: e.Slot, Ballot: paxos.Ballot{Round: e.Ballot.Round, Node: paxos.NodeID(e.Ballot.Node)}, Value: e.Value}
		}
	}
	return m, nil
}

func encodeMsgpack(v any) []byte {
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(v); err != nil {
		panic(fmt.Sprintf("engine: encoding %T: %v", v, err)) // fixed structs: a bug
	}
	return b
}

func decodeMsgpack(b []byte, v any) error {
	dec := codec.NewDecoderBytes(b, msgpackHandle)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if n := dec.NumBytesRead(); n != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	return nil
}
