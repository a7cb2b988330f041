package engine

import (
	"fmt"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
)

type resolved struct {
	key cmdKey
	res result
}

// apply applies committed entries through the session table, then
// answers the waiting callers all at once.
func (n *Node) apply(ents []paxos.Entry) error {
	confsChanged := false
	leader := n.metrics != nil && n.rn.IsLeader() // batch sizes are the leader's
	for _, e := range ents {
		if e.Slot <= n.applied {
			continue // covered by the snapshot the node restarted from
		}
		before := len(n.results)
		err := n.sessions.ApplyWith(e.Slot, e.Value, n.sm.Apply, n.readOnly, func(r session.Result) {
			res := result{Response: r.Response}
			switch r.Outcome {
			case session.Stale:
				res.Err = ErrStale
			case session.Expired:
				res.Err = fmt.Errorf("%w: client %d has no session (it expired, or never began: a client's first command is number 1, not %d)",
					ErrSessionExpired, r.Command.ClientID, r.Command.Seq)
			case session.NotKept:
				res.Err = ErrResponseNotKept
			}
			n.results = append(n.results, resolved{cmdKey{r.Command.ClientID, r.Command.Seq}, res})
		})
		if err != nil {
			return fmt.Errorf("engine: slot %d holds a malformed value: %w", e.Slot, err)
		}
		if k := len(n.results) - before; leader && k > 0 {
			n.metrics.batchCommands.Observe(float64(k))
		}
		n.applied, n.appliedBallot = e.Slot, e.Ballot
		n.bytesSinceSnap += int64(len(e.Value))
		if n.confs != nil && paxos.IsConfigValue(e.Value) {
			// A configuration chosen: it governs from ConfigWindow slots
			// on. (The session table applied nothing: the value holds no
			// commands.)
			n.confs, confsChanged = n.confs.Apply(e.Slot, e.Value), true
		}
	}
	if len(n.confs) > 1 {
		if c := n.confs.Compact(n.applied); len(c) != len(n.confs) {
			n.confs, confsChanged = c, true
		}
	}
	if confsChanged {
		n.syncPeers()
	}
	if len(n.results) == 0 {
		return nil
	}
	// The callers to answer, once the lock is released: pairs, not a
	// closure per command.
	type answer struct {
		fn  func(result)
		res result
	}
	var notify []answer
	var now time.Time // for the commit latencies: one clock read per batch
	if n.metrics != nil {
		now = time.Now()
	}
	n.mu.Lock()
	for _, r := range n.results {
		if w, ok := n.waiters[r.key]; ok {
			delete(n.waiters, r.key)
			if n.metrics != nil {
				n.metrics.commitLatency.observe(now.Sub(w.submitted))
			}
			for _, fn := range w.notify {
				notify = append(notify, answer{*fn, r.res})
			}
		}
	}
	n.mu.Unlock()
	n.metrics.observeCommitted()
	clear(n.results)
	n.results = n.results[:0]
	for _, a := range notify {
		a.fn(a.res)
	}
	return nil
}

// failCommands answers the waiters of keys with err.
func (n *Node) failCommands(cmds []paxos.Command, err error) {
	var notify []*func(result)
	n.mu.Lock()
	for _, c := range cmds {
		k := cmdKey{c.ClientID, c.Seq}
		if w, ok := n.waiters[k]; ok {
			delete(n.waiters, k)
			notify = append(notify, w.notify...)
		}
	}
	n.mu.Unlock()
	for _, fn := range notify {
		(*fn)(result{Err: err})
	}
}

func (n *Node) startRead(r *readRequest) {
	r.ctx = n.readCtx.Add(1)
	r.started = time.Now()
	if err := n.rn.ReadIndex(r.ctx); err != nil {
		r.finish(n.proposeError(err))
		return
	}
	n.readsByCtx[r.ctx] = r
}

// serveReads runs the confirmed reads whose index has been applied.
func (n *Node) serveReads() {
	kept := n.readsToServe[:0]
	for _, r := range n.readsToServe {
		if r.index > n.applied {
			kept = append(kept, r)
			continue
		}
		if !r.cancelled.Load() {
			r.fn()
		}
		r.finish(nil)
	}
	clear(n.readsToServe[len(kept):])
	n.readsToServe = kept
}
