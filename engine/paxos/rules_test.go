package paxos

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Tests of the protocol's rules, one rule each, each written from the
// sentence of "Paxos Made Simple" (PMS) or "Paxos Made Moderately Complex"
// (PMMC) it checks, in the form: set up, act, check.

func newNode(t *testing.T, id NodeID, peers []NodeID, mod func(*Config)) *RawNode {
	t.Helper()
	cfg := Config{ID: id, Peers: peers, Incarnation: 1, Rand: rand.New(rand.NewPCG(1, 2))}
	if mod != nil {
		mod(&cfg)
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rn
}

func cmd(client, seq uint64, payload string) []byte {
	return AppendCommand(nil, Command{ClientID: client, Seq: seq, Payload: []byte(payload)})
}

func findMsg(msgs []Message, typ MessageType, to NodeID) (Message, bool) {
	for _, m := range msgs {
		if m.Type == typ && m.To == to {
			return m, true
		}
	}
	return Message{}, false
}

// PMS: "If an acceptor receives a prepare request with number n greater than
// that of any prepare request to which it has already responded, then it
// responds to the request with a promise not to accept any more proposals
// numbered less than n." And PMMC: an acceptor adopts a ballot only if it
// is higher than the one it adopted.
func TestAcceptorPromisesOnlyHigherBallots(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	b5 := Ballot{Round: 5, Node: 2}
	if err := rn.Step(Message{Type: MsgPrepare, From: 2, To: 1, Ballot: b5, Slot: 1}); err != nil {
		t.Fatal(err)
	}
	rd := rn.Ready()
	if rd.HardState == nil || rd.HardState.Promised != b5 || !rd.MustSync {
		t.Fatalf("promise of %s not persisted with sync: %+v", b5, rd.HardState)
	}
	if _, ok := findMsg(rd.MessagesAfterPersist, MsgPromise, 2); !ok {
		t.Fatalf("no Promise after persist: %s", DescribeReady(rd, ""))
	}
	if _, ok := findMsg(rd.Messages, MsgPromise, 2); ok {
		t.Fatal("Promise sent before the promise was persisted")
	}
	rn.Advance(rd)

	// A lower ballot is refused with a Nack carrying the promise.
	rn.Step(Message{Type: MsgPrepare, From: 3, To: 1, Ballot: Ballot{Round: 4, Node: 3}, Slot: 1})
	rd = rn.Ready()
	if m, ok := findMsg(rd.Messages, MsgNack, 3); !ok || m.Ballot != b5 {
		t.Fatalf("lower ballot not refused with Nack(%s): %s", b5, DescribeReady(rd, ""))
	}
	if rd.HardState != nil || rn.Status().Promised != b5 {
		t.Fatal("a lower ballot changed the promise")
	}
	// So is an Accept under a lower ballot; nothing is accepted.
	rn.Step(Message{Type: MsgAccept, From: 3, To: 1, Ballot: Ballot{Round: 4, Node: 3}, Entries: []Entry{{Slot: 1, Ballot: Ballot{Round: 4, Node: 3}, Value: cmd(1, 1, "x")}}})
	rd = rn.Ready()
	if _, ok := findMsg(rd.Messages, MsgNack, 3); !ok || len(rd.Entries) > 0 {
		t.Fatalf("Accept under a lower ballot: %s", DescribeReady(rd, ""))
	}
}

// PMS: the promise includes "the proposal with the highest number less than
// n that it has accepted, if any." Here, every accepted entry from the
// candidate's first uncommitted slot on, with its ballot.
func TestPromiseReportsAcceptedEntries(t *testing.T) {
	b1 := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, func(c *Config) {
		c.HardState = HardState{Promised: b1, Commit: 1}
		c.Entries = []Entry{{Slot: 1, Ballot: b1, Value: cmd(1, 1, "a")}, {Slot: 2, Ballot: b1, Value: cmd(1, 2, "b")}}
	})
	rn.Step(Message{Type: MsgPrepare, From: 3, To: 1, Ballot: Ballot{Round: 2, Node: 3}, Slot: 2})
	rd := rn.Ready()
	m, ok := findMsg(rd.MessagesAfterPersist, MsgPromise, 3)
	if !ok || m.Commit != 1 || len(m.Entries) != 1 || m.Entries[0].Slot != 2 || m.Entries[0].Ballot != b1 {
		t.Fatalf("Promise should report slot 2 under %s and commit 1: %s", b1, DescribeReady(rd, ""))
	}
}

