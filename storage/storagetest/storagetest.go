// Package storagetest checks that a storage.SnapshotStore keeps its
// contract. Run it against your own store:
//
//	func TestMyStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.SnapshotStore { return openMyStore(t) })
//	}
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/paxos-go/paxos/storage"
)

// Run runs the contract tests, each on a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) storage.SnapshotStore) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, storage.SnapshotStore)
	}{
		{"Empty", testEmpty},
		{"WriteAndRead", testWriteAndRead},
		{"LatestAndList", testLatestAndList},
		{"AbortLeavesNothing", testAbort},
		{"UncommittedIsInvisible", testUncommitted},
		{"Prune", testPrune},
		{"ReadWhilePruning", testReadWhilePruning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.test(t, s)
		})
	}
}

// Data returns n bytes of deterministic test data for slot.
func Data(slot uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(slot, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Write commits a snapshot of slot holding data, written in pieces.
func Write(t *testing.T, s storage.SnapshotStore, slot uint64, data []byte) storage.Meta {
	t.Helper()
	w, err := s.Create(slot, storage.Ballot{Round: slot, Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 1+int(slot*7919)%100000)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Read reads the snapshot of slot back, checking it.
func Read(t *testing.T, s storage.SnapshotStore, slot uint64) ([]byte, storage.Meta) {
	t.Helper()
	r, m, err := s.Open(slot)
	if err != nil {
		t.Fatalf("Open(%d): %v", slot, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the snapshot of slot %d: %v", slot, err)
	}
	return b, m
}

func testEmpty(t *testing.T, s storage.SnapshotStore) {
	if _, ok, err := s.Latest(); ok || err != nil {
		t.Fatalf("Latest of an empty store: ok=%v err=%v", ok, err)
	}
	if _, _, err := s.Open(1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open of a missing snapshot: %v, want ErrNotFound", err)
	}
}

func testWriteAndRead(t *testing.T, s storage.SnapshotStore) {
	for _, n := range []int{0, 1, 1000, 3<<20 + 17} {
		slot := uint64(n + 1)
		data := Data(slot, n)
		m := Write(t, s, slot, data)
		if m.Slot != slot || m.Size != int64(n) || m.Ballot != (storage.Ballot{Round: slot, Node: 1}) {
			t.Fatalf("Commit returned %+v", m)
		}
		got, gm := Read(t, s, slot)
		if !bytes.Equal(got, data) || gm != m {
			t.Fatalf("read back %d bytes (%+v), wrote %d (%+v)", len(got), gm, n, m)
		}
		if _, err := storage.Verify(s, slot); err != nil {
			t.Fatal(err)
		}
	}
}

func testLatestAndList(t *testing.T, s storage.SnapshotStore) {
	for _, slot := range []uint64{5, 100, 42} {
		Write(t, s, slot, Data(slot, 100))
	}
	m, ok, err := s.Latest()
	if err != nil || !ok || m.Slot != 100 {
		t.Fatalf("Latest = %+v %v %v, want slot 100", m, ok, err)
	}
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(slots(l)); got != "[5 42 100]" {
		t.Fatalf("List = %s", got)
	}
}

func slots(l []storage.Meta) []uint64 {
	var out []uint64
	for _, m := range l {
		out = append(out, m.Slot)
	}
	return out
}

func testAbort(t *testing.T, s storage.SnapshotStore) {
	w, err := s.Create(7, storage.Ballot{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Data(7, 5000))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Latest(); ok {
		t.Fatal("an aborted snapshot is visible")
	}
	// The slot can be written again afterwards.
	data := Data(7, 300)
	Write(t, s, 7, data)
	if got, _ := Read(t, s, 7); !bytes.Equal(got, data) {
		t.Fatal("a snapshot written after an aborted one reads back wrong")
	}
}

func testUncommitted(t *testing.T, s storage.SnapshotStore) {
	Write(t, s, 1, Data(1, 100))
	w, err := s.Create(2, storage.Ballot{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Data(2, 3<<20))
	if m, _, _ := s.Latest(); m.Slot != 1 {
		t.Fatalf("Latest is slot %d while slot 2 is still being written", m.Slot)
	}
	if _, _, err := s.Open(2); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open of an uncommitted snapshot: %v", err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := s.Latest(); m.Slot != 2 {
		t.Fatalf("Latest is slot %d after committing slot 2", m.Slot)
	}
}

func testPrune(t *testing.T, s storage.SnapshotStore) {
	for slot := uint64(1); slot <= 5; slot++ {
		Write(t, s, slot, Data(slot, 2000))
	}
	if err := s.Prune(2); err != nil {
		t.Fatal(err)
	}
	l, _ := s.List()
	if got := fmt.Sprint(slots(l)); got != "[4 5]" {
		t.Fatalf("after Prune(2): %s", got)
	}
	if _, _, err := s.Open(3); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a pruned snapshot opens: %v", err)
	}
}

func testReadWhilePruning(t *testing.T, s storage.SnapshotStore) {
	data := Data(1, 2<<20)
	Write(t, s, 1, data)
	Write(t, s, 2, Data(2, 10))
	r, _, err := s.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Prune(1); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a snapshot pruned while being read: %d bytes, %v", len(got), err)
	}
}
