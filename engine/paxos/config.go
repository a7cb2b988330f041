package paxos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Defaults for Config.
const (
	DefaultElectionTicks       = 10
	DefaultHeartbeatTicks      = 1
	DefaultMaxBatchBytes       = 512 << 10
	DefaultMaxInflightSlots    = 8
	DefaultMaxMsgBytes         = 4 << 20
	DefaultMaxUncommittedBytes = 64 << 20
	DefaultCatchUpSlots        = 1000
)

// Config configures a RawNode. Zero fields take the documented defaults.
type Config struct {
	// ID is this replica. Required.
	ID NodeID
	// ConfigState is the configuration state to restart from: the one
	// kept with the latest snapshot (see ConfigState), which is the state
	// after slot Applied (the snapshot's slot). Without it, Peers
	// bootstraps a new cluster: every replica listed, this one included,
	// is a voter, from slot 1. With neither, the replica is joining: it
	// knows no configuration, never campaigns, and waits for a leader to
	// send it a snapshot (it must have been added with AddLearner).
	ConfigState ConfigState
	Peers       []NodeID
	// CatchUpSlots is how close to the commit index a learner must be for
	// ProposeChange to promote it. Default 1000.
	CatchUpSlots uint64

	// ElectionTicks is how many ticks a follower waits without hearing from
	// a leader before it polls for an election; the actual wait is drawn
	// from [ElectionTicks, 2*ElectionTicks) each time. It is also how long
	// a replica that heard from a leader refuses other candidates, and how
	// often a leader checks that it still reaches a majority. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval. Default 1.
	HeartbeatTicks int

	// MaxBatchBytes bounds a slot's value built from several pending
	// proposals (a single larger proposal still gets its own slot).
	// Default 512 KiB.
	MaxBatchBytes int
	// MaxInflightSlots is the pipeline window: how many slots the leader
	// proposes beyond its commit index, and sends to a follower beyond what
	// it acknowledged. Small windows make big batches. Default 8.
	MaxInflightSlots int
	// MaxMsgBytes bounds the values in one Accept message. Default 4 MiB.
	MaxMsgBytes int
	// MaxUncommittedBytes bounds the values the leader holds pending or
	// uncommitted; Propose beyond it returns ErrBusy. Default 64 MiB.
	MaxUncommittedBytes int

	// Rand draws the election timeouts. Required, so that a simulation is
	// reproducible from its seed.
	Rand *rand.Rand

	// Incarnation numbers this life of the replica. Required: it must be
	// above the Incarnation of every earlier life of this replica, and
	// durable before NewRawNode is called (the engine keeps a counter in
	// the data directory and syncs it at start), and below 2^24. The ids
	// that match replies to requests (polls, read-index requests) are drawn
	// from it, so that a reply sent to an earlier life, delivered late, is
	// never taken for a reply to this one.
	Incarnation uint64

	// The state to restart from: zero for a new replica. HardState and
	// Entries come from the write-ahead log; Compacted from the latest
	// snapshot, which covers every slot up to Compacted.Slot; Entries are
	// the log after it, in slot order. Applied is the slot the state machine
	// has applied (the snapshot's slot, after a restart).
	HardState HardState
	Compacted Compacted
	Entries   []Entry
	Applied   uint64

	// Knobs break the protocol on purpose, for tests that check that the
	// simulator's checkers catch the breakage. Never set them otherwise.
	Knobs TestingKnobs
}

// MaxIncarnation bounds Config.Incarnation: request ids are the
// incarnation followed by a 40-bit count, in 64 bits.
const MaxIncarnation = 1 << (64 - idBits)

// Compacted says that a snapshot covers every slot up to Slot, whose entry
// was accepted under Ballot.
type Compacted struct {
	Slot   uint64
	Ballot Ballot
}