// PMS: the proposer "issues a proposal with number n and value v, where v
// is the value of the highest-numbered proposal among the responses, or is
// any value selected by the proposer if the responders reported no
// proposals." Slots nobody reports a value for get a no-op.
func TestCandidateAdoptsHighestBallotValue(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3, 4, 5}, nil)
	rn.startPoll()
	for _, p := range []NodeID{2, 3} {
		rn.Step(Message{Type: MsgPrePromise, From: p, To: 1, Context: rn.poll.id})
	}
	if rn.role != candidate {
		t.Fatalf("not a candidate after a majority of poll answers: %s", rn.role)
	}
	b := rn.camp.ballot
	low, high := Ballot{Round: 1, Node: 2}, Ballot{Round: 2, Node: 3}
	// Acceptor 2 accepted slot 1 under a low ballot and slot 3 (no report
	// of slot 2 anywhere); acceptor 3 accepted another value for slot 1
	// under a higher ballot.
	rn.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: b, Entries: []Entry{
		{Slot: 1, Ballot: low, Value: cmd(9, 1, "low")},
	}})
	rn.Step(Message{Type: MsgPromise, From: 3, To: 1, Ballot: b, Entries: []Entry{
		{Slot: 1, Ballot: high, Value: cmd(9, 2, "high")},
		{Slot: 2, Ballot: high, Value: cmd(9, 3, "two")},
	}})
	if rn.role == leader {
		t.Fatal("leader with two promises of five, without its own")
	}
	rd := rn.Ready() // persists the candidate's own promise
	rn.Advance(rd)
	self, _ := findMsg(rd.MessagesAfterPersist, MsgPromise, 1)
	rn.Step(self)
	if rn.role != leader {
		t.Fatalf("not leader with three promises of five: %s", rn.role)
	}
	rd = rn.Ready()
	var got []string
	for _, e := range rd.Entries {
		if e.Ballot != b {
			t.Errorf("slot %d re-proposed under %s, not the leader's ballot %s", e.Slot, e.Ballot, b)
		}
		got = append(got, DescribeValue(e.Value))
	}
	if want := []string{"[9.2:high]", "[9.3:two]"}; !slices.Equal(got, want) {
		t.Fatalf("re-proposed %v, want %v", got, want)
	}
	for _, p := range []NodeID{2, 3, 4, 5} {
		if m, ok := findMsg(rd.Messages, MsgAccept, p); !ok || len(m.Entries) != 2 {
			t.Errorf("no Accept with both slots to %s: %s", p, DescribeReady(rd, ""))
		}
	}
}

// A promise reports the acceptor's log from the prepared slot on, and logs
// have no holes; one that skips slots is malformed and is refused, not
// merged (before, its hole became a no-op).
func TestPromiseWithHoleRefused(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.startPoll()
	rn.Step(Message{Type: MsgPrePromise, From: 2, To: 1, Context: rn.poll.id})
	b := rn.camp.ballot
	rd := rn.Ready()
	rn.Advance(rd)
	self, _ := findMsg(rd.MessagesAfterPersist, MsgPromise, 1)
	rn.Step(self)
	err := rn.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: b, Entries: []Entry{{Slot: 2, Ballot: Ballot{Round: 1, Node: 2}, Value: cmd(1, 1, "x")}}})
	if !errors.Is(err, ErrProtocolViolation) || rn.IsLeader() {
		t.Fatalf("a promise with a hole: err = %v, leader %v", err, rn.IsLeader())
	}
}

// PMMC: a commander decides once it has "received p2b messages from a
// majority of acceptors". One acknowledgement of three is not enough.
func TestCommitNeedsMajority(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.isolate(2)
	c.isolate(3)
	if err := c.propose(1, 7, 1, "lonely"); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if st := c.node(1).rn.Status(); st.Commit != 0 {
		t.Fatalf("committed slot %d with only the leader's acceptance", st.Commit)
	}
	c.heal()
	c.tickAll(2) // heartbeats notice the lost Accepts and resend them
	if st := c.node(1).rn.Status(); st.Commit != 1 {
		t.Fatalf("not committed after healing: %+v", st)
	}
	c.tickAll(1)
	c.checkAgreement()
	if got := c.appliedValues(3); !slices.Equal(got, []string{"[7.1:lonely]"}) {
		t.Fatalf("replica 3 applied %v", got)
	}
}

