package paxos

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// Tests of the rules that keep one value per slot when messages arrive
// late, from an earlier life of their sender or receiver, or from a
// stranger. Each is a schedule a reader can follow step by step.

// sendOnly hands out id's Ready and sends its Messages, as a runtime does
// before its write completes, and then nothing else: the replica is about
// to crash with the write lost.
func (c *testCluster) sendOnly(id NodeID) Ready {
	rd := c.node(id).rn.Ready()
	c.logf("> %s handling Ready, then crashing before the write completes\n%s", id, DescribeReady(rd, "  "))
	c.queue = append(c.queue, rd.Messages...)
	return rd
}

// take removes the first queued message that matches and returns it.
func (c *testCluster) take(match func(Message) bool) Message {
	c.t.Helper()
	for i, m := range c.queue {
		if match(m) {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return m
		}
	}
	c.t.Fatalf("no queued message matches")
	return Message{}
}

func isMsg(typ MessageType, from, to NodeID) func(Message) bool {
	return func(m Message) bool { return m.Type == typ && m.From == from && (to == None || m.To == to) }
}

func (c *testCluster) step(m Message) error {
	return c.node(m.To).rn.Step(m)
}

// ballotReuseSchedule plays the crash schedule of the review that found
// a ballot used twice (3 replicas), with the given knobs, and returns what
// each replica applied. Step by step:
//
//  1. Replica 1 polls; both others answer yes. It counts 2's answer and
//     campaigns with ballot 1.1; 3's answer is still on its way.
//  2. Its Ready goes out, and it crashes before its write completes. With
//     the fix, Prepare waits for that write, so nothing under 1.1 left.
//     With the bug, Prepare left at once: 2 and 3 promise 1.1, replica 1
//     leads on their promises alone, proposes v, and its Accept(v) are
//     delayed in the network; then it crashes, nothing durable.
//  3. Restarted, replica 1 polls again, and 3's answer to the previous
//     life's poll arrives. With the fix, poll ids are unique across lives
//     and the answer is ignored; with the bug it is counted, and replica 1
//     campaigns with 1.1 again, becomes leader and proposes w in slot 1.
//  4. The old Accept(v) reach 2 and 3 first; then Accept(w), under the
//     same ballot. With the fix, it is refused as a violation. With the
//     bug, it is taken for a duplicate and acknowledged.
//  5. Everything is delivered; the replicas apply what they commit.
func ballotReuseSchedule(t *testing.T, knobs TestingKnobs) (*testCluster, map[NodeID][]string) {
	c := newTestCluster(t, 3, nil)
	c.knobs = knobs
	for _, nd := range c.nodes {
		c.start(nd) // again, with the knobs
	}
	// 1.
	c.node(1).rn.startPoll()
	c.process(1)
	c.deliver(func(m Message) bool { return m.Type == MsgPrePrepare })
	c.process(2)
	c.process(3)
	lateAnswer := c.take(isMsg(MsgPrePromise, 3, 1))
	c.deliver(isMsg(MsgPrePromise, 2, 1))
	if st := c.node(1).rn.Status(); st.Role != "candidate" || st.Promised != (Ballot{1, 1}) {
		t.Fatalf("replica 1 did not campaign with 1.1: %+v", st)
	}
	// 2.
	c.sendOnly(1)
	if c.deliver(isMsg(MsgPrepare, 1, None)) > 0 {
		c.process(2)
		c.process(3)
		c.deliver(isMsg(MsgPromise, 2, 1))
		c.deliver(isMsg(MsgPromise, 3, 1))
		if c.node(1).rn.IsLeader() {
			if err := c.propose(1, 7, 1, "v"); err != nil {
				t.Fatal(err)
			}
			c.sendOnly(1)
		}
	}
	oldAccepts := slices.DeleteFunc(slices.Clone(c.queue), func(m Message) bool { return m.Type != MsgAccept })
	c.queue = slices.DeleteFunc(c.queue, func(m Message) bool { return m.Type == MsgAccept })
	c.crash(1)
	c.start(c.node(1))
	// 3.
	c.node(1).rn.startPoll()
	c.process(1)
	c.queue = slices.DeleteFunc(c.queue, func(m Message) bool { return m.Type == MsgPrePrepare }) // the new poll's: lost
	if err := c.step(lateAnswer); err != nil {
		t.Fatal(err)
	}
	if c.node(1).rn.Status().Role == "candidate" {
		c.process(1) // persists 1.1 (again), sends Prepare
		c.deliver(isMsg(MsgPrepare, 1, None))
		c.process(2)
		c.process(3)
		c.deliver(func(m Message) bool { return m.Type == MsgPromise })
		c.process(1)
		c.deliver(func(m Message) bool { return m.To == 1 })
		if c.node(1).rn.IsLeader() {
			if err := c.propose(1, 8, 1, "w"); err != nil {
				t.Fatal(err)
			}
			c.process(1)
		}
	}
	// 4.
	for _, m := range oldAccepts {
		if err := c.step(m); err != nil {
			t.Fatal(err)
		}
	}
	c.process(2)
	c.process(3)
	// 5.
	c.stabilize()
	c.tickAll(3)
	out := map[NodeID][]string{}
	for _, nd := range c.nodes {
		out[nd.id] = c.appliedValues(nd.id)
	}
	return c, out
}

