// Package session gives client commands exactly-once execution. Its Table
// is part of the replicated state: it is updated only by applying
// committed slots, in slot order, on every replica alike, and it goes into
// snapshots with the state machine. For each client it remembers the last
// sequence number executed and its response, so a retried command returns
// the response of the first execution instead of running again.
//
// A client numbers its commands 1, 2, 3, ... (a new client, or a client
// that lost its state, must use a new ClientID). Sessions expire
// deterministically, by log position: a session not used for TTL slots is
// forgotten at the same slot on every replica. A command from a forgotten
// client that is not among its first commands is refused as Expired rather
// than executed, since it may be a retry of a command that already ran. (A
// retry of command 1 after expiry cannot be told from a new client; choose
// TTL far above any retry window.)
//
// # One command at a time, or a window
//
// A client may have one command outstanding at a time (paxos.Command.Oldest
// 0): the table keeps, per client, the last command's number and response,
// and a command older than the last is Stale.
//
// Or it may have up to Window commands outstanding: with each command it
// says Oldest, its oldest command still without an answer. The rule is
//
//	Oldest <= Seq < Oldest + Window
//
// and Oldest never decreases from one command to the next (the client
// moves it up as answers arrive, or as it gives up on a command). Commands
// may then be executed in any order among themselves (a lost slot is
// retried after later ones were chosen): the table keeps, per client, the
// largest Oldest its executed commands carried, which commands from it on
// were executed (a bitmap of Window bits), and their responses, until
// Oldest passes them. So a retry of any outstanding command is answered
// from the table, and a command below Oldest is Stale: the client said it
// has its answer. A command that breaks the rule is refused as Stale, and
// never executed. A session of a client that sends one command at a time
// is the window's special case Oldest = Seq, and costs what it always did.
//
// A new session may start with any of its first Window commands (Oldest
// 1): commands 1 to Window of a new client are executed, in any order.
package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

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
// per session (up to Window entries of about 40 bytes, some 2.5 KiB, for a
// client with a window), whatever the state machine answers and however
// many clients there are; sessions expire after TTL slots unused. (Before these bounds, 300 `get`s of 4 MiB sent as
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
)

// String names the outcome, for logs and tests.
func (o Outcome) String() string {
	return [...]string{"execute", "duplicate", "stale", "expired", "not kept"}[o]
}

// kept says what the table holds of a session's last response.
type kept uint8

const (
	keptResponse kept = iota // resp is the response
	keptNothing              // too long, or dropped: the command ran, its response is gone
	keptReadOnly             // a read-only command: nothing to keep, it may run again
)

// Window is the most commands a client may have outstanding: Seq is below
// Oldest + Window (see the package doc). It is a constant: the table is
// replicated state.
const Window = 64

// Table is the session table. Its methods must be called in slot order, as
// committed slots are applied. It is not safe for concurrent use.
type Table struct {
	ttl     uint64
	clients map[uint64]*client
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
	id   uint64
	seq  uint64 // the highest command executed
	slot uint64 // the slot of the last command
	// oldest is the largest Oldest of the executed commands: those below
	// it are answered. done has bit i set if command oldest+i was executed.
	// Invariants: oldest <= seq < oldest+Window; bit seq-oldest is set.
	oldest uint64
	done   uint64
	// entries are the executed commands from oldest on, by seq, one per bit
	// of done, with what the table holds of their responses; respBytes is
	// the length of the responses they keep.
	entries   []entry
	respBytes int
	// prev, next: in the list of sessions by last use.
	prev, next *client
	// In the list of sessions that keep a response.
	rprev, rnext *client
	inResp       bool
}

// entry is an executed command whose answer the client may still ask for.
type entry struct {
	seq  uint64
	resp []byte
	kept kept
}

// entry returns the entry of command seq, or nil.
func (c *client) entry(seq uint64) *entry {
	for i := range c.entries {
		if c.entries[i].seq == seq {
			return &c.entries[i]
		}
	}
	return nil
}

