package engine_test

import (
	"testing"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

// The embedder's store of the example passes the same contract tests as
// the built-in ones.
func TestDirStoreContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.SnapshotStore {
		s, err := newDirStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
