package client

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/msgp"
)

// Command is a command of a typed state machine (engine.StartTyped): the
// same method set as engine.Command. ClientID names its sender and LocalID
// numbers its commands by the sequence rule (see package engine): 1, 2, 3,
// ..., a retry with its number.
type Command interface {
	ClientID() uint64
	LocalID() uint64
}

// Typed is the remote counterpart of engine.Typed: it submits typed
// commands to a node started with engine.StartTyped, through a Client, and
// decodes the typed responses (a command the node could not decode comes
// back as ErrBadCommand, not as a response).
//
// The command's own ClientID and LocalID are its session, as with
// engine.Typed.Submit, not the Client's ID and numbering: the caller
// numbers its commands, and a retry of one (after ErrTimeout) is the same
// command again. C and R must encode as the node's command and response
// types do (msgpack, structs as arrays: the fields in the same order).
type Typed[C Command, R any] struct {
	c *Client
}

// NewTyped returns a typed client that sends its commands through c.
func NewTyped[C Command, R any](c *Client) *Typed[C, R] { return &Typed[C, R]{c: c} }

// Submit runs cmd, at most once per (ClientID, LocalID), and returns its
// response (ok is false if the state machine gave none). It retries as
// Client.Submit does until ctx ends (then ErrTimeout: cmd may still be
// applied; submit it again before the next). Errors are Client.Submit's,
// and ErrBadCommand.
func (t *Typed[C, R]) Submit(ctx context.Context, cmd C) (resp R, ok bool, err error) {
	var payload []byte
	if err := codec.NewEncoderBytes(&payload, msgp.Handle).Encode(cmd); err != nil {
		return resp, false, fmt.Errorf("%w: %T does not encode: %w", ErrBadCommand, cmd, err)
	}
	t.c.mu.Lock()
	if err := t.c.checkSize(payload); err != nil {
		t.c.mu.Unlock()
		return resp, false, err
	}
	raw, err := t.c.do(ctx, clientproto.Request{Op: clientproto.OpSubmit, ClientID: cmd.ClientID(), Seq: cmd.LocalID(), Payload: payload})
	t.c.mu.Unlock()
	if err = unwrapDo(err); err != nil {
		return resp, false, err
	}
	return clientproto.DecodeTyped[R](raw)
}
