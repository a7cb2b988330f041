package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
)

// Configuration changes and leadership transfers, asked of a Node (or
// through its client port) and carried out by its loop.
//
// One at a time: the loop holds the change under way (Node.change), and
// every caller asking for the same change waits for it with the others
// (a client's retry, say); a different one gets ErrChangeInProgress. The
// leader proposes the change to the core (paxos.RawNode.ProposeChange,
// or TransferLeadership), retrying while the core is not ready for it
// (the window of the previous change is still closing; a learner to
// promote is not caught up), and the change is done when the committed
// configuration shows it (a transfer: when this node knows the new
// leader). A change asked again once made is done at once, so a caller
// that lost track of its change (a timeout, a leader that moved) can
// simply ask again.

// changeKind is what a change asks: the kinds of the client protocol's
// Change.
type changeKind uint8

const (
	changeAddLearner = changeKind(clientproto.ChangeAddLearner)
	changePromote    = changeKind(clientproto.ChangePromote)
	changeRemove     = changeKind(clientproto.ChangeRemove)
	changeTransfer   = changeKind(clientproto.ChangeTransfer)
)

// changeRequest is a change asked of the node. For a transfer, cc.ID is
// the replica to hand the leadership to.
type changeRequest struct {
	kind changeKind
	cc   paxos.ConfChange
}

func (r changeRequest) String() string {
	switch r.kind {
	case changeAddLearner:
		return fmt.Sprintf("adding replica %d as a learner (peer address %q, client address %q)", uint64(r.cc.ID), r.cc.PeerAddr, r.cc.ClientAddr)
	case changePromote:
		return fmt.Sprintf("promoting replica %d to voter", uint64(r.cc.ID))
	case changeRemove:
		return fmt.Sprintf("removing replica %d", uint64(r.cc.ID))
	case changeTransfer:
		return fmt.Sprintf("handing the leadership to replica %d", uint64(r.cc.ID))
	}
	return fmt.Sprintf("change of kind %d", r.kind)
}

// changeWaiter is a caller waiting for a change.
type changeWaiter struct {
	req      changeRequest
	notify   func(error) // called once, by finish
	deadline time.Time   // zero: none (the caller's context ends the wait)
	// cancelled says the caller stopped waiting.
	cancelled atomic.Bool
	once      sync.Once
	// lastErr is why the change could not be made yet (ErrNotCaughtUp),
	// for the error of a wait that ends first.
	mu      sync.Mutex
	lastErr error
}

func (w *changeWaiter) finish(err error) { w.once.Do(func() { w.notify(err) }) }

func (w *changeWaiter) setLastErr(err error) {
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

// timeoutError is the error of a wait that ended (cause) before the
// change was made.
func (w *changeWaiter) timeoutError(cause error) error {
	w.mu.Lock()
	last := w.lastErr
	w.mu.Unlock()
	if last != nil {
		return fmt.Errorf("%w: %w: %w", ErrTimeout, cause, last)
	}
	return fmt.Errorf("%w: %w (%s may still be made: asking again is safe)", ErrTimeout, cause, w.req)
}

// changeOp is the change under way.
type changeOp struct {
	req     changeRequest
	waiters []*changeWaiter
	// proposed says the core took it, as leader of ballot; lostAt is when
	// this node was first seen not leading since.
	proposed bool
	ballot   paxos.Ballot
	lostAt   time.Time
}

func (op *changeOp) finish(err error) {
	for _, w := range op.waiters {
		w.finish(err)
	}
}

// AddLearner adds replica id to the configuration as a learner: it
// receives the log (a snapshot first) but does not vote, so adding it
// costs the cluster no availability. peerAddr is where the replicas reach
// it (required), clientAddr where clients do (optional: redirects to it
// need it). Start the new replica with Config.Join and an empty data
// directory, before or after this call. It returns once the committed
// configuration has the learner; Promote it once it has caught up.
//
// Errors: *NotLeaderError (ErrNotLeader) on a follower, naming the leader
// when known; ErrChangeInProgress while another change or transfer asked
// of this leader is under way; ErrBadChange for an ID that is a member
// already (with other addresses), or that was removed (an ID is never
// used again: add the replica under a new one), or a missing or malformed
// address; ErrTimeout when ctx ends first (the change may still be made:
// asking again is safe, a change already made returns nil); ErrClosed,
// ErrRemoved.
func (n *Node) AddLearner(ctx context.Context, id uint64, peerAddr, clientAddr string) error {
	return n.changeConfig(ctx, changeRequest{changeAddLearner,
		paxos.ConfChange{Type: paxos.AddLearner, ID: paxos.NodeID(id), PeerAddr: peerAddr, ClientAddr: clientAddr}})
}

// Promote makes learner id a voter. It waits until the learner is caught
// up (within the core's CatchUpSlots of the commit index), retrying, then
// returns once the committed configuration has it as a voter. When ctx
// ends first, the error wraps ErrTimeout and, if the learner was still
// behind, ErrNotCaughtUp. Other errors as for AddLearner (ErrBadChange:
// not a member).
func (n *Node) Promote(ctx context.Context, id uint64) error {
	return n.changeConfig(ctx, changeRequest{changePromote, paxos.ConfChange{Type: paxos.Promote, ID: paxos.NodeID(id)}})
}

// RemoveReplica removes replica id, voter or learner, for good: its ID is
// never used again, and the removed replica stops (ErrRemoved) once the
// removal governs. It returns once the committed configuration shows the
// removal. Removing the leader itself is allowed: it hands its leadership
// over to the most up-to-date voter and steps down (its pending commands
// go to the new leader). Errors as for AddLearner (ErrBadChange: not a
// member, or the last voter).
func (n *Node) RemoveReplica(ctx context.Context, id uint64) error {
	return n.changeConfig(ctx, changeRequest{changeRemove, paxos.ConfChange{Type: paxos.Remove, ID: paxos.NodeID(id)}})
}

// TransferLeadership hands the leadership to voter id: the leader stops
// opening slots (commands submitted meanwhile wait, they do not fail),
// brings id fully up to date and tells it to campaign at once. It returns
// once this node knows id leads. If id does not take over within two
// election timeouts, the leader carries on and the transfer is tried
// again, until ctx ends (ErrTimeout, wrapping ErrNotCaughtUp if the
// leader had not heard from id). If another replica took the lead
// meanwhile, it returns a *NotLeaderError naming it. Other errors as for
// AddLearner (ErrBadChange: id is not a voter).
func (n *Node) TransferLeadership(ctx context.Context, id uint64) error {
	return n.changeConfig(ctx, changeRequest{changeTransfer, paxos.ConfChange{ID: paxos.NodeID(id)}})
}

// changeConfig asks the loop for a change and waits for it.
func (n *Node) changeConfig(ctx context.Context, req changeRequest) error {
	ch := make(chan error, 1)
	w := &changeWaiter{req: req, notify: func(err error) { ch <- err }}
	if err := n.queueChange(w); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		w.cancelled.Store(true)
		n.wake()
		return w.timeoutError(ctx.Err())
	}
}

