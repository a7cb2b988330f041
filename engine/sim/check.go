package sim

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
)

// checker holds the global oracles, checked as the run goes.
type checker struct {
	s *Sim
	// votes[slot][i] is what replica i durably holds for slot: the ballot
	// and value of its accepted entry.
	votes map[uint64][]vote
	// chosen[slot] is the first value a majority of replicas durably
	// accepted under one ballot: Paxos's "chosen". No other value may ever
	// be chosen for that slot.
	chosen map[uint64][]byte
	// history[slot] is the value the first replica applied there; every
	// replica's applied sequence must be a prefix of this one history.
	history map[uint64][]byte
}

type vote struct {
	ballot paxos.Ballot
	value  []byte
}

func newChecker(s *Sim) checker {
	return checker{s: s, votes: map[uint64][]vote{}, chosen: map[uint64][]byte{}, history: map[uint64][]byte{}}
}

// persisted notes entries that became durable at replica n, and checks
// that no slot ever has two chosen values.
func (c *checker) persisted(n *node, ents []paxos.Entry) {
	quorum := len(c.s.nodes)/2 + 1
	for _, e := range ents {
		vs := c.votes[e.Slot]
		if vs == nil {
			vs = make([]vote, len(c.s.nodes))
			c.votes[e.Slot] = vs
		}
		vs[n.id-1] = vote{ballot: e.Ballot, value: e.Value}
		same := 0
		for _, v := range vs {
			if v.ballot == e.Ballot && v.value != nil && bytes.Equal(v.value, e.Value) {
				same++
			}
		}
		if same < quorum {
			continue
		}
		if first, ok := c.chosen[e.Slot]; !ok {
			c.chosen[e.Slot] = e.Value
		} else if !bytes.Equal(first, e.Value) {
			c.s.fail(Safety, "slot %d: %s chosen under ballot %s, but %s was chosen there before: two values chosen",
				e.Slot, paxos.DescribeValue(e.Value), e.Ballot, paxos.DescribeValue(first))
			return
		}
	}
}

// applied checks a slot a replica applies: it must be chosen, and be what
// every other replica applied there.
func (c *checker) applied(n *node, e paxos.Entry) {
	chosen, ok := c.chosen[e.Slot]
	if !ok {
		c.s.fail(Safety, "replica %s applied slot %d (%s), which no majority has durably accepted", n.id, e.Slot, paxos.DescribeValue(e.Value))
		return
	}
	if !bytes.Equal(chosen, e.Value) {
		c.s.fail(Safety, "replica %s applied %s at slot %d, but %s was chosen there", n.id, paxos.DescribeValue(e.Value), e.Slot, paxos.DescribeValue(chosen))
		return
	}
	if h, ok := c.history[e.Slot]; !ok {
		c.history[e.Slot] = e.Value
		c.s.stats.Commits++
	} else if !bytes.Equal(h, e.Value) {
		c.s.fail(Safety, "replica %s applied %s at slot %d, where others applied %s", n.id, paxos.DescribeValue(e.Value), e.Slot, paxos.DescribeValue(h))
	}
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