// TestingKnobs are deliberate protocol bugs. Each is a way real Paxos
// implementations have gone wrong; the simulator's tests turn them on to
// show that its checkers would notice.
type TestingKnobs struct {
	// ReplyBeforePersist sends Promise and Accepted replies before the
	// state they promise is durable.
	ReplyBeforePersist bool
	// AcceptLowerBallot lets an acceptor promise, and accept entries
	// under, a ballot below the one it promised.
	AcceptLowerBallot bool
	// CommitOnMinority lets the leader treat a slot as chosen as soon as it
	// alone has accepted it.
	CommitOnMinority bool
	// ReuseBallot is the bug a review found: a proposer that does not
	// remember its ballots durably. A candidate sends Prepare before its
	// own promise of the new ballot is durable, becomes leader on the
	// others' promises alone, numbers its polls from 1 in every life (so
	// it can count a poll answer sent to its previous life), and picks its
	// ballot from what it remembers, not from the ballots that answers to
	// its polls and Prepares report: after a crash that lost its promise,
	// it campaigns again with the ballot it already used.
	ReuseBallot bool
	// AdoptLowestBallot makes phase 1 re-propose, for each slot, the value
	// reported under the lowest ballot instead of the highest.
	AdoptLowestBallot bool
	// ReadBeforeRecovery lets a new leader serve reads before it has
	// committed the slots phase 1 re-proposed.
	ReadBeforeRecovery bool
	// ReadWithoutQuorum confirms a read index with the leader's own
	// answer alone.
	ReadWithoutQuorum bool
	// AckConflictingValue lets an acceptor that is offered a different
	// value for a slot under the ballot it holds there keep its own and
	// acknowledge, instead of refusing the message as a violation.
	AckConflictingValue bool
	// CountOwnAcceptEarly has the leader count its own acceptance of new
	// slots before they are durable on it.
	CountOwnAcceptEarly bool
	// CommitBeyondLeader lets a follower take the leader's commit index
	// for slots it holds from earlier leaders, not only those it holds
	// from this one.
	CommitBeyondLeader bool
	// ImmediateConfig makes a configuration chosen in slot s govern from
	// slot s+1 instead of s+ConfigWindow, and lets the leader propose past
	// slots whose configuration it does not know yet.
	ImmediateConfig bool
	// Phase1FirstConfig makes phase 1 ask only the configurations of the
	// window after the candidate's commit index, ignoring configuration
	// slots that promises report.
	Phase1FirstConfig bool
}

func (c Config) withDefaults() (Config, error) {
	if c.ID == None {
		return c, errors.New("paxos: Config.ID is None")
	}
	if len(c.ConfigState) == 0 && len(c.Peers) > 0 {
		c.Peers = slices.Clone(c.Peers)
		slices.Sort(c.Peers)
		if len(slices.Compact(slices.Clone(c.Peers))) != len(c.Peers) {
			return c, fmt.Errorf("paxos: Config.Peers %v lists a replica twice", c.Peers)
		}
		if !slices.Contains(c.Peers, c.ID) {
			return c, fmt.Errorf("paxos: Config.ID %s is not in Config.Peers %v", c.ID, c.Peers)
		}
		if slices.Contains(c.Peers, None) {
			return c, errors.New("paxos: Config.Peers contains None")
		}
		c.ConfigState = Bootstrap(c.Peers, nil, nil)
	}
	if len(c.ConfigState) > 0 {
		if err := c.ConfigState.Validate(); err != nil {
			return c, err
		}
		c.ConfigState = slices.Clone(c.ConfigState)
	} else if c.Compacted.Slot > 0 || len(c.Entries) > 0 {
		return c, errors.New("paxos: a replica with a log needs Config.ConfigState")
	}
	if c.Rand == nil {
		return c, errors.New("paxos: Config.Rand is nil")
	}
	if c.Incarnation == 0 || c.Incarnation >= MaxIncarnation {
		return c, fmt.Errorf("paxos: Config.Incarnation %d is not in [1, %d)", c.Incarnation, MaxIncarnation)
	}
	if !c.HardState.Promised.canFollow() {
		return c, fmt.Errorf("paxos: Config.HardState promises ballot %s, whose round cannot be exceeded", c.HardState.Promised)
	}
	def := func(v *int, d int, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 {
			return fmt.Errorf("paxos: Config.%s is negative", name)
		}
		return nil
	}
	for _, err := range []error{
		def(&c.ElectionTicks, DefaultElectionTicks, "ElectionTicks"),
		def(&c.HeartbeatTicks, DefaultHeartbeatTicks, "HeartbeatTicks"),
		def(&c.MaxBatchBytes, DefaultMaxBatchBytes, "MaxBatchBytes"),
		def(&c.MaxInflightSlots, DefaultMaxInflightSlots, "MaxInflightSlots"),
		def(&c.MaxMsgBytes, DefaultMaxMsgBytes, "MaxMsgBytes"),
		def(&c.MaxUncommittedBytes, DefaultMaxUncommittedBytes, "MaxUncommittedBytes"),
	} {
		if err != nil {
			return c, err
		}
	}
	if c.CatchUpSlots == 0 {
		c.CatchUpSlots = DefaultCatchUpSlots
	}
	if c.MaxInflightSlots > ConfigWindow {
		return c, fmt.Errorf("paxos: MaxInflightSlots (%d) may not exceed ConfigWindow (%d)", c.MaxInflightSlots, ConfigWindow)
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return c, fmt.Errorf("paxos: HeartbeatTicks (%d) must be below ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	for i, e := range c.Entries {
		if !e.Ballot.canFollow() {
			return c, fmt.Errorf("paxos: Config.Entries[%d] has ballot %s, whose round cannot be exceeded", i, e.Ballot)
		}
		if e.Slot != c.Compacted.Slot+1+uint64(i) {
			return c, fmt.Errorf("paxos: Config.Entries[%d] is for slot %d, want %d", i, e.Slot, c.Compacted.Slot+1+uint64(i))
		}
	}
	return c, nil
}
