package paxos

import (
	"errors"
	"runtime/metrics"
	"testing"
)

// allocated returns the bytes allocated on the heap so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Messages naming slots far beyond the log cost nothing in proportion to
// how far: a Promise is refused as a violation, an Accept past the log's
// end is refused with a hint, entries that do not follow the Accept's slot
// are dropped. (Found by review: a Promise with an entry 2^24 slots ahead
// allocated 4.7 GB.)
func TestFarSlotsAllocateNothing(t *testing.T) {
	const far = 1 << 24
	v := cmd(1, 1, "x")

	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	rn.campaign()
	b := rn.camp.ballot
	before := allocated()
	err := rn.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: b, Entries: []Entry{{Slot: rn.camp.fromSlot + far, Ballot: b, Value: v}}})
	if !errors.Is(err, ErrProtocolViolation) {
		t.Fatalf("Promise from slot %d: %v", far, err)
	}
	// A promise from the prepared slot, then a hole up to the far slot.
	err = rn.Step(Message{Type: MsgPromise, From: 3, To: 1, Ballot: b, Entries: []Entry{{Slot: 1, Ballot: b, Value: v}, {Slot: far, Ballot: b, Value: v}}})
	if err == nil {
		t.Fatal("a Promise with a hole was taken")
	}
	if got := allocated() - before; got > 64<<10 {
		t.Fatalf("far Promises allocated %d bytes", got)
	}

	f := newNode(t, 2, []NodeID{1, 2, 3}, nil)
	lb := Ballot{Round: 5, Node: 1}
	before = allocated()
	if err := f.Step(Message{Type: MsgAccept, From: 1, To: 2, Ballot: lb, Slot: far, Entries: []Entry{{Slot: far + 1, Ballot: lb, Value: v}}}); err != nil {
		t.Fatalf("an Accept past the log's end: %v", err)
	}
	rd := f.Ready()
	if m, ok := findMsg(rd.MessagesAfterPersist, MsgAccepted, 1); !ok || !m.Reject || m.Slot != 0 {
		t.Fatalf("an Accept past the log's end was not refused with a hint: %s", DescribeReady(rd, ""))
	}
	if err := f.Step(Message{Type: MsgAccept, From: 1, To: 2, Ballot: lb, Slot: 0, Entries: []Entry{{Slot: far, Ballot: lb, Value: v}}}); err == nil {
		t.Fatal("an Accept whose entries do not follow its slot was taken")
	}
	if got := allocated() - before; got > 64<<10 {
		t.Fatalf("far Accepts allocated %d bytes", got)
	}
	if f.Status().LastSlot != 0 {
		t.Fatalf("the follower's log reaches slot %d", f.Status().LastSlot)
	}
}

// Entries ride only on Accepts and Promises; anywhere else they are a
// violation.
func TestEntriesOnOtherMessagesRefused(t *testing.T) {
	rn := newNode(t, 1, []NodeID{1, 2, 3}, nil)
	for _, typ := range []MessageType{MsgHeartbeat, MsgPrepare, MsgAccepted, MsgPropose, MsgReadIndexResp} {
		err := rn.Step(Message{Type: typ, From: 2, To: 1, Ballot: Ballot{Round: 1, Node: 2}, Entries: []Entry{{Slot: 1, Value: NoopValue()}}})
		if !errors.Is(err, ErrProtocolViolation) {
			t.Errorf("%s with entries: %v", typ, err)
		}
	}
	if rn.Status().ProtocolViolations != 5 {
		t.Fatalf("%d violations counted", rn.Status().ProtocolViolations)
	}
}
