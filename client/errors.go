package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	stdnet "net"
	"strings"

	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/net/certs"
)

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
	// ErrClosed: the server is closed, or failed; the Client tries
	// another server.
	ErrClosed = clientproto.ErrClosed
	// ErrTimeout: the context ended before the outcome was known. The
	// command may still be applied; the Client's next command sends it
	// again first, with its number (see Client.Submit).
	ErrTimeout = clientproto.ErrTimeout
	// ErrStale: the client has already moved past this sequence number
	// (another Client with the same ID, or a SetSeq too low).
	ErrStale = clientproto.ErrStale
	// ErrSessionExpired: the client's session expired, or never began (a
	// first command numbered above 1); the command was not executed.
	// Start over with a new client ID.
	ErrSessionExpired = clientproto.ErrSessionExpired
	// ErrBadSequence: the command's number breaks the sequence rule (see
	// package engine): a SetSeq above the session's last, or another
	// Client with the same ID. It was not executed.
	ErrBadSequence = clientproto.ErrBadSequence
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
	// ErrBadCommand: a typed state machine could not decode the command
	// (see Typed); it changed nothing.
	ErrBadCommand = clientproto.ErrBadCommand
)

// Errors of the Client itself, or of the connection, that no retry can
// fix: a call that meets one fails at once.
var (
	// ErrConfig: the Client's own configuration is wrong: no server
	// addresses, both Options.TLS and Options.TLSDir, or certificates
	// that cannot be read.
	ErrConfig = errors.New("client: the client's configuration")
	// ErrRefused: a server read the client's handshake and refused it:
	// Options.ClusterID is not the server's (the message says "wrong
	// cluster"), or the address is not a client port.
	ErrRefused = errors.New("client: the server refused the connection")
	// ErrCertificate: TLS failed on a certificate: the client does not
	// trust the server's (another CA, another name), or the server refused
	// the client's (none, expired, of another cluster).
	ErrCertificate = errors.New("client: TLS certificate refused")
	// ErrBadRequest: the server could not take the request (malformed, or
	// an operation it does not know); the message says why.
	ErrBadRequest = errors.New("client: the server refused the request as malformed")
)

// IsPermanent reports whether err is one that no retry can fix, with which
// a Client's call ends at once: the errors of the Client's configuration
// and of the connection (ErrConfig, ErrRefused, ErrCertificate), and the
// servers' definite refusals of a request (ErrBadRequest, ErrTooLarge,
// ErrBadSequence, ErrStale, ErrSessionExpired, ErrResponseNotKept,
// ErrBadChange, ErrBadCommand). The others (ErrNotLeader, ErrBusy,
// ErrClosed, ErrRemoved, ErrDataLost, ErrChangeInProgress,
// ErrNotCaughtUp, ErrTimeout, and network errors) may pass: the Client
// retries them until its context ends.
func IsPermanent(err error) bool {
	for _, p := range permanent {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

var permanent = []error{
	ErrConfig, ErrRefused, ErrCertificate, ErrBadRequest, ErrTooLarge, ErrBadSequence, ErrStale,
	ErrSessionExpired, ErrResponseNotKept, ErrBadChange, ErrBadCommand,
}

// certificateError reports whether err is TLS failing on a certificate:
// this side's verification of the other's, or the other side's alert
// refusing this one's.
func certificateError(err error) bool {
	var (
		ve *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		he x509.HostnameError
	)
	if errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.Is(err, certs.ErrIdentity) {
		return true
	}
	// A remote alert comes as a *net.OpError "remote error" around an
	// unexported alert type; its text names it ("tls: bad certificate",
	// "tls: certificate required", "tls: unknown certificate authority").
	var oe *stdnet.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil && strings.Contains(oe.Err.Error(), "certificate")
}

// NotLeaderError is an ErrNotLeader with a hint: the leader's ID
// (LeaderID, valid when LeaderKnown) and its client address (LeaderAddr,
// empty when unknown), if the server knows them. It is the same type as
// engine.NotLeaderError, so errors.As finds it in an error of either
// package.
type NotLeaderError = clientproto.NotLeaderError