func agree(applied map[NodeID][]string) bool {
	var longest []string
	for _, a := range applied {
		if len(a) > len(longest) {
			longest = a
		}
	}
	for _, a := range applied {
		if !slices.Equal(a, longest[:len(a)]) {
			return false
		}
	}
	return true
}

// TestBallotNeverReusedAcrossCrash plays ballotReuseSchedule: with the
// review's bug (the knob) the replicas apply different values in slot 1,
// which shows the schedule reaches it; with the protocol as it is, no
// Prepare leaves before its ballot is durable, the late poll answer is
// not counted, and the replicas agree.
func TestBallotNeverReusedAcrossCrash(t *testing.T) {
	_, buggy := ballotReuseSchedule(t, TestingKnobs{ReuseBallot: true, AckConflictingValue: true})
	if agree(buggy) {
		t.Fatalf("the schedule no longer reaches the bug it was written for: applied %v", buggy)
	}
	c, fixed := ballotReuseSchedule(t, TestingKnobs{})
	if !agree(fixed) {
		t.Fatalf("replicas applied different values: %v", fixed)
	}
	if st := c.node(1).rn.Status(); st.Promised == (Ballot{1, 1}) && st.Role == "leader" {
		t.Fatalf("replica 1 leads with the ballot of its previous life: %+v", st)
	}
}

// TestConflictingAcceptRefused plays the same schedule with the reused
// ballot but the acceptors' check on: both refuse Accept(w), offered under
// the ballot they hold v with, never acknowledge it, and count it. (The
// replicas may still disagree: the acknowledgements of v sent to the
// previous life, under the same ballot, count for w at the reborn leader.
// That is why a ballot must never be reused; the check is a second line.)
func TestConflictingAcceptRefused(t *testing.T) {
	c, _ := ballotReuseSchedule(t, TestingKnobs{ReuseBallot: true})
	for _, id := range []NodeID{2, 3} {
		st := c.node(id).rn.Status()
		if st.ProtocolViolations == 0 {
			t.Errorf("replica %s did not count the conflicting Accept as a violation", id)
		}
		for _, v := range c.appliedValues(id) {
			if strings.Contains(v, ":w") {
				t.Errorf("replica %s applied w, offered under the ballot it holds v with", id)
			}
		}
	}
}

// The candidate's ballot is durable on it before any message under it
// leaves: Prepare goes out with the Ready that persists the promise, in
// MessagesAfterPersist, and the MustSync flag is set.
func TestPrepareWaitsForDurableBallot(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.startPoll()
	rn.Ready()
	rn.Step(Message{Type: MsgPrePromise, From: 2, To: 1, Context: rn.poll.id})
	rd := rn.Ready()
	if _, ok := findMsg(rd.Messages, MsgPrepare, 2); ok {
		t.Fatalf("Prepare sent before the ballot is durable: %s", DescribeReady(rd, ""))
	}
	if _, ok := findMsg(rd.MessagesAfterPersist, MsgPrepare, 2); !ok || rd.HardState == nil || !rd.MustSync {
		t.Fatalf("Prepare not sent after a synced write of the ballot: %s", DescribeReady(rd, ""))
	}
}

