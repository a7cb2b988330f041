package clientproto

import (
	"errors"
	"fmt"

	"github.com/paxos-go/paxos/engine/paxos"
)

// The errors that a response's code stands for, shared by the engine and
// the client so that errors.Is and errors.As match on both sides. The
// engine and the client re-export them (engine.ErrNotLeader and
// client.ErrNotLeader are this ErrNotLeader), with their documentation.
var (
	ErrNotLeader        = errors.New("paxos: not the leader")
	ErrBusy             = errors.New("paxos: busy")
	ErrClosed           = errors.New("paxos: closed")
	ErrTimeout          = errors.New("paxos: timed out")
	ErrStale            = errors.New("paxos: command older than the client's last")
	ErrSessionExpired   = errors.New("paxos: client session expired")
	ErrTooLarge         = errors.New("paxos: command too large")
	ErrResponseNotKept  = errors.New("paxos: the command was executed, but its response was not kept for a retry")
	ErrRemoved          = errors.New("paxos: this replica was removed from the cluster")
	ErrDataLost         = errors.New("paxos: the cluster refused this replica: it lost its data")
	ErrBadSequence      = errors.New("paxos: command number breaks the sequence rule")
	ErrBadCommand       = errors.New("paxos: malformed command")
	ErrChangeInProgress = paxos.ErrChangeInProgress
	ErrBadChange        = paxos.ErrBadChange
	ErrNotCaughtUp      = paxos.ErrNotCaughtUp
)

// NotLeaderError is an ErrNotLeader with a hint: the leader's ID and its
// client address, if the replica knows them (the address is the one the
// configuration gives the leader; see engine.Config.ClientAddrs).
type NotLeaderError struct {
	// LeaderKnown says LeaderID is the leader this replica follows.
	LeaderKnown bool
	LeaderID    uint64
	LeaderAddr  string // empty when unknown
}

func (e *NotLeaderError) Error() string {
	switch {
	case e.LeaderAddr != "":
		return fmt.Sprintf("%s (the leader is replica %d at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
	case e.LeaderKnown:
		return fmt.Sprintf("%s (the leader is replica %d, whose client address is unknown)", ErrNotLeader, e.LeaderID)
	}
	return ErrNotLeader.Error() + " (leader unknown)"
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Error codes of the client protocol (Response.Code).
const (
	CodeNotLeader uint8 = iota + 1
	CodeBusy
	CodeTimeout
	CodeClosed
	CodeStale
	CodeExpired
	CodeBadRequest
	CodeTooLarge
	CodeNotKept
	CodeChangeInProgress
	CodeBadChange
	CodeNotCaughtUp
	CodeRemoved
	CodeDataLost
	CodeBadSequence
)

// CodeErrors maps a code to the error it stands for; CodeBadRequest has
// none (the message says what was wrong).
var CodeErrors = map[uint8]error{
	CodeNotLeader: ErrNotLeader, CodeBusy: ErrBusy, CodeTimeout: ErrTimeout, CodeClosed: ErrClosed,
	CodeStale: ErrStale, CodeExpired: ErrSessionExpired, CodeTooLarge: ErrTooLarge, CodeNotKept: ErrResponseNotKept,
	CodeChangeInProgress: ErrChangeInProgress, CodeBadChange: ErrBadChange, CodeNotCaughtUp: ErrNotCaughtUp,
	CodeRemoved: ErrRemoved, CodeDataLost: ErrDataLost, CodeBadSequence: ErrBadSequence,
}

// codeOrder is the order ErrorCode tries the codes in: an error may match
// several (a timeout while the learner is not caught up; a node closed
// because it was removed), and the more telling one wins.
var codeOrder = []uint8{
	CodeNotLeader, CodeBusy, CodeChangeInProgress, CodeBadChange, CodeNotCaughtUp, CodeRemoved, CodeDataLost,
	CodeTimeout, CodeClosed, CodeStale, CodeExpired, CodeTooLarge, CodeNotKept, CodeBadSequence,
}

// ErrorCode returns the code of err: that of the first error of codeOrder
// it matches, else CodeBadRequest.
func ErrorCode(err error) uint8 {
	for _, code := range codeOrder {
		if errors.Is(err, CodeErrors[code]) {
			return code
		}
	}
	return CodeBadRequest
}
