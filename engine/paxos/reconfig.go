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
	k := len(n.confs)
	n.confs = n.confs.Compact(n.log.commit)
	if len(n.confs) < k {
		n.syncCommit = true // a configuration's last slot is committed: see retiring
	}
}

// lastGoverned returns the last slot that a configuration of cs with id
// as a member governs, or 0 if none has it.
func (cs ConfigState) lastGoverned(id NodeID) uint64 {
	last := uint64(0)
	for i, sc := range cs {
		if _, ok := sc.Config.Member(id); !ok {
			continue
		}
		if i+1 == len(cs) {
			return math.MaxUint64
		}
		last = cs[i+1].From - 1
	}
	return last
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

// electionConfigs returns the configurations whose quorums an election of
// this replica would need, as far as it can tell: those that govern a slot
// after its commit index, to the window past its last slot, by its
// committed log and by the configurations in its own log above that,
// which its phase 1 would propose again if nobody reports others (see
// requiredConfigs). A configuration in its log that was never chosen only
// asks more of the poll, which decides nothing.
func (n *RawNode) electionConfigs() []Configuration {
	return n.scheduleTo(n.log.last()).governing(n.log.commit+1, n.log.last()+n.window())
}

// alone reports whether this replica is the only voter of every
// configuration an election would need: it has nobody to wait for.
func (n *RawNode) alone() bool {
	for _, c := range n.electionConfigs() {
		if v := c.Voters(); len(v) != 1 || v[0] != n.id {
			return false
		}
	}
	return true
}

// removed reports whether this replica was removed from the cluster: the
// committed log chose a configuration that removed it, and that
// configuration governs every slot after the commit index.
func (n *RawNode) removed() bool { return n.told || n.retired(n.id) }

// retired reports whether replica id was removed from the cluster and has
// no part left in any slot after this replica's commit index: the newest
// configuration the committed log chose removed it, and none of the
// configurations that still govern those slots has it as a member.
//
// Until then a removed replica still helps decide the slots its old
// configuration governs (the ConfigWindow slots after the one that chose
// its removal): its messages must be taken. Refusing them as soon as its
// removal is chosen can leave those slots without a quorum for good (two
// voters, one removed: the other alone is not a quorum of the two, which
// still govern the window), and the cluster stuck.
func (n *RawNode) retired(id NodeID) bool {
	if len(n.confs) == 0 || !n.confs.Latest().IsRemoved(id) {
		return false
	}
	for _, sc := range n.confs {
		if _, ok := sc.Config.Member(id); ok {
			return false // still governs slots it must help decide
		}
	}
	return true
}

// quorumIn returns the highest slot that a quorum of c's voters hold the
// leader's values up to (match), per the leader's progress.
func (l *leadership) quorumIn(c Configuration, quorum int) uint64 {
	return l.quorumOf(c, quorum, func(pr *progress) uint64 { return pr.match })
}

// quorumOf returns the highest value v such that a quorum of c's voters
// have get(progress) at least v.
func (l *leadership) quorumOf(c Configuration, quorum int, get func(*progress) uint64) uint64 {
	var buf [16]uint64
	m := buf[:0]
	for i := range l.progress {
		if c.IsVoter(l.progress[i].id) {
			m = append(m, get(&l.progress[i]))
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
// window), and the replicas it sends to: their members, and the replicas
// retiring (see retiring).
func (l *leadership) refresh(n *RawNode) {
	old := l.sched
	l.sched = n.scheduleTo(n.log.last())
	l.quorums = l.sched.governing(n.log.commit+1, n.log.last()+n.window())
	members := l.quorums
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
	if l.lastSlot == 0 && !slices.ContainsFunc(members, func(c Configuration) bool { _, ok := c.Member(n.id); return ok }) {
		l.lastSlot = max(old.lastGoverned(n.id), 1) // this leader is leaving
	}
	for _, pr := range l.progress {
		if slices.ContainsFunc(keep, func(k progress) bool { return k.id == pr.id }) {
			continue
		}
		if pr.retireAt == 0 {
			// It has just left: the configurations that had it govern no
			// slot after the commit index any more.
			pr.retireAt = max(old.lastGoverned(pr.id), 1)
		}
		if pr.commit < pr.retireAt {
			keep = append(keep, pr)
		}
	}
	for i := range keep {
		pr := &keep[i]
		pr.learner = pr.id != n.id && pr.retireAt == 0 &&
			!slices.ContainsFunc(l.quorums, func(c Configuration) bool { return c.IsVoter(pr.id) })
	}
	l.progress = keep
	l.simple = len(l.sched) == 1
}

// Retiring. A configuration chosen in slot s removes a replica from the
// slots from s+ConfigWindow on; the replica says it was removed (and its
// runtime may stop it for good) once it knows slot s+ConfigWindow-1
// committed. But until a replica knows that, it may need the removed
// replica: to become leader, a replica needs promises from a quorum of
// every configuration that governs a slot after its commit index, and a
// quorum of the old configuration may need the removed replica (two voters
// shrinking to one: the one left is no quorum of the two). If the removed
// replica stopped while the others' commit index lagged (its leader told
// it before telling them, or died before its own commit index was
// durable), no replica could ever lead again.
//
// So a replica leaves only once the configuration after it durably knows
// it is no longer needed. The leader keeps a replica that left the
// configurations of the slots after its commit index in its progress, as
// retiring (retireAt: the last slot it governed), and tells it a commit
// index no higher than its last slot, nor than the one that a quorum of
// the configuration of the next slot reported durable (acceptors report
// theirs in their replies, and sync it when it passes the last slot of a
// configuration: syncCommit). Only then does the retiring replica learn
// it was removed; once it reports so, the leader lets it go (its replies
// are taken until then, though Step refuses its other messages). A leader
// that removed itself stops opening slots and hands over the same way:
// once a quorum of the new configuration durably knows everything it
// committed; until then it persists and applies no more than they know
// (its snapshot must not tell its next life either). Then a replica that
// does not know the removed replica's last slot committed cannot become
// leader: a quorum of the new configuration has committed more than it,
// and refuses its polls.
//
// A leader that removed itself and loses its leadership before handing
// over (its quorum lost, a higher ballot) keeps that cap (capCommit) and
// does not say it was removed, until a leader tells it its last slot is
// committed; and since it cannot lead, it grants polls whatever the
// poller's commit index (otherwise the voters left, behind it, could wait
// for it for ever). A replica that misses all this, being down or cut off
// until the leader changes, never learns it was removed: the next leader
// does not know where its removal took effect. The others refuse it; its
// operator must stop it.

// durableCommit returns the highest commit index that a quorum of the
// configuration of the slot after the commit index reported durable.
func (l *leadership) durableCommit(n *RawNode) uint64 {
	c := l.sched.At(n.log.commit + 1)
	return min(n.log.commit, l.quorumOf(c, c.quorum(), func(pr *progress) uint64 { return pr.commit }))
}

// commitFor returns the commit index to tell peer i: the leader's, or for
// a retiring replica no more than the durable one, nor than its last slot
// (it has no part in the later ones: see retiring).
func (l *leadership) commitFor(n *RawNode, i int) uint64 {
	if r := l.progress[i].retireAt; r > 0 {
		return min(l.durableCommit(n), r)
	}
	return n.log.commit
}

// countsCommits reports whether the leader needs its own durable commit
// index reported (see retiring): while a change is under way, a replica
// retires, or it hands over; and in a cluster that removed replicas, so
// that it can tell one that asks that it was removed (mayDismiss), even
// one an earlier leader retired.
func (l *leadership) countsCommits() bool {
	if !l.simple || l.stepDown || len(l.sched.Latest().Removed) > 0 {
		return true
	}
	for i := range l.progress {
		if l.progress[i].retireAt > 0 {
			return true
		}
	}
	return false
}

// pruneRetired lets go of the retiring replicas that reported knowing
// they were removed.
func (l *leadership) pruneRetired() {
	l.progress = slices.DeleteFunc(l.progress, func(pr progress) bool { return pr.retireAt > 0 && pr.commit >= pr.retireAt })
}

// handsOver reports whether a leader that removed itself may hand over
// and stop: a quorum of the configuration of the slots after its commit
// index durably knows its commit index (see retiring).
func (l *leadership) handsOver(n *RawNode) bool {
	return l.stepDown && l.durableCommit(n) >= n.log.commit
}

// changeInProgress reports whether a configuration change or a transfer
// is under way: a change not yet proposed, or proposed and not yet
// governing the slot after the commit index.
func (l *leadership) changeInProgress(n *RawNode) bool {
	return l.change != nil || l.transfer != None || l.stepDown || l.sched[len(l.sched)-1].From > n.log.commit+1
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
	// Checked now; applied again, with its slot, when the slot opens.
	if _, err := l.sched.Latest().Apply(cc, 0); err != nil {
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
	if !l.handoverDue(n) {
		return
	}
	l.transferSent = true
	n.send(Message{Type: MsgTimeoutNow, To: l.transfer, Ballot: n.promised, Slot: n.log.last(), Commit: n.log.commit, Context: n.log.last()})
}

// handoverDue reports whether handover would send MsgTimeoutNow now: a
// transfer is under way, not yet sent, and its target holds every slot
// the leader has.
func (l *leadership) handoverDue(n *RawNode) bool {
	if l.transfer == None || l.transferSent {
		return false
	}
	i := l.idx(l.transfer)
	return i >= 0 && l.progress[i].match >= n.log.last()
}

// handleTimeoutNow campaigns at once, when the leader this replica follows
// hands its leadership over and this replica holds what it has. It learns
// the leader's commit index first, as from a heartbeat: its phase 1 then
// starts after it.
//
// Context is the leader's last slot when it sent it: a leader that hands
// over opens no slots, so a target that holds more of its slots got the
// message late, after the leader gave the transfer up and carried on
// (two election timeouts without a new leader), and ignores it rather
// than take over a leadership nobody asks it to any more. (0, from an
// older version: not checked.)
func (n *RawNode) handleTimeoutNow(m Message) {
	if n.role != follower || m.From != n.lead || m.Ballot != n.promised || !n.canCampaign() || n.acceptedUpTo < m.Slot {
		return
	}
	if m.Context != 0 && n.acceptedUpTo > m.Context {
		return
	}
	n.advanceCommit(m.Commit)
	if !n.canCampaign() {
		return
	}
	n.campaignWith(PrepareTransfer)
}

// stepDownIfRemoved ends the leadership of a leader whose removal now
// governs, once a quorum of the new configuration durably knows its
// commit index (see retiring): it hands over to the most up-to-date voter
// of the new configuration and stops.
func (n *RawNode) stepDownIfRemoved() {
	if n.role != leader || !n.removed() || !n.ldr.handsOver(n) {
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
		n.send(Message{Type: MsgTimeoutNow, To: best, Ballot: n.promised, Slot: bestMatch, Commit: min(n.log.commit, bestMatch), Context: n.log.last()})
	}
	n.becomeFollower(None)
}

// mayDismiss reports whether this replica may tell replica id that it was
// removed (MsgRemoved), so that it stops: id is retired here, and this
// replica leads and knows that a quorum of the configuration after its
// commit index durably knows that commit index. A removed replica stopped
// any earlier could be needed after all: a replica of the new
// configuration that had not learned the last slot of the old one
// committed would need a quorum of the old one, the removed replica
// perhaps included, to recover it (see retiring). Only a leader counts
// what the others durably know.
func (n *RawNode) mayDismiss(id NodeID) bool {
	return n.role == leader && n.retired(id) && n.ldr.durableCommit(n) >= n.log.commit
}

// MayDismiss reports whether the runtime may tell replica id, which
// tries to reach this one, that it was removed from the cluster, so that
// it stops (see mayDismiss): only a leader that knows the configuration
// after the removal cannot need id any more says so. A transport that
// refuses connections from removed replicas should refuse them with that
// reason only when MayDismiss says so, and otherwise refuse them plainly.
func (n *RawNode) MayDismiss(id NodeID) bool { return n.mayDismiss(id) }
