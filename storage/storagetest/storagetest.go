// Package storagetest checks that a storage.SnapshotStore keeps its
// contract. Run it against your own store, with the hooks the contract
// needs to reach behind it (reopen it, cut the power, damage a byte):
//
//	func TestMyStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storagetest.Subject {
//			dir := t.TempDir()
//			open := func() (storage.SnapshotStore, error) { return openMyStore(dir) }
//			s, err := open()
//			if err != nil {
//				t.Fatal(err)
//			}
//			return storagetest.Subject{
//				Store:  s,
//				Reopen: open,
//				Crash:  func(storage.SnapshotStore) (storage.SnapshotStore, error) { return open() },
//				Corrupt: func(_ storage.SnapshotStore, slot uint64) error {
//					return flipAByteOf(dir, slot)
//				},
//			}
//		})
//	}
//
// The contract: what Commit returned survives closing and reopening, and
// a crash at any moment after; a snapshot is invisible until its Commit
// returns, and stays invisible if it is aborted or the power fails first;
// a snapshot being written, aborted or lost in a crash never harms the
// committed one at the same slot; and a damaged byte in a stored snapshot
// is reported when it is read, with an error naming the snapshot.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/storage"
)

// Subject is a store under test, with the hooks the contract tests use
// to reach behind it. Every field is required.
type Subject struct {
	// Store is a new, empty store.
	Store storage.SnapshotStore
	// Reopen opens the store again on the same storage, as a restart of
	// the process would. The tests have closed the store before.
	Reopen func() (storage.SnapshotStore, error)
	// Crash opens the store again on what its storage would hold if the
	// power failed now, while s is open: what s made durable, and
	// nothing it did not. The tests close s afterwards and do not use it
	// again. (A store on a real disk can reopen it without closing s;
	// that tests less, since nothing unsynced is lost.)
	Crash func(s storage.SnapshotStore) (storage.SnapshotStore, error)
	// Corrupt flips one byte of the stored bytes (not the metadata) of
	// the committed snapshot of slot in s, behind the store's back.
	Corrupt func(s storage.SnapshotStore, slot uint64) error
}

// Run runs the contract tests, each on a fresh Subject from open.
func Run(t *testing.T, open func(t *testing.T) Subject) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, *handle)
	}{
		{"Empty", testEmpty},
		{"WriteAndRead", testWriteAndRead},
		{"LatestAndList", testLatestAndList},
		{"AbortLeavesNothing", testAbort},
		{"UncommittedIsInvisible", testUncommitted},
		{"Prune", testPrune},
		{"ReadWhilePruning", testReadWhilePruning},
		{"SurvivesReopen", testReopen},
		{"CommitIsDurable", testCommitIsDurable},
		{"CrashBeforeCommit", testCrashBeforeCommit},
		{"CreateAtCommittedSlot", testCreateAtCommittedSlot},
		{"DamageIsReported", testDamage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subj := open(t)
			if subj.Store == nil || subj.Reopen == nil || subj.Crash == nil || subj.Corrupt == nil {
				t.Fatal("storagetest: the Subject lacks its store or a hook")
			}
			h := &handle{t: t, subj: subj, SnapshotStore: subj.Store}
			defer func() { h.Close() }()
			tc.test(t, h)
		})
	}
}

// handle is the store a contract test works on, which reopen and crash
// replace.
type handle struct {
	storage.SnapshotStore
	t    *testing.T
	subj Subject
}

// reopen closes the store and opens it again.
func (h *handle) reopen() {
	h.t.Helper()
	if err := h.Close(); err != nil {
		h.t.Fatalf("closing the store: %v", err)
	}
	s, err := h.subj.Reopen()
	if err != nil {
		h.t.Fatalf("reopening the store: %v", err)
	}
	h.SnapshotStore = s
}

