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
//
// # The sequence rule
//
// A table made by NewSequential (every cluster bootstrapped since the rule
// was defined) holds clients to it: client IDs are not 0; a client's first
// command is number 1 and each new command is the last one plus 1; a retry
// reuses its number. A command with client ID 0 or number 0, or numbered
// more than one above the session's last, is refused as BadSequence and
// not executed: running it would leave the commands it skipped to be
// refused as Stale later, or run out of order.
//
// A table made by New follows the rule of earlier versions, which
// executed any number above the last (and client ID 0, and a first
// command numbered 0). Its clusters' logs and snapshots hold commands that
// were executed so, and replaying them must execute them again: the rule
// is part of the replicated state, carried in the snapshot encoding (see
// WriteTo), never a setting of one replica.
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

// The bounds of the responses the table keeps for retries. They are
// constants, not options: the table is replicated state, and every replica
// must keep and drop exactly the same responses, at the same slots, or a
// retry would get a response on one replica and an error on another.
//
// A response longer than MaxCachedResponseBytes is not kept: the table
// notes that the command ran, and a retry of it gets NotKept (the engine's
// ErrResponseNotKept) instead of the response, which only its first
// execution returned. When the responses kept pass MaxCachedBytes in all,
// those of the sessions used longest ago are dropped the same way. So the
// table holds at most MaxCachedBytes of responses, plus a few dozen bytes
// per session, whatever the state machine answers and however many
// clients there are. (Before these bounds, 300 `get`s of 4 MiB sent as
// commands under fresh client IDs held 1.2 GB on every replica, and in
// every snapshot.)
const (
	MaxCachedResponseBytes = 64 << 10
	MaxCachedBytes         = 64 << 20
)

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
	// NotKept: a retry of the client's last command, which ran, but whose
	// response the table did not keep (too long, or dropped to stay within
	// MaxCachedBytes); refuse it, saying so.
	NotKept
	// BadSequence: the command breaks the sequence rule (a table of
	// NewSequential only): client ID 0, number 0, or a number more than
	// one above the session's last. Refuse it; it was not executed.
	BadSequence
)

// String names the outcome, for logs and tests.
func (o Outcome) String() string {
	return [...]string{"execute", "duplicate", "stale", "expired", "not kept", "bad sequence"}[o]
}

// kept says what the table holds of a session's last response.
type kept uint8

const (
	keptResponse kept = iota // resp is the response
	keptNothing              // too long, or dropped: the command ran, its response is gone
	keptReadOnly             // a read-only command: nothing to keep, it may run again
)

// Table is the session table. Its methods must be called in slot order, as
// committed slots are applied. It is not safe for concurrent use.
type Table struct {
	ttl uint64
	// sequential says the table holds clients to the sequence rule (see
	// the package doc); it never changes in a table's life, and travels
	// in its snapshots.
	sequential bool
	clients    map[uint64]*client
	// The sessions in order of last use (oldest first), so expiry is a walk
	// from the front, the same on every replica.
	oldest, newest *client
	// The sessions that keep a response of at least one byte, in the same
	// order, and the bytes of those responses: dropping responses to stay
	// within MaxCachedBytes starts from the oldest.
	roldest, rnewest *client
	cached           int
}

type client struct {
	id, seq    uint64
	slot       uint64 // the slot of the last command
	resp       []byte
	kept       kept
	prev, next *client
	// In the list of sessions that keep a response.
	rprev, rnext *client
	inResp       bool
}

// New returns an empty table whose sessions live ttl slots unused (the
// default if ttl is 0), under the rule of earlier versions: any number
// above a session's last is executed. It is the table of a cluster whose
// log began before the sequence rule; a new cluster's is NewSequential.
func New(ttl uint64) *Table {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Table{ttl: ttl, clients: map[uint64]*client{}}
}

// NewSequential returns an empty table, as New, that holds clients to the
// sequence rule (see the package doc).
func NewSequential(ttl uint64) *Table {
	t := New(ttl)
	t.sequential = true
	return t
}

// Sequential reports whether the table holds clients to the sequence
// rule.
func (t *Table) Sequential() bool { return t.sequential }

// Len returns the number of live sessions.
func (t *Table) Len() int { return len(t.clients) }

// CachedBytes returns the bytes of the responses the table keeps, at most
// MaxCachedBytes.
func (t *Table) CachedBytes() int { return t.cached }

