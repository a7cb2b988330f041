package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
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
	tab.RecordWindow(4, 3, 1, 4, []byte("w"))
	tab.RecordWindow(4, 1, 1, 5, nil)
	buf.Reset()
	tab.WriteTo(&buf)
	f.Add(buf.Bytes()) // version 2
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

// TestWindowOutcomes walks a client with several commands outstanding
// through the rule (Oldest <= Seq < Oldest+Window, Oldest never going
// down): commands overtaken by later ones run when they come, retries of
// any outstanding command get its response, commands below Oldest are
// Stale, and a command beyond the window never runs.
func TestWindowOutcomes(t *testing.T) {
	tab := New(100)
	for i, step := range []struct {
		seq, oldest uint64
		want        Outcome
		resp        string
	}{
		{3, 1, Execute, ""}, // a new client, its first command lost for now
		{1, 1, Execute, ""},
		{3, 1, Duplicate, "r3"},
		{1, 1, Duplicate, "r1"},
		{2, 1, Execute, ""},
		{Window, 1, Execute, ""},     // the last the window allows
		{Window + 1, 1, Stale, ""},   // beyond it
		{Window + 1, 2, Execute, ""}, // the client has the answer of 1
		{1, 2, Stale, ""},
		{2, 1, Duplicate, "r2"}, // a late retry sent before 1 was answered
		{Window, 3, Duplicate, fmt.Sprintf("r%d", Window)},
		{4, 3, Execute, ""},
		{200, 200, Execute, ""}, // one at a time again: everything below is answered
		{Window + 1, 3, Stale, ""},
		{200, 0, Duplicate, "r200"},
		{201, 0, Execute, ""},
		{200, 0, Stale, ""},
		{5, 1, Expired, "client 2"}, // an unknown client, past its first window
		{5, 1, Execute, "client 3"}, // an unknown client, in its first window
	} {
		id := uint64(1)
		if step.resp == "client 2" || step.resp == "client 3" {
			id, step.resp = map[string]uint64{"client 2": 2, "client 3": 3}[step.resp], ""
			if id == 2 {
				step.oldest = 2
			}
		}
		got, resp := tab.CheckWindow(id, step.seq, step.oldest)
		if got != step.want || string(resp) != step.resp {
			t.Fatalf("step %d: CheckWindow(%d, %d, %d) = %s %q, want %s %q", i, id, step.seq, step.oldest, got, resp, step.want, step.resp)
		}
		if got == Execute {
			tab.RecordWindow(id, step.seq, step.oldest, uint64(i+1), []byte(fmt.Sprintf("r%d", step.seq)))
		}
	}
	// One response per client is kept once it sends one at a time again.
	if c := tab.clients[1]; len(c.entries) != 1 || !c.classic() {
		t.Fatalf("client 1 keeps %d entries (oldest %d, seq %d, done %b)", len(c.entries), c.oldest, c.seq, c.done)
	}
}

// TestWindowExactlyOnce: clients with up to Window commands outstanding
// send them, and retries of them, in random order within the rule, as a
// cluster losing slots and clients retrying would deliver them. Every
// command runs exactly once; every retry of a command the client still
// waits for gets the first execution's response; and a table restored from
// its snapshot at any point goes on exactly as the original.
func TestWindowExactlyOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	tab := New(0)
	type clientState struct {
		next, oldest uint64
		answered     map[uint64]string // seq -> the response it got
	}
	clients := map[uint64]*clientState{}
	for id := uint64(1); id <= 3; id++ {
		clients[id] = &clientState{next: 1, oldest: 1, answered: map[uint64]string{}}
	}
	runs := map[string]int{}
	for slot := uint64(1); slot <= 3000; slot++ {
		var cmds []paxos.Command
		for range 1 + rng.IntN(8) {
			id := uint64(1 + rng.IntN(3))
			cs := clients[id]
			// Move oldest up past answered commands, sometimes.
			for rng.IntN(3) == 0 && cs.oldest < cs.next {
				if _, ok := cs.answered[cs.oldest]; !ok {
					break
				}
				cs.oldest++
			}
			var seq uint64
			if cs.next < cs.oldest+Window && rng.IntN(2) == 0 {
				seq = cs.next // a new command
				cs.next++
			} else {
				seq = cs.oldest + uint64(rng.IntN(int(cs.next-cs.oldest)+1)) // a retry, or a new one
				if seq == cs.next {
					if seq >= cs.oldest+Window {
						continue
					}
					cs.next++
				}
			}
			c := paxos.Command{ClientID: id, Seq: seq, Oldest: cs.oldest, Payload: []byte(fmt.Sprintf("%d.%d", id, seq))}
			cmds = append(cmds, c)
		}
		if len(cmds) == 0 {
			continue
		}
		value := paxos.EncodeBatch(cmds)
		err := tab.Apply(slot, value, func(_ uint64, cmd []byte) []byte {
			runs[string(cmd)]++
			return append([]byte("resp-"), cmd...)
		}, func(r Result) {
			cs := clients[r.Command.ClientID]
			want := fmt.Sprintf("resp-%d.%d", r.Command.ClientID, r.Command.Seq)
			switch r.Outcome {
			case Execute, Duplicate:
				if string(r.Response) != want {
					t.Fatalf("slot %d: %d.%d answered %q, want %q", slot, r.Command.ClientID, r.Command.Seq, r.Response, want)
				}
				cs.answered[r.Command.Seq] = string(r.Response)
			case Stale:
				if r.Command.Seq >= r.Command.Oldest {
					if _, ok := cs.answered[r.Command.Seq]; !ok {
						t.Fatalf("slot %d: %d.%d refused as stale, never answered", slot, r.Command.ClientID, r.Command.Seq)
					}
				}
			default:
				t.Fatalf("slot %d: %d.%d: %s", slot, r.Command.ClientID, r.Command.Seq, r.Outcome)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if slot%97 == 0 {
			var b1, b2 bytes.Buffer
			tab.WriteTo(&b1)
			restored, err := Read(b1.Bytes())
			if err != nil {
				t.Fatalf("slot %d: %v", slot, err)
			}
			restored.WriteTo(&b2)
			if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
				t.Fatalf("slot %d: a restored table writes differently", slot)
			}
			tab = restored
		}
	}
	for cmd, n := range runs {
		if n != 1 {
			t.Fatalf("command %s ran %d times", cmd, n)
		}
	}
	if len(runs) < 1000 {
		t.Fatalf("only %d commands ran", len(runs))
	}
}

// A table whose sessions all send one command at a time writes version 1,
// which earlier versions read; one with a window writes version 2.
func TestSnapshotVersions(t *testing.T) {
	tab := New(9)
	tab.Record(1, 5, 1, []byte("x"))
	var b bytes.Buffer
	tab.WriteTo(&b)
	if b.Bytes()[0] == 0 {
		t.Fatal("a table without windows wrote version 2")
	}
	tab.RecordWindow(2, 3, 1, 2, []byte("y"))
	b.Reset()
	tab.WriteTo(&b)
	if b.Bytes()[0] != 0 {
		t.Fatal("a table with a window wrote version 1")
	}
	got, err := Read(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if o, resp := got.CheckWindow(2, 3, 1); o != Duplicate || string(resp) != "y" {
		t.Fatalf("after a version 2 round trip: %s %q", o, resp)
	}
	if o, _ := got.CheckWindow(2, 2, 1); o != Execute {
		t.Fatalf("an outstanding command after a version 2 round trip: %s", o)
	}
}
