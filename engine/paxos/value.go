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
//
// The commands of two batches concatenate into one batch body, so merging
// batches into one slot is a copy, not a re-encoding.

const (
	kindCommands byte = 1
	kindNoop     byte = 2
)

// Command is one client request: exactly-once execution is per (ClientID,
// Seq), and a client has one request outstanding at a time, numbered from 1.
type Command struct {
	ClientID uint64
	Seq      uint64
	Payload  []byte
}

// ErrBadValue is matched by errors from decoding a malformed value.
var ErrBadValue = errors.New("paxos: malformed value")

// NoopValue returns the value of a no-op slot.
func NoopValue() []byte { return []byte{kindNoop} }

// isCommands reports whether v is a batch of commands (not a no-op or a
// configuration).
func isCommands(v []byte) bool { return len(v) > 0 && v[0] == kindCommands }

// IsNoop reports whether v is the value of a no-op slot.
func IsNoop(v []byte) bool { return len(v) == 1 && v[0] == kindNoop }

// AppendCommand appends c to the batch being built in batch, which may be
// empty (nil) to start a new batch.
func AppendCommand(batch []byte, c Command) []byte {
	if len(batch) == 0 {
		batch = append(batch, kindCommands)
	}
	batch = binary.AppendUvarint(batch, c.ClientID)
	batch = binary.AppendUvarint(batch, c.Seq)
	batch = binary.AppendUvarint(batch, uint64(len(c.Payload)))
	return append(batch, c.Payload...)
}

// EncodeBatch encodes cmds as one batch in a buffer of exactly its size:
// each payload is copied once and nothing grows. (Appending command by
// command copies a growing batch again at every doubling.)
func EncodeBatch(cmds []Command) []byte {
	size := 1
	for _, c := range cmds {
		size += commandSize(c)
	}
	batch := make([]byte, 0, size)
	for _, c := range cmds {
		batch = AppendCommand(batch, c)
	}
	return batch
}

// commandSize is the length of c's encoding in a batch.
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
// may be empty.
func AppendBatch(dst, src []byte) []byte {
	if len(src) <= 1 {
		return dst
	}
	if len(dst) == 0 {
		dst = append(dst, kindCommands)
	}
	return append(dst, src[1:]...)
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
	case kindCommands:
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadValue, v[0])
	}
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
