package paxos

import (
	"fmt"
	"math"
	"slices"
)

// Reconfiguration at run time: which configurations govern which slots,
// configuration changes, leadership transfer and removal. See doc.go for
// the rule and why it is safe.

// window is α: how many slots after the one that chose it a configuration
// starts to govern. The ImmediateConfig knob breaks the rule.
func (n *RawNode) window() uint64 {
	if n.cfg.Knobs.ImmediateConfig {
		return 1
	}
	return ConfigWindow
}

// applyAt is Apply with a window of w slots.
func (cs ConfigState) applyAt(slot uint64, value []byte, w uint64) ConfigState {
	if w == ConfigWindow {
		return cs.Apply(slot, value)
	}
	out := cs.Apply(slot, value)
	if len(out) > len(cs) {
		out[len(out)-1].From = slot + w
	}
	return out
}

// governing returns the configurations of cs that govern a slot in
// [lo, hi], oldest first.
func (cs ConfigState) governing(lo, hi uint64) []Configuration {
	var out []Configuration
	for i, sc := range cs {
		end := uint64(math.MaxUint64)
		if i+1 < len(cs) {
			end = cs[i+1].From - 1
		}
		from := sc.From
		if i == 0 {
			from = 0
		}
		if from <= hi && end >= lo {
			out = append(out, sc.Config)
		}
	}
	return out
}

// noteCommitted brings confs up to the commit index, which moved from
// prev: a configuration chosen in a newly committed slot is scheduled.
func (n *RawNode) noteCommitted(prev uint64) {
	if len(n.confs) == 0 {
		return
	}
	for s := max(prev, n.log.compacted.Slot) + 1; s <= n.log.commit; s++ {
		if e, ok := n.log.entry(s); ok && IsConfigValue(e.Value) {
			n.confs = n.confs.applyAt(s, e.Value, n.window())
		}
	}
	n.confs = n.confs.Compact(n.log.commit)
}

// scheduleTo returns the configurations of the slots up to and past last
// if the values in this replica's log above the commit index are chosen:
// for a leader, its own proposals.
func (n *RawNode) scheduleTo(last uint64) ConfigState {
	cs := n.confs
	for s := n.log.commit + 1; s <= last; s++ {
		if e, ok := n.log.entry(s); ok && IsConfigValue(e.Value) {
			cs = cs.applyAt(s, e.Value, n.window())
		}
	}
	return cs
}

// canCampaign reports whether this replica may try to lead: it knows a
// configuration, in which it votes, and was not removed.
func (n *RawNode) canCampaign() bool {
	if len(n.confs) == 0 || n.told {
		return false
	}
	return n.confs.At(n.log.commit+1).IsVoter(n.id) || n.confs.Latest().IsVoter(n.id)
}

// alone reports whether this replica is the only voter of every
// configuration an election would need: it has nobody to wait for.
func (n *RawNode) alone() bool {
	for _, c := range n.confs.governing(n.log.commit+1, n.log.commit+n.window()) {
		if v := c.Voters(); len(v) != 1 || v[0] != n.id {
			return false
		}
	}
	return true
}

// removed reports whether this replica was removed from the cluster: the
// committed log chose a configuration that removed it, and that
// configuration governs every slot after the commit index.
func (n *RawNode) removed() bool { return n.told || n.isGone(n.id) }

// isGone reports whether id was removed from the cluster and its removal
// governs every slot this replica has not committed: nothing it says can
// matter any more.
func (n *RawNode) isGone(id NodeID) bool {
	if len(n.confs) == 0 || !n.confs.Latest().IsRemoved(id) {
		return false
	}
	for _, sc := range n.confs {
		if _, ok := sc.Config.Member(id); ok {
			return false
		}
	}
	return true
}

// quorumIn returns the highest slot that a quorum of c's voters hold the
// leader's values up to (match), per the leader's progress.
func (l *leadership) quorumIn(c Configuration, quorum int) uint64 {
	var buf [16]uint64
	m := buf[:0]
	for i := range l.progress {
		if c.IsVoter(l.progress[i].id) {
			m = append(m, l.progress[i].match)
		}
	}
	if len(m) < quorum {
		return 0
	}
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && m[j] > m[j-1]; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
	return m[quorum-1]
}

// idx returns the index of id's progress, or -1.
func (l *leadership) idx(id NodeID) int {
	for i := range l.progress {
		if l.progress[i].id == id {
			return i
		}
	}
	return -1
}

