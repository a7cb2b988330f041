package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

// The Pebble store under power cuts and disk errors at every write it
// makes to its files, in every operation that changes it: a scenario of
// commits (new slots, and a slot that has one), aborts (new slots, and a
// slot that has one), an empty snapshot and prunes runs while a file
// system in memory counts the writes; a cut at write k clones the disk
// as the power failure would leave it (what was synced, and a random
// part of what was not), an error at write k fails that write.

// model is what the store holds: the bytes of each committed snapshot.
type model map[uint64][]byte

func (m model) with(slot uint64, data []byte) model {
	n := model{}
	for k, v := range m {
		n[k] = v
	}
	if data != nil {
		n[slot] = data
	} else {
		delete(n, slot)
	}
	return n
}

// step is an operation of the scenario and the model after it.
type step struct {
	name  string
	run   func(s storage.SnapshotStore) error
	after model
}

const crashChunk = 1000

func scenario() []step {
	commit := func(slot uint64, data []byte) func(storage.SnapshotStore) error {
		return func(s storage.SnapshotStore) error {
			w, err := s.Create(slot, storage.Ballot{Round: slot})
			if err != nil {
				return err
			}
			for rest := data; len(rest) > 0; rest = rest[min(len(rest), 700):] {
				if _, err := w.Write(rest[:min(len(rest), 700)]); err != nil {
					w.Abort()
					return err
				}
			}
			_, err = w.Commit()
			return err
		}
	}
	abort := func(slot uint64, n int) func(storage.SnapshotStore) error {
		return func(s storage.SnapshotStore) error {
			w, err := s.Create(slot, storage.Ballot{Round: slot})
			if err != nil {
				return err
			}
			if _, err := w.Write(storagetest.Data(slot+500, n)); err != nil {
				w.Abort()
				return err
			}
			return w.Abort()
		}
	}
	prune := func(keep int) func(storage.SnapshotStore) error {
		return func(s storage.SnapshotStore) error { return s.Prune(keep) }
	}
	d := storagetest.Data
	var m model = model{}
	var steps []step
	add := func(name string, run func(storage.SnapshotStore) error, after model) {
		steps = append(steps, step{name, run, after})
		m = after
	}
	add("commit 1", commit(1, d(1, 2500)), m.with(1, d(1, 2500)))
	add("commit 2", commit(2, d(2, 4100)), m.with(2, d(2, 4100)))
	add("abort 3", abort(3, 2200), m)
	add("commit 2 again", commit(2, d(1002, 3000)), m.with(2, d(1002, 3000)))
	add("abort at 2", abort(2, 2500), m)
	add("commit 4, empty", commit(4, []byte{}), m.with(4, []byte{}))
	add("prune to 2", prune(2), m.with(1, nil))
	add("commit 5", commit(5, d(5, 1500)), m.with(5, d(5, 1500)))
	add("prune to 1", prune(1), m.with(2, nil).with(4, nil))
	add("commit 5 again", commit(5, d(1005, 900)), m.with(5, d(1005, 900)))
	return steps
}

// check opens the store that fs holds and checks it against the models
// before and after the step in progress: each snapshot either step
// leaves alone is there, whole; one the step adds or deletes may be there
// or not; one it replaces is there, old or new, whole; nothing else is.
func check(t *testing.T, fs vfs.FS, what string, before, after model) {
	t.Helper()
	s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: fs, ChunkBytes: crashChunk})
	if err != nil {
		t.Fatalf("%s: reopening: %v", what, err)
	}
	defer s.Close()
	l, err := s.List()
	if err != nil {
		t.Fatalf("%s: List: %v", what, err)
	}
	visible := map[uint64]bool{}
	for _, m := range l {
		visible[m.Slot] = true
		old, inBefore := before[m.Slot]
		fresh, inAfter := after[m.Slot]
		if !inBefore && !inAfter {
			t.Fatalf("%s: the snapshot of slot %d is visible, but was never committed", what, m.Slot)
		}
		r, _, err := s.Open(m.Slot)
		if err != nil {
			t.Fatalf("%s: Open(%d): %v", what, m.Slot, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: the snapshot of slot %d is damaged: %v", what, m.Slot, err)
		}
		if !(inBefore && bytes.Equal(got, old)) && !(inAfter && bytes.Equal(got, fresh)) {
			t.Fatalf("%s: the snapshot of slot %d holds %d bytes, neither the %d committed before nor the %d after", what, m.Slot, len(got), len(old), len(fresh))
		}
	}
	for slot := range before {
		if _, inAfter := after[slot]; inAfter && !visible[slot] {
			t.Fatalf("%s: the snapshot of slot %d, committed before and after, is gone", what, slot)
		}
	}
}

