package chatroom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/engine"
)

func TestRoomPagesAndSnapshot(t *testing.T) {
	r := New()
	for i := 0; i < 10; i++ {
		r.Apply(uint64(i+1), PutCommand(fmt.Sprint("m", i)))
	}
	p, err := DecodePage(r.Query(GetCommand(7, 0)))
	if err != nil || p.Total != 10 || p.First != 7 || !slices.Equal(p.Messages, []string{"m7", "m8", "m9"}) {
		t.Fatalf("page from 7: %+v %v", p, err)
	}
	p, _ = DecodePage(r.Query(GetCommand(0, 5)))
	if len(p.Messages) != 2 { // "m0" and "m1" fit in 5 bytes, "m2" does not
		t.Fatalf("page of at most 5 bytes: %+v", p)
	}
	p, _ = DecodePage(r.Query(GetCommand(99, 0)))
	if p.Total != 10 || len(p.Messages) != 0 {
		t.Fatalf("page past the end: %+v", p)
	}
	var buf bytes.Buffer
	if err := r.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r2 := New()
	if err := r2.Restore(&buf); err != nil || !slices.Equal(r2.Messages(), r.Messages()) {
		t.Fatalf("restored %v, %v", r2.Messages(), err)
	}
	for _, bad := range [][]byte{nil, {'G'}, {'X', 1, 1}, {'G', 1, 1, 1}} {
		if got := r.Query(bad); got != nil {
			t.Errorf("Query(%x) = %x, want nothing", bad, got)
		}
	}
}

// TestClientExactlyOnce runs a one-replica room and a client through it.
func TestClientExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	room := New()
	addr := "127.0.0.1:0"
	n, err := engine.Start(engine.Config{ID: 0, Peers: map[uint64]string{0: addr}, DataDir: filepath.Join(dir, "0"),
		ClientAddr: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond, Insecure: true}, room)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := NewClient([]string{n.ClientAddr().String()}, Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if l, err := c.Put(ctx, fmt.Sprint("hello ", i)); err != nil || l != uint64(i) {
			t.Fatalf("Put %d: length %d, %v", i, l, err)
		}
	}
	got, err := c.Get(ctx)
	if err != nil || !slices.Equal(got, []string{"hello 1", "hello 2", "hello 3"}) {
		t.Fatalf("Get: %v, %v", got, err)
	}
	// A put retried under its own number (SetSeq) is stored once, and
	// answered as the first time.
	seq := c.Seq()
	if l, err := c.Put(ctx, "again"); err != nil || l != 4 {
		t.Fatalf("Put: length %d, %v", l, err)
	}
	c.SetSeq(seq)
	if l, err := c.Put(ctx, "again"); err != nil || l != 4 {
		t.Fatalf("the retried Put: length %d, %v; want the first answer, 4", l, err)
	}
	if got, err := c.Get(ctx); err != nil || len(got) != 4 {
		t.Fatalf("Get after a retry: %v, %v", got, err)
	}
}

// A put longer than MaxMessageBytes is refused by Apply itself, whoever
// sent it, and appends nothing (found by review: 1 MiB messages sent
// through the raw protocol were committed, and the next snapshot could
// not be restored, on any replica).
func TestApplyRefusesLongMessages(t *testing.T) {
	r := New()
	r.Apply(1, PutCommand("before"))
	for _, l := range []int{MaxMessageBytes + 1, 1 << 20} {
		resp := r.Apply(2, PutCommand(string(make([]byte, l))))
		if _, err := DecodePut(resp); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("a put of %d bytes: %v", l, err)
		}
	}
	if l, err := DecodePut(r.Apply(3, PutCommand(string(make([]byte, MaxMessageBytes))))); err != nil || l != 2 {
		t.Fatalf("a put at the limit: %d, %v", l, err)
	}
	if len(r.Messages()) != 2 {
		t.Fatalf("%d messages", len(r.Messages()))
	}
}