// refresh recomputes, after the log or the commit index changed, the
// leader's schedule, the configurations whose quorums it needs (those that
// govern a slot it may still propose: up to its last slot plus the
// window), and the replicas it sends to: their members, and those of the
// configuration of the commit index itself, so that a replica removed
// learns that the last slot it had to help decide is committed.
func (l *leadership) refresh(n *RawNode) {
	l.sched = n.scheduleTo(n.log.last())
	l.quorums = l.sched.governing(n.log.commit+1, n.log.last()+n.window())
	members := l.sched.governing(max(n.log.commit, 1), n.log.last()+n.window())
	keep := l.progress[:0:0]
	add := func(id NodeID) {
		for i := range keep {
			if keep[i].id == id {
				return
			}
		}
		if i := l.idx(id); i >= 0 {
			keep = append(keep, l.progress[i])
			return
		}
		keep = append(keep, progress{id: id, next: n.log.commit + 1, active: true})
	}
	add(n.id)
	for _, c := range members {
		for _, m := range c.Members {
			add(m.ID)
		}
	}
	for i := range l.progress {
		if id := l.progress[i].id; !slices.ContainsFunc(keep, func(p progress) bool { return p.id == id }) {
			// Leaving: tell it the commit index once more, so that a
			// replica removed learns its removal governs.
			n.send(Message{Type: MsgHeartbeat, To: id, Ballot: n.promised, Commit: n.log.commit, Context: l.reads.round})
		}
	}
	l.progress = keep
	l.simple = len(l.sched) == 1
}

// changeInProgress reports whether a configuration change or a transfer
// is under way: a change not yet proposed, or proposed and not yet
// governing the slot after the commit index.
func (l *leadership) changeInProgress(n *RawNode) bool {
	return l.change != nil || l.transfer != None || l.sched[len(l.sched)-1].From > n.log.commit+1
}

// ProposeChange proposes a configuration change. Only the leader takes it,
// one at a time: ErrNotLeader, ErrChangeInProgress, ErrNotCaughtUp (a
// promotion of a learner more than CatchUpSlots behind the commit index),
// or an error wrapping ErrBadChange. A nil error means only that the
// change is proposed: it is done once the committed configuration
// (Status.Config) shows it, and it governs slots from ConfigWindow after
// the one that chose it.
func (n *RawNode) ProposeChange(cc ConfChange) error {
	if n.role != leader {
		return ErrNotLeader
	}
	l := n.ldr
	if l.changeInProgress(n) {
		return ErrChangeInProgress
	}
	next, err := l.sched.Latest().Apply(cc, 0)
	if err != nil {
		return err
	}
	if cc.Type == Promote {
		// Caught up: it holds the log at least up to the change that added
		// it, and is within CatchUpSlots of the commit index.
		m, _ := l.sched.Latest().Member(cc.ID)
		i := l.idx(cc.ID)
		if i < 0 || !l.progress[i].heard || l.progress[i].match < m.Since || l.progress[i].match+n.cfg.CatchUpSlots < n.log.commit {
			return fmt.Errorf("%w: learner %s", ErrNotCaughtUp, cc.ID)
		}
	}
	_ = next // applied again, with its slot, when the slot opens
	l.change = &cc
	return nil
}

// TransferLeadership hands the leadership to voter to: the leader stops
// opening slots (proposals wait), brings to fully up to date, and tells it
// to campaign at once. Proposals that waited go to the new leader. If to
// has not taken over within two election timeouts, the leader carries on.
// Errors: ErrNotLeader, ErrChangeInProgress, ErrNotCaughtUp (the leader
// has not heard from to), ErrBadChange (to is not another voter).
func (n *RawNode) TransferLeadership(to NodeID) error {
	if n.role != leader {
		return ErrNotLeader
	}
	l := n.ldr
	if to == n.id {
		return nil
	}
	if l.changeInProgress(n) {
		return ErrChangeInProgress
	}
	if !l.sched.Latest().IsVoter(to) {
		return fmt.Errorf("%w: %s is not a voter", ErrBadChange, to)
	}
	if i := l.idx(to); i < 0 || !l.progress[i].heard {
		return fmt.Errorf("%w: the leader has not heard from %s", ErrNotCaughtUp, to)
	}
	l.transfer, l.transferElapsed, l.transferSent = to, 0, false
	return nil
}

// handover sends MsgTimeoutNow to the transfer's target once it holds
// every slot the leader has.
func (l *leadership) handover(n *RawNode) {
	if l.transfer == None || l.transferSent {
		return
	}
	i := l.idx(l.transfer)
	if i < 0 || l.progress[i].match < n.log.last() {
		return
	}
	l.transferSent = true
	n.send(Message{Type: MsgTimeoutNow, To: l.transfer, Ballot: n.promised, Slot: n.log.last()})
}

// handleTimeoutNow campaigns at once, when the leader this replica follows
// hands its leadership over and this replica holds what it has.
func (n *RawNode) handleTimeoutNow(m Message) {
	if n.role != follower || m.From != n.lead || m.Ballot != n.promised || !n.canCampaign() || n.acceptedUpTo < m.Slot {
		return
	}
	n.campaignWith(PrepareTransfer)
}

// stepDownIfRemoved ends the leadership of a leader whose removal now
// governs: it hands over to the most up-to-date voter of the new
// configuration and stops.
func (n *RawNode) stepDownIfRemoved() {
	if n.role != leader || !n.removed() {
		return
	}
	l := n.ldr
	best, bestMatch := None, uint64(0)
	for i := range l.progress {
		pr := &l.progress[i]
		if n.confs.Latest().IsVoter(pr.id) && pr.heard && (best == None || pr.match > bestMatch) {
			best, bestMatch = pr.id, pr.match
		}
	}
	if best != None {
		n.send(Message{Type: MsgTimeoutNow, To: best, Ballot: n.promised, Slot: bestMatch})
	}
	n.becomeFollower(None)
}
