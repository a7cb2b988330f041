package engine

import (
	"bytes"
	"testing"

	"github.com/paxos-go/paxos/engine/paxos"
)

func TestMessageRoundTrip(t *testing.T) {
	mc := newMessageCodec()
	m := paxos.Message{
		Type: paxos.MsgAccept, From: 1, To: 2, Ballot: paxos.Ballot{Round: 7, Node: 1}, Slot: 41, Commit: 40,
		Entries: []paxos.Entry{{Slot: 42, Ballot: paxos.Ballot{Round: 7, Node: 1}, Value: paxos.AppendCommand(nil, paxos.Command{ClientID: 3, Seq: 4, Payload: []byte("x")})}},
		Context: 9, Value: []byte("v"),
	}
	got, err := mc.decode(mc.encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if paxos.DescribeMessage(got) != paxos.DescribeMessage(m) || !bytes.Equal(got.Value, m.Value) {
		t.Fatalf("got %s, want %s", paxos.DescribeMessage(got), paxos.DescribeMessage(m))
	}
}

// FuzzDecodeMessage feeds arbitrary bytes to the message decoder and, if
// they decode, to a replica: nothing may panic.
//
//	go test -fuzz=FuzzDecodeMessage ./engine
func FuzzDecodeMessage(f *testing.F) {
	mc := newMessageCodec()
	for _, m := range []paxos.Message{
		{Type: paxos.MsgPrepare, From: 2, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 1},
		{Type: paxos.MsgAccept, From: 2, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Entries: []paxos.Entry{{Slot: 1, Ballot: paxos.Ballot{Round: 3, Node: 2}, Value: paxos.NoopValue()}}},
		{Type: paxos.MsgPromise, From: 3, To: 1, Ballot: paxos.Ballot{Round: 3, Node: 1}, Entries: []paxos.Entry{{Slot: 5, Value: []byte{1, 1, 1, 0}}}},
		{Type: paxos.MsgPropose, From: 3, To: 1, Value: paxos.AppendCommand(nil, paxos.Command{ClientID: 1, Seq: 1})},
	} {
		f.Add(mc.encode(m))
	}
	f.Add([]byte{0x9a, 0xcc, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := newMessageCodec().decode(data)
		if err != nil {
			return
		}
		rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Peers: []paxos.NodeID{1, 2, 3}, Rand: newRand()})
		if err != nil {
			t.Fatal(err)
		}
		m.To = 1
		rn.Step(m)
		rn.Ready()
	})
}