// genCommand draws a command: puts of every interesting length (around
// the limit too), gets, and garbage.
func genCommand(rng *rand.Rand) []byte {
	switch rng.IntN(6) {
	case 0, 1:
		return PutCommand(strings.Repeat("x", rng.IntN(20)))
	case 2:
		lens := []int{0, MaxMessageBytes - 1, MaxMessageBytes, MaxMessageBytes + 1, 100 << 10}
		return PutCommand(strings.Repeat("y", lens[rng.IntN(len(lens))]))
	case 3:
		return GetCommand(rng.Uint64N(30), rng.Uint64N(100))
	case 4:
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	return []byte{opPut}
}

// TestSnapshotRestoreProperty: for any sequence of commands, a room
// restored from a snapshot taken at any point is the room it was taken
// of (Restore accepts every snapshot Apply can lead to), and the two
// answer every later command alike. Seeded: reproducible.
func TestSnapshotRestoreProperty(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		a := New()
		var b *Room
		for i := 0; i < 60; i++ {
			cmd := genCommand(rng)
			ra := a.Apply(uint64(i+1), cmd)
			if b != nil {
				if rb := b.Apply(uint64(i+1), cmd); !bytes.Equal(ra, rb) {
					t.Fatalf("seed %d, command %d: the restored room answered %x, the original %x", seed, i, rb, ra)
				}
			}
			for _, m := range a.Messages() {
				if len(m) > MaxMessageBytes {
					t.Fatalf("seed %d: a message of %d bytes was appended", seed, len(m))
				}
			}
			if rng.IntN(10) == 0 {
				var buf bytes.Buffer
				if err := a.Snapshot(&buf); err != nil {
					t.Fatal(err)
				}
				b = New()
				if err := b.Restore(&buf); err != nil {
					t.Fatalf("seed %d, command %d: Restore refused a snapshot of Apply's making: %v", seed, i, err)
				}
			}
			if b != nil && !slices.Equal(a.Messages(), b.Messages()) {
				t.Fatalf("seed %d, command %d: restored state differs", seed, i)
			}
		}
	}
}

// TestRestoreLegacyLongMessages: a snapshot written by an earlier version,
// holding messages above MaxMessageBytes, still restores (its replicas
// could not restart otherwise).
func TestRestoreLegacyLongMessages(t *testing.T) {
	legacy := &Room{messages: []string{"a", strings.Repeat("z", 1<<20), "b"}}
	var buf bytes.Buffer
	legacy.Snapshot(&buf)
	r := New()
	if err := r.Restore(&buf); err != nil || len(r.Messages()) != 3 {
		t.Fatalf("restoring a legacy snapshot: %v", err)
	}
}

// TestRawClientLongMessages sends, through the raw client protocol (not
// the chat client, which checks the length), puts of every length around
// the limits to a replica, then snapshots it and restarts it: long puts
// are refused by the room (or, above MaxCommandBytes, by the node with
// ErrTooLarge), nothing they carried is stored, and the replica restarts.
func TestRawClientLongMessages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "0")
	cfg := engine.Config{ID: 0, Peers: map[uint64]string{0: "127.0.0.1:0"}, DataDir: dir,
		ClientAddr: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond, Insecure: true}
	n, err := engine.Start(cfg, New())
	if err != nil {
		t.Fatal(err)
	}
	c := engine.NewClient([]string{n.ClientAddr().String()}, engine.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		resp, err := c.Submit(ctx, PutCommand(strings.Repeat("p", 100<<10)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodePut(resp); !errors.Is(err, ErrRefused) {
			t.Fatalf("a raw put of 100 KiB: %v", err)
		}
	}
	if _, err := c.Submit(ctx, PutCommand(strings.Repeat("p", 1<<20))); !errors.Is(err, engine.ErrTooLarge) {
		t.Fatalf("a raw put of 1 MiB: %v", err)
	}
	if resp, err := c.Submit(ctx, PutCommand("ok")); err != nil {
		t.Fatal(err)
	} else if l, err := DecodePut(resp); err != nil || l != 1 {
		t.Fatalf("a put after the refusals: %d, %v", l, err)
	}
	c.Close()
	if _, err := n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	n.Close()
	room := New()
	if n, err = engine.Start(cfg, room); err != nil {
		t.Fatalf("restarting after the refused puts: %v", err)
	}
	defer n.Close()
	if got := room.Messages(); !slices.Equal(got, []string{"ok"}) {
		t.Fatalf("restored %d messages", len(got))
	}
}
