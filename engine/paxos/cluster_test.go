package paxos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// testCluster runs RawNodes in one goroutine with a FIFO network that tests
// control message by message, and a durable store per replica that keeps
// exactly what the Readys persisted, for crash and restart.
type testCluster struct {
	t     testing.TB
	nodes []*testNode
	// queue holds the messages in flight, oldest first.
	queue []Message
	// cut[a][b] drops messages from a to b.
	cut   map[[2]NodeID]bool
	trace *strings.Builder // when set, every Ready and delivery is described here
	knobs TestingKnobs
	cfg   func(*Config)
	seq   uint64 // the last sequence number write used
}

type testNode struct {
	id NodeID
	rn *RawNode
	up bool
	// What the Readys made durable.
	hard    HardState
	entries []Entry // entries[i] is slot i+1
	// lives counts starts: the durable incarnation counter.
	lives uint64
	// What the state machine applied, in slot order.
	applied []Entry
	reads   []ReadState
	// joined says the replica was added at run time: it starts knowing no
	// configuration, until a snapshot (which in this cluster is the
	// leader's applied log, copied) tells it the bootstrap one.
	joined    bool
	installed bool
	// bootstrap is the cluster's configuration at slot 0.
	bootstrap ConfigState
}

func newTestCluster(t testing.TB, n int, cfg func(*Config)) *testCluster {
	c := &testCluster{t: t, cut: map[[2]NodeID]bool{}, cfg: cfg}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &testNode{id: NodeID(i)})
	}
	boot := Bootstrap(c.peers(), nil, nil)
	for _, nd := range c.nodes {
		nd.bootstrap = boot
		c.start(nd)
	}
	return c
}

// join starts a new replica with an empty disk, knowing no configuration,
// as the next ID.
func (c *testCluster) join() *testNode {
	nd := &testNode{id: NodeID(len(c.nodes) + 1), joined: true, bootstrap: c.nodes[0].bootstrap}
	c.nodes = append(c.nodes, nd)
	c.start(nd)
	return nd
}

func (c *testCluster) peers() []NodeID {
	ids := make([]NodeID, len(c.nodes))
	for i, nd := range c.nodes {
		ids[i] = nd.id
	}
	return ids
}

func (c *testCluster) node(id NodeID) *testNode { return c.nodes[id-1] }

// start creates the RawNode of nd from its durable state; its state
// machine starts empty and re-applies the committed log.
func (c *testCluster) start(nd *testNode) {
	nd.lives++
	cfg := Config{
		ID:          nd.id,
		ConfigState: nd.bootstrap,
		Incarnation: nd.lives,
		Rand:        rand.New(rand.NewPCG(uint64(nd.id), 42)),
		HardState:   nd.hard,
		Entries:     slices.Clone(nd.entries),
		Knobs:       c.knobs,
	}
	if nd.joined && !nd.installed {
		cfg.ConfigState = nil
	}
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		c.t.Fatalf("NewRawNode(%s): %v", nd.id, err)
	}
	nd.rn, nd.up, nd.applied, nd.reads = rn, true, nil, nil
}

func (c *testCluster) crash(id NodeID) {
	nd := c.node(id)
	nd.up, nd.rn = false, nil
	kept := c.queue[:0]
	for _, m := range c.queue {
		if m.To != id {
			kept = append(kept, m)
		}
	}
	c.queue = kept
}

func (c *testCluster) logf(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, format, args...)
	}
}

// process handles one Ready of id as a careful caller must: send, persist,
// send what waited for the persist, apply, advance.
func (c *testCluster) process(id NodeID) bool {
	nd := c.node(id)
	if !nd.up || !nd.rn.HasReady() {
		return false
	}
	rd := nd.rn.Ready()
	c.logf("> %s handling Ready\n%s", id, DescribeReady(rd, "  "))
	c.queue = append(c.queue, rd.Messages...)
	if rd.HardState != nil {
		nd.hard = *rd.HardState
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Slot
		if first > uint64(len(nd.entries))+1 {
			c.t.Fatalf("%s persisted slot %d after %d entries: a hole", id, first, len(nd.entries))
		}
		nd.entries = append(nd.entries[:first-1], rd.Entries...)
	}
	c.queue = append(c.queue, rd.MessagesAfterPersist...)
	for _, e := range rd.Committed {
		if e.Slot != uint64(len(nd.applied))+1 {
			c.t.Fatalf("%s applied slot %d after %d slots", id, e.Slot, len(nd.applied))
		}
		nd.applied = append(nd.applied, e)
	}
	nd.reads = append(nd.reads, rd.ReadStates...)
	nd.rn.Advance(rd)
	for _, to := range rd.SendSnapshots {
		c.sendSnapshot(nd, to)
	}
	return true
}

