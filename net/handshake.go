package net

import "github.com/paxos-go/paxos/internal/wire"

// The handshake and the frames are internal/wire's, which the replica's
// client port and the Go client share; what an embedder of the transport
// meets (in Options.Admit and Options.OnRefused, and the bounds of
// Options) is named here.

// Hello is what a dialer says about itself in the handshake that opens a
// connection: the cluster, its replica ID, the kind of connection, and,
// on a peer connection, its data's state (Fresh, Joining) and the address
// it listens on for peers. Options.Admit sees it.
type Hello = wire.Hello

// KindPeer is the Hello.Kind of a connection between replicas (the only
// kind a peer port takes; clients use the replicas' client ports).
const KindPeer = wire.KindPeer

// RefusalCode says why a listener refused a peer, when the reason is one
// the dialer must act on instead of retrying: the cluster will never take
// it back. Zero is any other refusal (one to retry: a replica not added
// yet, a misconfiguration being fixed).
type RefusalCode = wire.RefusalCode

// Refusal codes.
const (
	// RefusalRemoved: the dialer was removed from the cluster.
	RefusalRemoved = wire.RefusalRemoved
	// RefusalDataLost: the dialer lost its data (or was started as a new
	// replica under the ID of one the cluster knows had state).
	RefusalDataLost = wire.RefusalDataLost
)

// PeerRefusal is the error an Options.Admit hook returns to refuse a peer
// with a code: the dialer's transport reports it to its Options.OnRefused.
// Reason is sent to the dialer.
type PeerRefusal = wire.PeerRefusal

// RefusedError is the error of a handshake the listener refused: its
// reason, and its code (zero unless the listener gave one). It matches
// ErrRefused. Options.OnRefused gets it.
type RefusedError = wire.RefusedError

// ErrRefused is matched by the error a dialer gets when the listener
// refuses the handshake; the error carries the listener's reason, and is a
// *RefusedError.
var ErrRefused = wire.ErrRefused

// DefaultMaxFrameBytes is the default of Options.MaxFrameBytes: the
// largest frame a connection accepts.
const DefaultMaxFrameBytes = wire.DefaultMaxFrameBytes

// DefaultMaxHelloBytes is the default of Options.MaxHelloBytes: the bound
// of the handshake frames (Hello and Welcome), read before the other side
// is trusted.
const DefaultMaxHelloBytes = wire.DefaultMaxHelloBytes

// ErrFrameTooLarge is matched by the error of a connection closed for a
// frame longer than its maximum.
var ErrFrameTooLarge = wire.ErrFrameTooLarge
