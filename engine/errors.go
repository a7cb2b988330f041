package engine

import (
	"errors"

	"github.com/paxos-go/paxos/internal/clientproto"
)

// Errors returned by Node. Compare with errors.Is; ErrNotLeader also comes
// as a *NotLeaderError carrying a hint. Those that the client port sends
// are the same errors as the client package's (client.ErrNotLeader is
// ErrNotLeader), so errors.Is matches them on either side.
//
// The errors of a command's or a request's outcome, which a client may
// receive from any replica, say "paxos:"; those of starting a Node (its
// configuration, its data directory) say "engine:".
var (
	// ErrNotLeader: no leader is known (an election is under way, or this
	// replica is cut off). The *NotLeaderError says where to try.
	ErrNotLeader = clientproto.ErrNotLeader
	// ErrBusy: too much is pending or uncommitted; back off and retry.
	ErrBusy = clientproto.ErrBusy
	// ErrClosed: the node (or client) is closed, or failed.
	ErrClosed = clientproto.ErrClosed
	// ErrTimeout: the context ended before the outcome was known. A
	// command may still be applied; retry it with the same (clientID,
	// seq) and it is applied at most once.
	ErrTimeout = clientproto.ErrTimeout
	// ErrStale: the client has already moved past this sequence number.
	ErrStale = clientproto.ErrStale
	// ErrSessionExpired: the client has no session: it expired (unused for
	// Config.SessionTTL slots), or never began, the client's first command
	// being numbered above 1 (see the sequence rule in the package doc).
	// The command was not executed. Start over with a new client ID.
	ErrSessionExpired = clientproto.ErrSessionExpired
	// ErrBadSequence: the command breaks the sequence rule (see the package
	// doc): client ID 0 or number 0 (refused before it is proposed), or a
	// number more than one above the client's last (refused when it is
	// applied, on every replica alike). It was not executed, and retrying
	// it will not help: the client's numbering is wrong.
	ErrBadSequence = clientproto.ErrBadSequence
	// ErrBadCommand: the typed layer (StartTyped, client.Typed) could not
	// decode the command as the state machine's command type; every
	// replica refused it alike, and it changed nothing.
	ErrBadCommand = clientproto.ErrBadCommand
	// ErrTooLarge: the command (or request) is longer than the node's
	// MaxCommandBytes; it was not proposed, and retrying it will not help.
	ErrTooLarge = clientproto.ErrTooLarge
	// ErrResponseNotKept: a retry of a command that was executed, whose
	// response the session table did not keep (longer than
	// session.MaxCachedResponseBytes, or dropped to keep the table within
	// session.MaxCachedBytes). The command ran once; its response is lost.
	ErrResponseNotKept = clientproto.ErrResponseNotKept
	// ErrRemoved: this replica was removed from the cluster's
	// configuration. It stopped (its calls return ErrRemoved, wrapped in
	// ErrClosed) and takes no part any more; its ID is never used again.
	ErrRemoved = clientproto.ErrRemoved
	// ErrDataLost: the cluster refused this replica as one that lost its
	// data: its data directory is new (or wiped, or it was started with
	// Join) but the cluster knows its ID as a replica that had state. It
	// forgot what it promised and accepted, so taking it back could break
	// agreement. Remove it (RemoveReplica) and add a new replica under a
	// new ID with an empty data directory. The refusal is recorded in the
	// data directory: later starts of it are refused too.
	ErrDataLost = clientproto.ErrDataLost
	// ErrChangeInProgress: another configuration change or leadership
	// transfer asked of this leader has not finished; one at a time. (The
	// same error as paxos.ErrChangeInProgress.)
	ErrChangeInProgress = clientproto.ErrChangeInProgress
	// ErrBadChange: the change cannot apply to the configuration: adding
	// an ID that is a member already with other addresses, or that was
	// removed (an ID is never used again); promoting or removing a
	// replica that is not a member; removing the last voter; transferring
	// leadership to a replica that is not a voter. (The same error as
	// paxos.ErrBadChange.)
	ErrBadChange = clientproto.ErrBadChange
	// ErrNotCaughtUp: the learner to promote is more than the core's
	// CatchUpSlots behind the commit index, or the leader has not heard
	// from the replica to hand its leadership to. Promote and
	// TransferLeadership retry until their context ends, then return it
	// wrapped with ErrTimeout. (The same error as paxos.ErrNotCaughtUp.)
	ErrNotCaughtUp = clientproto.ErrNotCaughtUp
	// ErrJoinNotEmpty: Start was given Join with a data directory that
	// already holds state: a replica joins once, with an empty directory;
	// after that it restarts without Join.
	ErrJoinNotEmpty = errors.New("engine: Join needs an empty data directory")
	// ErrNoPeers: Start was given an empty data directory, no Peers and
	// no Join: there is no configuration to start from. Set Peers to
	// bootstrap a new cluster, or Join to join a running one.
	ErrNoPeers = errors.New("engine: the data directory is empty and Config.Peers is empty: set Peers to bootstrap a new cluster, or Join to join a running one")
	// ErrNoTLS: Start was given no TLS for the peer port, nor Insecure.
	ErrNoTLS = errors.New("engine: the peer port needs TLS: set Config.TLSDir to a directory made by `paxos certs` " +
		"(or Config.PeerTLS), or set Config.Insecure to run it unauthenticated on a network where every host is trusted")
	// ErrNoClientTLS: Start was given a client port (ClientAddr) but no
	// TLS for it, nor Insecure.
	ErrNoClientTLS = errors.New("engine: the client port needs TLS: set Config.TLSDir to a directory made by `paxos certs` " +
		"(or Config.ClientTLS), or set Config.Insecure to serve clients in plaintext, unauthenticated, on a network where every host is trusted")
)

// NotLeaderError is an ErrNotLeader with a hint: the leader's ID
// (LeaderID, valid when LeaderKnown) and its client address (LeaderAddr,
// empty when unknown), if this replica knows them (the address is the one
// the configuration gives the leader; see Config.ClientAddrs). It is the
// same type as client.NotLeaderError, so errors.As finds it in an error of
// either package.
type NotLeaderError = clientproto.NotLeaderError
