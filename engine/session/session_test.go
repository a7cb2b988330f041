package session

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/paxos-go/paxos/engine/paxos"
)

func TestOutcomes(t *testing.T) {
	tab := New(100)
	for _, step := range []struct {
		id, seq uint64
		want    Outcome
		resp    string
	}{
		{1, 1, Execute, ""},
		{1, 1, Duplicate, "r1.1"},
		{1, 2, Execute, ""},
		{1, 1, Stale, ""},
		{1, 2, Duplicate, "r1.2"},
		{2, 5, Expired, ""}, // unknown client, not its first command
		{2, 1, Execute, ""},
	} {
		got, resp := tab.Check(step.id, step.seq)
		if got != step.want || string(resp) != step.resp {
			t.Fatalf("Check(%d, %d) = %s %q, want %s %q", step.id, step.seq, got, resp, step.want, step.resp)
		}
		if got == Execute {
			tab.Record(step.id, step.seq, 1, []byte(fmt.Sprintf("r%d.%d", step.id, step.seq)))
		}
	}
}

func TestExpiryIsByLogPosition(t *testing.T) {
	tab := New(10)
	tab.Record(1, 1, 5, nil)
	tab.Record(2, 1, 8, nil)
	tab.Record(1, 2, 9, nil) // client 1 used again: now newer than 2
	tab.Expire(18)
	if tab.Len() != 2 {
		t.Fatalf("expired too early: %d sessions", tab.Len())
	}
	tab.Expire(19) // 8 + 10 < 19: client 2 goes
	if o, _ := tab.Check(2, 2); o != Expired || tab.Len() != 1 {
		t.Fatalf("client 2 not expired: %s, %d sessions", o, tab.Len())
	}
	if o, _ := tab.Check(1, 2); o != Duplicate {
		t.Fatalf("client 1 lost: %s", o)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tab := New(50)
	for id := uint64(1); id <= 20; id++ {
		tab.Record(id, id*3, id*2, []byte(fmt.Sprintf("resp-%d", id)))
	}
	tab.Record(3, 10, 100, nil)
	var buf bytes.Buffer
	if _, err := tab.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	got.WriteTo(&again)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("a table read back encodes differently")
	}
	if o, resp := got.Check(7, 21); o != Duplicate || string(resp) != "resp-7" {
		t.Fatalf("Check after restore: %s %q", o, resp)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 1, 1, 1, 1, 9}, append(buf.Bytes(), 0)} {
		if _, err := Read(bad); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("Read(%x): %v, want ErrBadSnapshot", bad, err)
		}
	}
}

func TestApplyExecutesOnce(t *testing.T) {
	tab := New(0)
	var value []byte
	for _, c := range []paxos.Command{{ClientID: 1, Seq: 1, Payload: []byte("a")}, {ClientID: 1, Seq: 1, Payload: []byte("a")}, {ClientID: 2, Seq: 1, Payload: []byte("b")}} {
		value = paxos.AppendCommand(value, c)
	}
	executed := 0
	var outcomes []Outcome
	err := tab.Apply(1, value, func(slot uint64, cmd []byte) []byte {
		executed++
		return append([]byte("did "), cmd...)
	}, func(r Result) { outcomes = append(outcomes, r.Outcome) })
	if err != nil {
		t.Fatal(err)
	}
	if executed != 2 || fmt.Sprint(outcomes) != "[execute duplicate execute]" {
		t.Fatalf("executed %d, outcomes %v", executed, outcomes)
	}
	if err := tab.Apply(2, []byte{9}, nil, nil); !errors.Is(err, paxos.ErrBadValue) {
		t.Fatalf("Apply of a malformed value: %v", err)
	}
}
