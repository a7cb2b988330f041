package sim

import (
	"errors"
	"slices"

	"github.com/paxos-go/paxos/engine/paxos"
)

// Membership changes at random (Options.Reconfig), under whatever faults
// the profile injects. While the faults last, every 20 to 100 ms the
// leader, if there is one, is asked for a change, which it makes if none
// is under way (one at a time: ErrChangeInProgress otherwise, and the
// next ask retries):
//
//   - add: a new replica starts with an empty disk, joining (a Config with
//     neither Peers nor ConfigState), under an ID never used before, and
//     the leader proposes it as a learner; it catches up from a snapshot,
//     which the leader takes if it has none, and then from the log. If
//     the addition is lost (the leader is deposed before it is chosen),
//     the next ask proposes it again: its ID was never a member.
//   - promote: a learner becomes a voter; ErrNotCaughtUp until it is
//     within CatchUpSlots of the commit index, and the next asks retry.
//   - remove a learner, a voter, or the leader itself (it hands over and
//     steps down once its removal governs).
//   - transfer the leadership to another voter.
//
// The voters stay between 1 and 7, and a run adds at most maxReplicas
// replicas in all. A removed replica goes on running until it says it was
// removed (Status().Removed), and a while after that: the others must
// refuse its messages, and nothing it does may count. Then it is stopped
// for good. One that never learns it was removed (it was down, or cut off,
// when its removal was chosen) keeps running, and keeps being refused.

// maxVoters bounds the voters the changes make.
const maxVoters = 7

// scheduleReconfig asks the leader for a membership change every 20 to
// 100 ms until the faults heal.
func (s *Sim) scheduleReconfig() {
	var next func()
	next = func() {
		if s.healed {
			return
		}
		if l := s.leader(); l != nil {
			l.wantChange = true
			l.wake()
		}
		s.after(s.between(20*Millisecond, 100*Millisecond), next)
	}
	s.after(s.between(50*Millisecond, 200*Millisecond), next)
}

// reconfigure makes a membership change, if this replica leads and none is
// under way: the change is picked at random among those its configuration
// (the newest its committed log chose, which is also the newest it
// proposed, when no change is under way) allows.
func (n *node) reconfigure() {
	s := n.s
	if s.healed || !n.rn.IsLeader() {
		return
	}
	st := n.rn.Status()
	if st.ChangeInProgress {
		return
	}
	conf := st.Config
	// A replica started to join whose addition was never chosen is
	// proposed again.
	for _, j := range s.nodes[s.opts.Nodes:] {
		if _, ok := conf.Member(j.id); !ok && !conf.IsRemoved(j.id) && !j.stopped {
			n.proposeChange(paxos.ConfChange{Type: paxos.AddLearner, ID: j.id})
			return
		}
	}
	voters, learners := conf.Voters(), conf.Learners()
	others := slices.DeleteFunc(slices.Clone(voters), func(id paxos.NodeID) bool { return id == n.id })
	type choice struct {
		weight float64
		do     func()
	}
	var choices []choice
	pick := func(ids []paxos.NodeID) paxos.NodeID { return ids[s.rng.IntN(len(ids))] }
	if len(s.nodes) < maxReplicas && len(learners) < 2 {
		choices = append(choices, choice{1, func() {
			j := s.addReplica()
			n.proposeChange(paxos.ConfChange{Type: paxos.AddLearner, ID: j.id})
		}})
	}
	if len(learners) > 0 && len(voters) < maxVoters {
		choices = append(choices, choice{3, func() {
			n.proposeChange(paxos.ConfChange{Type: paxos.Promote, ID: pick(learners)})
		}})
	}
	if len(learners) > 0 {
		choices = append(choices, choice{0.3, func() {
			n.proposeChange(paxos.ConfChange{Type: paxos.Remove, ID: pick(learners)})
		}})
	}
	if len(others) > 0 {
		w := 0.7
		if len(voters) >= 5 {
			w = 1.5
		}
		choices = append(choices,
			choice{w, func() { n.proposeChange(paxos.ConfChange{Type: paxos.Remove, ID: pick(others)}) }},
			choice{0.4, func() { n.proposeChange(paxos.ConfChange{Type: paxos.Remove, ID: n.id}) }},
			choice{1, func() {
				to := pick(others)
				switch err := n.rn.TransferLeadership(to); {
				case err == nil:
					s.transferTo = to
					s.tracef("%s transfers its leadership to %s", n.id, to)
				case errors.Is(err, paxos.ErrNotCaughtUp):
					s.tracef("%s cannot transfer its leadership to %s: %v", n.id, to, err)
				default:
					s.fail(Other, "leader %s: TransferLeadership(%s): %v", n.id, to, err)
				}
			}})
	}
	total := 0.0
	for _, c := range choices {
		total += c.weight
	}
	if total == 0 {
		return
	}
	r := s.rng.Float64() * total
	for _, c := range choices {
		if r < c.weight {
			c.do()
			return
		}
		r -= c.weight
	}
	choices[len(choices)-1].do()
}