// sendSnapshot gives replica to the state of from's applied log, as a
// snapshot would: its durable log becomes from's applied entries (the
// cluster's disks keep whole logs from slot 1) and its core installs the
// configuration state after them.
func (c *testCluster) sendSnapshot(from *testNode, to NodeID) {
	nd := c.node(to)
	if !nd.up || c.cut[[2]NodeID{from.id, to}] {
		from.rn.ReportSnapshot(to, false)
		return
	}
	k := uint64(len(from.applied))
	cs := from.bootstrap
	for _, e := range from.applied {
		cs = cs.Apply(e.Slot, e.Value)
	}
	if !nd.rn.WantsSnapshot(k) {
		from.rn.ReportSnapshot(to, false)
		return
	}
	var b Ballot
	if k > 0 {
		b = from.applied[k-1].Ballot
	}
	nd.entries = slices.Clone(from.applied)
	nd.applied = slices.Clone(from.applied)
	nd.installed = true
	if !nd.rn.InstallSnapshot(Compacted{Slot: k, Ballot: b}, cs) {
		c.t.Fatalf("%s refused a snapshot of slot %d it wanted", to, k)
	}
	from.rn.ReportSnapshot(to, true)
}

// deliver delivers the queued messages that match (all if match is nil),
// in order, and returns how many it delivered (or dropped at a cut).
func (c *testCluster) deliver(match func(Message) bool) int {
	var now, later []Message
	for _, m := range c.queue {
		if match == nil || match(m) {
			now = append(now, m)
		} else {
			later = append(later, m)
		}
	}
	c.queue = later
	for _, m := range now {
		nd := c.node(m.To)
		if !nd.up || c.cut[[2]NodeID{m.From, m.To}] {
			c.logf("  dropped %s\n", DescribeMessage(m))
			continue
		}
		if err := nd.rn.Step(m); err != nil {
			c.logf("  %s: %v\n", DescribeMessage(m), err)
		}
	}
	return len(now)
}

// stabilize processes Readys and delivers messages until nothing is left.
func (c *testCluster) stabilize() {
	for i := 0; i < 10000; i++ {
		progress := false
		for _, nd := range c.nodes {
			if c.process(nd.id) {
				progress = true
			}
		}
		if c.deliver(nil) > 0 {
			progress = true
		}
		if !progress {
			return
		}
	}
	c.t.Fatal("the cluster did not stabilize")
}

// tickAll ticks every live replica n times, stabilizing after each tick.
func (c *testCluster) tickAll(n int) {
	for i := 0; i < n; i++ {
		for _, nd := range c.nodes {
			if nd.up {
				nd.rn.Tick()
			}
		}
		c.stabilize()
	}
}

// elect makes id leader by polling at once, and returns it.
func (c *testCluster) elect(id NodeID) *RawNode {
	c.node(id).rn.startPoll()
	c.stabilize()
	if !c.node(id).rn.IsLeader() {
		c.t.Fatalf("%s did not become leader: %+v", id, c.node(id).rn.Status())
	}
	return c.node(id).rn
}

func (c *testCluster) propose(id NodeID, client, seq uint64, payload string) error {
	return c.node(id).rn.Propose(AppendCommand(nil, Command{ClientID: client, Seq: seq, Payload: []byte(payload)}))
}

func (c *testCluster) isolate(id NodeID) {
	for _, nd := range c.nodes {
		if nd.id != id {
			c.cut[[2]NodeID{id, nd.id}] = true
			c.cut[[2]NodeID{nd.id, id}] = true
		}
	}
}

func (c *testCluster) heal() { c.cut = map[[2]NodeID]bool{} }

// appliedValues describes what id applied, one value per slot.
func (c *testCluster) appliedValues(id NodeID) []string {
	var out []string
	for _, e := range c.node(id).applied {
		out = append(out, DescribeValue(e.Value))
	}
	return out
}

// checkAgreement fails the test unless every replica's applied sequence is
// a prefix of the longest one.
func (c *testCluster) checkAgreement() {
	c.t.Helper()
	var longest []string
	for _, nd := range c.nodes {
		if a := c.appliedValues(nd.id); len(a) > len(longest) {
			longest = a
		}
	}
	for _, nd := range c.nodes {
		a := c.appliedValues(nd.id)
		if !slices.Equal(a, longest[:len(a)]) {
			c.t.Fatalf("replica %s applied %v, which is not a prefix of %v", nd.id, a, longest)
		}
	}
}
