package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
)

// Role is what a replica is doing, as Status reports it: paxos.Role, whose
// constants (re-exported below) are documented there.
type Role = paxos.Role

// The roles of a Status (see paxos.Role).
const (
	RoleFollower     = paxos.RoleFollower
	RolePreCandidate = paxos.RolePreCandidate
	RoleCandidate    = paxos.RoleCandidate
	RoleLeader       = paxos.RoleLeader
	RoleLearner      = paxos.RoleLearner
	RoleJoining      = paxos.RoleJoining
	RoleRemoved      = paxos.RoleRemoved
)

// DefaultEventBuffer is the default of Config.EventBuffer.
const DefaultEventBuffer = 256

// Event is something that happened to a replica, as Node.Events delivers
// it: one of LeaderChanged, RoleChanged, SnapshotTaken, SnapshotInstalled,
// PeerConnected, PeerDisconnected and Stopped (a type switch tells them
// apart). Events are values: the node keeps no reference to them.
type Event interface{ event() }

// LeaderChanged: the leader this replica knows changed, or was lost
// (HasLeader false). It reports the state at the end of the loop's turn
// that saw the change, as Status would.
type LeaderChanged struct {
	Leader     uint64 // valid when HasLeader
	HasLeader  bool
	LeaderAddr string       // the leader's client address, if the configuration gives one
	Ballot     paxos.Ballot // the ballot this replica promised (Status.Promised)
}

// RoleChanged: this replica's role changed (see Role).
type RoleChanged struct{ From, To Role }

// SnapshotTaken: this replica wrote a snapshot of its state up to Slot
// (by its policy, or asked by Node.Snapshot), verified it, and compacted
// its log behind it.
type SnapshotTaken struct {
	Slot  uint64
	Bytes int64
}

// SnapshotInstalled: this replica installed a snapshot up to Slot that
// the leader (From) sent it, because it was too far behind for the log.
type SnapshotInstalled struct {
	Slot  uint64
	Bytes int64
	From  uint64
}

// PeerConnected: the default transport established its connection to
// replica Peer (the one it sends on). A custom Config.Transport reports no
// peer events.
type PeerConnected struct{ Peer uint64 }

// PeerDisconnected: the connection to replica Peer failed or was closed
// (the transport keeps trying to reconnect while Peer is a member).
type PeerDisconnected struct{ Peer uint64 }

// Stopped: the replica stopped, and takes no part any more. Err is why:
// nil after Close; the write or store failure, ErrRemoved or ErrDataLost
// when it stopped by itself (the same as Node.Err). It is the last event:
// none follows it, and Close closes the channel after it.
type Stopped struct{ Err error }

func (LeaderChanged) event()     {}
func (RoleChanged) event()       {}
func (SnapshotTaken) event()     {}
func (SnapshotInstalled) event() {}
func (PeerConnected) event()     {}
func (PeerDisconnected) event()  {}
func (Stopped) event()           {}

// events is a node's event stream. Events come from the loop (leader,
// role, snapshots, stopping) and from the transport's goroutines (peers):
// emit never blocks any of them. The channel holds Config.EventBuffer
// events plus one slot kept for Stopped, so that the stop is delivered
// however far behind the consumer is.
type events struct {
	mu      sync.Mutex // serialises the sends with close
	ch      chan Event
	limit   int // the events, other than Stopped, the channel may hold
	closed  bool
	stopped bool // Stopped was sent
	dropped atomic.Uint64
}

func newEvents(buffer int) *events {
	return &events{ch: make(chan Event, buffer+1), limit: buffer}
}