// proposeChange proposes cc. Being refused because a learner is behind is
// expected (the next ask retries); any other refusal means the simulator
// asked for a change its leader's configuration does not allow.
func (n *node) proposeChange(cc paxos.ConfChange) {
	s := n.s
	switch err := n.rn.ProposeChange(cc); {
	case err == nil:
		s.tracef("%s proposes %s %s", n.id, cc.Type, cc.ID)
	case errors.Is(err, paxos.ErrNotCaughtUp):
		s.stats.NotCaughtUp++
		s.tracef("%s cannot %s %s yet: %v", n.id, cc.Type, cc.ID, err)
	default:
		s.fail(Other, "leader %s: ProposeChange(%s %s): %v", n.id, cc.Type, cc.ID, err)
	}
}

// addReplica starts a replica with a new ID and an empty disk: it joins,
// knowing no configuration, and waits for a leader's snapshot.
func (s *Sim) addReplica() *node {
	j := newNode(s, paxos.NodeID(len(s.nodes)+1), nil)
	s.nodes = append(s.nodes, j)
	s.running = append(s.running, j)
	s.tracef("replica %s starts, joining", j.id)
	j.start()
	return j
}

// noteRemoved checks, for a Ready just handed out, that a replica that
// said it was removed (in an earlier Ready of this life) proposes and
// leads nothing; and stops the replica 50 to 300 ms after it first says
// so. It reports whether the run failed.
func (n *node) noteRemoved(rd paxos.Ready) bool {
	if n.saidRemoved {
		for _, m := range rd.Messages {
			switch m.Type {
			case paxos.MsgPrePrepare, paxos.MsgPrepare, paxos.MsgAccept, paxos.MsgHeartbeat:
				n.s.fail(Safety, "replica %s said it was removed, and then sent %s", n.id, paxos.DescribeMessage(m))
				return true
			}
		}
		if n.rn.IsLeader() {
			n.s.fail(Safety, "replica %s said it was removed, and then led", n.id)
			return true
		}
		return false
	}
	if !n.rn.Status().Removed {
		return false
	}
	n.saidRemoved = true
	n.s.tracef("%s says it was removed", n.id)
	if !n.stopping {
		n.stopping = true
		n.s.after(n.s.between(50*Millisecond, 300*Millisecond), n.stop)
	}
	return false
}

// stop stops a removed replica for good: it never restarts, and what is
// sent to it is lost.
func (n *node) stop() {
	s := n.s
	s.tracef("stop %s, removed", n.id)
	s.stats.Stopped++
	n.stopped, n.up = true, false
	n.incarnation++
	n.writes, n.inbox, n.held, n.limbo = nil, nil, nil, nil
	s.running = slices.DeleteFunc(s.running, func(o *node) bool { return o == n })
}

// nextConfigs returns cs after value was applied in slot, keeping only
// the configurations of the slots after it: the configuration state a
// snapshot of slot keeps. It computes it as the core does: with
// Knobs.ImmediateConfig, a configuration governs from the next slot
// instead of ConfigWindow later, so that the state a replica restarts or
// joins with is the one the broken core would keep (the checker, not the
// state the simulator hands the core, must be what catches the bug).
func (s *Sim) nextConfigs(cs paxos.ConfigState, slot uint64, value []byte) paxos.ConfigState {
	if paxos.IsConfigValue(value) {
		k := len(cs)
		cs = cs.Apply(slot, value) // a copy
		if s.opts.Knobs.ImmediateConfig && len(cs) > k {
			cs[len(cs)-1].From = slot + 1
		}
	}
	return cs.Compact(slot)
}
