// Package clientproto is the protocol of a cluster's client ports, shared
// by the server side (engine) and the Go client (client): the operations,
// the request and response frames, the error codes and the errors they
// stand for, and the size of a request's envelope.
//
// After the handshake (kind client; inside TLS unless the node is
// Insecure), a client sends request frames and gets response frames,
// matched by ID, in any order; requests may be pipelined.
//
//	request  msgpack [id, op, clientID, seq, payload, redirect, oldest]
//	response msgpack [id, status, result, leader, code, message]
//
// op 1 submits a command (exactly once per clientID and seq; oldest is the
// client's oldest command without an answer, for a client with several
// outstanding: see engine/session); op 2 asks a
// read-only query; op 3 asks for the replica's Status (msgpack), for tools;
// op 4 asks for a configuration change or a leadership transfer, whose
// payload is a Change (msgpack), answered once it is made (see
// Node.AddLearner and the others), after at most the wait it gives; op 5
// asks for the newest configuration the replica's committed log chose
// (the result is paxos.EncodeConfigValue's). With redirect set, a follower
// that knows the leader's client address answers status 1 with it instead
// of forwarding or answering (ops 1, 2, 4 and 5); without it, a follower
// answers op 4 with code 1 (not the leader), naming the leader's address
// if it knows it.
//
// A request frame longer than MaxCommandBytes plus 1 KiB is answered with
// a response of ID 0 and code 8 (too large), and the connection is closed:
// the stream cannot be resynchronised after a frame that was not read.
//
// Bounds (see engine.Config): the handshake has a deadline; the node keeps
// at most ClientMaxConns connections, closes idle ones, and stops reading
// a connection's requests while ClientMaxInflight of them are being served
// or ClientMaxQueuedBytes of its responses wait to be written.
package clientproto

import (
	"time"

	"github.com/paxos-go/paxos/internal/msgp"
)

// Operations (Request.Op) and response statuses (Response.Status).
const (
	OpSubmit uint8 = 1
	OpQuery  uint8 = 2
	OpStatus uint8 = 3
	OpChange uint8 = 4
	OpConfig uint8 = 5

	StatusOK       uint8 = 0
	StatusRedirect uint8 = 1
	StatusError    uint8 = 2
)

// EnvelopeBytes is what a client request carries besides its payload, at
// most (IDs, op, flags: about 40 bytes), with room.
const EnvelopeBytes = 1 << 10

// Request is a request frame.
type Request struct {
	ID       uint64
	Op       uint8
	ClientID uint64
	Seq      uint64
	Payload  msgp.View
	Redirect bool
	// Oldest is, for op 1, the client's oldest command without an answer
	// (paxos.Command.Oldest): 0 for a client with one command outstanding,
	// and for clients of earlier versions, which do not send it. A server
	// of an earlier version ignores it: pipeline only to servers of this
	// version.
	Oldest uint64
	// Change is the client's change of op 4, which it encodes into
	// Payload at each attempt (not on the wire itself).
	Change *Change `codec:"-"`
}

// Response is a response frame.
type Response struct {
	ID      uint64
	Status  uint8
	Result  msgp.View
	Leader  string
	Code    uint8
	Message string
}

// Size is what a queued response counts against ClientMaxQueuedBytes: its
// bytes, and a little for the rest.
func (r *Response) Size() int { return len(r.Result) + len(r.Message) + len(r.Leader) + 64 }

// Kinds of change (Change.Kind).
const (
	ChangeAddLearner uint8 = iota + 1
	ChangePromote
	ChangeRemove
	ChangeTransfer
)

// Change is the payload of op 4.
type Change struct {
	Kind       uint8 // ChangeAddLearner...
	ID         uint64
	PeerAddr   string
	ClientAddr string
	// WaitMillis is how long the server waits for the change before it
	// answers ErrTimeout (default 10 s, at most a minute).
	WaitMillis uint64
}

// Bounds of a change's wait on the server.
const (
	DefaultChangeWait = 10 * time.Second
	MaxChangeWait     = time.Minute
)

// Wait is how long the server waits for the change.
func (c Change) Wait() time.Duration {
	if c.WaitMillis == 0 {
		return DefaultChangeWait
	}
	return min(time.Duration(c.WaitMillis)*time.Millisecond, MaxChangeWait)
}
