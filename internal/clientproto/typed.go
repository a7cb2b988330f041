package clientproto

import (
	"fmt"

	"github.com/paxos-go/paxos/internal/msgp"
)

// The typed layer (engine.StartTyped, client.Typed) sends a command as its
// msgpack encoding, and answers with a tag byte, then msgpack:
//
//	0           the state machine gave no response
//	1 response  a response
//	2 message   the command did not decode as the state machine's command
//	            type (on every replica alike): ErrBadCommand
//
// Typed responses are ordinary command responses to the rest of the
// system: the session table keeps them, and a retry gets them again.
const (
	TypedNone     byte = 0
	TypedResponse byte = 1
	TypedBadCmd   byte = 2
)

// DecodeTyped decodes a typed response: ok is false for TypedNone, and a
// TypedBadCmd is an error matching ErrBadCommand.
func DecodeTyped[R any](raw []byte) (resp R, ok bool, err error) {
	if len(raw) == 0 {
		return resp, false, fmt.Errorf("%w: empty response", ErrBadCommand)
	}
	switch raw[0] {
	case TypedNone:
		return resp, false, nil
	case TypedResponse:
		if err := msgp.Decode(raw[1:], &resp); err != nil {
			return resp, false, fmt.Errorf("paxos: malformed typed response: %w", err)
		}
		return resp, true, nil
	}
	return resp, false, fmt.Errorf("%w: %s", ErrBadCommand, raw[1:])
}
