package paxos

import (
	"fmt"
	"math"
)

// NodeID names a replica. Any value but None is valid; the seed CLIs number
// replicas from 0.
type NodeID uint64

// None is the NodeID of no replica: "no leader known".
const None NodeID = math.MaxUint64

// String formats the replica ID ("none" for None), for logs.
func (id NodeID) String() string {
	if id == None {
		return "none"
	}
	return fmt.Sprint(uint64(id))
}

// Ballot orders proposals: by Round, then by Node, so two replicas never
// use the same ballot. The zero Ballot is below every ballot a replica uses
// (their Round is at least 1) and means "nothing promised yet".
type Ballot struct {
	Round uint64
	Node  NodeID
}

// Compare returns -1, 0 or +1 as b orders before, equal to or after o.
func (b Ballot) Compare(o Ballot) int {
	switch {
	case b.Round < o.Round:
		return -1
	case b.Round > o.Round:
		return 1
	case b.Node < o.Node:
		return -1
	case b.Node > o.Node:
		return 1
	}
	return 0
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool { return b.Compare(o) < 0 }

// MaxRound is the highest round a ballot may have: one that can still be
// incremented. A message or a disk record with a higher round is refused;
// without the bound, a round of 2^64-1 would make the next ballot wrap to
// round 0, and every replica's promise go back.
const MaxRound = math.MaxUint64 - 1

// canFollow reports whether b's round can be incremented, so that b may be
// taken from a message or from disk.
func (b Ballot) canFollow() bool { return b.Round <= MaxRound }

// IsZero reports whether b is the zero Ballot.
func (b Ballot) IsZero() bool { return b == Ballot{} }

// String formats the ballot as round.node (0 for the zero ballot), for
// logs.
func (b Ballot) String() string {
	if b.IsZero() {
		return "0"
	}
	return fmt.Sprintf("%d.%s", b.Round, b.Node)
}

// Entry is the value accepted for a slot, and the ballot it was accepted
// under. Value is an encoded batch (see value.go); the core never changes
// the bytes of a Value once it holds them, and neither may its caller.
type Entry struct {
	Slot   uint64
	Ballot Ballot
	Value  []byte
}

// HardState is the acceptor state that must be durable before any reply
// that depends on it is sent: the highest ballot promised, and how far the
// log is known to be committed (a hint that may lag; committed slots stay
// committed, so a stale value is safe).
type HardState struct {
	Promised Ballot
	Commit   uint64
}

// MessageType says what a Message is.
type MessageType uint8

// The messages of the protocol. Phase 1 is PrePrepare/PrePromise (a
// non-binding poll that keeps an isolated replica from raising ballots)
// then Prepare/Promise; phase 2 is Accept/Accepted. Heartbeats carry the
// commit index and confirm leadership for reads.
const (
	// MsgPrePrepare asks whether the receiver would promise a new ballot:
	// Ballot is the ballot the sender would use, Commit its commit index,
	// Context the poll's id (unique across the lives of the sender, so an
	// answer to an earlier life's poll is never counted). Nothing changes
	// at the receiver.
	MsgPrePrepare MessageType = iota + 1
	// MsgPrePromise answers a MsgPrePrepare: Reject says no; Ballot is the
	// receiver's promised ballot, so the sender can pick a higher one.
	MsgPrePromise
	// MsgPrepare is phase 1a: Ballot is the candidate's ballot, Slot the
	// first slot it is not sure is committed (its commit index + 1).
	MsgPrepare
	// MsgPromise is phase 1b, sent once the promise is durable: Entries are
	// the receiver's accepted entries from the prepared slot on; Commit is
	// its commit index; Slot is its compacted slot (entries at or below it
	// are gone, and committed).
	MsgPromise
	// MsgAccept is phase 2a: Entries for consecutive slots after Slot,
	// under Ballot. The receiver takes them only if it holds Slot under
	// Ballot or knows Slot is committed. Commit is the leader's commit.
	MsgAccept
	// MsgAccepted is phase 2b, sent once the entries are durable: every
	// slot the receiver holds above its commit index, up to Slot, is
	// accepted under Ballot. With Reject, it could not take the entries and
	// Slot is where the leader should continue from (Slot + 1).
	MsgAccepted
	// MsgNack refuses a ballot below the receiver's promise, which it
	// carries in Ballot.
	MsgNack
	// MsgHeartbeat is the leader's periodic message: Commit is its commit
	// index and Context the latest read confirmation round.
	MsgHeartbeat
	// MsgHeartbeatResp answers a heartbeat: Context echoes it, Slot is the
	// highest slot the receiver has accepted under Ballot.
	MsgHeartbeatResp
	// MsgPropose forwards a batch of commands (Value) to the leader.
	MsgPropose
	// MsgReadIndex asks the leader for a read index; Context names the
	// request, uniquely across the lives of the sender.
	MsgReadIndex
	// MsgReadIndexResp gives the read index (Slot) for request Context,
	// confirmed under the leader's Ballot. The requester takes it only from
	// the leader it follows, under that leader's ballot, for a request it
	// has outstanding.
	MsgReadIndexResp
	// MsgTimeoutNow is a leader handing its leadership over: the receiver,
	// which the leader brought fully up to date (Slot is the leader's last
	// slot), campaigns at once, without a poll, and its Prepare carries
	// Context PrepareTransfer so that acceptors that heard from the leader
	// recently still answer it. Taken only from the leader followed, under
	// its ballot. Context is the leader's last slot: a target that holds
	// more of the leader's slots got it after the leader gave the
	// transfer up, and ignores it.
	MsgTimeoutNow
	// MsgRemoved tells a replica that the sender's committed log removed
	// it from the cluster, and that its removal governs: it answers any
	// message from a replica removed, which may have missed the slots that
	// said so.
	MsgRemoved
)

// Context values with a meaning of their own.
const (
	// PrepareTransfer, as the Context of a MsgPrepare, says the candidate
	// campaigns because the leader handed its leadership over.
	PrepareTransfer uint64 = 1
	// AcceptedNeedSnapshot, as the Context of a rejecting MsgAccepted,
	// says the acceptor knows no configuration (it is joining) and needs a
	// snapshot before it can take entries.
	AcceptedNeedSnapshot uint64 = 1
)

var messageTypeNames = [...]string{
	MsgPrePrepare:    "PrePrepare",
	MsgPrePromise:    "PrePromise",
	MsgPrepare:       "Prepare",
	MsgPromise:       "Promise",
	MsgAccept:        "Accept",
	MsgAccepted:      "Accepted",
	MsgNack:          "Nack",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgPropose:       "Propose",
	MsgReadIndex:     "ReadIndex",
	MsgReadIndexResp: "ReadIndexResp",
	MsgTimeoutNow:    "TimeoutNow",
	MsgRemoved:       "Removed",
}

// String names the message type, for logs and traces.
func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) && messageTypeNames[t] != "" {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is what replicas send each other. Which fields mean something
// depends on Type; see the constants.
type Message struct {
	Type     MessageType
	From, To NodeID
	Ballot   Ballot
	Slot     uint64
	Commit   uint64
	Entries  []Entry
	Reject   bool
	Context  uint64
	Value    []byte
}

// ReadState says that a read asked for with ReadIndex (Context) may be
// served once the state machine has applied slot Index.
type ReadState struct {
	Context uint64
	Index   uint64
}
