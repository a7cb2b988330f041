package storage_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/paxos-go/paxos/storage"
)

// TestPebblePruneReclaimsSpace writes 400 snapshots of 512 KiB (200 MiB),
// pruning to the newest two after each as the engine does: the store's
// files must hold the two it keeps, not grow with every snapshot written.
// (When the store was a Pebble database, its memtable log and tables not
// yet compacted made about 15 MiB here.)
func TestPebblePruneReclaimsSpace(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.OpenPebble(dir, storage.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 512<<10)
	var peak int64
	for slot := uint64(1); slot <= 400; slot++ {
		for i := range data {
			data[i] = byte(slot) ^ byte(i*7)
		}
		w, err := s.Create(slot, storage.Ballot{Round: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.Prune(2); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, dirSize(dir))
	}
	written := int64(400 * len(data))
	t.Logf("peak %d KiB on disk after writing %d KiB", peak>>10, written>>10)
	if limit := int64(3 * len(data)); peak > limit {
		t.Errorf("the store peaked at %d bytes on disk, pruned to 2 snapshots of %d: deleted snapshots are not reclaimed", peak, len(data))
	}
}

func dirSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}
