package engine

import (
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/storage"
)

// Regressions for problems a review of the durability work found; each
// test failed before its fix.

// TestSnapshotHeaderLengthIsChecked: a 17-byte snapshot whose header says
// its session table takes 4 GiB. (Before, loadSnapshot allocated the table
// from the header before checking it against the snapshot's size: Start
// allocated 4 GiB.) It must be refused as malformed, allocating nothing
// of the sort.
func TestSnapshotHeaderLengthIsChecked(t *testing.T) {
	for _, length := range []int{0xFFFFFFF0, 1} {
		s := storage.NewMem()
		w, _ := s.Create(5, storage.Ballot{})
		w.Write(snapshotHeader(5, length))
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{snaps: s, log: hclog.NewNullLogger()}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = n.loadSnapshot(m)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "malformed header") {
			t.Fatalf("a %d-byte snapshot declaring a session table of %d bytes: %v, want a malformed header", m.Size, length, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
			t.Fatalf("loading a %d-byte snapshot allocated %d MiB", m.Size, got>>20)
		}
	}
}
