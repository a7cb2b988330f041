package storage_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

func TestMem(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.SnapshotStore { return storage.NewMem() })
}

func TestPebble(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.SnapshotStore {
		s, err := storage.OpenPebble(t.TempDir(), storage.PebbleOptions{ChunkBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemDetectsCorruption(t *testing.T) {
	s := storage.NewMem()
	storagetest.Write(t, s, 3, storagetest.Data(3, 1000))
	s.Corrupt(3)
	if _, err := storage.Verify(s, 3); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("Verify of a corrupted snapshot: %v, want ErrChecksum", err)
	}
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