// changeAsync asks the loop for a change; reply is called once, with its
// outcome, after at most wait (on the loop's goroutine: it must not
// block).
func (n *Node) changeAsync(req changeRequest, wait time.Duration, reply func(error)) error {
	return n.queueChange(&changeWaiter{req: req, notify: reply, deadline: time.Now().Add(wait)})
}

func (n *Node) queueChange(w *changeWaiter) error {
	n.mu.Lock()
	if n.closed {
		err := n.closedError()
		n.mu.Unlock()
		return err
	}
	n.changeReqs = append(n.changeReqs, w)
	n.mu.Unlock()
	n.wake()
	return nil
}

// driveChanges takes the changes callers asked for and moves the one
// under way forward. It runs on the loop, every turn.
func (n *Node) driveChanges() {
	defer func() { n.changing.Store(n.change != nil) }()
	n.mu.Lock()
	reqs := n.changeReqs
	n.changeReqs = nil
	n.mu.Unlock()
	if len(reqs) == 0 && n.change == nil {
		return
	}
	st := n.rn.Status()
	for _, w := range reqs {
		n.takeChange(w, st)
	}
	op := n.change
	if op == nil {
		return
	}
	now := time.Now()
	op.waiters = slices.DeleteFunc(op.waiters, func(w *changeWaiter) bool {
		switch {
		case w.cancelled.Load():
			return true
		case !w.deadline.IsZero() && now.After(w.deadline):
			w.finish(w.timeoutError(context.DeadlineExceeded))
			return true
		}
		return false
	})
	if len(op.waiters) == 0 {
		// Nobody waits any more. A change the core took goes on without
		// us; one it did not is dropped.
		n.change = nil
		return
	}
	if done, err := n.changeDone(op, st, now); done {
		if err == nil {
			n.log.Info("configuration change done", "change", op.req.String(), "configuration", st.Config)
		}
		op.finish(err)
		n.change = nil
		return
	}
	if !op.proposed {
		n.proposeChange(op, st)
	}
}

// takeChange takes a change asked for: done already, refused, joined to
// the same change under way, or made the change under way.
func (n *Node) takeChange(w *changeWaiter, st paxos.Status) {
	if satisfied(w.req, st) {
		w.finish(nil)
		return
	}
	if st.Role != "leader" {
		w.finish(n.notLeader())
		return
	}
	if err := checkChange(w.req, st.Config); err != nil {
		w.finish(err)
		return
	}
	if op := n.change; op != nil {
		if op.req == w.req {
			op.waiters = append(op.waiters, w)
			return
		}
		w.finish(fmt.Errorf("%w: %s is under way", ErrChangeInProgress, op.req))
		return
	}
	n.change = &changeOp{req: w.req, waiters: []*changeWaiter{w}}
}

