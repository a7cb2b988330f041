package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

// TestDiskErrorUnderMiBSnapshotIsAnError: a disk error (ENOSPC) under a
// snapshot of a few MiB, written in 1 MiB pieces with the default chunk
// size, after 0, 1, 3 or 10 good writes. (Before, the store wrote each
// chunk through Pebble without sync; the second one ended inside Pebble's
// switch to a new log file, which panicked on the error and, unwinding,
// unlocked a mutex twice: "fatal error: sync: unlock of unlocked mutex",
// which ends the process whatever recovers.) The error must come back
// from Write or Commit, matching ErrFailed and the cause; the store must
// refuse what follows; and reopened on a sound disk it must hold what was
// committed before.
func TestDiskErrorUnderMiBSnapshotIsAnError(t *testing.T) {
	for _, after := range []int{0, 1, 3, 10} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			mem := vfs.NewMem()
			var n int
			on := false
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				if on && op.Kind == errorfs.OpFileWrite {
					if n++; n > after {
						return syscall.ENOSPC
					}
				}
				return nil
			})
			s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(mem, inj)})
			if err != nil {
				t.Fatal(err)
			}
			before := storagetest.Data(1, 1<<20+3)
			storagetest.Write(t, s, 1, before)
			w, err := s.Create(2, storage.Ballot{})
			if err != nil {
				t.Fatal(err)
			}
			on = true
			chunk := bytes.Repeat([]byte{7}, 1<<20)
			var werr error
			for i := 0; i < 3 && werr == nil; i++ {
				_, werr = w.Write(chunk)
			}
			_, cerr := w.Commit()
			err = errors.Join(werr, cerr)
			switch {
			case n <= after:
				// Fewer writes than the fault needs: it all went through.
				if err != nil {
					t.Fatalf("no fault, and still: %v", err)
				}
			case !errors.Is(err, storage.ErrFailed) || !errors.Is(err, syscall.ENOSPC):
				t.Fatalf("a full disk after %d writes: Write %v, Commit %v; want ErrFailed saying ENOSPC", after, werr, cerr)
			default:
				if _, err := s.Create(3, storage.Ballot{}); !errors.Is(err, storage.ErrFailed) {
					t.Fatalf("Create after the store failed: %v, want ErrFailed", err)
				}
			}
			s.Close()
			on = false
			s, err = storage.OpenPebble("snaps", storage.PebbleOptions{FS: mem})
			if err != nil {
				t.Fatalf("reopening on a sound disk: %v", err)
			}
			defer s.Close()
			if got, _ := storagetest.Read(t, s, 1); !bytes.Equal(got, before) {
				t.Fatal("the snapshot committed before the disk filled reads back wrong")
			}
		})
	}
}

// TestMiBSnapshotsErrorAtEveryWrite fails each write (file creation,
// write, fsync, rename, deletion, directory sync) of a scenario of
// snapshots of a few MiB, in turn, with ENOSPC or EIO: the failure must
// come back as an error matching ErrFailed and the cause (from the call
// in progress, or Close), never a crash; and reopened on a sound disk the
// store must hold what was committed before the failing call, and perhaps
// what that call did.
func TestMiBSnapshotsErrorAtEveryWrite(t *testing.T) {
	d := storagetest.Data
	type op struct {
		name string
		run  func(s storage.SnapshotStore) error
		want map[uint64][]byte // after it
	}
	commit := func(slot uint64, data []byte) func(storage.SnapshotStore) error {
		return func(s storage.SnapshotStore) error {
			w, err := s.Create(slot, storage.Ballot{Round: slot})
			if err != nil {
				return err
			}
			for rest := data; len(rest) > 0; rest = rest[min(len(rest), 1<<20):] {
				if _, err := w.Write(rest[:min(len(rest), 1<<20)]); err != nil {
					w.Abort()
					return err
				}
			}
			_, err = w.Commit()
			return err
		}
	}
	a, b, c := d(1, 3<<20+5), d(2, 2<<20), d(1001, 4<<20+1)
	ops := []op{
		{"commit 1", commit(1, a), map[uint64][]byte{1: a}},
		{"commit 2", commit(2, b), map[uint64][]byte{1: a, 2: b}},
		{"commit 1 again", commit(1, c), map[uint64][]byte{1: c, 2: b}},
		{"prune to 1", func(s storage.SnapshotStore) error { return s.Prune(1) }, map[uint64][]byte{2: b}},
	}
	run := func(k int64, injected error) (fired bool) {
		c := newCountingFS()
		c.hook = func(int) error { return injected }
		s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: errorfs.Wrap(c.mem, c)})
		if err != nil {
			t.Fatal(err)
		}
		c.k.Store(c.n.Load() + k)
		failed := -1
		for i, o := range ops {
			err := o.run(s)
			if err != nil && failed < 0 {
				failed = i
			}
			if failed >= 0 && (!errors.Is(err, storage.ErrFailed) || !errors.Is(err, injected)) {
				t.Fatalf("write %d failed with %v; %q returned %v, want ErrFailed saying why", k, injected, o.name, err)
			}
		}
		closeErr := s.Close()
		if !c.fired.Load() {
			return false
		}
		if failed < 0 && !errors.Is(closeErr, injected) {
			t.Fatalf("write %d failed with %v, and no call returned an error", k, injected)
		}
		s2, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: c.mem})
		if err != nil {
			t.Fatalf("write %d failed with %v; reopening on a sound disk: %v", k, injected, err)
		}
		defer s2.Close()
		before, after := map[uint64][]byte{}, ops[len(ops)-1].want
		if failed >= 0 {
			after = ops[failed].want
			if failed > 0 {
				before = ops[failed-1].want
			}
		}
		l, err := s2.List()
		if err != nil {
			t.Fatalf("write %d failed: List after reopening: %v", k, err)
		}
		for _, m := range l {
			got, _ := storagetest.Read(t, s2, m.Slot)
			if !bytes.Equal(got, before[m.Slot]) && !bytes.Equal(got, after[m.Slot]) {
				t.Fatalf("write %d failed: the snapshot of slot %d holds %d bytes, neither what was committed before nor after", k, m.Slot, len(got))
			}
		}
		for slot := range before {
			if _, ok := after[slot]; ok && !containsSlot(l, slot) {
				t.Fatalf("write %d failed: the snapshot of slot %d is gone", k, slot)
			}
		}
		return true
	}
	k := int64(0)
	for ; run(k, []error{syscall.ENOSPC, syscall.EIO}[k%2]); k++ {
	}
	t.Logf("failed each of %d writes", k)
	if k < 10 {
		t.Fatalf("the scenario made only %d writes", k)
	}
}

func containsSlot(l []storage.Meta, slot uint64) bool {
	for _, m := range l {
		if m.Slot == slot {
			return true
		}
	}
	return false
}
