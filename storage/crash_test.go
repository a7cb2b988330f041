package storage_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

const crashChunk = 1000

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
