package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/paxos-go/paxos/internal/memfs"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killHelperEnv); dir != "" {
		os.Exit(killHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

func TestSaveAndReopen(t *testing.T) {
	dir := t.TempDir()
	m := newModel()
	l, st, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if want := (InitialState{FirstSlot: 1, LastSlot: 0}); st != want {
		t.Fatalf("new log: %+v, want %+v", st, want)
	}
	h := HardState{Promised: Ballot{Round: 3, Node: 2}, Commit: 7}
	if err := l.Save(Batch{HardState: &h}, true); err != nil {
		t.Fatal(err)
	}
	m.hard = h
	for s := uint64(1); s <= 200; s += 10 {
		appendEntries(t, l, m, s, s+9)
	}
	if err := m.check(l); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := OSFS(dir).List()
	if len(names) < 3 {
		t.Fatalf("expected several segments with SegmentBytes 4096, got %v", names)
	}
	l, _, err = Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := m.check(l); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestOverwriteAcrossSegments(t *testing.T) {
	fs := memfs.New()
	opts := Options{SegmentBytes: 4096, inlinePrealloc: true}
	l := mustOpen(t, fs, opts)
	m := newModel()
	for s := uint64(1); s <= 100; s += 5 {
		appendEntries(t, l, m, s, s+4)
	}
	// Overwrite from slot 10, far back in an older segment.
	b := Batch{Entries: []Entry{{Slot: 10, Ballot: Ballot{Round: 2, Node: 3}, Value: []byte("new ten")}, {Slot: 11, Ballot: Ballot{Round: 2, Node: 3}}}}
	if err := l.Save(b, true); err != nil {
		t.Fatal(err)
	}
	m.save(b)
	if err := m.check(l); err != nil {
		t.Fatal(err)
	}
	appendEntries(t, l, m, 12, 30)
	l.Close()
	l = mustOpen(t, fs, opts)
	defer l.Close()
	if err := m.check(l); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestCompactDeletesCoveredSegments(t *testing.T) {
	fs := memfs.New()
	opts := Options{SegmentBytes: 4096, inlinePrealloc: true}
	l := mustOpen(t, fs, opts)
	m := newModel()
	for s := uint64(1); s <= 300; s += 10 {
		appendEntries(t, l, m, s, s+9)
	}
	before, _ := fs.List()
	c := Compacted{Slot: 250, Ballot: Ballot{Round: 1, Node: 1}}
	if err := l.Compact(c); err != nil {
		t.Fatal(err)
	}
	m.compact(c)
	after, _ := fs.List()
	if len(after) >= len(before) {
		t.Fatalf("compaction deleted nothing: %d files before, %d after", len(before), len(after))
	}
	if err := m.check(l); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Entries(250, 251, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Entries below the first slot: %v, want ErrCompacted", err)
	}
	if _, err := l.Entries(301, 302, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Entries past the last slot: %v, want ErrUnavailable", err)
	}
	appendEntries(t, l, m, 301, 320)
	l.Close()
	l = mustOpen(t, fs, opts)
	if err := m.check(l); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	// A snapshot from elsewhere, past the end of the log: the log continues
	// after it.
	c = Compacted{Slot: 1000, Ballot: Ballot{Round: 9, Node: 2}}
	if err := l.Compact(c); err != nil {
		t.Fatal(err)
	}
	m.compact(c)
	appendEntries(t, l, m, 1001, 1005)
	l.Close()
	l = mustOpen(t, fs, opts)
	defer l.Close()
	if err := m.check(l); err != nil {
		t.Fatalf("after the jump and reopen: %v", err)
	}
}

func TestSaveRefusesBadBatches(t *testing.T) {
	l := mustOpen(t, memfs.New(), Options{inlinePrealloc: true, SegmentBytes: 1 << 16, MaxRecordBytes: 1024})
	defer l.Close()
	appendEntries(t, l, nil, 1, 5)
	for name, b := range map[string]Batch{
		"hole":         {Entries: []Entry{{Slot: 7}}},
		"slot zero":    {Entries: []Entry{{Slot: 0}}},
		"out of order": {Entries: []Entry{{Slot: 6}, {Slot: 8}}},
		"too large":    {Entries: []Entry{{Slot: 6, Value: make([]byte, 2000)}}},
	} {
		if err := l.Save(b, true); err == nil {
			t.Errorf("%s: Save accepted %+v", name, b)
		}
	}
	if err := l.Compact(Compacted{Slot: 3}); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(Batch{Entries: []Entry{{Slot: 2}}}, true); err == nil {
		t.Error("Save accepted an entry below the compaction point")
	}
	if err := l.Compact(Compacted{Slot: 2}); err == nil {
		t.Error("Compact went backwards")
	}
	// The log is still usable after refusals.
	appendEntries(t, l, nil, 6, 6)
}

func TestConcurrentSavesShareFsyncs(t *testing.T) {
	fs := memfs.New()
	var syncs int
	var mu sync.Mutex
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if op == memfs.OpSync {
			mu.Lock()
			syncs++
			mu.Unlock()
		}
		return nil
	})
	l := mustOpen(t, fs, Options{SegmentBytes: 1 << 20, inlinePrealloc: true})
	mu.Lock()
	syncs = 0
	mu.Unlock()
	const writers, each = 32, 50
	var wg sync.WaitGroup
	var next uint64 = 1
	var slotMu sync.Mutex
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Slots must be consecutive in queue order, so the slot is
				// taken and the save queued under one lock, as a single
				// proposer would.
				slotMu.Lock()
				s := next
				next++
				ticket, err := l.Enqueue(Batch{Entries: []Entry{{Slot: s, Value: value(s)}}}, true)
				slotMu.Unlock()
				if err == nil {
					err = l.Wait(ticket)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := l.State()
	if st.LastSlot != writers*each {
		t.Fatalf("last slot %d, want %d", st.LastSlot, writers*each)
	}
	ents, err := l.Entries(1, st.LastSlot+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if string(e.Value) != string(value(e.Slot)) {
			t.Fatalf("slot %d holds %q", e.Slot, e.Value)
		}
	}
	mu.Lock()
	n := syncs
	mu.Unlock()
	if n >= writers*each {
		t.Fatalf("%d saves took %d fsyncs: no group commit", writers*each, n)
	}
	t.Logf("%d saves, %d fsyncs", writers*each, n)
	l.Close()
}

func TestSyncFailureClosesTheLog(t *testing.T) {
	fs := memfs.New()
	l := mustOpen(t, fs, Options{SegmentBytes: 1 << 16, inlinePrealloc: true})
	appendEntries(t, l, nil, 1, 3)
	boom := errors.New("EIO")
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if op == memfs.OpSync {
			return boom
		}
		return nil
	})
	err := l.Save(Batch{Entries: []Entry{{Slot: 4}}}, true)
	if !errors.Is(err, boom) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Save with a failing fsync: %v, want EIO and ErrClosed", err)
	}
	fs.SetFault(nil)
	// Never retried: the log stays closed even though fsync works again.
	if err := l.Save(Batch{Entries: []Entry{{Slot: 4}}}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after the failure: %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after the failure: %v, want the failure", err)
	}
	if err := l.Save(Batch{Entries: []Entry{{Slot: 4}}}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: %v, want ErrClosed", err)
	}
}

func TestDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{SegmentBytes: 4096}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	l.Close()
	l, _, err = Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	l.Close()
}

func TestEntriesMaxBytes(t *testing.T) {
	l := mustOpen(t, memfs.New(), Options{inlinePrealloc: true, SegmentBytes: 1 << 16})
	defer l.Close()
	appendEntries(t, l, nil, 1, 20) // values of 7 or 8 bytes
	ents, err := l.Entries(1, 21, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 4 {
		t.Fatalf("maxBytes 30 gave %d entries, want 4", len(ents))
	}
	ents, err = l.Entries(5, 21, 0)
	if err != nil || len(ents) != 1 || ents[0].Slot != 5 {
		t.Fatalf("maxBytes 0 gave %v, %v; want the one entry for slot 5", ents, err)
	}
}

// TestBigEntriesReadBack reads back values of hundreds of KiB from several
// segments in one Entries call, which reuses its read buffer from one
// segment to the next: a value that aliased the buffer would come back
// overwritten.
func TestBigEntriesReadBack(t *testing.T) {
	l := mustOpen(t, memfs.New(), Options{inlinePrealloc: true, SegmentBytes: 1 << 20})
	defer l.Close()
	var want [][]byte
	for s := uint64(1); s <= 8; s++ {
		v := bytes.Repeat([]byte{byte(s)}, 300<<10+int(s))
		want = append(want, v)
		if err := l.Save(Batch{Entries: []Entry{{Slot: s, Ballot: Ballot{Round: 1, Node: 1}, Value: v}}}, true); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := l.Entries(1, 9, 0)
	if err != nil || len(ents) != 1 {
		t.Fatalf("Entries with maxBytes 0: %d entries, %v", len(ents), err)
	}
	ents, err = l.Entries(1, 9, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Fatalf("%d entries, want %d", len(ents), len(want))
	}
	for i, e := range ents {
		if !bytes.Equal(e.Value, want[i]) {
			t.Errorf("slot %d: value of %d bytes starting %x, want %d bytes of %x", e.Slot, len(e.Value), e.Value[:1], len(want[i]), want[i][:1])
		}
	}
}

// BenchmarkEntriesBig reads back 512 KiB values, the default largest
// batch: what a restarted replica or a lagging follower's catch-up does.
func BenchmarkEntriesBig(b *testing.B) {
	l := mustOpen(b, memfs.New(), Options{inlinePrealloc: true, SegmentBytes: 64 << 20})
	defer l.Close()
	v := make([]byte, 512<<10)
	for s := uint64(1); s <= 16; s++ {
		if err := l.Save(Batch{Entries: []Entry{{Slot: s, Value: v}}}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(16 * int64(len(v)))
	for b.Loop() {
		if ents, err := l.Entries(1, 17, 1<<30); err != nil || len(ents) != 16 {
			b.Fatal(len(ents), err)
		}
	}
}

func TestRandomOperationsMatchModel(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			fs := memfs.New()
			opts := Options{SegmentBytes: 4096, inlinePrealloc: true}
			l := mustOpen(t, fs, opts)
			m := newModel()
			for i := 0; i < 300; i++ {
				switch r := rng.IntN(20); {
				case r == 0 && m.last > m.compacted.Slot:
					c := Compacted{Slot: m.compacted.Slot + rng.Uint64N(m.last-m.compacted.Slot) + 1, Ballot: Ballot{Round: 1}}
					if err := l.Compact(c); err != nil {
						t.Fatal(err)
					}
					m.compact(c)
				case r == 1:
					l.Close()
					l = mustOpen(t, fs, opts)
				default:
					b := randomBatch(rng, m, 300)
					if err := l.Save(b, rng.IntN(3) > 0); err != nil {
						t.Fatal(err)
					}
					m.save(b)
				}
				if err := m.check(l); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			l.Close()
		})
	}
}

func TestCorruptErrorNamesFileAndOffset(t *testing.T) {
	err := corruptf("0000000000000001-0000000000000001.paxos", 4096, "checksum mismatch")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "0000000000000001-0000000000000001.paxos") || !strings.Contains(err.Error(), "4096") {
		t.Fatalf("%v", err)
	}
}
