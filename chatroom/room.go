// Package chatroom is the example replicated state machine of paxos-go,
// the chat room of the project it descends from: an append-only log of
// messages. Put appends a message; Get returns the log, or the part of it
// from an offset, so that a client need not fetch everything each time.
//
// Room is the state machine (an engine.StateMachine and engine.Querier);
// Client is the client library, on top of client.Client.
package chatroom

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Commands and queries, as engine payloads:
//
//	put   'P' message bytes                   → reply: the log's new length (uvarint, at least 1),
//	                                            or 0x00 and the reason it was refused
//	get   'G' from:uvarint max:uvarint        → reply: a page (below)
//
// A put of a message longer than MaxMessageBytes is refused by Apply
// itself, on every replica alike, whoever sent it: the room never holds
// what its snapshot could not restore. A command that is neither is
// refused with an empty reply, and changes nothing.
//
// A get runs as a read-only query (linearizable by read index, no slot),
// or as a command through the log (like the original); as a command it is
// read-only (Room.ReadOnly), so the session table keeps no copy of its
// reply, which can be 4 MiB. A page:
//
//	total:uvarint first:uvarint count:uvarint (len:uvarint message)*
//
// holds messages from index first (0-based) on, at most max bytes of them
// (at least one), and the log's total length.

const (
	opPut = 'P'
	opGet = 'G'

	// MaxMessageBytes bounds one message: Apply refuses a longer put.
	MaxMessageBytes = 64 << 10
	// maxRestoreMessageBytes bounds a message in a snapshot that Restore
	// accepts: MaxMessageBytes for every snapshot this version writes, and
	// more for those of earlier versions, whose Apply stored whatever a
	// raw client sent (up to a command's size), so that their replicas
	// can still restart.
	maxRestoreMessageBytes = 16 << 20
	// maxPageBytes bounds the messages of one page, below the frame limit.
	maxPageBytes = 4 << 20
)

// ErrBadCommand is returned for a command the room does not understand.
var ErrBadCommand = errors.New("chatroom: malformed command")

// Room is the chat room's state: the messages, in order.
type Room struct {
	messages []string
}

// New returns an empty room.
func New() *Room { return &Room{} }

// Messages returns a copy of the log.
func (r *Room) Messages() []string { return append([]string(nil), r.messages...) }

// Apply implements engine.StateMachine. A put longer than
// MaxMessageBytes is refused (reply 0x00 and the reason), and nothing is
// appended: the room never commits a message its snapshot could not hold.
func (r *Room) Apply(slot uint64, cmd []byte) []byte {
	if len(cmd) > 0 && cmd[0] == opPut {
		if l := len(cmd) - 1; l > MaxMessageBytes {
			return append([]byte{0}, fmt.Sprintf("message of %d bytes, the limit is %d", l, MaxMessageBytes)...)
		}
		r.messages = append(r.messages, string(cmd[1:]))
		return binary.AppendUvarint(nil, uint64(len(r.messages)))
	}
	return r.Query(cmd)
}

// ReadOnly implements engine.ReadOnlyCommands: every command but a put
// (a get, or one Apply refuses) changes nothing.
func (r *Room) ReadOnly(cmd []byte) bool { return len(cmd) == 0 || cmd[0] != opPut }

// Query implements engine.Querier: a get.
func (r *Room) Query(q []byte) []byte {
	from, max, err := parseGet(q)
	if err != nil {
		return nil // the client reads an empty reply as an error
	}
	return r.page(from, max)
}

func (r *Room) page(from, max uint64) []byte {
	if max == 0 || max > maxPageBytes {
		max = maxPageBytes
	}
	from = min(from, uint64(len(r.messages)))
	var body []byte
	count := 0
	size := uint64(0)
	for _, m := range r.messages[from:] {
		if count > 0 && size+uint64(len(m)) > max {
			break
		}
		size += uint64(len(m))
		body = binary.AppendUvarint(body, uint64(len(m)))
		body = append(body, m...)
		count++
	}
	out := binary.AppendUvarint(nil, uint64(len(r.messages)))
	out = binary.AppendUvarint(out, from)
	out = binary.AppendUvarint(out, uint64(count))
	return append(out, body...)
}

