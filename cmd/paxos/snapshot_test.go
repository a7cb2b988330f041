package main

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/paxos-go/paxos/storage"
)

// writeSnapshots makes a data directory whose store holds snapshots of
// slots 10 and 20.
func writeSnapshots(t *testing.T) string {
	dir := t.TempDir()
	store, err := storage.OpenPebble(filepath.Join(dir, "snapshots"), storage.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []uint64{10, 20} {
		w, err := store.Create(slot, storage.Ballot{Round: 3, Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(strings.Repeat("state ", int(slot))))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSnapshotLs(t *testing.T) {
	dir := writeSnapshots(t)
	for _, arg := range []string{dir, filepath.Join(dir, "snapshots")} {
		code, out, errOut := runCLI("snapshot", "ls", arg)
		if code != 0 {
			t.Fatalf("snapshot ls %s: exit %d, %s", arg, code, errOut)
		}
		for _, want := range []string{"SLOT", "\n10 ", "\n20 ", " 3.1 ", " 60 ", " 120 ", " ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("snapshot ls output lacks %q:\n%s", want, out)
			}
		}
	}
}

// TestSnapshotLsCorrupt rots one chunk of a snapshot behind the store's
// back: ls lists both, marks that one CORRUPT, and exits 1.
func TestSnapshotLsCorrupt(t *testing.T) {
	dir := writeSnapshots(t)
	db, err := pebble.Open(filepath.Join(dir, "snapshots"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The store's chunk keys of slot 20 start with "c/" and the slot,
	// big-endian (see storage.Pebble): rot the first.
	prefix := binary.BigEndian.AppendUint64([]byte("c/"), 20)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: binary.BigEndian.AppendUint64([]byte("c/"), 21)})
	if err != nil {
		t.Fatal(err)
	}
	if !it.First() {
		t.Fatal("no chunk of slot 20 in the store")
	}
	key := append([]byte(nil), it.Key()...)
	it.Close()
	if err := db.Set(key, []byte(strings.Repeat("rot!! ", 20)), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errOut := runCLI("snapshot", "ls", dir)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(errOut, "1 of 2") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestSnapshotLsNotAStore(t *testing.T) {
	code, _, errOut := runCLI("snapshot", "ls", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "not a snapshot store") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}