// crash cuts the power under the store and opens what is left.
func (h *handle) crash() {
	h.t.Helper()
	old := h.SnapshotStore
	s, err := h.subj.Crash(old)
	if err != nil {
		h.t.Fatalf("reopening the store after a crash: %v", err)
	}
	old.Close() // what it says no longer matters: the power is off
	h.SnapshotStore = s
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

func testEmpty(t *testing.T, s *handle) {
	if _, ok, err := s.Latest(); ok || err != nil {
		t.Fatalf("Latest of an empty store: ok=%v err=%v", ok, err)
	}
	if _, _, err := s.Open(1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open of a missing snapshot: %v, want ErrNotFound", err)
	}
}

func testWriteAndRead(t *testing.T, s *handle) {
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

func testLatestAndList(t *testing.T, s *handle) {
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

func testAbort(t *testing.T, s *handle) {
	w, err := s.Create(7, storage.Ballot{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Data(7, 5000))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	invisible := func(when string) {
		t.Helper()
		if m, ok, err := s.Latest(); ok || err != nil {
			t.Fatalf("%s: Latest = %+v %v %v, want none", when, m, ok, err)
		}
		if l, err := s.List(); len(l) != 0 || err != nil {
			t.Fatalf("%s: List = %v %v, want none", when, slots(l), err)
		}
		if _, _, err := s.Open(7); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: Open = %v, want ErrNotFound", when, err)
		}
	}
	invisible("after Abort")
	// An aborted writer is finished: it takes no more bytes, and its
	// Commit neither succeeds nor makes it visible.
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if _, err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	invisible("after Abort, then Commit")
	s.reopen()
	invisible("after Abort and a reopen")
	// The slot can be written again afterwards.
	data := Data(7, 300)
	Write(t, s, 7, data)
	if got, _ := Read(t, s, 7); !bytes.Equal(got, data) {
		t.Fatal("a snapshot written after an aborted one reads back wrong")
	}
}

func testUncommitted(t *testing.T, s *handle) {
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

func testPrune(t *testing.T, s *handle) {
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

func testReadWhilePruning(t *testing.T, s *handle) {
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

// same reads every snapshot in want and checks that it holds the bytes,
// and List the metadata, of want and nothing else.
func same(t *testing.T, s storage.SnapshotStore, when string, want map[uint64][]byte, metas map[uint64]storage.Meta) {
	t.Helper()
	l, err := s.List()
	if err != nil {
		t.Fatalf("%s: List: %v", when, err)
	}
	if len(l) != len(want) {
		t.Fatalf("%s: List = %v, want %d snapshots", when, slots(l), len(want))
	}
	for _, m := range l {
		data, ok := want[m.Slot]
		if !ok {
			t.Fatalf("%s: List = %v: slot %d should not be there", when, slots(l), m.Slot)
		}
		if m != metas[m.Slot] {
			t.Fatalf("%s: List has %+v, Commit returned %+v", when, m, metas[m.Slot])
		}
		r, om, err := s.Open(m.Slot)
		if err != nil {
			t.Fatalf("%s: Open(%d): %v", when, m.Slot, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) || om != m {
			t.Fatalf("%s: the snapshot of slot %d reads back %d bytes (%+v), error %v; wrote %d (%+v)", when, m.Slot, len(got), om, err, len(data), m)
		}
	}
}

func testReopen(t *testing.T, s *handle) {
	want := map[uint64][]byte{3: {}, 8: Data(8, 3<<20+5), 13: Data(13, 777)}
	metas := map[uint64]storage.Meta{}
	for slot, data := range want {
		metas[slot] = Write(t, s, slot, data)
	}
	s.reopen()
	same(t, s, "after a reopen", want, metas)
	if m, ok, err := s.Latest(); err != nil || !ok || m != metas[13] {
		t.Fatalf("after a reopen, Latest = %+v %v %v, want %+v", m, ok, err, metas[13])
	}
	// Written after the reopen: new snapshots, and one in place of a
	// committed one, must not collide with what the store held before.
	want[21], want[8] = Data(21, 1<<20), Data(1008, 2<<20)
	metas[21], metas[8] = Write(t, s, 21, want[21]), Write(t, s, 8, want[8])
	s.reopen()
	same(t, s, "after a second reopen", want, metas)
}

func testCommitIsDurable(t *testing.T, s *handle) {
	want := map[uint64][]byte{1: Data(1, 2<<20+3)}
	metas := map[uint64]storage.Meta{1: Write(t, s, 1, want[1])}
	s.crash()
	same(t, s, "after a crash right after Commit", want, metas)
	want[2] = Data(2, 10)
	metas[2] = Write(t, s, 2, want[2])
	s.crash()
	same(t, s, "after a second crash", want, metas)
}

func testCrashBeforeCommit(t *testing.T, s *handle) {
	want := map[uint64][]byte{1: Data(1, 2500)}
	metas := map[uint64]storage.Meta{1: Write(t, s, 1, want[1])}
	w, err := s.Create(2, storage.Ballot{Round: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(Data(2, 3<<20)); err != nil {
		t.Fatal(err)
	}
	s.crash()
	same(t, s, "after a crash while writing slot 2", want, metas)
	if _, _, err := s.Open(2); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a crash while writing slot 2, Open(2) = %v, want ErrNotFound", err)
	}
	// The slot is written again, whole, with nothing of the lost attempt.
	want[2] = Data(1002, 1500)
	metas[2] = Write(t, s, 2, want[2])
	s.reopen()
	same(t, s, "after writing slot 2 again", want, metas)
}

func testCreateAtCommittedSlot(t *testing.T, s *handle) {
	a := Data(5, 3<<20+11)
	want := map[uint64][]byte{5: a}
	metas := map[uint64]storage.Meta{5: Write(t, s, 5, a)}
	b := Data(1005, 2<<20+7)

	// Aborted.
	w, err := s.Create(5, storage.Ballot{Round: 6, Node: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	same(t, s, "while another snapshot of its slot is written", want, metas)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	same(t, s, "after another snapshot of its slot was aborted", want, metas)

	// Lost in a crash.
	w, err = s.Create(5, storage.Ballot{Round: 6, Node: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	s.crash()
	same(t, s, "after a crash while another snapshot of its slot was written", want, metas)

	// Committed: the store keeps either snapshot, whole, as Commit says.
	w, err = s.Create(5, storage.Ballot{Round: 6, Node: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	h := storage.NewChecksum()
	h.Write(b)
	switch {
	case m == metas[5]:
		// Kept the committed one.
	case m == storage.Meta{Slot: 5, Ballot: storage.Ballot{Round: 6, Node: 2}, Size: int64(len(b)), Checksum: h.Sum32()}:
		want[5], metas[5] = b, m
	default:
		t.Fatalf("Commit at a slot with a committed snapshot returned %+v: neither the committed one (%+v) nor the new one", m, metas[5])
	}
	same(t, s, "after another snapshot of its slot was committed", want, metas)
	s.reopen()
	same(t, s, "after a reopen", want, metas)
}

func testDamage(t *testing.T, s *handle) {
	const slot = 4242
	Write(t, s, 7, Data(7, 100))
	Write(t, s, slot, Data(slot, 200<<10))
	if err := s.subj.Corrupt(s.SnapshotStore, slot); err != nil {
		t.Fatalf("the Corrupt hook: %v", err)
	}
	r, _, err := s.Open(slot)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, storage.ErrChecksum) || !strings.Contains(err.Error(), fmt.Sprint(slot)) {
		t.Fatalf("reading a damaged snapshot: %v; want an error matching ErrChecksum that names slot %d", err, slot)
	}
	if _, err := storage.Verify(s, slot); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("Verify of a damaged snapshot: %v, want ErrChecksum", err)
	}
	if _, err := storage.Verify(s, 7); err != nil {
		t.Fatalf("the damage spread to another snapshot: %v", err)
	}
}