// The leader sends its Accepts at once, before its own write, but counts
// its own acceptance only once its write is durable.
func TestLeaderCountsItselfOnlyAfterPersist(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ldr := c.elect(1)
	c.propose(1, 7, 1, "x")
	rd := ldr.Ready()
	if _, ok := findMsg(rd.Messages, MsgAccept, 2); !ok {
		t.Fatalf("Accept not sent before the leader's write: %s", DescribeReady(rd, ""))
	}
	self, ok := findMsg(rd.MessagesAfterPersist, MsgAccepted, 1)
	if !ok || self.Slot != 1 {
		t.Fatalf("the leader's own Accepted must wait for its write: %s", DescribeReady(rd, ""))
	}
	ldr.Advance(rd)
	// One follower's acceptance without the leader's own is not a majority
	// of three.
	ldr.Step(Message{Type: MsgAccepted, From: 2, To: 1, Ballot: ldr.promised, Slot: 1})
	if ldr.Status().Commit != 0 {
		t.Fatal("committed before the leader's own write was durable")
	}
	ldr.Step(self)
	if ldr.Status().Commit != 1 {
		t.Fatal("not committed with the leader and one follower")
	}
}

// An acceptor that heard from its leader recently refuses both the poll
// and the Prepare of another replica: no disruption of a working leader.
func TestLeaderStickiness(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	ballot := c.node(1).rn.promised
	c.node(3).rn.startPoll()
	c.stabilize()
	if c.node(3).rn.role == leader || c.node(3).rn.role == candidate {
		t.Fatalf("replica 3 became %s while 1 leads", c.node(3).rn.role)
	}
	if c.node(2).rn.promised != ballot || c.node(3).rn.promised != ballot {
		t.Fatal("a refused poll changed a promise")
	}
	// Even a Prepare with a higher ballot is ignored by a follower that
	// hears from its leader.
	c.node(2).rn.Step(Message{Type: MsgPrepare, From: 3, To: 2, Ballot: Ballot{Round: 99, Node: 3}, Slot: 1})
	if c.node(2).rn.promised != ballot {
		t.Fatal("follower promised a disruptive Prepare")
	}
}

// A replica cut off from the others polls again and again, but never
// raises its ballot, so when it returns the leader goes on undisturbed.
func TestIsolatedReplicaDoesNotDisrupt(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	ballot := c.node(1).rn.promised
	c.isolate(3)
	for i := 0; i < 100; i++ {
		c.node(3).rn.Tick()
		c.stabilize()
	}
	if c.node(3).rn.promised != ballot {
		t.Fatalf("isolated replica raised its promise to %s", c.node(3).rn.promised)
	}
	c.heal()
	c.propose(1, 1, 1, "after")
	c.tickAll(3)
	if !c.node(1).rn.IsLeader() || c.node(1).rn.promised != ballot {
		t.Fatal("the returning replica disrupted the leader")
	}
	if got := c.appliedValues(3); !slices.Equal(got, []string{"[1.1:after]"}) {
		t.Fatalf("returning replica applied %v", got)
	}
}

// A leader that cannot reach a majority for an election timeout steps down.
func TestLeaderStepsDownWithoutQuorum(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.isolate(1)
	for i := 0; i < 2*DefaultElectionTicks && c.node(1).rn.IsLeader(); i++ {
		c.node(1).rn.Tick()
		c.stabilize()
	}
	if c.node(1).rn.IsLeader() {
		t.Fatal("a leader cut off from the majority stayed leader")
	}
}

// After the leader dies, another replica is elected within a few election
// timeouts, commits what the old leader got accepted, and goes on.
func TestFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.propose(1, 1, 1, "one")
	c.stabilize()
	c.crash(1)
	for i := 0; i < 5*DefaultElectionTicks; i++ {
		c.tickAll(1)
		if c.node(2).rn.IsLeader() || c.node(3).rn.IsLeader() {
			break
		}
	}
	var ldr NodeID
	for _, id := range []NodeID{2, 3} {
		if c.node(id).rn.IsLeader() {
			ldr = id
		}
	}
	if ldr == 0 {
		t.Fatal("no new leader")
	}
	if err := c.propose(ldr, 1, 2, "two"); err != nil {
		t.Fatal(err)
	}
	c.tickAll(2)
	c.start(c.node(1))
	c.tickAll(3)
	c.checkAgreement()
	for _, id := range []NodeID{1, 2, 3} {
		if got := c.appliedValues(id); !slices.Equal(got, []string{"[1.1:one]", "[1.2:two]"}) {
			t.Errorf("replica %s applied %v", id, got)
		}
	}
}

