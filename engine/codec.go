package engine

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/msgp"
)

// Messages between replicas travel as msgpack arrays; entry values are
// the core's binary batches, carried as msgpack bin without re-encoding:
//
//	message = [type, from, to, [round, node], slot, commit,
//	           [[slot, [round, node], value]...], reject, context, value]

var msgpackHandle = msgp.Handle

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
// view is msgp.View: a []byte that decodes as a view of the decoder's
// input (a received frame) instead of a copy.
type view = msgp.View

// messageCodec encodes and decodes messages, reusing its buffers. It is
// not safe for concurrent use: the node's loop owns one.
type messageCodec struct {
	enc     *codec.Encoder
	scratch []byte
	wm      wireMessage
}

func newMessageCodec() *messageCodec {
	mc := &messageCodec{scratch: make([]byte, 0, 1024)}
	mc.enc = codec.NewEncoderBytes(&mc.scratch, msgpackHandle)
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
//
// It is a strict decoder of exactly what encode writes (msgpack arrays,
// unsigned integers, booleans, bin or nil for values), written by hand so
// that nothing is allocated for what the frame does not hold: an entry
// takes at least minWireEntryBytes on the wire, so a count of entries
// above what the rest of the frame can hold is refused before the entries
// are allocated, and they are then allocated once, at their exact count.
// (The generic decoder grew the entries one by one: a 4 MB frame declaring
// 4 million nil entries took a follower from 36 MB to 748 MB before it
// was refused.)
func (mc *messageCodec) decode(b []byte) (paxos.Message, error) {
	m, err := decodeMessage(b)
	if err != nil {
		return paxos.Message{}, fmt.Errorf("engine: malformed message: %w", err)
	}
	return m, nil
}

// minWireEntryBytes is the least an entry takes on the wire: a fixarray
// header, a slot, a ballot (a fixarray of two integers) and a value (nil),
// one byte each.
const minWireEntryBytes = 6

func decodeMessage(b []byte) (paxos.Message, error) {
	r := wireReader{b: b}
	var m paxos.Message
	if err := r.arrayOf(10, "message"); err != nil {
		return m, err
	}
	typ := r.uint("type")
	if typ > 255 {
		return m, fmt.Errorf("message type %d", typ)
	}
	m.Type = paxos.MessageType(typ)
	m.From = paxos.NodeID(r.uint("from"))
	m.To = paxos.NodeID(r.uint("to"))
	m.Ballot = r.ballot()
	m.Slot = r.uint("slot")
	m.Commit = r.uint("commit")
	count, err := r.arrayLen("entries")
	if err != nil {
		return m, err
	}
	if count > r.left()/minWireEntryBytes {
		return m, fmt.Errorf("%d entries declared, but only %d bytes left in the frame", count, r.left())
	}
	if count > 0 {
		m.Entries = make([]paxos.Entry, count)
		for i := range m.Entries {
			e := &m.Entries[i]
			if err := r.arrayOf(3, "entry"); err != nil {
				return paxos.Message{}, err
			}
			e.Slot = r.uint("entry slot")
			e.Ballot = r.ballot()
			e.Value = r.bin("entry value")
			if r.err != nil {
				return paxos.Message{}, r.err
			}
		}
	}
	m.Reject = r.bool("reject")
	m.Context = r.uint("context")
	m.Value = r.bin("value")
	if r.err != nil {
		return paxos.Message{}, r.err
	}
	if r.left() != 0 {
		return paxos.Message{}, fmt.Errorf("%d trailing bytes", r.left())
	}
	return m, nil
}

// wireReader reads the msgpack that encode writes. After an error, every
// read returns a zero value and err keeps the first error.
type wireReader struct {
	b   []byte
	off int
	err error
}

func (r *wireReader) left() int { return len(r.b) - r.off }

func (r *wireReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// next returns the next n bytes, or nil (and an error) if there are fewer.
func (r *wireReader) next(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.left() {
		r.fail("%s: %d bytes needed, %d left", what, n, r.left())
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *wireReader) byte1(what string) (byte, bool) {
	p := r.next(1, what)
	if p == nil {
		return 0, false
	}
	return p[0], true
}

// beUint reads an n-byte big-endian unsigned integer.
func (r *wireReader) beUint(n int, what string) uint64 {
	p := r.next(n, what)
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v
}

// uint reads an unsigned integer: a positive fixint or uint 8 to 64.
func (r *wireReader) uint(what string) uint64 {
	c, ok := r.byte1(what)
	if !ok {
		return 0
	}
	switch {
	case c <= 0x7f:
		return uint64(c)
	case c == 0xcc:
		return r.beUint(1, what)
	case c == 0xcd:
		return r.beUint(2, what)
	case c == 0xce:
		return r.beUint(4, what)
	case c == 0xcf:
		return r.beUint(8, what)
	}
	r.fail("%s: not an unsigned integer (0x%02x)", what, c)
	return 0
}

func (r *wireReader) bool(what string) bool {
	c, ok := r.byte1(what)
	switch {
	case !ok:
	case c == 0xc2:
		return false
	case c == 0xc3:
		return true
	default:
		r.fail("%s: not a boolean (0x%02x)", what, c)
	}
	return false
}

// arrayLen reads an array header (nil reads as an empty array). A length
// above the bytes left is refused (an element takes at least one byte);
// the caller checks it more tightly, knowing what an element takes.
func (r *wireReader) arrayLen(what string) (int, error) {
	c, ok := r.byte1(what)
	var n uint64
	switch {
	case !ok:
	case c == 0xc0:
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n = r.beUint(2, what)
	case c == 0xdd:
		n = r.beUint(4, what)
	default:
		r.fail("%s: not an array (0x%02x)", what, c)
	}
	if r.err == nil && n > uint64(r.left()) {
		// Every element takes at least a byte: refuse before the length
		// becomes an int (which could wrap on a 32-bit build).
		r.fail("%s: %d elements declared, but only %d bytes left in the frame", what, n, r.left())
	}
	return int(min(n, uint64(r.left()))), r.err
}

// arrayOf reads the header of an array of exactly n elements.
func (r *wireReader) arrayOf(n int, what string) error {
	got, err := r.arrayLen(what)
	if err == nil && got != n {
		r.fail("%s: an array of %d elements, want %d", what, got, n)
	}
	return r.err
}

func (r *wireReader) ballot() paxos.Ballot {
	if r.arrayOf(2, "ballot") != nil {
		return paxos.Ballot{}
	}
	return paxos.Ballot{Round: r.uint("ballot round"), Node: paxos.NodeID(r.uint("ballot node"))}
}

// bin reads a value: a view of the bytes of a bin (empty, not nil, for an
// empty one), or nil for nil.
func (r *wireReader) bin(what string) []byte {
	c, ok := r.byte1(what)
	var n uint64
	switch {
	case !ok:
		return nil
	case c == 0xc0:
		return nil
	case c == 0xc4:
		n = r.beUint(1, what)
	case c == 0xc5:
		n = r.beUint(2, what)
	case c == 0xc6:
		n = r.beUint(4, what)
	default:
		r.fail("%s: not a bin (0x%02x)", what, c)
		return nil
	}
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.fail("%s: %d bytes declared, %d left", what, n, r.left())
		return nil
	}
	return r.next(int(n), what)
}

func encodeMsgpack(v any) []byte { return msgp.Encode(v) }

func decodeMsgpack(b []byte, v any) error { return msgp.Decode(b, v) }
