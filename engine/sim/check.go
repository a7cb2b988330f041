package sim

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
)

// checker holds the global oracles, checked as the run goes.
//
// Paxos defines "chosen" over time: a value is chosen for a slot once a
// majority of acceptors have durably accepted one proposal (ballot, value)
// for it, whatever they accept later. A replica that accepted the value
// under ballot 30.1 and then, when a new leader adopted it in phase 1,
// re-accepted it under 31.4 still counts for 30.1. So the checker keeps,
// per slot, every proposal any replica ever durably accepted and who
// accepted it, never only what each replica holds now: at the instant a
// replica applies a chosen value, the majority that chose it may be split
// between the old and the new ballot.
type checker struct {
	s      *Sim
	quorum int
	// slots holds what is known of every slot any replica accepted. It
	// grows with the run (a few thousand slots at most), which is cheap
	// enough not to prune.
	slots map[uint64]*slotRecord
}

// slotRecord is the history of one slot across the run.
type slotRecord struct {
	// accepted[p] is the set of replicas (bit id-1) that ever durably
	// accepted proposal p.
	accepted map[proposal]uint64
	// chosen is the first proposal that a majority accepted; no proposal
	// with another value may ever reach a majority. It is nil until then.
	chosen *proposal
	// applied is set once a replica applied the slot, to count commits.
	applied bool
}

// proposal is a (ballot, value) pair, the unit Paxos counts acceptances
// of. The value is held as a string to be a map key.
type proposal struct {
	ballot paxos.Ballot
	value  string
}

func newChecker(s *Sim) checker {
	if s.opts.Nodes > 64 {
		panic("sim: the checker counts at most 64 replicas")
	}
	return checker{s: s, quorum: s.opts.Nodes/2 + 1, slots: map[uint64]*slotRecord{}}
}

func (c *checker) slot(slot uint64) *slotRecord {
	rec := c.slots[slot]
	if rec == nil {
		rec = &slotRecord{accepted: map[proposal]uint64{}}
		c.slots[slot] = rec
	}
	return rec
}

// persisted notes entries that became durable at replica id: each is an
// acceptance of its (ballot, value). It checks that no slot ever has two
// chosen values.
func (c *checker) persisted(id paxos.NodeID, ents []paxos.Entry) {
	for _, e := range ents {
		rec := c.slot(e.Slot)
		p := proposal{ballot: e.Ballot, value: string(e.Value)}
		rec.accepted[p] |= 1 << (id - 1)
		if bits.OnesCount64(rec.accepted[p]) < c.quorum {
			continue
		}
		switch {
		case rec.chosen == nil:
			rec.chosen = &p
		case rec.chosen.value != p.value:
			c.s.fail(Safety, "slot %d: %s chosen under ballot %s, but %s was chosen there before under %s: two values chosen (%s)",
				e.Slot, paxos.DescribeValue(e.Value), e.Ballot, paxos.DescribeValue([]byte(rec.chosen.value)), rec.chosen.ballot, rec.describe())
			return
		}
	}
}

// applied checks a slot replica id applies: it must hold the value chosen
// there. Since that never changes, every replica applies one history.
func (c *checker) applied(id paxos.NodeID, e paxos.Entry) {
	rec := c.slots[e.Slot]
	switch {
	case rec == nil || rec.chosen == nil:
		c.s.fail(Safety, "replica %s applied slot %d (%s), which no majority ever durably accepted under one ballot (%s)",
			id, e.Slot, paxos.DescribeValue(e.Value), rec.describe())
		return
	case rec.chosen.value != string(e.Value):
		c.s.fail(Safety, "replica %s applied %s at slot %d, but %s was chosen there under %s (%s)",
			id, paxos.DescribeValue(e.Value), e.Slot, paxos.DescribeValue([]byte(rec.chosen.value)), rec.chosen.ballot, rec.describe())
		return
	}
	if !rec.applied {
		rec.applied = true
		c.s.stats.Commits++
	}
}

// describe lists who accepted what in a slot, for a failure message.
func (rec *slotRecord) describe() string {
	if rec == nil || len(rec.accepted) == 0 {
		return "no acceptances"
	}
	var parts []string
	for p, set := range rec.accepted {
		var who []string
		for i := 0; i < 64; i++ {
			if set&(1<<i) != 0 {
				who = append(who, fmt.Sprint(i+1))
			}
		}
		parts = append(parts, fmt.Sprintf("%s under %s by %s", paxos.DescribeValue([]byte(p.value)), p.ballot, strings.Join(who, ",")))
	}
	slices.Sort(parts) // map order is random; the message must replay
	return "accepted: " + strings.Join(parts, "; ")
}

// finalCheck runs once the replicas have caught up: they all hold the same
// log, and every put a client saw acknowledged is in it exactly once.
func (s *Sim) finalCheck() {
	ref := s.nodes[0].chat
	for _, n := range s.nodes[1:] {
		if got := n.chat.get(); got != ref.get() {
			s.fail(Safety, "after catching up, replica %s holds %q but replica %s holds %q", n.id, got, s.nodes[0].id, ref.get())
			return
		}
	}
	count := map[string]int{}
	for _, text := range ref.log {
		count[text]++
	}
	for _, c := range s.clients {
		for _, text := range c.acked {
			switch count[text] {
			case 0:
				s.fail(Safety, "client %d's put %q was acknowledged but is not in the log: an acknowledged command was lost", c.id, text)
				return
			case 1:
			default:
				s.fail(Safety, "client %d's put %q is in the log %d times", c.id, text, count[text])
				return
			}
		}
	}
}

// describeReadyShort describes a Ready on one line, for the trace.
func describeReadyShort(rd paxos.Ready) string {
	var parts []string
	if rd.HardState != nil {
		parts = append(parts, fmt.Sprintf("hs=%s/%d", rd.HardState.Promised, rd.HardState.Commit))
	}
	if len(rd.Entries) > 0 {
		parts = append(parts, fmt.Sprintf("persist %d..%d@%s", rd.Entries[0].Slot, rd.Entries[len(rd.Entries)-1].Slot, rd.Entries[len(rd.Entries)-1].Ballot))
	}
	for _, m := range rd.Messages {
		parts = append(parts, "send "+paxos.DescribeMessage(m))
	}
	for _, m := range rd.MessagesAfterPersist {
		parts = append(parts, "then "+paxos.DescribeMessage(m))
	}
	if len(rd.Committed) > 0 {
		parts = append(parts, fmt.Sprintf("apply %d..%d", rd.Committed[0].Slot, rd.Committed[len(rd.Committed)-1].Slot))
	}
	return strings.Join(parts, "; ")
}