// An acceptor refuses entries that do not follow what it holds, and says
// where it can continue; the leader sends from there.
func TestAcceptorRefusesAGapAndLeaderRewinds(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.propose(1, 1, 1, "a")
	// Lose the Accept for slot 1 to replica 3.
	c.process(1)
	c.deliver(func(m Message) bool { return !(m.Type == MsgAccept && m.To == 3) })
	c.queue = slices.DeleteFunc(c.queue, func(m Message) bool { return m.Type == MsgAccept && m.To == 3 })
	c.stabilize()
	c.propose(1, 1, 2, "b")
	c.stabilize()
	if got := c.node(3).rn.Status().LastSlot; got != 0 && got != 2 {
		t.Fatalf("replica 3 holds up to slot %d: it took slot 2 without slot 1", got)
	}
	c.tickAll(2)
	c.checkAgreement()
	if got := c.appliedValues(3); len(got) != 2 {
		t.Fatalf("replica 3 did not catch up: %v", got)
	}
}

// A follower forwards proposals to the leader.
func TestFollowerForwardsProposals(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.tickAll(1)
	if err := c.propose(2, 4, 1, "via 2"); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	c.tickAll(1)
	for _, id := range []NodeID{1, 2, 3} {
		if got := c.appliedValues(id); !slices.Equal(got, []string{"[4.1:via 2]"}) {
			t.Errorf("replica %s applied %v", id, got)
		}
	}
}

func TestProposeErrors(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	if err := rn.Propose(cmd(1, 1, "x")); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Propose without a leader: %v, want ErrNoLeader", err)
	}
	if err := rn.Propose([]byte{9, 9}); !errors.Is(err, ErrBadValue) {
		t.Errorf("Propose of a malformed batch: %v, want ErrBadValue", err)
	}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxUncommittedBytes = 100 })
	c.elect(1)
	c.isolate(1) // nothing commits
	var err error
	for i := uint64(1); i < 100 && err == nil; i++ {
		err = c.propose(1, 1, i, "0123456789")
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("proposing past MaxUncommittedBytes: %v, want ErrBusy", err)
	}
}

// Slots are packed from pending proposals, and the leader keeps no more
// than MaxInflightSlots uncommitted: proposals that wait meanwhile share
// the next slot.
func TestBatchingAndWindow(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxInflightSlots = 2 })
	c.elect(1)
	c.isolate(2)
	c.isolate(3)
	for i := uint64(1); i <= 10; i++ {
		c.propose(1, 1, i, "p")
		c.process(1)
	}
	if last := c.node(1).rn.Status().LastSlot; last != 2 {
		t.Fatalf("leader opened %d slots with a window of 2", last)
	}
	c.heal()
	c.tickAll(3)
	c.checkAgreement()
	got := c.appliedValues(2)
	if len(got) != 3 || !strings.Contains(got[2], "1.10:p") || strings.Count(got[2], "1.") != 8 {
		t.Fatalf("want slots [1.1] [1.2] then the other 8 in one slot; got %v", got)
	}
}

// A replica restarted from what it persisted has the same promise, log and
// commit, and re-applies the committed log.
func TestRestartRecoversDurableState(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.propose(1, 1, 1, "a")
	c.tickAll(2)
	before := c.node(2).rn.Status()
	c.crash(2)
	c.start(c.node(2))
	after := c.node(2).rn.Status()
	if after.Promised != before.Promised || after.LastSlot != before.LastSlot || after.Commit != before.Commit {
		t.Fatalf("restart lost state: before %+v, after %+v", before, after)
	}
	c.stabilize()
	if got := c.appliedValues(2); !slices.Equal(got, []string{"[1.1:a]"}) {
		t.Fatalf("restarted replica re-applied %v", got)
	}
}