// A candidate becomes leader only once its own promise is durable, even if
// a majority of others promised first.
func TestLeaderNeedsOwnDurablePromise(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.campaign()
	b := rn.camp.ballot
	rd := rn.Ready()
	for _, from := range []NodeID{2, 3} {
		rn.Step(Message{Type: MsgPromise, From: from, To: 1, Ballot: b})
	}
	if rn.IsLeader() {
		t.Fatal("leader on the others' promises, before its own promise is durable")
	}
	own, ok := findMsg(rd.MessagesAfterPersist, MsgPromise, 1)
	if !ok {
		t.Fatalf("no promise to itself after persisting: %s", DescribeReady(rd, ""))
	}
	rn.Step(own)
	if !rn.IsLeader() {
		t.Fatal("not leader with a majority that includes its own durable promise")
	}
}

// Poll ids are unique across lives: an answer to a poll of an earlier
// life is not counted in this one.
func TestPollAnswerToEarlierLifeIgnored(t *testing.T) {
	old := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	old.startPoll()
	oldID := old.poll.id
	rn := newNode(t, 1, []NodeID{1, 2, 3}, func(c *Config) { c.Incarnation = 2 })
	rn.startPoll()
	if rn.poll.id == oldID {
		t.Fatalf("the poll of the second life has the id of the first: %d", oldID)
	}
	rn.Step(Message{Type: MsgPrePromise, From: 2, To: 1, Context: oldID})
	if rn.Status().Role != "pre-candidate" {
		t.Fatalf("a poll answer to the earlier life was counted: %+v", rn.Status())
	}
	rn.Step(Message{Type: MsgPrePromise, From: 2, To: 1, Context: rn.poll.id})
	if rn.Status().Role != "candidate" {
		t.Fatalf("the answer to this life's poll was not counted: %+v", rn.Status())
	}
}

// Incarnation is required, and bounded.
func TestIncarnationRequired(t *testing.T) {
	for _, inc := range []uint64{0, MaxIncarnation} {
		_, err := NewRawNode(Config{ID: 1, Peers: []NodeID{1}, Incarnation: inc, Rand: newNode(t, 1, []NodeID{1}, nil).rng})
		if err == nil {
			t.Errorf("Incarnation %d accepted", inc)
		}
	}
}

// An acceptor offered another value for a slot under the ballot it holds
// there refuses the whole message, never acknowledges it, and counts it.
func TestAcceptorRefusesAnotherValueUnderItsBallot(t *testing.T) {
	b := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	v := Entry{Slot: 1, Ballot: b, Value: cmd(1, 1, "v")}
	if err := rn.Step(Message{Type: MsgAccept, From: 2, To: 1, Ballot: b, Entries: []Entry{v}}); err != nil {
		t.Fatal(err)
	}
	rn.Advance(rn.Ready())
	// The same value again is a duplicate, acknowledged.
	if err := rn.Step(Message{Type: MsgAccept, From: 2, To: 1, Ballot: b, Entries: []Entry{v}}); err != nil {
		t.Fatalf("a duplicate refused: %v", err)
	}
	if _, ok := findMsg(rn.Ready().MessagesAfterPersist, MsgAccepted, 2); !ok {
		t.Fatal("a duplicate Accept was not acknowledged")
	}
	w := Entry{Slot: 1, Ballot: b, Value: cmd(1, 2, "w")}
	next := Entry{Slot: 2, Ballot: b, Value: cmd(1, 3, "x")}
	err := rn.Step(Message{Type: MsgAccept, From: 2, To: 1, Ballot: b, Entries: []Entry{w, next}})
	if !errors.Is(err, ErrProtocolViolation) {
		t.Fatalf("another value under the same ballot: err = %v, want ErrProtocolViolation", err)
	}
	rd := rn.Ready()
	if len(rd.MessagesAfterPersist) > 0 || len(rd.Entries) > 0 {
		t.Fatalf("the conflicting Accept changed something: %s", DescribeReady(rd, ""))
	}
	if got, _ := rn.log.entry(1); string(got.Value) != string(v.Value) || rn.log.last() != 1 {
		t.Fatalf("the log changed: slot 1 holds %s, last %d", DescribeValue(got.Value), rn.log.last())
	}
	if rn.Status().ProtocolViolations != 1 {
		t.Fatalf("ProtocolViolations = %d, want 1", rn.Status().ProtocolViolations)
	}
}

