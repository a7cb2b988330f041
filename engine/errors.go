package engine

import (
	"errors"
	"fmt"
)

// Errors returned by Node and Client. Compare with errors.Is; ErrNotLeader
// also comes as a *NotLeaderError carrying a hint.
var (
	// ErrNotLeader: no leader is known (an election is under way, or this
	// replica is cut off). The *NotLeaderError says where to try.
	ErrNotLeader = errors.New("paxos: not the leader")
	// ErrBusy: too much is pending or uncommitted; back off and retry.
	ErrBusy = errors.New("paxos: busy")
	// ErrClosed: the node (or client) is closed, or failed.
	ErrClosed = errors.New("paxos: closed")
	// ErrTimeout: the context ended before the outcome was known. A
	// command may still be applied; retry it with the same (clientID,
	// seq) and it is applied at most once.
	ErrTimeout = errors.New("paxos: timed out")
	// ErrStale: the client has already moved past this sequence number.
	ErrStale = errors.New("paxos: command older than the client's last")
	// ErrSessionExpired: the client's session expired; the command was not
	// executed. Start over with a new client ID.
	ErrSessionExpired = errors.New("paxos: client session expired")
	// ErrTooLarge: the command (or request) is longer than the node's
	// MaxCommandBytes; it was not proposed, and retrying it will not help.
	ErrTooLarge = errors.New("paxos: command too large")
	// ErrResponseNotKept: a retry of a command that was executed, whose
	// response the session table did not keep (longer than
	// session.MaxCachedResponseBytes, or dropped to keep the table within
	// session.MaxCachedBytes). The command ran once; its response is lost.
	ErrResponseNotKept = errors.New("paxos: the command was executed, but its response was not kept for a retry")
	// ErrNoTLS: Start was given no TLS for the peer port, nor Insecure.
	ErrNoTLS = errors.New("engine: the peer port needs TLS: set Config.TLSDir to a directory made by `paxos certs` " +
		"(or Config.PeerTLS), or set Config.Insecure to run it unauthenticated on a network where every host is trusted")
	// ErrNoClientTLS: Start was given a client port (ClientAddr) but no
	// TLS for it, nor Insecure.
	ErrNoClientTLS = errors.New("engine: the client port needs TLS: set Config.TLSDir to a directory made by `paxos certs` " +
		"(or Config.ClientTLS), or set Config.Insecure to serve clients in plaintext, unauthenticated, on a network where every host is trusted")
)

// NotLeaderError is an ErrNotLeader with a hint: the leader's client
// address, if this replica knows it (and Config.ClientAddrs lists it).
type NotLeaderError struct {
	LeaderID   uint64
	LeaderAddr string // empty when unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return ErrNotLeader.Error() + " (leader unknown)"
	}
	return fmt.Sprintf("%s (the leader is replica %d at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