// emit delivers e, or drops and counts it if the consumer is EventBuffer
// events behind. Only the first Stopped is delivered.
func (ev *events) emit(e Event) {
	if ev == nil {
		return // a Node built by a test, without Start
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	_, stop := e.(Stopped)
	switch {
	case ev.closed || ev.stopped:
		// After Stopped, nothing: it is the last event.
	case stop:
		ev.stopped = true
		ev.ch <- e // the reserved slot: every sender but this one stops at limit
	case len(ev.ch) < ev.limit:
		ev.ch <- e
	default:
		ev.dropped.Add(1)
	}
}

// close closes the channel, after a Stopped event if none was sent.
func (ev *events) close() {
	ev.emit(Stopped{})
	ev.mu.Lock()
	ev.closed = true
	close(ev.ch)
	ev.mu.Unlock()
}

// Events returns the node's events (see Event), in the order they
// happened on each source (the loop; each peer's connection).
//
// The channel holds Config.EventBuffer events (default 256). The node
// never waits for the consumer: when the channel is full, a new event is
// dropped and counted (EventsDropped), except Stopped, which always fits.
// A consumer that missed events can read the state they describe from
// Status, Err and Done. Close closes the channel, after the Stopped event;
// a replica that stopped by itself sends Stopped at once, and its channel
// closes when Close is called. Every call returns the same channel: use
// one consumer.
func (n *Node) Events() <-chan Event { return n.events.ch }

// EventsDropped returns how many events were dropped because the Events
// channel was full.
func (n *Node) EventsDropped() uint64 { return n.events.dropped.Load() }

// onPeer is the default transport's peer hook (paxosnet.Options.OnPeer),
// called from its writer goroutines.
func (n *Node) onPeer(peer uint64, connected bool) {
	if connected {
		n.events.emit(PeerConnected{Peer: peer})
	} else {
		n.events.emit(PeerDisconnected{Peer: peer})
	}
}

// noteStatus emits the events that the change from prev to st (the
// status at the end of a turn) makes, and, when the leader changed,
// wakes whoever waits for a leader and logs the change. It runs on the
// loop goroutine, or in Start before the loop. prev is nil the first
// time.
func (n *Node) noteStatus(prev, st *Status) {
	if prev == nil {
		return
	}
	if prev.Role != st.Role {
		n.events.emit(RoleChanged{From: prev.Role, To: st.Role})
	}
	if prev.HasLead != st.HasLead || prev.Leader != st.Leader {
		n.events.emit(LeaderChanged{Leader: st.Leader, HasLeader: st.HasLead, LeaderAddr: st.LeaderAddr, Ballot: st.Promised})
		n.signalLeader()
		n.logLeader(st)
	}
}

// leaderSignal returns a channel that is closed at the next change of the
// leader this replica knows (found, lost or replaced).
func (n *Node) leaderSignal() <-chan struct{} { return *n.leaderCh.Load() }

func (n *Node) signalLeader() {
	next := make(chan struct{})
	close(*n.leaderCh.Swap(&next))
}

// WaitLeader waits until this replica knows a leader (itself, perhaps),
// and returns its ID: at start-up, before the first Submit, or in a
// monitor. It returns an error wrapping ErrTimeout when ctx ends first,
// and ErrClosed when the node stops.
func (n *Node) WaitLeader(ctx context.Context) (uint64, error) {
	for {
		changed := n.leaderSignal()
		select {
		case <-n.done:
			n.mu.Lock()
			defer n.mu.Unlock()
			return 0, n.closedError()
		default:
		}
		if st := n.Status(); st.HasLead {
			return st.Leader, nil
		}
		if err := n.waitLeaderChange(ctx, changed); err != nil {
			return 0, err
		}
	}
}

// waitLeaderChange waits for changed (see leaderSignal) to close, for at
// most an election timeout (so that a change missed between a call's
// failure and its retry costs at most that), unless ctx ends or the node
// stops first.
func (n *Node) waitLeaderChange(ctx context.Context, changed <-chan struct{}) error {
	t := time.NewTimer(n.cfg.ElectionTimeout)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a leader: %w", ErrTimeout, ctx.Err())
	case <-n.done:
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.closedError()
	}
}

// leaderUnknown reports whether err says that no leader is known (rather
// than naming one), the one refusal that waiting can cure.
func leaderUnknown(err error) bool {
	var nl *NotLeaderError
	return errors.As(err, &nl) && !nl.LeaderKnown
}
