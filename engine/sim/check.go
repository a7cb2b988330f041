package sim

import (
	"cmp"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
)

// checker holds the global oracles, checked as the run goes.
//
// Paxos defines "chosen" over time: a value is chosen for a slot once a
// quorum of the acceptors that govern the slot have durably accepted one
// proposal (ballot, value) for it, whatever they accept later. A replica
// that accepted the value under ballot 30.1 and then, when a new leader
// adopted it in phase 1, re-accepted it under 31.4 still counts for 30.1.
// So the checker keeps, per slot, every proposal any replica ever durably
// accepted and who accepted it, never only what each replica holds now: at
// the instant a replica applies a chosen value, the quorum that chose it
// may be split between the old and the new ballot.
//
// The acceptors that govern a slot are the voters of its configuration,
// which the checker computes from the chosen log itself, by the protocol's
// rule and not by asking any replica: a configuration chosen in slot s
// governs the slots from s+paxos.ConfigWindow on (the first ones are
// governed by the cluster's first voters). So the configuration of slot t
// is known once every slot up to t-ConfigWindow has a chosen value; until
// then the acceptances of slot t are only recorded, and judged when it is
// known. A replica's acceptance counts only in the slots whose
// configuration has it as a voter: a learner's, a removed replica's, or
// one not yet added do not.
type checker struct {
	s *Sim
	// slots holds what is known of every slot any replica accepted. It
	// grows with the run (a few thousand slots at most), which is cheap
	// enough not to prune.
	slots map[uint64]*slotRecord
	// prefix is the length of the run of slots from 1 that all have a
	// chosen value: the configuration of every slot up to
	// prefix+ConfigWindow is known.
	prefix uint64
	// configs are the configurations the chosen log made, oldest first,
	// with the first slot each governs.
	configs []governing
	// removedFrom[id] is the first slot that a configuration without
	// replica id governs, once the chosen log removed it.
	removedFrom map[paxos.NodeID]uint64
}

// governing is a configuration, the first slot it governs, and its voters
// as a set (bit id-1) with the size of a quorum of them.
type governing struct {
	from   uint64
	config paxos.Configuration
	voters uint64
	quorum int
}

func newGoverning(from uint64, c paxos.Configuration) governing {
	g := governing{from: from, config: c}
	for _, id := range c.Voters() {
		g.voters |= 1 << (id - 1)
	}
	g.quorum = bits.OnesCount64(g.voters)/2 + 1
	return g
}