// countingFS is a crashable file system in memory whose writes (file
// creation, writes, syncs, renames, deletions) are counted, and hook
// called before write number k (from 0) happens.
type countingFS struct {
	mem   *vfs.MemFS
	n     atomic.Int64
	k     atomic.Int64
	phase atomic.Int64 // the step in progress
	hook  func(phase int) error
	fired atomic.Bool
}

func newCountingFS() *countingFS {
	c := &countingFS{mem: vfs.NewCrashableMem()}
	c.k.Store(-1)
	return c
}

func (c *countingFS) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	if c.n.Add(1)-1 == c.k.Load() && c.hook != nil {
		c.fired.Store(true)
		return c.hook(int(c.phase.Load()))
	}
	return nil
}

func (c *countingFS) String() string { return "countingFS" }

// dryRun runs the scenario with nothing injected and returns how many
// writes it made.
func dryRun(t *testing.T) int64 {
	c := newCountingFS()
	s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(c.mem, c), ChunkBytes: crashChunk})
	if err != nil {
		t.Fatal(err)
	}
	start := c.n.Load()
	for _, st := range scenario() {
		if err := st.run(s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return c.n.Load() - start
}

// crashCfg is the k-th way to lose what was not synced: all of it, all
// of it kept, or a random part.
func crashCfg(k int64) vfs.CrashCloneCfg {
	rng := rand.New(rand.NewPCG(uint64(k), 1))
	return vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 100, rng.IntN(101)}[k%3], RNG: rng}
}

// modelsAround returns the models before and after step phase.
func modelsAround(steps []step, phase int) (before, after model) {
	before = model{}
	if phase > 0 {
		before = steps[phase-1].after
	}
	after = before
	if phase < len(steps) {
		after = steps[phase].after
	}
	return before, after
}

// TestPebbleCrashAtEveryWrite cuts the power before each write the
// scenario makes to its files (the writes that Pebble's log makes in the
// background included), three times over, losing all, none and a random
// part of what was not synced; reopens what the disk holds, and checks it.
func TestPebbleCrashAtEveryWrite(t *testing.T) {
	total := dryRun(t)
	t.Logf("the scenario makes %d writes", total)
	steps := scenario()
	for k := int64(0); k < 3*(total+1); k++ {
		var mu sync.Mutex
		var clone *vfs.MemFS
		var at int
		c := newCountingFS()
		c.hook = func(phase int) error {
			cl := c.mem.CrashClone(crashCfg(k))
			mu.Lock()
			clone, at = cl, phase
			mu.Unlock()
			return nil
		}
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(c.mem, c), ChunkBytes: crashChunk})
		if err != nil {
			t.Fatal(err)
		}
		c.k.Store(c.n.Load() + k/3)
		for i, st := range steps {
			c.phase.Store(int64(i))
			if err := st.run(s); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		c.phase.Store(int64(len(steps)))
		s.Close()
		mu.Lock()
		cl, phase := clone, at
		mu.Unlock()
		if cl == nil {
			continue // this run made fewer writes than the dry run
		}
		before, after := modelsAround(steps, phase)
		check(t, cl, fmt.Sprintf("power cut at write %d, in step %q", k/3, stepName(steps, phase)), before, after)
	}
}

func stepName(steps []step, i int) string {
	if i < len(steps) {
		return steps[i].name
	}
	return "after the last step"
}

// pointStore calls point before and after every call to the store and
// its writers.
type pointStore struct {
	storage.SnapshotStore
	point func()
}

