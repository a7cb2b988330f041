// Package chatroom is the example replicated state machine of paxos-go,
// the chat room of the project it descends from: an append-only log of
// messages. Put appends a message; Get returns the log, or the part of it
// from an offset, so that a client need not fetch everything each time.
//
// Room is the state machine (an engine.StateMachine and engine.Querier);
// Client is the client library, on top of engine.Client.
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
//	put   'P' message bytes                   → reply: the log's new length (uvarint)
//	get   'G' from:uvarint max:uvarint        → reply: a page (below)
//
// A get runs as a command through the log (like the original) or as a
// read-only query (linearizable by read index, no slot). A page:
//
//	total:uvarint first:uvarint count:uvarint (len:uvarint message)*
//
// holds messages from index first (0-based) on, at most max bytes of them
// (at least one), and the log's total length.

const (
	opPut = 'P'
	opGet = 'G'

	// MaxMessageBytes bounds one message.
	MaxMessageBytes = 64 << 10
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

// Apply implements engine.StateMachine.
func (r *Room) Apply(slot uint64, cmd []byte) []byte {
	if len(cmd) > 0 && cmd[0] == opPut {
		r.messages = append(r.messages, string(cmd[1:]))
		return binary.AppendUvarint(nil, uint64(len(r.messages)))
	}
	return r.Query(cmd)
}

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
		if err != nil || l > MaxMessageBytes {
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