// slotRecord is the history of one slot across the run.
type slotRecord struct {
	// accepted[p] is the set of replicas (bit id-1) that ever durably
	// accepted proposal p.
	accepted map[proposal]uint64
	// chosen is the first proposal that a quorum of the slot's voters
	// accepted; no proposal with another value may ever reach such a
	// quorum. It is nil until then.
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

// maxReplicas bounds the replicas of a run, those added included: the
// checker keeps sets of replicas as 64-bit masks.
const maxReplicas = 64

func newChecker(s *Sim) checker {
	if s.opts.Nodes > maxReplicas {
		panic("sim: the checker counts at most 64 replicas")
	}
	first := make([]paxos.NodeID, s.opts.Nodes)
	for i := range first {
		first[i] = paxos.NodeID(i + 1)
	}
	return checker{s: s, slots: map[uint64]*slotRecord{}, removedFrom: map[paxos.NodeID]uint64{},
		configs: []governing{newGoverning(1, paxos.Bootstrap(first, nil, nil).Latest())}}
}

func (c *checker) slot(slot uint64) *slotRecord {
	rec := c.slots[slot]
	if rec == nil {
		rec = &slotRecord{accepted: map[proposal]uint64{}}
		c.slots[slot] = rec
	}
	return rec
}

// known reports whether the configuration of slot is known.
func (c *checker) known(slot uint64) bool { return slot <= c.prefix+paxos.ConfigWindow }

// governor returns the configuration of slot, which must be known.
func (c *checker) governor(slot uint64) *governing {
	for i := len(c.configs) - 1; i > 0; i-- {
		if c.configs[i].from <= slot {
			return &c.configs[i]
		}
	}
	return &c.configs[0]
}

// persisted notes entries that became durable at replica id: each is an
// acceptance of its (ballot, value). It checks that no slot ever has two
// chosen values.
func (c *checker) persisted(id paxos.NodeID, ents []paxos.Entry) {
	for _, e := range ents {
		rec := c.slot(e.Slot)
		p := proposal{ballot: e.Ballot, value: string(e.Value)}
		rec.accepted[p] |= 1 << (id - 1)
		if c.known(e.Slot) {
			c.judge(e.Slot, rec, p)
		}
		if c.s.err != nil {
			return
		}
	}
}

// judge decides whether proposal p of a slot whose configuration is known
// has reached a quorum of its voters: then it is chosen, and must have the
// value chosen there before, if any.
func (c *checker) judge(slot uint64, rec *slotRecord, p proposal) {
	g := c.governor(slot)
	if bits.OnesCount64(rec.accepted[p]&g.voters) < g.quorum {
		return
	}
	switch {
	case rec.chosen == nil:
		rec.chosen = &p
		if slot == c.prefix+1 {
			c.advance()
		}
	case rec.chosen.value != p.value:
		c.s.fail(Safety, "slot %d: %s chosen under ballot %s, but %s was chosen there before under %s: two values chosen (voters %v; %s)",
			slot, paxos.DescribeValue([]byte(p.value)), p.ballot, paxos.DescribeValue([]byte(rec.chosen.value)), rec.chosen.ballot,
			g.config.Voters(), rec.describe())
	}
}

// advance extends the chosen prefix as far as it goes. Each slot added to
// it fixes the configuration of the slot ConfigWindow later, whose
// acceptances are judged then (in a fixed order: the run must replay
// exactly, failure messages included).
func (c *checker) advance() {
	for c.s.err == nil {
		rec := c.slots[c.prefix+1]
		if rec == nil || rec.chosen == nil {
			return
		}
		c.prefix++
		if v := []byte(rec.chosen.value); paxos.IsConfigValue(v) {
			c.chose(c.prefix, rec.chosen.ballot, v)
		}
		next := c.prefix + paxos.ConfigWindow
		if later := c.slots[next]; later != nil {
			ps := slices.SortedFunc(maps.Keys(later.accepted), func(a, b proposal) int {
				return cmp.Or(a.ballot.Compare(b.ballot), strings.Compare(a.value, b.value))
			})
			for _, p := range ps {
				c.judge(next, later, p)
			}
		}
	}
}

// chose notes the configuration chosen in slot, under ballot b, and counts
// what it changed.
func (c *checker) chose(slot uint64, b paxos.Ballot, v []byte) {
	if _, err := paxos.DecodeConfigValue(v); err != nil {
		c.s.fail(Other, "slot %d: a configuration that does not decode was chosen: %v", slot, err)
		return
	}
	prev := c.configs[len(c.configs)-1].config
	conf, ok := paxos.NextConfiguration(prev, v)
	if !ok {
		// Not one change from the configuration before it (two leaders'
		// changes recovered in one window): it changes nothing.
		c.s.tracef("configuration value chosen in slot %d is not one change from %s: it changes nothing", slot, prev)
		return
	}
	from := slot + paxos.ConfigWindow
	c.configs = append(c.configs, newGoverning(from, conf))
	st := &c.s.stats
	for _, m := range conf.Members {
		switch old, ok := prev.Member(m.ID); {
		case !ok:
			st.Adds++
		case m.Voter && !old.Voter:
			st.Promotions++
		}
	}
	for _, m := range prev.Members {
		if _, ok := conf.Member(m.ID); !ok {
			c.removedFrom[m.ID] = from
			st.Removals++
			if m.ID == b.Node {
				st.LeaderRemovals++ // the leader that got it chosen removed itself
			}
		}
	}
	c.s.tracef("configuration %s chosen in slot %d, governs from slot %d", conf, slot, from)
}

// applied checks a slot replica id applies: it must hold the value chosen
// there. Since that never changes, every replica applies one history. A
// replica removed from the cluster applies nothing decided without it: no
// slot its removal governs, unless it proposed the value itself (a leader
// that removed itself leads until its removal governs every slot it has
// committed, and may commit slots past the last it governs).
func (c *checker) applied(id paxos.NodeID, e paxos.Entry) {
	rec := c.slots[e.Slot]
	switch {
	case rec == nil || rec.chosen == nil:
		why := ""
		if !c.known(e.Slot) {
			why = fmt.Sprintf("; its configuration is not even known: slot %d has no chosen value", c.prefix+1)
		}
		c.s.fail(Safety, "replica %s applied slot %d (%s), which no quorum of its configuration ever durably accepted under one ballot (%s%s)",
			id, e.Slot, paxos.DescribeValue(e.Value), rec.describe(), why)
		return
	case rec.chosen.value != string(e.Value):
		c.s.fail(Safety, "replica %s applied %s at slot %d, but %s was chosen there under %s (%s)",
			id, paxos.DescribeValue(e.Value), e.Slot, paxos.DescribeValue([]byte(rec.chosen.value)), rec.chosen.ballot, rec.describe())
		return
	}
	if from, ok := c.removedFrom[id]; ok && e.Slot >= from && e.Ballot.Node != id {
		c.s.fail(Safety, "replica %s applied slot %d (%s, under %s), but it was removed from the slots from %d on: a removed replica took part in a decision made without it",
			id, e.Slot, paxos.DescribeValue(e.Value), e.Ballot, from)
		return
	}
	if !rec.applied {
		rec.applied = true
		c.s.stats.Commits++
	}
}

// latest returns the newest configuration the chosen log made.
func (c *checker) latest() paxos.Configuration { return c.configs[len(c.configs)-1].config }

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

// finalCheck runs once the replicas have caught up: the members of the
// final configuration all hold the same log, and every put a client saw
// acknowledged is in it exactly once.
func (s *Sim) finalCheck() {
	members := s.finalMembers()
	if len(members) == 0 {
		s.fail(Liveness, "no replica of the final configuration to check")
		return
	}
	ref := members[0]
	for _, n := range members[1:] {
		if got := n.chat.get(); got != ref.chat.get() {
			s.fail(Safety, "after catching up, replica %s holds %q but replica %s holds %q", n.id, got, ref.id, ref.chat.get())
			return
		}
	}
	s.final = ref
	count := map[string]int{}
	for _, text := range ref.chat.log {
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
	if len(rd.SendSnapshots) > 0 {
		parts = append(parts, fmt.Sprintf("snapshots to %v", rd.SendSnapshots))
	}
	return strings.Join(parts, "; ")
}
