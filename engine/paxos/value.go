package paxos

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The value of a slot is a batch of client commands or a no-op, encoded
// once, by whoever builds the batch, into a compact binary form. From then
// on it travels as opaque bytes inside msgpack envelopes (WAL records,
// network messages) and is decoded only where it is applied: per-command
// msgpack on the hot path would cost far more than the rest of a commit.
//
//	value    = kind:u8 body
//	kind 1   commands: body = command*
//	command  = clientID:uvarint seq:uvarint len:uvarint payload:len bytes
//	kind 2   no-op:    body is empty
//	kind 3   configuration: see membership.go
//	kind 4   windowed commands: body = wcommand*
//	wcommand = clientID:uvarint seq:uvarint oldest:uvarint len:uvarint payload:len bytes
//
// Kind 4 carries Command.Oldest, for clients with several commands
// outstanding (see engine/session). A batch is kind 1 unless one of its
// commands has an Oldest, so that a cluster whose clients send one command
// at a time writes only what earlier versions read.
//
// The commands of two batches of the same kind concatenate into one batch
// body, so merging batches into one slot is a copy, not a re-encoding
// (merging kind 1 into kind 4 re-encodes the kind 1 commands).

const (
	kindCommands         byte = 1
	kindNoop             byte = 2
	kindWindowedCommands byte = 4
)

// Command is one client request: exactly-once execution is per (ClientID,
// Seq), commands numbered from 1.
//
// Oldest is the client's oldest command still without an answer when it
// sent this one (at most Seq): the client has the answers of all its
// commands below it. 0 means Seq itself: one command outstanding at a
// time. engine/session says what a window of commands allows.
type Command struct {
	ClientID uint64
	Seq      uint64
	Oldest   uint64
	Payload  []byte
}

// ErrBadValue is matched by errors from decoding a malformed value.
var ErrBadValue = errors.New("paxos: malformed value")

// NoopValue returns the value of a no-op slot.
func NoopValue() []byte { return []byte{kindNoop} }

// isCommands reports whether v is a batch of commands (not a no-op or a
// configuration).
func isCommands(v []byte) bool {
	return len(v) > 0 && (v[0] == kindCommands || v[0] == kindWindowedCommands)
}

// IsNoop reports whether v is the value of a no-op slot.
func IsNoop(v []byte) bool { return len(v) == 1 && v[0] == kindNoop }

// AppendCommand appends c to the batch being built in batch, which may be
// empty (nil) to start a new batch. A command with an Oldest goes into a
// kind 4 batch: it must start one, or be appended to one (EncodeBatch
// chooses the kind for a whole batch).
func AppendCommand(batch []byte, c Command) []byte {
	if len(batch) == 0 {
		batch = append(batch, kindCommands)
		if c.Oldest != 0 {
			batch[0] = kindWindowedCommands
		}
	}
	batch = binary.AppendUvarint(batch, c.ClientID)
	batch = binary.AppendUvarint(batch, c.Seq)
	if batch[0] == kindWindowedCommands {
		batch = binary.AppendUvarint(batch, c.Oldest)
	}
	batch = binary.AppendUvarint(batch, uint64(len(c.Payload)))
	return append(batch, c.Payload...)
}

// EncodeBatch encodes cmds as one batch in a buffer of exactly its size:
// each payload is copied once and nothing grows. (Appending command by
// command copies a growing batch again at every doubling.)
func EncodeBatch(cmds []Command) []byte {
	kind, size := kindCommands, 1
	for _, c := range cmds {
		size += commandSize(c)
		if c.Oldest != 0 {
			kind = kindWindowedCommands
		}
	}
	if kind == kindWindowedCommands {
		for _, c := range cmds {
			size += uvarintLen(c.Oldest)
		}
	}
	batch := make([]byte, 1, size)
	batch[0] = kind
	for _, c := range cmds {
		batch = AppendCommand(batch, c)
	}
	return batch
}

// commandSize is the length of c's encoding in a kind 1 batch.
func commandSize(c Command) int {
	return uvarintLen(c.ClientID) + uvarintLen(c.Seq) + uvarintLen(uint64(len(c.Payload))) + len(c.Payload)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// AppendBatch appends the commands of the batch src to the batch dst, which
// may be empty. Both must be well-formed batches of commands.
func AppendBatch(dst, src []byte) []byte {
	if len(src) <= 1 {
		return dst
	}
	if len(dst) == 0 {
		dst = append(dst, src[0])
	}
	switch {
	case dst[0] == src[0]:
		return append(dst, src[1:]...)
	case dst[0] == kindCommands:
		// A windowed batch joins plain ones: the result is windowed.
		plain := dst
		dst = make([]byte, 1, len(plain)+len(src)+(len(plain)+3)/4)
		dst[0] = kindWindowedCommands
		ForEachCommand(plain, func(c Command) bool { dst = AppendCommand(dst, c); return true })
	}
	ForEachCommand(src, func(c Command) bool { dst = AppendCommand(dst, c); return true })
	return dst
}

// CheckValue reports whether v is a well-formed value.
func CheckValue(v []byte) error {
	return ForEachCommand(v, func(Command) bool { return true })
}

// ForEachCommand calls fn for each command of the batch v, in order, until
// fn returns false. A no-op has no commands. The payload passed to fn
// aliases v. It returns an error wrapping ErrBadValue if v is malformed, in
// which case fn may have seen the commands before the damage.
func ForEachCommand(v []byte, fn func(Command) bool) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: empty", ErrBadValue)
	}
	switch v[0] {
	case kindNoop:
		if len(v) != 1 {
			return fmt.Errorf("%w: no-op with a body", ErrBadValue)
		}
		return nil
	case kindConfig:
		_, err := DecodeConfigValue(v)
		return err
	case kindCommands, kindWindowedCommands:
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadValue, v[0])
	}
	windowed := v[0] == kindWindowedCommands
	for rest := v[1:]; len(rest) > 0; {
		var c Command
		var n, size int
		if c.ClientID, n = binary.Uvarint(rest); n <= 0 {
			return fmt.Errorf("%w: bad client id at byte %d", ErrBadValue, len(v)-len(rest))
		}
		rest = rest[n:]
		if c.Seq, n = binary.Uvarint(rest); n <= 0 {
			return fmt.Errorf("%w: bad sequence number at byte %d", ErrBadValue, len(v)-len(rest))
		}
		rest = rest[n:]
		if windowed {
			if c.Oldest, n = binary.Uvarint(rest); n <= 0 || c.Oldest > c.Seq {
				return fmt.Errorf("%w: bad oldest command at byte %d", ErrBadValue, len(v)-len(rest))
			}
			rest = rest[n:]
		}
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return fmt.Errorf("%w: bad payload length at byte %d", ErrBadValue, len(v)-len(rest))
		}
		rest = rest[n:]
		size = int(l)
		c.Payload = rest[:size:size]
		rest = rest[size:]
		if !fn(c) {
			return nil
		}
	}
	return nil
}
