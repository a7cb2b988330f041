package engine

import (
	"errors"
	"fmt"

	"github.com/paxos-go/paxos/engine/paxos"
)

// ReadyLagSlots is the catch-up window of Readiness: a replica whose
// applied slot is more than this many slots below the leader's commit
// index is catching up, not ready. It is the window within which a leader
// considers a learner caught up enough to promote it (the core's
// DefaultCatchUpSlots).
const ReadyLagSlots = paxos.DefaultCatchUpSlots

// ErrNotReady is matched by Readiness's errors.
var ErrNotReady = errors.New("paxos: not ready")

// Readiness reports whether the replica is ready to serve, as a load
// balancer's readiness probe asks (`/readyz` of `paxos up` and
// `chatroom-server`): nil if it runs, knows a leader (itself or another),
// and has applied the log to within ReadyLagSlots of the leader's commit
// index (Status.LeaderCommit, which a leader's heartbeats and Accepts carry);
// else an error matching ErrNotReady that says why. A replica just
// started, cut off from a majority, joining, or catching up after a
// restart (from the log or a snapshot) is alive but not ready.
//
// It reads the state of the node's last turn: a leader lost a moment ago
// shows once the replica notices (an election timeout at most).
func (n *Node) Readiness() error {
	n.mu.Lock()
	closed, failure := n.closed, n.failure
	n.mu.Unlock()
	st := n.Status()
	switch {
	case failure != nil:
		return fmt.Errorf("%w: the replica stopped: %w", ErrNotReady, failure)
	case closed:
		return fmt.Errorf("%w: the replica is closed", ErrNotReady)
	case st.Removed:
		return fmt.Errorf("%w: the replica was removed from the cluster", ErrNotReady)
	case st.Joining:
		return fmt.Errorf("%w: the replica waits to be added to the cluster", ErrNotReady)
	case !st.HasLead:
		return fmt.Errorf("%w: no leader known", ErrNotReady)
	case st.Applied+ReadyLagSlots < st.LeaderCommit:
		return fmt.Errorf("%w: catching up: applied slot %d, %d behind the leader's commit index %d (ready within %d)",
			ErrNotReady, st.Applied, st.LeaderCommit-st.Applied, st.LeaderCommit, ReadyLagSlots)
	}
	return nil
}
