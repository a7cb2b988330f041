package paxos

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// Deterministic explorations of membership changes from the review of
// issue 13: crash points during a change, and random schedules in which
// changes from several leaders race.

// stepOne does one thing: processes the Ready of the first replica that
// has one, or else delivers the oldest message. It reports whether it did
// anything.
func (c *testCluster) stepOne() bool {
	for _, nd := range c.nodes {
		if c.process(nd.id) {
			return true
		}
	}
	if len(c.queue) == 0 {
		return false
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	nd := c.node(m.To)
	if nd.up && !c.cut[[2]NodeID{m.From, m.To}] {
		nd.rn.Step(m)
	}
	return true
}

// crashPointRun proposes change (or a transfer) at leader 1 of a cluster
// of n voters (plus a learner 4 for the changes that need it), crashes
// victim after k steps, restarts it after r more steps (r < 0: never), and
// then runs the cluster with ticks until it settles. It checks agreement,
// that some live voter leads and commits a write.
func crashPointRun(t *testing.T, name string, n int, change func(c *testCluster) error, victim NodeID, k, r int) {
	c := newTestCluster(t, n, nil)
	c.trace = &strings.Builder{}
	c.elect(1)
	c.write(1, 1, 2)
	if n == 3 {
		l := c.join()
		c.change(1, ConfChange{Type: AddLearner, ID: l.id, PeerAddr: "p4"})
		c.tickAll(2)
	}
	if err := change(c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for i := 0; i < k && c.stepOne(); i++ {
	}
	c.crash(victim)
	if r >= 0 {
		for i := 0; i < r && c.stepOne(); i++ {
		}
		c.start(c.node(victim))
	}
	stopped := map[NodeID]bool{}
	for round := 0; round < 60; round++ {
		for _, nd := range c.nodes {
			if nd.up {
				nd.rn.Tick()
			}
		}
		c.runDropping(func(Message) bool { return false }, func() {
			for _, nd := range c.nodes {
				if nd.up && !stopped[nd.id] && nd.rn.Status().Removed {
					stopped[nd.id] = true
					c.crash(nd.id)
				}
			}
		})
	}
	c.checkAgreement()
	var lead *testNode
	for _, nd := range c.nodes {
		if nd.up && nd.rn.IsLeader() {
			lead = nd
		}
	}
	if lead == nil {
		var b strings.Builder
		for _, nd := range c.nodes {
			if nd.up {
				fmt.Fprintf(&b, "%+v\n", nd.rn.Status())
			}
		}
		t.Fatalf("%s, crash %s at step %d, restart after %d: nobody leads after 60 ticks\n%s", name, victim, k, r, b.String())
	}
	before := lead.rn.Status().Commit
	c.seq++
	if err := c.propose(lead.id, 9, c.seq, "after"); err != nil {
		t.Fatalf("%s k=%d r=%d: propose: %v", name, k, r, err)
	}
	c.tickAll(3)
	if lead.rn.Status().Commit <= before {
		t.Fatalf("%s, crash %s at step %d, restart after %d: leader %s commits nothing: %+v", name, victim, k, r, lead.id, lead.rn.Status())
	}
	c.checkAgreement()
}

// TestCrashPointsDuringAChange crashes the leader, or a follower, after
// each of many steps of a change (removing the leader, another voter, a
// learner; promoting; a transfer), restarts it at once, a little later,
// or never (when the voters left can still form a quorum of the new
// configuration), and checks agreement, then that someone leads and
// commits.
func TestCrashPointsDuringAChange(t *testing.T) {
	changes := map[string]func(c *testCluster) error{
		"remove-self":  func(c *testCluster) error { return c.node(1).rn.ProposeChange(ConfChange{Type: Remove, ID: 1}) },
		"remove-other": func(c *testCluster) error { return c.node(1).rn.ProposeChange(ConfChange{Type: Remove, ID: 2}) },
		"promote":      func(c *testCluster) error { return c.node(1).rn.ProposeChange(ConfChange{Type: Promote, ID: 4}) },
		"remove-learner": func(c *testCluster) error {
			return c.node(1).rn.ProposeChange(ConfChange{Type: Remove, ID: 4})
		},
		"transfer": func(c *testCluster) error { return c.node(1).rn.TransferLeadership(2) },
	}
	for name, ch := range changes {
		for _, n := range []int{2, 3} {
			if n == 2 && (name == "promote" || name == "remove-learner") {
				continue
			}
			for _, victim := range []NodeID{1, 2} {
				for k := 0; k < 160; k += 7 {
					for _, r := range []int{0, 7, -1} {
						if n == 2 && r == -1 || name == "remove-self" && victim == 2 && r == -1 || name == "remove-other" && victim == 1 && r == -1 {
							continue // one of two voters left gone for good: nobody can lead
						}
						crashPointRun(t, fmt.Sprintf("%s/n%d", name, n), n, ch, victim, k, r)
					}
				}
			}
		}
	}
}

var racingSeeds = flag.Int("racing.seeds", 100, "seeds of TestRandomRacingChanges")

// TestRandomRacingChanges runs five voters under a random schedule
// (messages reordered, lost, replicas cut off, crashed and restarted)
// in which any replica that leads proposes writes and changes, so that
// several leaders' changes race; then heals, and checks agreement and
// that someone leads. Under the old rule (a configuration value taken
// whole), seeds 2454 (replica 2 removed in slot 2, back as a voter in
// slot 3), 3370 (learner 6 added in slot 5, gone in slot 6 without being
// removed) and 9914 reached the race; -racing.seeds=N runs more.
func TestRandomRacingChanges(t *testing.T) {
	for seed := 0; seed < *racingSeeds; seed++ {
		randomRacingRun(t, uint64(seed))
		if t.Failed() {
			return
		}
	}
}

func randomRacingRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	c := newTestCluster(t, 5, func(cfg *Config) {
		if seed%2 == 0 {
			cfg.MaxMsgBytes = 1
		}
	})
	c.trace = nil
	c.elect(1)
	ignored := 0
	stopped := map[NodeID]bool{}
	check := func() {
		for _, nd := range c.nodes {
			if nd.up && !stopped[nd.id] && nd.rn.Status().Removed {
				stopped[nd.id] = true
				c.crash(nd.id)
			}
		}
	}
	live := func() []*testNode {
		var out []*testNode
		for _, nd := range c.nodes {
			if !stopped[nd.id] {
				out = append(out, nd)
			}
		}
		return out
	}
	for step := 0; step < 3000; step++ {
		switch x := rng.IntN(100); {
		case x < 30:
			c.stepOne()
		case x < 40 && len(c.queue) > 0:
			// deliver a random message (reorder)
			i := rng.IntN(len(c.queue))
			m := c.queue[i]
			c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
			if nd := c.node(m.To); nd.up && !c.cut[[2]NodeID{m.From, m.To}] {
				nd.rn.Step(m)
			}
		case x < 45 && len(c.queue) > 0:
			i := rng.IntN(len(c.queue))
			c.queue = append(c.queue[:i:i], c.queue[i+1:]...) // lose
		case x < 60:
			for _, nd := range c.nodes {
				if nd.up {
					nd.rn.Tick()
				}
			}
		case x < 70:
			l := live()
			nd := l[rng.IntN(len(l))]
			if nd.up && nd.rn.IsLeader() {
				c.seq++
				nd.rn.Propose(AppendCommand(nil, Command{ClientID: 5, Seq: c.seq, Payload: []byte(fmt.Sprint("v", c.seq))}))
			}
		case x < 80:
			l := live()
			nd := l[rng.IntN(len(l))]
			if !nd.up || !nd.rn.IsLeader() {
				break
			}
			conf := nd.rn.Status().Config
			var cc ConfChange
			switch rng.IntN(4) {
			case 0:
				if len(c.nodes) < 9 {
					j := c.join()
					cc = ConfChange{Type: AddLearner, ID: j.id, PeerAddr: fmt.Sprint("p", j.id)}
				}
			case 1:
				if ls := conf.Learners(); len(ls) > 0 {
					cc = ConfChange{Type: Promote, ID: ls[rng.IntN(len(ls))]}
				}
			case 2:
				if vs := conf.Voters(); len(vs) > 3 {
					cc = ConfChange{Type: Remove, ID: vs[rng.IntN(len(vs))]}
				}
			case 3:
				if vs := conf.Voters(); len(vs) > 1 {
					nd.rn.TransferLeadership(vs[rng.IntN(len(vs))])
				}
			}
			if cc.Type != 0 {
				nd.rn.ProposeChange(cc)
			}
		case x < 85:
			l := live()
			nd := l[rng.IntN(len(l))]
			if nd.up && rng.IntN(3) == 0 {
				c.isolate(nd.id)
			} else {
				c.heal()
			}
		case x < 90:
			l := live()
			nd := l[rng.IntN(len(l))]
			if nd.up {
				c.crash(nd.id)
			} else {
				c.start(nd)
			}
		}
		check()
	}
	c.heal()
	for _, nd := range live() {
		if !nd.up {
			c.start(nd)
		}
	}
	for round := 0; round < 100; round++ {
		for _, nd := range c.nodes {
			if nd.up {
				nd.rn.Tick()
			}
		}
		c.runDropping(func(Message) bool { return false }, check)
	}
	c.checkAgreement()
	for _, nd := range c.nodes {
		if len(nd.applied) == 0 {
			continue
		}
		prev := nd.bootstrap.Latest()
		for _, e := range nd.applied {
			if IsConfigValue(e.Value) {
				if next, ok := NextConfiguration(prev, e.Value); ok {
					prev = next
				} else {
					ignored++
				}
			}
		}
		break
	}
	var lead *testNode
	for _, nd := range c.nodes {
		if nd.up && nd.rn.IsLeader() {
			lead = nd
		}
	}
	if lead == nil {
		var b strings.Builder
		for _, nd := range c.nodes {
			if nd.up {
				fmt.Fprintf(&b, "%+v\n", nd.rn.Status())
			}
		}
		t.Fatalf("seed %d: nobody leads\n%s", seed, b.String())
	}
	if ignored > 0 {
		t.Logf("seed %d: %d configuration values chosen changed nothing (racing changes)", seed, ignored)
	}
}