// Snapshot implements engine.StateMachine: the count, then each message
// with its length.
func (r *Room) Snapshot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var b []byte
	b = binary.AppendUvarint(b[:0], uint64(len(r.messages)))
	bw.Write(b)
	for _, m := range r.messages {
		b = binary.AppendUvarint(b[:0], uint64(len(m)))
		bw.Write(b)
		bw.WriteString(m)
	}
	return bw.Flush()
}

// Restore implements engine.StateMachine.
func (r *Room) Restore(rd io.Reader) error {
	br := bufio.NewReader(rd)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("chatroom: snapshot: %w", err)
	}
	msgs := make([]string, 0, min(n, 1<<20))
	for i := uint64(0); i < n; i++ {
		l, err := binary.ReadUvarint(br)
		if err != nil || l > maxRestoreMessageBytes {
			return fmt.Errorf("chatroom: snapshot: message %d: bad length (%v)", i, err)
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(br, b); err != nil {
			return fmt.Errorf("chatroom: snapshot: message %d: %w", i, err)
		}
		msgs = append(msgs, string(b))
	}
	r.messages = msgs
	return nil
}

// ErrRefused is matched by the error of a put the room refused.
var ErrRefused = errors.New("chatroom: put refused")

// DecodePut decodes a put's reply: the log's length after it, or the
// room's refusal.
func DecodePut(resp []byte) (uint64, error) {
	if len(resp) > 0 && resp[0] == 0 {
		return 0, fmt.Errorf("%w: %s", ErrRefused, resp[1:])
	}
	p, n := binary.Uvarint(resp)
	if n <= 0 || n != len(resp) {
		return 0, fmt.Errorf("%w: put answered %x", ErrBadCommand, resp)
	}
	return p, nil
}

// PutCommand encodes a put.
func PutCommand(msg string) []byte { return append([]byte{opPut}, msg...) }

// GetCommand encodes a get of the messages from index from on, at most
// max bytes of them (0: the largest page).
func GetCommand(from, max uint64) []byte {
	b := binary.AppendUvarint([]byte{opGet}, from)
	return binary.AppendUvarint(b, max)
}

func parseGet(q []byte) (from, max uint64, err error) {
	if len(q) == 0 || q[0] != opGet {
		return 0, 0, ErrBadCommand
	}
	rest := q[1:]
	var n int
	if from, n = binary.Uvarint(rest); n <= 0 {
		return 0, 0, ErrBadCommand
	}
	rest = rest[n:]
	if max, n = binary.Uvarint(rest); n <= 0 || n != len(rest) {
		return 0, 0, ErrBadCommand
	}
	return from, max, nil
}

// Page is a part of the log.
type Page struct {
	Total    uint64   // the log's length
	First    uint64   // the index of Messages[0]
	Messages []string // consecutive messages from First on
}

// DecodePage decodes a get's reply.
func DecodePage(b []byte) (Page, error) {
	var p Page
	var count uint64
	for _, f := range []*uint64{&p.Total, &p.First, &count} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return Page{}, fmt.Errorf("%w: bad page header", ErrBadCommand)
		}
		*f, b = v, b[n:]
	}
	if count > uint64(len(b)) {
		return Page{}, fmt.Errorf("%w: page of %d messages in %d bytes", ErrBadCommand, count, len(b))
	}
	p.Messages = make([]string, 0, count)
	for i := uint64(0); i < count; i++ {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return Page{}, fmt.Errorf("%w: bad message %d in a page", ErrBadCommand, i)
		}
		p.Messages = append(p.Messages, string(b[n:n+int(l)]))
		b = b[n+int(l):]
	}
	if len(b) != 0 || p.First+count > p.Total {
		return Page{}, fmt.Errorf("%w: inconsistent page", ErrBadCommand)
	}
	return p, nil
}
