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
)

// Config configures a RawNode. Zero fields take the documented defaults.
type Config struct {
	// ID is this replica; Peers lists every replica of the cluster, this one
	// included. Both are required.
	ID    NodeID
	Peers []NodeID

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
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Peers) == 0 {
		return c, errors.New("paxos: Config.Peers is empty")
	}
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
	if c.Rand == nil {
		return c, errors.New("paxos: Config.Rand is nil")
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
	if c.HeartbeatTicks >= c.ElectionTicks {
		return c, fmt.Errorf("paxos: HeartbeatTicks (%d) must be below ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	for i, e := range c.Entries {
		if e.Slot != c.Compacted.Slot+1+uint64(i) {
			return c, fmt.Errorf("paxos: Config.Entries[%d] is for slot %d, want %d", i, e.Slot, c.Compacted.Slot+1+uint64(i))
		}
	}
	return c, nil
}