// Check says what to do with command seq of client id, and returns the
// recorded response for a Duplicate.
func (t *Table) Check(id, seq uint64) (Outcome, []byte) {
	c, ok := t.clients[id]
	if t.sequential && (id == 0 || seq == 0 || ok && seq > c.seq+1) {
		return BadSequence, nil
	}
	switch {
	case !ok && seq > 1:
		return Expired, nil
	case !ok || seq > c.seq:
		return Execute, nil
	case seq == c.seq && c.kept == keptResponse:
		return Duplicate, c.resp
	case seq == c.seq:
		return NotKept, nil
	}
	return Stale, nil
}

// Record notes that command seq of client id was executed at slot with
// response resp. The table keeps a copy of resp if it is at most
// MaxCachedResponseBytes long; otherwise it notes only that the command
// ran. It then drops the oldest responses it keeps until they take at
// most MaxCachedBytes.
func (t *Table) Record(id, seq, slot uint64, resp []byte) {
	c := t.touch(id, seq, slot)
	if len(resp) > MaxCachedResponseBytes {
		c.kept = keptNothing
		return
	}
	c.kept, c.resp = keptResponse, bytes.Clone(resp)
	t.keep(c)
}

// RecordReadOnly notes that command seq of client id, a read-only one, was
// executed at slot. Its response is not kept: a retry of it runs again.
func (t *Table) RecordReadOnly(id, seq, slot uint64) {
	t.touch(id, seq, slot).kept = keptReadOnly
}

// touch makes client id's session the newest, at seq and slot, with no
// response kept, and returns it.
func (t *Table) touch(id, seq, slot uint64) *client {
	c, ok := t.clients[id]
	if !ok {
		c = &client{id: id}
		t.clients[id] = c
	} else {
		t.unlink(c)
	}
	c.seq, c.slot, c.resp, c.kept = seq, slot, nil, keptNothing
	t.pushNewest(c)
	return c
}

// keep adds c, the newest session, whose response is kept, to the list of
// kept responses, and drops the oldest ones beyond MaxCachedBytes.
func (t *Table) keep(c *client) {
	if len(c.resp) == 0 {
		return
	}
	c.inResp = true
	c.rprev = t.rnewest
	if t.rnewest != nil {
		t.rnewest.rnext = c
	} else {
		t.roldest = c
	}
	t.rnewest = c
	t.cached += len(c.resp)
	for t.cached > MaxCachedBytes {
		old := t.roldest
		t.unlinkResp(old)
		old.resp, old.kept = nil, keptNothing
	}
}

// Expire forgets the sessions unused for more than TTL slots at slot. Call
// it for each slot applied.
func (t *Table) Expire(slot uint64) {
	for c := t.oldest; c != nil && c.slot+t.ttl < slot; c = t.oldest {
		t.unlink(c)
		delete(t.clients, c.id)
	}
}