// classic reports whether the session is that of a client with one
// command outstanding: the last command, alone (version 1 of the snapshot
// encoding holds exactly that).
func (c *client) classic() bool {
	return c.oldest == c.seq && c.done == 1 && len(c.entries) == 1
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

// CachedBytes returns the bytes of the responses the table keeps, at most
// MaxCachedBytes.
func (t *Table) CachedBytes() int { return t.cached }

// Check says what to do with command seq of client id, sent with one
// command outstanding, and returns the recorded response for a Duplicate.
func (t *Table) Check(id, seq uint64) (Outcome, []byte) { return t.CheckWindow(id, seq, seq) }

// CheckWindow says what to do with command seq of client id, sent when
// its oldest command without an answer was oldest (0: seq), and returns
// the recorded response for a Duplicate.
func (t *Table) CheckWindow(id, seq, oldest uint64) (Outcome, []byte) {
	if oldest == 0 {
		oldest = seq
	}
	if oldest > seq || seq-oldest >= Window {
		return Stale, nil // breaks the rule: refused, never executed
	}
	c, ok := t.clients[id]
	switch {
	case !ok && oldest > 1:
		return Expired, nil
	case !ok || seq > c.seq:
		return Execute, nil
	case seq < c.oldest:
		return Stale, nil
	case c.done&(1<<(seq-c.oldest)) == 0:
		return Execute, nil // outstanding, and overtaken by later ones
	}
	if e := c.entry(seq); e.kept == keptResponse {
		return Duplicate, e.resp
	}
	return NotKept, nil
}

// Record notes that command seq of client id, sent with one command
// outstanding, was executed at slot with response resp. The table keeps a
// copy of resp if it is at most MaxCachedResponseBytes long; otherwise it
// notes only that the command ran. It then drops the oldest responses it
// keeps until they take at most MaxCachedBytes.
func (t *Table) Record(id, seq, slot uint64, resp []byte) { t.record(id, seq, seq, slot, resp, false) }

// RecordWindow is Record for a command sent when the client's oldest
// command without an answer was oldest (0: seq). CheckWindow must have said
// Execute.
func (t *Table) RecordWindow(id, seq, oldest, slot uint64, resp []byte) {
	t.record(id, seq, oldest, slot, resp, false)
}

// RecordReadOnly notes that command seq of client id, a read-only one, was
// executed at slot. Its response is not kept: a retry of it runs again.
func (t *Table) RecordReadOnly(id, seq, slot uint64) { t.record(id, seq, seq, slot, nil, true) }

// record notes an executed command: see Record and RecordReadOnly.
func (t *Table) record(id, seq, oldest, slot uint64, resp []byte, readOnly bool) {
	if oldest == 0 {
		oldest = seq
	}
	c, fresh := t.touch(id, slot)
	if fresh {
		c.oldest, c.seq = oldest, seq
	}
	if oldest > c.oldest {
		// The client has the answers below oldest: forget them.
		if d := oldest - c.oldest; d >= Window {
			c.done = 0
		} else {
			c.done >>= d
		}
		c.oldest = oldest
		k := 0
		for k < len(c.entries) && c.entries[k].seq < oldest {
			c.respBytes -= len(c.entries[k].resp)
			k++
		}
		if k > 0 {
			n := copy(c.entries, c.entries[k:])
			clear(c.entries[n:])
			c.entries = c.entries[:n]
		}
	}
	c.seq = max(c.seq, seq)
	c.done |= 1 << (seq - c.oldest)
	e := entry{seq: seq, kept: keptNothing}
	switch {
	case readOnly:
		e.kept = keptReadOnly
	case len(resp) <= MaxCachedResponseBytes:
		e.kept, e.resp = keptResponse, bytes.Clone(resp)
	}
	i := len(c.entries)
	for i > 0 && c.entries[i-1].seq >= seq {
		i--
	}
	if i < len(c.entries) && c.entries[i].seq == seq {
		c.respBytes -= len(c.entries[i].resp) // a read-only command run again
		c.entries[i] = e
	} else {
		c.entries = slices.Insert(c.entries, i, e)
	}
	c.respBytes += len(e.resp)
	t.keep(c)
}

// touch makes client id's session the newest, at slot, out of the list of
// sessions that keep responses (keep puts it back), and returns it, and
// whether it is new.
func (t *Table) touch(id, slot uint64) (*client, bool) {
	c, ok := t.clients[id]
	if !ok {
		c = &client{id: id}
		t.clients[id] = c
	} else {
		t.unlink(c)
	}
	c.slot = slot
	t.pushNewest(c)
	return c, !ok
}

// keep adds c, the newest session, to the list of sessions that keep
// responses if it keeps any, and drops the oldest ones beyond
// MaxCachedBytes.
func (t *Table) keep(c *client) {
	if c.respBytes == 0 {
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
	t.cached += c.respBytes
	for t.cached > MaxCachedBytes {
		old := t.roldest
		t.unlinkResp(old)
		for i := range old.entries {
			if old.entries[i].kept == keptResponse {
				old.entries[i].resp, old.entries[i].kept = nil, keptNothing
			}
		}
		old.respBytes = 0
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
	t.cached -= c.respBytes
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
		r.Outcome, r.Response = t.CheckWindow(c.ClientID, c.Seq, c.Oldest)
		ro := false
		if r.Outcome == Execute || r.Outcome == NotKept {
			ro = readOnly != nil && readOnly(c.Payload)
		}
		if r.Outcome == NotKept && ro && t.clients[c.ClientID].entry(c.Seq).kept == keptReadOnly {
			r.Outcome = Execute // a retry of a read: read again
		}
		if r.Outcome == Execute {
			r.Response = execute(slot, c.Payload)
			t.record(c.ClientID, c.Seq, c.Oldest, slot, r.Response, ro)
		}
		done(r)
		return true
	})
}

// The snapshot encoding, in order of last use, oldest first. Version 1,
// written when every session is of a client with one command outstanding
// (the encoding of earlier versions, which they read):
//
//	ttl:uvarint count:uvarint (id:uvarint seq:uvarint slot:uvarint response)*
//	response = len:uvarint resp:len bytes
//
// where len is the response's length, or one of two lengths no response
// has, with no bytes after them: 2^64-1 for a response not kept, 2^64-2
// for a read-only command. Version 2, written when a session has a window
// (a leading 0, which no version 1 table starts with: its ttl is at least
// 1):
//
//	0:u8 ttl:uvarint count:uvarint session*
//	session = id:uvarint seq:uvarint slot:uvarint oldest:uvarint done:uvarint
//	          (seq:uvarint response)*   one per bit of done, by seq
const (
	lenNotKept  = ^uint64(0)
	lenReadOnly = ^uint64(0) - 1
)

// WriteTo writes the table in its snapshot encoding.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	v2 := false
	for c := t.oldest; c != nil && !v2; c = c.next {
		v2 = !c.classic()
	}
	var b []byte
	if v2 {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, t.ttl)
	b = binary.AppendUvarint(b, uint64(len(t.clients)))
	for c := t.oldest; c != nil; c = c.next {
		b = binary.AppendUvarint(b, c.id)
		b = binary.AppendUvarint(b, c.seq)
		b = binary.AppendUvarint(b, c.slot)
		if !v2 {
			b = appendResponse(b, c.entries[0])
			continue
		}
		b = binary.AppendUvarint(b, c.oldest)
		b = binary.AppendUvarint(b, c.done)
		for _, e := range c.entries {
			b = binary.AppendUvarint(b, e.seq)
			b = appendResponse(b, e)
		}
	}
	n, err := w.Write(b)
	return int64(n), err
}

