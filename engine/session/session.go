// Package session gives client commands exactly-once execution. Its Table
// is part of the replicated state: it is updated only by applying
// committed slots, in slot order, on every replica alike, and it goes into
// snapshots with the state machine. For each client it remembers the last
// sequence number executed and its response, so a retried command returns
// the response of the first execution instead of running again.
//
// A client has one command outstanding at a time and numbers its commands
// 1, 2, 3, ... (a new client, or a client that lost its state, must use a
// new ClientID). Sessions expire deterministically, by log position: a
// session not used for TTL slots is forgotten at the same slot on every
// replica. A command from a forgotten client with a sequence number above 1
// is refused as Expired rather than executed, since it may be a retry of a
// command that already ran. (A retry of command 1 after expiry cannot be
// told from a new client; choose TTL far above any retry window.)
package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/paxos-go/paxos/engine/paxos"
)

// DefaultTTL is the default number of slots a session lives unused.
const DefaultTTL = 1 << 20

// Outcome is what to do with a command.
type Outcome uint8

const (
	// Execute: a new command; execute it and Record the response.
	Execute Outcome = iota
	// Duplicate: a retry of the client's last command; return the
	// recorded response without executing.
	Duplicate
	// Stale: older than the client's last command, which means the client
	// has already moved on; refuse it.
	Stale
	// Expired: the client is unknown and this is not its first command:
	// its session expired; refuse it.
	Expired
)

func (o Outcome) String() string {
	return [...]string{"execute", "duplicate", "stale", "expired"}[o]
}

// Table is the session table. Its methods must be called in slot order, as
// committed slots are applied. It is not safe for concurrent use.
type Table struct {
	ttl     uint64
	clients map[uint64]*client
	// The sessions in order of last use (oldest first), so expiry is a walk
	// from the front, the same on every replica.
	oldest, newest *client
}

type client struct {
	id, seq    uint64
	slot       uint64 // the slot of the last command
	resp       []byte
	prev, next *client
}

// New returns an empty table whose sessions live ttl slots unused (the
// default if ttl is 0).
func New(ttl uint64) *Table {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Table{ttl: ttl, clients: map[uint64]*client{}}
}

// Len returns the number of live sessions.
func (t *Table) Len() int { return len(t.clients) }

// Check says what to do with command seq of client id, and returns the
// recorded response for a Duplicate.
func (t *Table) Check(id, seq uint64) (Outcome, []byte) {
	c, ok := t.clients[id]
	switch {
	case !ok && seq > 1:
		return Expired, nil
	case !ok || seq > c.seq:
		return Execute, nil
	case seq == c.seq:
		return Duplicate, c.resp
	}
	return Stale, nil
}

// Record notes that command seq of client id was executed at slot with
// response resp, which the table keeps (the caller must not modify it).
func (t *Table) Record(id, seq, slot uint64, resp []byte) {
	c, ok := t.clients[id]
	if !ok {
		c = &client{id: id}
		t.clients[id] = c
	} else {
		t.unlink(c)
	}
	c.seq, c.slot, c.resp = seq, slot, resp
	t.pushNewest(c)
}

// Expire forgets the sessions unused for more than TTL slots at slot. Call
// it for each slot applied.
func (t *Table) Expire(slot uint64) {
	for c := t.oldest; c != nil && c.slot+t.ttl < slot; c = t.oldest {
		t.unlink(c)
		delete(t.clients, c.id)
	}
}

func (t *Table) unlink(c *client) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		t.oldest = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.newest = c.prev
	}
	c.prev, c.next = nil, nil
}

func (t *Table) pushNewest(c *client) {
	c.prev = t.newest
	if t.newest != nil {
		t.newest.next = c
	} else {
		t.oldest = c
	}
	t.newest = c
}

// Result is the outcome of one command of an applied slot.
type Result struct {
	Command  paxos.Command
	Outcome  Outcome
	Response []byte // the response, for Execute and Duplicate
}

// Apply applies a committed slot's value: each new command runs through
// execute, whose response is recorded; duplicates get their recorded
// response; stale and expired commands are refused. It calls done for each
// command, in order. It returns an error only for a malformed value, which
// a replica cannot recover from (every replica committed the same bytes).
func (t *Table) Apply(slot uint64, value []byte, execute func(slot uint64, cmd []byte) []byte, done func(Result)) error {
	t.Expire(slot)
	return paxos.ForEachCommand(value, func(c paxos.Command) bool {
		r := Result{Command: c}
		r.Outcome, r.Response = t.Check(c.ClientID, c.Seq)
		if r.Outcome == Execute {
			r.Response = execute(slot, c.Payload)
			t.Record(c.ClientID, c.Seq, slot, r.Response)
		}
		done(r)
		return true
	})
}

// The snapshot encoding, in order of last use, oldest first:
//
//	ttl:uvarint count:uvarint (id:uvarint seq:uvarint slot:uvarint len:uvarint resp:len)*

// WriteTo writes the table in its snapshot encoding.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var b []byte
	b = binary.AppendUvarint(b, t.ttl)
	b = binary.AppendUvarint(b, uint64(len(t.clients)))
	for c := t.oldest; c != nil; c = c.next {
		b = binary.AppendUvarint(b, c.id)
		b = binary.AppendUvarint(b, c.seq)
		b = binary.AppendUvarint(b, c.slot)
		b = binary.AppendUvarint(b, uint64(len(c.resp)))
		b = append(b, c.resp...)
	}
	n, err := w.Write(b)
	return int64(n), err
}

// ErrBadSnapshot is matched by errors from reading a malformed table.
var ErrBadSnapshot = errors.New("session: malformed snapshot")

// Read reads a table in its snapshot encoding from data, which it does not
// keep.
func Read(data []byte) (*Table, error) {
	r := bytes.NewReader(data)
	next := func(what string) (uint64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, what, err)
		}
		return v, nil
	}
	ttl, err := next("ttl")
	if err != nil {
		return nil, err
	}
	count, err := next("count")
	if err != nil {
		return nil, err
	}
	t := New(ttl)
	for i := uint64(0); i < count; i++ {
		var c client
		var n uint64
		for _, f := range []struct {
			p    *uint64
			what string
		}{{&c.id, "client id"}, {&c.seq, "sequence"}, {&c.slot, "slot"}, {&n, "response length"}} {
			if *f.p, err = next(f.what); err != nil {
				return nil, err
			}
		}
		if n > uint64(r.Len()) {
			return nil, fmt.Errorf("%w: response of %d bytes, %d left", ErrBadSnapshot, n, r.Len())
		}
		c.resp = make([]byte, n)
		r.Read(c.resp)
		if _, dup := t.clients[c.id]; dup {
			return nil, fmt.Errorf("%w: client %d twice", ErrBadSnapshot, c.id)
		}
		t.clients[c.id] = &c
		t.pushNewest(&c)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, r.Len())
	}
	return t, nil
}