// ReadIndex: the read index is the commit index at the time of the read,
// confirmed by a majority; a follower gets it from the leader.
func TestReadIndex(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.elect(1)
	c.propose(1, 1, 1, "a")
	c.stabilize()
	if err := c.node(1).rn.ReadIndex(11); err != nil {
		t.Fatal(err)
	}
	if err := c.node(2).rn.ReadIndex(22); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	for id, want := range map[NodeID]ReadState{1: {Context: 11, Index: 1}, 2: {Context: 22, Index: 1}} {
		if got := c.node(id).reads; len(got) != 1 || got[0] != want {
			t.Errorf("replica %s read states %v, want %v", id, got, want)
		}
	}
	// Cut off from the majority, the leader confirms no read.
	c.isolate(1)
	c.node(1).rn.ReadIndex(33)
	c.stabilize()
	if got := c.node(1).reads; len(got) != 1 {
		t.Fatalf("an isolated leader served a read: %v", got)
	}
}

func TestValueEncoding(t *testing.T) {
	var batch []byte
	want := []Command{{1, 1, 0, []byte("a")}, {2, 7, 0, nil}, {1 << 60, 1 << 40, 0, []byte("long payload")}}
	for _, c := range want[:2] {
		batch = AppendCommand(batch, c)
	}
	batch = AppendBatch(batch, AppendCommand(nil, want[2]))
	var got []Command
	if err := ForEachCommand(batch, func(c Command) bool { got = append(got, c); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d commands, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ClientID != want[i].ClientID || got[i].Seq != want[i].Seq || string(got[i].Payload) != string(want[i].Payload) {
			t.Errorf("command %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// EncodeBatch makes the same bytes in a buffer of exactly their size.
	enc := EncodeBatch(want)
	if string(enc) != string(batch) || cap(enc) != len(enc) {
		t.Errorf("EncodeBatch: %x (cap %d), want %x with no spare capacity", enc, cap(enc), batch)
	}
	for _, bad := range [][]byte{nil, {}, {7}, {kindNoop, 1}, {kindCommands, 1, 1, 5, 'x'}, {kindCommands, 0x80},
		{kindWindowedCommands, 1, 2, 3, 0}, {kindWindowedCommands, 1, 2, 0x80}} {
		if err := CheckValue(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("CheckValue(%x) = %v, want ErrBadValue", bad, err)
		}
	}
}

// TestWindowedValueEncoding: commands with an Oldest make a kind 4 batch,
// which carries it; merging a plain batch with a windowed one, in either
// order, makes a windowed batch of all the commands, in order.
func TestWindowedValueEncoding(t *testing.T) {
	plain := []Command{{1, 1, 0, []byte("a")}, {2, 7, 0, nil}}
	windowed := []Command{{3, 70, 7, []byte("w")}, {3, 71, 7, []byte("x")}}
	if EncodeBatch(plain)[0] != kindCommands || EncodeBatch(windowed)[0] != kindWindowedCommands {
		t.Fatal("EncodeBatch chose the wrong kind")
	}
	mixed := append(slices.Clone(plain), windowed...)
	enc := EncodeBatch(mixed)
	if enc[0] != kindWindowedCommands || cap(enc) != len(enc) {
		t.Fatalf("EncodeBatch of a mixed batch: kind %d, cap %d len %d", enc[0], cap(enc), len(enc))
	}
	decode := func(v []byte) []Command {
		var got []Command
		if err := ForEachCommand(v, func(c Command) bool { c.Payload = slices.Clone(c.Payload); got = append(got, c); return true }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	same := func(a, b []Command) bool {
		return slices.EqualFunc(a, b, func(x, y Command) bool {
			return x.ClientID == y.ClientID && x.Seq == y.Seq && x.Oldest == y.Oldest && string(x.Payload) == string(y.Payload)
		})
	}
	if got := decode(enc); !same(got, mixed) {
		t.Fatalf("decoded %+v, want %+v", got, mixed)
	}
	if got := decode(AppendBatch(EncodeBatch(plain), EncodeBatch(windowed))); !same(got, mixed) {
		t.Fatalf("plain then windowed: %+v, want %+v", got, mixed)
	}
	back := append(slices.Clone(windowed), plain...)
	if got := decode(AppendBatch(EncodeBatch(windowed), EncodeBatch(plain))); !same(got, back) {
		t.Fatalf("windowed then plain: %+v, want %+v", got, back)
	}
}