// A candidate refuses a promise that reports another value for a slot
// under a ballot another report (or its own log) has there.
func TestCandidateRefusesConflictingPromise(t *testing.T) {
	old := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3, 4, 5}, nil)
	rn.campaign()
	b := rn.camp.ballot
	rd := rn.Ready()
	own, _ := findMsg(rd.MessagesAfterPersist, MsgPromise, 1)
	rn.Step(own)
	v := Entry{Slot: 1, Ballot: old, Value: cmd(1, 1, "v")}
	w := Entry{Slot: 1, Ballot: old, Value: cmd(1, 1, "w")}
	if err := rn.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: b, Entries: []Entry{v}}); err != nil {
		t.Fatal(err)
	}
	err := rn.Step(Message{Type: MsgPromise, From: 3, To: 1, Ballot: b, Entries: []Entry{w}})
	if !errors.Is(err, ErrProtocolViolation) {
		t.Fatalf("a conflicting promise: err = %v, want ErrProtocolViolation", err)
	}
	if rn.IsLeader() {
		t.Fatal("the conflicting promise was counted")
	}
}

// A MsgReadIndexResp becomes a ReadState only from the leader this replica
// follows, under its ballot, for a request it has outstanding, once.
func TestReadIndexRespOnlyForOutstandingRequest(t *testing.T) {
	b := Ballot{Round: 3, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	resp := func(from NodeID, ballot Ballot, id uint64) {
		t.Helper()
		if err := rn.Step(Message{Type: MsgReadIndexResp, From: from, To: 1, Ballot: ballot, Context: id, Slot: 5}); err != nil {
			t.Fatal(err)
		}
	}
	// No leader, no request: the reviewer's unsolicited response.
	resp(2, b, 1)
	if rd := rn.Ready(); len(rd.ReadStates) > 0 {
		t.Fatalf("an unsolicited response became a ReadState: %+v", rd.ReadStates)
	}
	rn.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b})
	rn.Advance(rn.Ready())
	if err := rn.ReadIndex(77); err != nil {
		t.Fatal(err)
	}
	req, ok := findMsg(rn.Ready().Messages, MsgReadIndex, 2)
	if !ok {
		t.Fatal("no ReadIndex request to the leader")
	}
	resp(2, b, req.Context+1)                       // a request never made
	resp(3, b, req.Context)                         // not the leader
	resp(2, Ballot{Round: 2, Node: 2}, req.Context) // the leader's earlier ballot
	if rd := rn.Ready(); len(rd.ReadStates) > 0 {
		t.Fatalf("a response that does not match became a ReadState: %+v", rd.ReadStates)
	}
	resp(2, b, req.Context)
	resp(2, b, req.Context) // a duplicate
	rd := rn.Ready()
	if len(rd.ReadStates) != 1 || rd.ReadStates[0] != (ReadState{Context: 77, Index: 5}) {
		t.Fatalf("ReadStates = %+v, want one for context 77 at index 5", rd.ReadStates)
	}
}

// A follower holds a bounded number of reads; beyond it, the newest fail
// fast with ErrBusy and those held still complete.
func TestFollowerReadsBounded(t *testing.T) {
	b := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b})
	rn.Ready()
	for i := 0; i < maxFollowerReads; i++ {
		if err := rn.ReadIndex(uint64(i)); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if err := rn.ReadIndex(99999); !errors.Is(err, ErrBusy) {
		t.Fatalf("read beyond the bound: err = %v, want ErrBusy", err)
	}
	req, _ := findMsg(rn.Ready().Messages, MsgReadIndex, 2)
	rn.Step(Message{Type: MsgReadIndexResp, From: 2, To: 1, Ballot: b, Context: req.Context, Slot: 3})
	rd := rn.Ready()
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Context != 0 {
		t.Fatalf("the first request answered %d reads: %+v", len(rd.ReadStates), rd.ReadStates)
	}
	// The reads that waited behind it go in one request, answered at once.
	next, ok := findMsg(rd.Messages, MsgReadIndex, 2)
	if !ok || next.Context == req.Context {
		t.Fatalf("the waiting reads were not sent in a new request: %s", DescribeReady(rd, ""))
	}
	rn.Step(Message{Type: MsgReadIndexResp, From: 2, To: 1, Ballot: b, Context: next.Context, Slot: 4})
	if got := len(rn.Ready().ReadStates); got != maxFollowerReads-1 {
		t.Fatalf("the second request answered %d reads, want %d", got, maxFollowerReads-1)
	}
}