func (p pointStore) Create(slot uint64, b storage.Ballot) (storage.Writer, error) {
	p.point()
	defer p.point()
	w, err := p.SnapshotStore.Create(slot, b)
	if err != nil {
		return nil, err
	}
	return pointWriter{w, p.point}, nil
}

func (p pointStore) Prune(keep int) error {
	p.point()
	defer p.point()
	return p.SnapshotStore.Prune(keep)
}

type pointWriter struct {
	storage.Writer
	point func()
}

func (w pointWriter) Write(b []byte) (int, error) {
	w.point()
	defer w.point()
	return w.Writer.Write(b)
}

func (w pointWriter) Commit() (storage.Meta, error) {
	w.point()
	defer w.point()
	return w.Writer.Commit()
}

func (w pointWriter) Abort() error {
	w.point()
	defer w.point()
	return w.Writer.Abort()
}

// TestPebbleCrashBetweenCalls cuts the power before and after every call
// of the scenario (Create, each Write, Commit, Abort, Prune), losing
// all, none or a random part of what was not synced, and checks what the
// disk holds.
func TestPebbleCrashBetweenCalls(t *testing.T) {
	steps := scenario()
	var points int64
	for k := int64(0); k == 0 || k < 3*points; k++ {
		mem := vfs.NewCrashableMem()
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: mem, ChunkBytes: crashChunk})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var clone *vfs.MemFS
		phase := 0
		at := 0
		ps := pointStore{s, func() {
			if n == k/3 {
				clone, at = mem.CrashClone(crashCfg(k)), phase
			}
			n++
		}}
		for i, st := range steps {
			phase = i
			if err := st.run(ps); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		s.Close()
		points = n
		if clone == nil {
			t.Fatalf("no crash at point %d of %d", k/3, n)
		}
		before, after := modelsAround(steps, at)
		check(t, clone, fmt.Sprintf("power cut at call point %d, in step %q", k/3, stepName(steps, at)), before, after)
	}
	t.Logf("%d points between calls, 3 crashes at each", points)
}

// TestPebbleErrorAtEveryWrite fails each write the scenario makes, in
// turn, with ENOSPC or EIO. The failure must come back as an error (from
// the operation in progress, or a later one, or Close: never a panic);
// once the store has failed it must refuse every operation with
// ErrFailed; and reopened with a sound disk, it must hold what was
// committed before the failing step, and perhaps what that step did.
func TestPebbleErrorAtEveryWrite(t *testing.T) {
	total := dryRun(t)
	steps := scenario()
	for k := int64(0); k < total; k++ {
		injected := []error{syscall.ENOSPC, syscall.EIO}[k%2]
		c := newCountingFS()
		c.hook = func(int) error { return injected }
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(c.mem, c), ChunkBytes: crashChunk})
		if err != nil {
			t.Fatal(err)
		}
		c.k.Store(c.n.Load() + k)
		failed := -1
		for i, st := range steps {
			err := st.run(s)
			switch {
			case err == nil && failed >= 0:
				t.Fatalf("write %d failed with %v, and step %q failed with %v; then step %q succeeded", k, injected, steps[failed].name, err, st.name)
			case err != nil && failed < 0:
				failed = i
				if !errors.Is(err, storage.ErrFailed) {
					t.Fatalf("write %d failed with %v; step %q returned %v, want an error matching ErrFailed", k, injected, st.name, err)
				}
			case err != nil && !errors.Is(err, storage.ErrFailed):
				t.Fatalf("write %d failed with %v; after the store failed, step %q returned %v, want ErrFailed", k, injected, st.name, err)
			}
		}
		closeErr := s.Close()
		if !c.fired.Load() {
			continue // this run made fewer writes than the dry run
		}
		if failed < 0 && closeErr == nil {
			t.Fatalf("write %d failed with %v, and no operation, nor Close, returned an error", k, injected)
		}
		before, after := steps[len(steps)-1].after, steps[len(steps)-1].after
		if failed >= 0 {
			before, after = model{}, steps[failed].after
			if failed > 0 {
				before = steps[failed-1].after
			}
		}
		check(t, c.mem, fmt.Sprintf("write %d failed with %v, in step %d", k, injected, failed), before, after)
	}
}

