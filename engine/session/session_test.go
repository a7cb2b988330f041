package session

import (
	"bytes"
	"encoding/binary"
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

// A response longer than MaxCachedResponseBytes is not kept: a retry is
// told so, and the table (and its snapshot) holds a few bytes for it.
func TestLongResponseNotKept(t *testing.T) {
	tab := New(0)
	tab.Record(1, 1, 1, make([]byte, 4<<20))
	tab.Record(2, 1, 1, make([]byte, MaxCachedResponseBytes))
	if o, resp := tab.Check(1, 1); o != NotKept || resp != nil {
		t.Fatalf("retry of a 4 MiB response: %s (%d bytes)", o, len(resp))
	}
	if o, resp := tab.Check(2, 1); o != Duplicate || len(resp) != MaxCachedResponseBytes {
		t.Fatalf("retry of a response at the limit: %s (%d bytes)", o, len(resp))
	}
	if o, _ := tab.Check(1, 2); o != Execute {
		t.Fatalf("the next command of a client whose response was not kept: %s", o)
	}
	var buf bytes.Buffer
	tab.WriteTo(&buf)
	if buf.Len() > MaxCachedResponseBytes+64 {
		t.Fatalf("snapshot of %d bytes", buf.Len())
	}
	got, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := got.Check(1, 1); o != NotKept || got.CachedBytes() != MaxCachedResponseBytes {
		t.Fatalf("after a round trip: %s, %d bytes kept", o, got.CachedBytes())
	}
}

// The responses kept are bounded in all: past MaxCachedBytes, those of the
// sessions used longest ago are dropped, the same way on every replica and
// after a snapshot round trip.
func TestCachedBytesBounded(t *testing.T) {
	tab := New(0)
	per := MaxCachedResponseBytes
	n := MaxCachedBytes/per + 100
	for id := 1; id <= n; id++ {
		tab.Record(uint64(id), 1, uint64(id), bytes.Repeat([]byte{byte(id)}, per))
		if tab.CachedBytes() > MaxCachedBytes {
			t.Fatalf("after %d responses: %d bytes kept", id, tab.CachedBytes())
		}
	}
	if o, _ := tab.Check(1, 1); o != NotKept {
		t.Fatalf("the oldest response: %s, want not kept", o)
	}
	if o, resp := tab.Check(uint64(n), 1); o != Duplicate || resp[0] != byte(n) {
		t.Fatalf("the newest response: %s", o)
	}
	// Using a session makes its response the newest: it is dropped last.
	tab.Record(101, 2, uint64(n+1), []byte("again"))
	tab.Record(uint64(n+1), 1, uint64(n+2), bytes.Repeat([]byte{1}, per))
	if o, resp := tab.Check(101, 2); o != Duplicate || string(resp) != "again" {
		t.Fatalf("a session used again: %s %q", o, resp)
	}
	var buf, again bytes.Buffer
	tab.WriteTo(&buf)
	got, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got.WriteTo(&again)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) || got.CachedBytes() != tab.CachedBytes() {
		t.Fatalf("round trip: %d bytes kept, want %d", got.CachedBytes(), tab.CachedBytes())
	}
}

// A snapshot of an earlier version, which kept every response, loads with
// the bounds applied.
func TestReadAppliesBounds(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 100) // ttl
	b = binary.AppendUvarint(b, 2)   // sessions
	for id, n := range []int{4 << 20, 10} {
		b = binary.AppendUvarint(b, uint64(id+1))
		b = binary.AppendUvarint(b, 1)
		b = binary.AppendUvarint(b, 1)
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, make([]byte, n)...)
	}
	tab, err := Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := tab.Check(1, 1); o != NotKept || tab.CachedBytes() != 10 {
		t.Fatalf("a 4 MiB response from an old snapshot: %s, %d bytes kept", o, tab.CachedBytes())
	}
}