// A read arriving while a request is in flight waits for the next request:
// the leader's confirmation of the first may predate it. A request with no
// answer for an election timeout is sent again, with the reads behind it,
// under a new id; the late answer to the old one is then ignored.
func TestFollowerReadsBatchAndResend(t *testing.T) {
	b := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b})
	rn.Ready()
	rn.ReadIndex(1)
	first, _ := findMsg(rn.Ready().Messages, MsgReadIndex, 2)
	rn.ReadIndex(2)
	if _, ok := findMsg(rn.Ready().Messages, MsgReadIndex, 2); ok {
		t.Fatal("a second request while one is in flight")
	}
	var again Message
	for i := 0; i < rn.cfg.ElectionTicks; i++ {
		rn.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b}) // the leader lives on
		rn.Tick()
		if m, ok := findMsg(rn.Ready().Messages, MsgReadIndex, 2); ok {
			again = m
		}
	}
	if again.Context == 0 || again.Context == first.Context {
		t.Fatalf("the unanswered request was not resent under a new id (first %d, again %d)", first.Context, again.Context)
	}
	rn.Step(Message{Type: MsgReadIndexResp, From: 2, To: 1, Ballot: b, Context: first.Context, Slot: 1})
	if rd := rn.Ready(); len(rd.ReadStates) > 0 {
		t.Fatalf("the late answer to the abandoned request was taken: %+v", rd.ReadStates)
	}
	rn.Step(Message{Type: MsgReadIndexResp, From: 2, To: 1, Ballot: b, Context: again.Context, Slot: 2})
	if rd := rn.Ready(); len(rd.ReadStates) != 2 {
		t.Fatalf("the resent request answered %+v, want both reads", rd.ReadStates)
	}
}

// Request ids never carry into the next life's range: when this life's
// count is used up, ReadIndex refuses instead (found by review: after 2^32
// reads, a late answer to the previous life matched a new read).
func TestRequestIDsNeverCarryIntoNextLife(t *testing.T) {
	b := Ballot{Round: 1, Node: 2}
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b})
	rn.Ready()
	rn.lastID = 1<<idBits | (1<<idBits - 2) // one id left in life 1
	if err := rn.ReadIndex(1); err != nil {
		t.Fatalf("the last id: %v", err)
	}
	req, _ := findMsg(rn.Ready().Messages, MsgReadIndex, 2)
	if req.Context>>idBits != 1 {
		t.Fatalf("id %s is outside life 1", describeID(req.Context))
	}
	rn.Step(Message{Type: MsgReadIndexResp, From: 2, To: 1, Ballot: b, Context: req.Context, Slot: 1})
	rn.Ready()
	if err := rn.ReadIndex(2); !errors.Is(err, ErrIDsExhausted) {
		t.Fatalf("past the last id: err = %v, want ErrIDsExhausted", err)
	}
	if rn.lastID>>idBits != 1 {
		t.Fatalf("the count carried into life %d", rn.lastID>>idBits)
	}
}

// A promise's entries start at the prepared slot; one far ahead is refused
// (found by review: it panicked the candidate or made it allocate to reach
// the slot).
func TestPromiseFromFarSlotRefused(t *testing.T) {
	for _, slot := range []uint64{1 << 40, 1<<63 + 1, 5} {
		rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
		rn.campaign()
		b := rn.camp.ballot
		err := rn.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: b, Entries: []Entry{{Slot: slot, Ballot: b, Value: cmd(1, 1, "x")}}})
		if !errors.Is(err, ErrProtocolViolation) {
			t.Errorf("entry at slot %d: err = %v, want ErrProtocolViolation", slot, err)
		}
	}
}

