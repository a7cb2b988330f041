package client

import "github.com/paxos-go/paxos/internal/clientproto"

// Errors a Client returns, as the servers' codes say. They are the
// engine's errors (ErrNotLeader is engine.ErrNotLeader, and so on): compare
// with errors.Is, from either package. A server's explanation follows the
// error's text.
var (
	// ErrNotLeader: the server knows no leader (an election is under way,
	// or it is cut off). The Client retries elsewhere until its context
	// ends; a *NotLeaderError says where the leader is, when known.
	ErrNotLeader = clientproto.ErrNotLeader
	// ErrBusy: too much is pending or uncommitted at the leader; the
	// Client backs off and retries.
	ErrBusy = clientproto.ErrBusy
	// ErrClosed: the server is closed, or failed, or refused the
	// connection's handshake; the Client tries another server.
	ErrClosed = clientproto.ErrClosed
	// ErrTimeout: the context ended before the outcome was known. The
	// command may still be applied; the Client's next command moves on to
	// a new sequence number.
	ErrTimeout = clientproto.ErrTimeout
	// ErrStale: the client has already moved past this sequence number
	// (another Client with the same ID, or a SetSeq too low).
	ErrStale = clientproto.ErrStale
	// ErrSessionExpired: the client's session expired, or never began (a
	// first command numbered above 1); the command was not executed.
	// Start over with a new client ID.
	ErrSessionExpired = clientproto.ErrSessionExpired
	// ErrTooLarge: the command (or query) is longer than the servers'
	// MaxCommandBytes, or than the Client's own MaxFrameBytes; it was not
	// proposed, and retrying it will not help.
	ErrTooLarge = clientproto.ErrTooLarge
	// ErrResponseNotKept: a retry of a command that was executed, whose
	// response the servers' session table did not keep (too long, or
	// dropped to keep the table within its bounds). The command ran once;
	// its response is lost.
	ErrResponseNotKept = clientproto.ErrResponseNotKept
	// ErrRemoved: the server was removed from the cluster and stopped; the
	// Client tries another.
	ErrRemoved = clientproto.ErrRemoved
	// ErrDataLost: the cluster refused the server as one that lost its
	// data, and it stopped; the Client tries another.
	ErrDataLost = clientproto.ErrDataLost
	// ErrChangeInProgress: another configuration change or leadership
	// transfer asked of the leader has not finished; one at a time.
	ErrChangeInProgress = clientproto.ErrChangeInProgress
	// ErrBadChange: the change cannot apply to the configuration (see
	// engine.ErrBadChange).
	ErrBadChange = clientproto.ErrBadChange
	// ErrNotCaughtUp: the learner to promote is too far behind, or the
	// leader has not heard from the replica to hand its leadership to.
	// Promote and TransferLeadership retry until their context ends, then
	// return it wrapped with ErrTimeout.
	ErrNotCaughtUp = clientproto.ErrNotCaughtUp
)

// NotLeaderError is an ErrNotLeader with a hint: the leader's ID
// (LeaderID, valid when LeaderKnown) and its client address (LeaderAddr,
// empty when unknown), if the server knows them. It is the same type as
// engine.NotLeaderError, so errors.As finds it in an error of either
// package.
type NotLeaderError = clientproto.NotLeaderError
