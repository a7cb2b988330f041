package engine

import (
	"context"
	"io"

	"github.com/paxos-go/paxos/internal/clientproto"
)

// The typed layer gives embedders the feel of the seed's API: a command
// type that says who sent it and its number, a response type, and
// Execute(slot, cmd) (resp, ok). Commands and responses travel as msgpack
// (the encoding is internal/clientproto's typed.go).
//
// Typed.Submit is for callers in the replica's process. From another
// process, use client.Typed against the client port, which speaks the same
// encoding. A raw client (client.Client.Submit, or Node.Submit) that sends
// such a node bytes that are not a command of its type is not refused: the
// command is applied, changes nothing, and its response (err == nil)
// holds the encoded refusal, which client.Typed and Typed.Submit decode
// into ErrBadCommand.

// Command is a command of a typed state machine. ClientID names its
// sender and LocalID numbers its commands 1, 2, 3, ...: a command is
// executed at most once per (ClientID, LocalID).
type Command interface {
	ClientID() uint64
	LocalID() uint64
}

// Executor is a typed state machine. Execute runs one command and returns
// its response, or false for none; like StateMachine.Apply it must be
// deterministic.
type Executor[C Command, R any] interface {
	Execute(slot uint64, cmd C) (R, bool)
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// Typed is a Node running a typed state machine. Its Submit works in the
// replica's process only; remote callers use client.Typed.
type Typed[C Command, R any] struct {
	*Node
}

// StartTyped starts a node (see Start) running ex.
func StartTyped[C Command, R any](cfg Config, ex Executor[C, R]) (*Typed[C, R], error) {
	n, err := Start(cfg, typedMachine[C, R]{ex})
	if err != nil {
		return nil, err
	}
	return &Typed[C, R]{n}, nil
}

// Submit runs cmd, exactly once, and returns its response (ok is false if
// Execute gave none). Errors are those of Node.Submit.
func (t *Typed[C, R]) Submit(ctx context.Context, cmd C) (resp R, ok bool, err error) {
	raw, err := t.Node.Submit(ctx, cmd.ClientID(), cmd.LocalID(), encodeMsgpack(cmd))
	if err != nil {
		return resp, false, err
	}
	return clientproto.DecodeTyped[R](raw)
}

// typedMachine adapts an Executor to a StateMachine.
type typedMachine[C Command, R any] struct {
	ex Executor[C, R]
}

func (m typedMachine[C, R]) Apply(slot uint64, payload []byte) []byte {
	var cmd C
	if err := decodeMsgpack(payload, &cmd); err != nil {
		return append([]byte{clientproto.TypedBadCmd}, err.Error()...)
	}
	resp, ok := m.ex.Execute(slot, cmd)
	if !ok {
		return []byte{clientproto.TypedNone}
	}
	return append([]byte{clientproto.TypedResponse}, encodeMsgpack(&resp)...)
}

func (m typedMachine[C, R]) Snapshot(w io.Writer) error { return m.ex.Snapshot(w) }

func (m typedMachine[C, R]) Restore(r io.Reader) error { return m.ex.Restore(r) }