// A rejection hinting a slot past the log does not wrap the leader's next
// slot (found by review: next became 0 and the leader asked for a snapshot
// it did not have, for ever).
func TestRejectHintPastLogClamped(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	rn := c.elect(1)
	c.propose(1, 1, 1, "x")
	c.stabilize()
	rn.Step(Message{Type: MsgAccepted, From: 2, To: 1, Ballot: rn.Status().Promised, Slot: math.MaxUint64, Reject: true})
	pr := rn.ldr.progress[rn.ldr.idx(2)]
	if pr.next <= pr.match || pr.next > rn.log.last()+1 {
		t.Fatalf("after the hint: match %d next %d (log ends at %d)", pr.match, pr.next, rn.log.last())
	}
	if rd := rn.Ready(); len(rd.SendSnapshots) > 0 {
		t.Fatalf("asked for a snapshot with nothing compacted: %v", rd.SendSnapshots)
	}
}

// A replica alone in its cluster waits for its own promise to be durable
// instead of polling again every tick (found by review: with a disk slower
// than a tick it raised its ballot for ever and never led).
func TestSingleReplicaWaitsForItsPromise(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1}, nil)
	rn.Tick()
	rd := rn.Ready()
	own, ok := findMsg(rd.MessagesAfterPersist, MsgPromise, 1)
	if !ok {
		t.Fatalf("no promise to itself: %s", DescribeReady(rd, ""))
	}
	for i := 0; i < 3; i++ {
		rn.Tick() // the write is slow
	}
	rn.Ready()
	rn.Step(own)
	if !rn.IsLeader() {
		t.Fatalf("a single replica did not lead once its promise was durable: %+v", rn.Status())
	}
}

// A ballot round that cannot be incremented is refused, in a message or
// an entry, and changes nothing: before, round 2^64-1 made the next ballot
// wrap to round 0.
func TestBallotRoundCannotWrap(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	top := Ballot{Round: math.MaxUint64, Node: 2}
	for _, m := range []Message{
		{Type: MsgPrepare, From: 2, To: 1, Ballot: top, Slot: 1},
		{Type: MsgNack, From: 2, To: 1, Ballot: top},
		{Type: MsgPrePromise, From: 2, To: 1, Ballot: top},
		{Type: MsgAccept, From: 2, To: 1, Ballot: Ballot{Round: 1, Node: 2}, Entries: []Entry{{Slot: 1, Ballot: top, Value: cmd(1, 1, "x")}}},
	} {
		if err := rn.Step(m); !errors.Is(err, ErrProtocolViolation) {
			t.Errorf("%s: err = %v, want ErrProtocolViolation", DescribeMessage(m), err)
		}
	}
	if rn.maxRound != 0 || !rn.Status().Promised.IsZero() {
		t.Fatalf("a refused ballot changed the state: maxRound %d, promised %s", rn.maxRound, rn.Status().Promised)
	}
	// The highest round that can be incremented is taken; after it, the
	// replica cannot campaign (there is no higher ballot), and does not.
	rn.Step(Message{Type: MsgNack, From: 2, To: 1, Ballot: Ballot{Round: MaxRound, Node: 2}})
	rn.startPoll()
	rn.campaign()
	if st := rn.Status(); st.Role != "follower" || st.Promised.Round > MaxRound {
		t.Fatalf("campaigned past the highest round: %+v", st)
	}
	if _, err := NewRawNode(Config{ID: 1, Peers: []NodeID{1}, Incarnation: 1, Rand: rn.rng, HardState: HardState{Promised: top}}); err == nil {
		t.Fatal("a hard state with round 2^64-1 was accepted")
	}
}

// A promise never goes backwards: the core stops rather than lower it.
func TestPromiseNeverGoesBackwards(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.promise(Ballot{Round: 5, Node: 2})
	defer func() {
		if recover() == nil {
			t.Fatal("the promise went from 5.2 to 4.3 without a panic")
		}
	}()
	rn.promise(Ballot{Round: 4, Node: 3})
}
