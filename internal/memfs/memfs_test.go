package memfs

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/paxos-go/paxos/internal/walfs"
)

// TestHookRunsWithoutTheLock: a fault hook that blocks holds its own
// operation only; the file system serves the others meanwhile, and a
// crash meanwhile fails the held operation without effect.
func TestHookRunsWithoutTheLock(t *testing.T) {
	m := New()
	f, err := m.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	m.SetFault(func(op FaultOp, name string) error {
		if op == OpWrite {
			close(held)
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := f.WriteAt([]byte("late"), 0)
		done <- err
	}()
	<-held
	// With the hook blocked: reads, listings and a crash go on.
	if names, err := m.List(); err != nil || len(names) != 1 {
		t.Fatalf("List while a hook blocks: %v, %v", names, err)
	}
	m.Crash()
	close(release)
	if err := <-done; !errors.Is(err, ErrCrashed) {
		t.Fatalf("a write held across a crash: %v, want ErrCrashed", err)
	}
	if b, err := m.ReadFile("a"); err != nil || len(b) != 0 {
		t.Fatalf("the held write reached the file: %q, %v", b, err)
	}
}

// TestFaultHasNoEffect: an operation the hook fails changes nothing, and
// the error says which operation and file.
func TestFaultHasNoEffect(t *testing.T) {
	m := New()
	f, err := m.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("EIO")
	m.SetFault(func(op FaultOp, name string) error { return eio })
	if _, err := f.WriteAt([]byte("lost"), 0); !errors.Is(err, eio) || err.Error() != "memfs write a: EIO" {
		t.Errorf("failed write: %v", err)
	}
	if err := m.Rename("a", "b"); !errors.Is(err, eio) {
		t.Errorf("failed rename: %v", err)
	}
	if err := m.Remove("a"); !errors.Is(err, eio) {
		t.Errorf("failed remove: %v", err)
	}
	m.SetFault(nil)
	if b, err := m.ReadFile("a"); err != nil || string(b) != "kept" {
		t.Errorf("after failed operations: %q, %v; want a unchanged", b, err)
	}
	if err := m.Remove("b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed rename made b: %v", err)
	}
}

// TestLock: the lock is exclusive, with walfs.ErrLocked, until closed or
// until the process holding it crashes; a lock of a crashed process closed
// late does not release its successor's.
func TestLock(t *testing.T) {
	m := New()
	first, err := m.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lock(); !errors.Is(err, walfs.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	m.Crash()
	second, err := m.Lock()
	if err != nil {
		t.Fatalf("Lock after a crash: %v", err)
	}
	first.Close()
	if _, err := m.Lock(); !errors.Is(err, walfs.ErrLocked) {
		t.Fatalf("the crashed process's Close released its successor's lock: %v", err)
	}
	second.Close()
	if l, err := m.Lock(); err != nil {
		t.Fatalf("Lock after Close: %v", err)
	} else {
		l.Close()
	}
}