// TestPebbleFullDiskRefusesWrites: a store whose disk filled refuses
// every later operation, reads included (its view may hold what never
// reached the disk), with the failure; Close still releases it; and once
// the disk has room it reopens with every committed snapshot. (Before,
// the Commit that found the disk full panicked: Pebble's fatal commit
// error reached a logger whose Fatalf panicked.)
func TestPebbleFullDiskRefusesWrites(t *testing.T) {
	full := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.ENOSPC
		}
		return nil
	})}
	mem := vfs.NewMem()
	open := func() *storage.Pebble {
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(mem, full), ChunkBytes: crashChunk})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	data := storagetest.Data(1, 2500)
	storagetest.Write(t, s, 1, data)
	w, err := s.Create(2, storage.Ballot{})
	if err != nil {
		t.Fatal(err)
	}
	full.On()
	w.Write(storagetest.Data(2, 2500))
	if _, err := w.Commit(); !errors.Is(err, storage.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Commit on a full disk: %v, want ErrFailed saying the disk is full", err)
	}
	for name, op := range map[string]func() error{
		"Create": func() error { _, err := s.Create(3, storage.Ballot{}); return err },
		"List":   func() error { _, err := s.List(); return err },
		"Latest": func() error { _, _, err := s.Latest(); return err },
		"Open":   func() error { _, _, err := s.Open(1); return err },
		"Prune":  func() error { return s.Prune(0) },
	} {
		if err := op(); !errors.Is(err, storage.ErrFailed) {
			t.Errorf("%s after the disk filled: %v, want ErrFailed", name, err)
		}
	}
	if err := s.Close(); !errors.Is(err, storage.ErrFailed) {
		t.Errorf("Close after the disk filled: %v, want the failure", err)
	}
	full.Off()
	s = open()
	defer s.Close()
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0].Slot != 1 {
		t.Fatalf("after the disk has room again: List = %v, %v; want slot 1 alone", l, err)
	}
	if got, _ := storagetest.Read(t, s, 1); !bytes.Equal(got, data) {
		t.Fatal("the snapshot committed before the disk filled reads back wrong")
	}
	storagetest.Write(t, s, 2, storagetest.Data(2, 10))
}

// TestMigrationCrashAtEveryWrite cuts the power before each write that
// moving a store in the Pebble layout into files makes, losing all, none
// or a random part of what was not synced: reopened, the store must hold
// every snapshot, whole, in whichever layout the crash left it.
func TestMigrationCrashAtEveryWrite(t *testing.T) {
	d := storagetest.Data
	snaps := []storage.LegacySnapshot{
		{Meta: storage.Meta{Slot: 3, Ballot: storage.Ballot{Round: 1}, Size: 2500, Checksum: sum(d(3, 2500))}, Data: d(3, 2500)},
		{Meta: storage.Meta{Slot: 5, Ballot: storage.Ballot{Round: 2}, Size: 9000, Checksum: sum(d(5, 9000))}, Gen: 2, Data: d(5, 9000), Chunk: 1000},
	}
	want := model{3: d(3, 2500), 5: d(5, 9000)}
	for k := int64(0); ; k++ {
		c := newCountingFS()
		if err := storage.WriteLegacy(c.mem, "snaps", snaps...); err != nil {
			t.Fatal(err)
		}
		var clone *vfs.MemFS
		c.hook = func(int) error {
			clone = c.mem.CrashClone(crashCfg(k))
			return nil
		}
		c.k.Store(c.n.Load() + k/3)
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(c.mem, c), ChunkBytes: crashChunk})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if clone == nil {
			t.Logf("%d writes, 3 crashes before each", k/3)
			return
		}
		check(t, clone, fmt.Sprintf("power cut at write %d of the migration", k/3), want, want)
	}
}

func sum(b []byte) uint32 {
	h := storage.NewChecksum()
	h.Write(b)
	return h.Sum32()
}