// unlink takes c out of the table's lists.
func (t *Table) unlink(c *client) {
	if c.inResp {
		t.unlinkResp(c)
	}
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

func (t *Table) unlinkResp(c *client) {
	if c.rprev != nil {
		c.rprev.rnext = c.rnext
	} else {
		t.roldest = c.rnext
	}
	if c.rnext != nil {
		c.rnext.rprev = c.rprev
	} else {
		t.rnewest = c.rprev
	}
	c.rprev, c.rnext, c.inResp = nil, nil, false
	t.cached -= len(c.resp)
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
// response; stale and expired commands are refused, and so are retries
// whose response was not kept. It calls done for each command, in order.
// It returns an error only for a malformed value, which a replica cannot
// recover from (every replica committed the same bytes).
func (t *Table) Apply(slot uint64, value []byte, execute func(slot uint64, cmd []byte) []byte, done func(Result)) error {
	return t.ApplyWith(slot, value, execute, nil, done)
}

// ApplyWith is Apply for a state machine some of whose commands are
// read-only, as readOnly (if not nil) says: their responses are not kept
// (the response of a read can be as long as the state), and a retry of
// one runs it again, which is harmless. readOnly must be deterministic,
// the same on every replica.
func (t *Table) ApplyWith(slot uint64, value []byte, execute func(slot uint64, cmd []byte) []byte, readOnly func(cmd []byte) bool, done func(Result)) error {
	t.Expire(slot)
	return paxos.ForEachCommand(value, func(c paxos.Command) bool {
		r := Result{Command: c}
		r.Outcome, r.Response = t.Check(c.ClientID, c.Seq)
		ro := false
		if r.Outcome == Execute || r.Outcome == NotKept {
			ro = readOnly != nil && readOnly(c.Payload)
		}
		if r.Outcome == NotKept && ro && t.clients[c.ClientID].kept == keptReadOnly {
			r.Outcome = Execute // a retry of a read: read again
		}
		if r.Outcome == Execute {
			r.Response = execute(slot, c.Payload)
			if ro {
				t.RecordReadOnly(c.ClientID, c.Seq, slot)
			} else {
				t.Record(c.ClientID, c.Seq, slot, r.Response)
			}
		}
		done(r)
		return true
	})
}

// The snapshot encoding, in order of last use, oldest first:
//
//	[0x00 rule:uvarint] ttl:uvarint count:uvarint (id:uvarint seq:uvarint slot:uvarint len:uvarint resp:len)*
//
// where len is the response's length, or one of two lengths no response
// has, with no bytes after them: 2^64-1 for a response not kept, 2^64-2
// for a read-only command. A table of NewSequential starts with a zero
// byte and rule 1; a table of New has no prefix, and is written exactly as
// earlier versions wrote it, so that they still read it (a replica of an
// earlier version may receive it in a snapshot). The two cannot be
// mistaken: ttl is at least 1, and a uvarint starts with a zero byte only
// if it is 0.
const (
	lenNotKept  = ^uint64(0)
	lenReadOnly = ^uint64(0) - 1
	// ruleSequential is the rule of a table of NewSequential.
	ruleSequential = 1
)

// WriteTo writes the table in its snapshot encoding.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var b []byte
	if t.sequential {
		b = append(b, 0)
		b = binary.AppendUvarint(b, ruleSequential)
	}
	b = binary.AppendUvarint(b, t.ttl)
	b = binary.AppendUvarint(b, uint64(len(t.clients)))
	for c := t.oldest; c != nil; c = c.next {
		b = binary.AppendUvarint(b, c.id)
		b = binary.AppendUvarint(b, c.seq)
		b = binary.AppendUvarint(b, c.slot)
		switch c.kept {
		case keptResponse:
			b = binary.AppendUvarint(b, uint64(len(c.resp)))
			b = append(b, c.resp...)
		case keptNothing:
			b = binary.AppendUvarint(b, lenNotKept)
		case keptReadOnly:
			b = binary.AppendUvarint(b, lenReadOnly)
		}
	}
	n, err := w.Write(b)
	return int64(n), err
}

// ErrBadSnapshot is matched by errors from reading a malformed table.
var ErrBadSnapshot = errors.New("session: malformed snapshot")

// Read reads a table in its snapshot encoding from data, which it does not
// keep. It applies the bounds as Record does: a snapshot written by an
// earlier version, which kept every response, loads with the long ones
// not kept.
func Read(data []byte) (*Table, error) {
	r := bytes.NewReader(data)
	next := func(what string) (uint64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, what, err)
		}
		return v, nil
	}
	sequential := false
	if len(data) > 0 && data[0] == 0 {
		r.ReadByte()
		rule, err := next("rule")
		if err != nil {
			return nil, err
		}
		if rule != ruleSequential {
			return nil, fmt.Errorf("%w: unknown sequence rule %d (a table of a later version?)", ErrBadSnapshot, rule)
		}
		sequential = true
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
	t.sequential = sequential
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
		if _, dup := t.clients[c.id]; dup {
			return nil, fmt.Errorf("%w: client %d twice", ErrBadSnapshot, c.id)
		}
		switch {
		case n == lenNotKept:
			t.touch(c.id, c.seq, c.slot)
		case n == lenReadOnly:
			t.RecordReadOnly(c.id, c.seq, c.slot)
		case n > uint64(r.Len()):
			return nil, fmt.Errorf("%w: response of %d bytes, %d left", ErrBadSnapshot, n, r.Len())
		default:
			resp := data[len(data)-r.Len():][:n]
			r.Seek(int64(n), io.SeekCurrent)
			t.Record(c.id, c.seq, c.slot, resp)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, r.Len())
	}
	return t, nil
}