// Read-only commands keep no response; a retry of one runs again; a
// command that is not read-only, retried under the number of a read, is
// refused.
func TestReadOnlyCommands(t *testing.T) {
	tab := New(0)
	readOnly := func(cmd []byte) bool { return cmd[0] == 'G' }
	executed := 0
	exec := func(slot uint64, cmd []byte) []byte { executed++; return make([]byte, 4<<20) }
	apply := func(slot, client, seq uint64, cmd string) Result {
		t.Helper()
		var got Result
		v := paxos.AppendCommand(nil, paxos.Command{ClientID: client, Seq: seq, Payload: []byte(cmd)})
		if err := tab.ApplyWith(slot, v, exec, readOnly, func(r Result) { got = r }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if r := apply(1, 1, 1, "G"); r.Outcome != Execute || len(r.Response) != 4<<20 {
		t.Fatalf("a get: %s", r.Outcome)
	}
	if r := apply(2, 1, 1, "G"); r.Outcome != Execute || executed != 2 {
		t.Fatalf("a retried get: %s, executed %d times", r.Outcome, executed)
	}
	if r := apply(3, 1, 1, "P"); r.Outcome != NotKept || executed != 2 {
		t.Fatalf("a put under the number of a get: %s, executed %d times", r.Outcome, executed)
	}
	if r := apply(4, 1, 2, "P"); r.Outcome != Execute {
		t.Fatalf("the next command after a get: %s", r.Outcome)
	}
	if tab.CachedBytes() != 0 {
		t.Fatalf("%d bytes kept", tab.CachedBytes())
	}
	// Round trip: the read-only mark survives.
	tab = New(0)
	apply(1, 7, 1, "G")
	var buf bytes.Buffer
	tab.WriteTo(&buf)
	if tab, _ = Read(buf.Bytes()); tab == nil {
		t.Fatal("Read failed")
	}
	if r := apply(2, 7, 1, "G"); r.Outcome != Execute {
		t.Fatalf("a retried get after a round trip: %s", r.Outcome)
	}
}

// 300 commands from fresh clients, each answered with 4 MiB (a `get` sent
// as a command, under a state machine that does not say it is read-only):
// the table keeps none of it. (Found by review: ~2 GB on every replica,
// and in every snapshot.)
func TestFreshClientsWithLongResponses(t *testing.T) {
	tab := New(0)
	big := make([]byte, 4<<20)
	for id := uint64(1); id <= 300; id++ {
		v := paxos.AppendCommand(nil, paxos.Command{ClientID: id, Seq: 1, Payload: []byte("G")})
		tab.Apply(id, v, func(uint64, []byte) []byte { return big }, func(Result) {})
	}
	var buf bytes.Buffer
	tab.WriteTo(&buf)
	// Each session takes its id, seq, slot and a 10-byte mark.
	if tab.CachedBytes() != 0 || buf.Len() > 300*20 {
		t.Fatalf("300 sessions: %d bytes kept, a snapshot of %d bytes", tab.CachedBytes(), buf.Len())
	}
}

// FuzzRead feeds arbitrary bytes to the table's snapshot decoder: nothing
// may panic, and a table that loads writes back bytes that load the same.
//
//	go test -fuzz=FuzzRead ./engine/session
func FuzzRead(f *testing.F) {
	tab := New(9)
	tab.Record(1, 1, 1, []byte("one"))
	tab.Record(2, 3, 2, make([]byte, MaxCachedResponseBytes+1))
	tab.RecordReadOnly(3, 1, 3)
	var buf bytes.Buffer
	tab.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Read(data)
		if err != nil {
			return
		}
		if got.CachedBytes() > MaxCachedBytes {
			t.Fatalf("%d bytes kept", got.CachedBytes())
		}
		var b1, b2 bytes.Buffer
		got.WriteTo(&b1)
		again, err := Read(b1.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		again.WriteTo(&b2)
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatal("a table read back writes differently")
		}
	})
}