func appendResponse(b []byte, e entry) []byte {
	switch e.kept {
	case keptResponse:
		b = binary.AppendUvarint(b, uint64(len(e.resp)))
		return append(b, e.resp...)
	case keptReadOnly:
		return binary.AppendUvarint(b, lenReadOnly)
	}
	return binary.AppendUvarint(b, lenNotKept)
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
	// response reads a response and records command seq with it.
	response := func(t *Table, id, seq, oldest, slot uint64) error {
		n, err := next("response length")
		if err != nil {
			return err
		}
		switch {
		case n == lenNotKept:
			t.record(id, seq, oldest, slot, nil, false)
			t.clients[id].entry(seq).kept = keptNothing
		case n == lenReadOnly:
			t.record(id, seq, oldest, slot, nil, true)
		case n > uint64(r.Len()):
			return fmt.Errorf("%w: response of %d bytes, %d left", ErrBadSnapshot, n, r.Len())
		default:
			resp := data[len(data)-r.Len():][:n]
			r.Seek(int64(n), io.SeekCurrent)
			t.record(id, seq, oldest, slot, resp, false)
		}
		return nil
	}
	v2 := len(data) > 0 && data[0] == 0
	if v2 {
		r.ReadByte()
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
		var id, seq, slot, oldest, done uint64
		fields := []struct {
			p    *uint64
			what string
		}{{&id, "client id"}, {&seq, "sequence"}, {&slot, "slot"}, {&oldest, "oldest"}, {&done, "done"}}
		if !v2 {
			fields = fields[:3]
		}
		for _, f := range fields {
			if *f.p, err = next(f.what); err != nil {
				return nil, err
			}
		}
		if _, dup := t.clients[id]; dup {
			return nil, fmt.Errorf("%w: client %d twice", ErrBadSnapshot, id)
		}
		if !v2 {
			if err := response(t, id, seq, seq, slot); err != nil {
				return nil, err
			}
			continue
		}
		if oldest > seq || seq-oldest >= Window || done&(1<<(seq-oldest)) == 0 {
			return nil, fmt.Errorf("%w: client %d: seq %d, oldest %d, done %b", ErrBadSnapshot, id, seq, oldest, done)
		}
		// Recorded in seq order, each with the session's oldest: the bits
		// and the entries come back as they were.
		var prev uint64
		for left := done; left != 0; left &= left - 1 {
			eseq, err := next("entry sequence")
			if err != nil {
				return nil, err
			}
			if eseq < oldest || eseq > seq || eseq <= prev || done&(1<<(eseq-oldest)) == 0 {
				return nil, fmt.Errorf("%w: client %d: entry %d", ErrBadSnapshot, id, eseq)
			}
			prev = eseq
			if err := response(t, id, eseq, oldest, slot); err != nil {
				return nil, err
			}
		}
		if c := t.clients[id]; c.seq != seq || c.done != done {
			return nil, fmt.Errorf("%w: client %d: entries %b, done %b", ErrBadSnapshot, id, c.done, done)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, r.Len())
	}
	return t, nil
}
