package engine_test

import (
	"os"
	"testing"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

// The embedder's store of the example passes the same contract tests as
// the built-in ones. It is on the real disk, so a crash is a reopen
// without closing: nothing it did not sync is lost, which tests less.
func TestDirStoreContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Subject {
		dir := t.TempDir()
		open := func() (storage.SnapshotStore, error) { return newDirStore(dir) }
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		return storagetest.Subject{
			Store:  s,
			Reopen: open,
			Crash:  func(storage.SnapshotStore) (storage.SnapshotStore, error) { return open() },
			Corrupt: func(s storage.SnapshotStore, slot uint64) error {
				path := s.(*dirStore).path(slot)
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				b[(len(b)-24)/2] ^= 0xff // in the bytes, before the 24-byte trailer
				return os.WriteFile(path, b, 0o644)
			},
		}
	})
}
