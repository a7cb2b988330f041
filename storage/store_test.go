package storage_test

import (
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

func TestMem(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Subject {
		// The memory store stands for a disk that outlives the process:
		// reopened, and after a crash, it is the same store.
		s := storage.NewMem()
		same := func() (storage.SnapshotStore, error) { return s, nil }
		return storagetest.Subject{
			Store:   s,
			Reopen:  same,
			Crash:   func(storage.SnapshotStore) (storage.SnapshotStore, error) { return same() },
			Corrupt: func(_ storage.SnapshotStore, slot uint64) error { return storage.CorruptMem(s, slot) },
		}
	})
}

// TestPebble runs the contract on a crashable file system in memory: a
// crash keeps what was synced, and nothing else.
func TestPebble(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Subject {
		fs := vfs.NewCrashableMem()
		open := func() (storage.SnapshotStore, error) {
			return storage.OpenPebble("snaps", storage.PebbleOptions{FS: fs, ChunkBytes: 64 << 10})
		}
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		return storagetest.Subject{
			Store:  s,
			Reopen: open,
			Crash: func(storage.SnapshotStore) (storage.SnapshotStore, error) {
				fs = fs.CrashClone(vfs.CrashCloneCfg{})
				return open()
			},
			Corrupt: func(s storage.SnapshotStore, slot uint64) error {
				return storage.CorruptPebble(s.(*storage.Pebble), slot)
			},
		}
	})
}

// TestPebbleCrashWhileWriting cuts the power in the middle of writing a
// snapshot, at every chunk, keeping a random part of what was not synced:
// the half-written snapshot must never be visible, the previous one must be
// intact, and reopening must clean up.
func TestPebbleCrashWhileWriting(t *testing.T) {
	for chunks := 0; chunks <= 4; chunks++ {
		for seed := uint64(0); seed < 3; seed++ {
			fs := vfs.NewCrashableMem()
			s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: fs, ChunkBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			old := storagetest.Data(1, 2500)
			storagetest.Write(t, s, 1, old)
			w, err := s.Create(2, storage.Ballot{Round: 2})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(storagetest.Data(2, chunks*1000+500))
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: int(seed * 40), RNG: rand.New(rand.NewPCG(seed, 9))})
			w.Abort()
			s.Close()

			s, err = storage.OpenPebble("snaps", storage.PebbleOptions{FS: crashed, ChunkBytes: 1000})
			if err != nil {
				t.Fatalf("reopening after a crash with %d chunks written: %v", chunks, err)
			}
			if m, ok, err := s.Latest(); err != nil || !ok || m.Slot != 1 {
				t.Fatalf("after a crash with %d chunks written, Latest = %+v %v %v, want slot 1", chunks, m, ok, err)
			}
			if got, _ := storagetest.Read(t, s, 1); string(got) != string(old) {
				t.Fatal("the previous snapshot was damaged")
			}
			s.Close()
		}
	}
}

// TestPebbleCommittedSurvivesCrash: once Commit returns, a crash that
// keeps only synced data keeps the snapshot.
func TestPebbleCommittedSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := storage.OpenPebble("snaps", storage.PebbleOptions{FS: fs, ChunkBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := storagetest.Data(9, 4321)
	storagetest.Write(t, s, 9, data)
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	s, err = storage.OpenPebble("snaps", storage.PebbleOptions{FS: crashed, ChunkBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, m, err := s.Open(9)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != string(data) || m.Size != int64(len(data)) {
		t.Fatalf("committed snapshot after a crash: %d bytes, %v", len(got), err)
	}
}