// TestSequenceRule walks a sequential table through the rule: a client ID
// and a number of 0, a gap and a first number above 1 are refused without
// being executed, and a refusal leaves the session as it was.
func TestSequenceRule(t *testing.T) {
	tab := NewSequential(100)
	for i, step := range []struct {
		id, seq uint64
		want    Outcome
	}{
		{0, 1, BadSequence}, // client ID 0
		{1, 0, BadSequence}, // number 0
		{1, 2, Expired},     // unknown client, not its first command
		{1, 1, Execute},
		{1, 3, BadSequence}, // a gap
		{1, 1, Duplicate},   // the gap changed nothing
		{1, 2, Execute},
		{1, 1, Stale},
		{1, 0, BadSequence},
		{1, 9, BadSequence},
		{1, 3, Execute},
	} {
		got, _ := tab.Check(step.id, step.seq)
		if got != step.want {
			t.Fatalf("step %d: Check(%d, %d) = %s, want %s", i, step.id, step.seq, got, step.want)
		}
		if got == Execute {
			tab.Record(step.id, step.seq, uint64(i+1), []byte("r"))
		}
	}
}

// TestLegacyRuleUnchanged: a table of New executes what earlier versions
// executed (a gap, client ID 0, a first command numbered 0), so that their
// logs replay to the same state.
func TestLegacyRuleUnchanged(t *testing.T) {
	tab := New(100)
	var value []byte
	for _, c := range []paxos.Command{
		{ClientID: 1, Seq: 1, Payload: []byte("a")},
		{ClientID: 1, Seq: 5, Payload: []byte("b")}, // a gap
		{ClientID: 0, Seq: 1, Payload: []byte("c")}, // client ID 0
		{ClientID: 2, Seq: 0, Payload: []byte("d")}, // number 0
		{ClientID: 1, Seq: 3, Payload: []byte("e")}, // behind the gap: stale
	} {
		value = paxos.AppendCommand(value, c)
	}
	var ran []string
	var outcomes []Outcome
	err := tab.Apply(1, value, func(_ uint64, cmd []byte) []byte {
		ran = append(ran, string(cmd))
		return cmd
	}, func(r Result) { outcomes = append(outcomes, r.Outcome) })
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran, outcomes); got != "[a b c d] [execute execute execute execute stale]" {
		t.Fatalf("legacy table: ran and outcomes %s", got)
	}

	seq := NewSequential(100)
	ran, outcomes = nil, nil
	if err := seq.Apply(1, value, func(_ uint64, cmd []byte) []byte {
		ran = append(ran, string(cmd))
		return cmd
	}, func(r Result) { outcomes = append(outcomes, r.Outcome) }); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran, outcomes); got != "[a] [execute bad sequence bad sequence bad sequence bad sequence]" {
		t.Fatalf("sequential table: ran and outcomes %s", got)
	}
}

// TestSnapshotKeepsRule: the rule travels in the snapshot encoding, and a
// legacy table is written exactly as earlier versions wrote it (no
// prefix), so that they still read it.
func TestSnapshotKeepsRule(t *testing.T) {
	for _, tab := range []*Table{New(7), NewSequential(7)} {
		tab.Record(3, 1, 1, []byte("x"))
		var b bytes.Buffer
		tab.WriteTo(&b)
		if want := tab.Sequential(); (b.Bytes()[0] == 0) != want {
			t.Fatalf("sequential %v: encoding starts % x", want, b.Bytes()[:2])
		}
		if !tab.Sequential() {
			// The encoding of earlier versions, byte for byte.
			want := []byte{7, 1, 3, 1, 1, 1, 'x'}
			if !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("legacy encoding % x, want % x", b.Bytes(), want)
			}
		}
		got, err := Read(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got.Sequential() != tab.Sequential() {
			t.Fatalf("read back sequential=%v, wrote %v", got.Sequential(), tab.Sequential())
		}
		if o, _ := got.Check(3, 5); (o == BadSequence) != tab.Sequential() {
			t.Fatalf("sequential %v: a gap after reading back is %s", tab.Sequential(), o)
		}
	}
	if _, err := Read([]byte{0, 9, 7, 0}); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("unknown rule: %v", err)
	}
}