// satisfied reports whether req is made already, as far as this node
// knows: in its committed configuration (a transfer: the leader it
// follows is the target).
func satisfied(req changeRequest, st paxos.Status) bool {
	c, id := st.Config, req.cc.ID
	switch req.kind {
	case changeAddLearner:
		m, ok := c.Member(id)
		return ok && m.PeerAddr == req.cc.PeerAddr && m.ClientAddr == req.cc.ClientAddr
	case changePromote:
		return c.IsVoter(id)
	case changeRemove:
		return c.IsRemoved(id)
	case changeTransfer:
		return st.Lead == id
	}
	return false
}

// checkChange refuses a change that cannot apply to the committed
// configuration c, with a reason a person can act on (the core checks
// again when it takes it).
func checkChange(req changeRequest, c paxos.Configuration) error {
	id := uint64(req.cc.ID)
	m, member := c.Member(req.cc.ID)
	switch req.kind {
	case changeAddLearner:
		switch {
		case req.cc.ID == paxos.None:
			return fmt.Errorf("%w: replica ID %d is reserved", ErrBadChange, id)
		case c.IsRemoved(req.cc.ID):
			return fmt.Errorf("%w: replica %d was removed from the cluster, and an ID is never used again (the replica may have promised and accepted things it no longer remembers): add the replica under a new ID", ErrBadChange, id)
		case member:
			return fmt.Errorf("%w: replica %d is a member already, with peer address %q and client address %q", ErrBadChange, id, m.PeerAddr, m.ClientAddr)
		case req.cc.PeerAddr == "":
			return fmt.Errorf("%w: a new replica needs a peer address", ErrBadChange)
		}
		for _, a := range []string{req.cc.PeerAddr, req.cc.ClientAddr} {
			if err := checkAddr(a); err != nil {
				return fmt.Errorf("%w: %v", ErrBadChange, err)
			}
		}
		// An address another member has is a typo: the new replica would
		// never catch up, or clients would be sent to the wrong replica.
		for _, o := range c.Members {
			if o.PeerAddr == req.cc.PeerAddr || req.cc.ClientAddr != "" && o.ClientAddr == req.cc.ClientAddr {
				return fmt.Errorf("%w: replica %d already has address %q or %q", ErrBadChange, o.ID, o.PeerAddr, o.ClientAddr)
			}
		}
	case changePromote, changeRemove:
		if !member {
			return fmt.Errorf("%w: replica %d is not a member of the configuration %v", ErrBadChange, id, c)
		}
	case changeTransfer:
		if !c.IsVoter(req.cc.ID) {
			return fmt.Errorf("%w: replica %d is not a voter of the configuration %v", ErrBadChange, id, c)
		}
	}
	return nil
}

// changeDone reports whether the change under way is over, and how.
func (n *Node) changeDone(op *changeOp, st paxos.Status, now time.Time) (bool, error) {
	if satisfied(op.req, st) {
		return true, nil
	}
	leading := st.Role == "leader"
	if op.req.kind == changeTransfer {
		switch {
		case leading && op.proposed && !st.ChangeInProgress:
			// The target did not take over in time, and the leader
			// carried on: try again.
			n.log.Info("leadership transfer timed out; trying again", "to", uint64(op.req.cc.ID))
			op.proposed = false
		case !leading && st.Lead != paxos.None:
			return true, n.notLeader() // another replica took the lead
		}
		return false, nil
	}
	switch {
	case !op.proposed:
		return false, nil
	case leading && st.Promised != op.ballot:
		// Leading again, under a new ballot: what the earlier leadership
		// proposed may be lost. Propose again (the core waits for a
		// recovered one to commit: ErrChangeInProgress).
		op.proposed = false
	case leading:
		op.lostAt = time.Time{}
	case op.lostAt.IsZero():
		op.lostAt = now
	case now.Sub(op.lostAt) > 2*n.cfg.ElectionTimeout:
		return true, fmt.Errorf("%w (the leadership moved before %s was chosen; it may still be: asking the new leader again is safe)", n.notLeader(), op.req)
	}
	return false, nil
}

// proposeChange hands the change under way to the core.
func (n *Node) proposeChange(op *changeOp, st paxos.Status) {
	if st.Role != "leader" {
		op.finish(n.notLeader())
		n.change = nil
		return
	}
	var err error
	if op.req.kind == changeTransfer {
		err = n.rn.TransferLeadership(op.req.cc.ID)
	} else {
		err = n.rn.ProposeChange(op.req.cc)
	}
	switch {
	case err == nil:
		op.proposed, op.ballot, op.lostAt = true, st.Promised, time.Time{}
		n.log.Info("configuration change proposed", "change", op.req.String())
	case errors.Is(err, paxos.ErrChangeInProgress):
		// The core is finishing an earlier change (its window is still
		// closing, or a former leader's change is being committed): wait.
	case errors.Is(err, paxos.ErrNotCaughtUp):
		for _, w := range op.waiters {
			w.setLastErr(err)
		}
	case errors.Is(err, paxos.ErrNotLeader):
		op.finish(n.notLeader())
		n.change = nil
	default:
		op.finish(err)
		n.change = nil
	}
}
