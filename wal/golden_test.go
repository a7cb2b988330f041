package wal

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const goldenDir = "testdata/golden"

// goldenLog writes the log that testdata/golden pins: every record type, an
// overwrite and a compaction, in one 4 KiB segment.
func goldenLog(t *testing.T) (*memfs.FS, *model) {
	fs := memfs.New()
	l := mustOpen(t, fs, Options{SegmentBytes: 4096, inlinePrealloc: true})
	defer l.Close()
	m := newModel()
	steps := []Batch{
		{HardState: &HardState{Promised: Ballot{Round: 1, Node: 1}}},
		{Entries: []Entry{
			{Slot: 1, Ballot: Ballot{Round: 1, Node: 1}, Value: []byte("alpha")},
			{Slot: 2, Ballot: Ballot{Round: 1, Node: 1}, Value: []byte("beta")},
			{Slot: 3, Ballot: Ballot{Round: 1, Node: 1}, Value: []byte("gamma")},
		}},
		{HardState: &HardState{Promised: Ballot{Round: 2, Node: 2}, Commit: 2}, Entries: []Entry{
			{Slot: 3, Ballot: Ballot{Round: 2, Node: 2}, Value: []byte("gamma, again")},
			{Slot: 4, Ballot: Ballot{Round: 2, Node: 2}, Value: nil},
		}},
	}
	for _, b := range steps {
		if err := l.Save(b, true); err != nil {
			t.Fatal(err)
		}
		m.save(b)
	}
	c := Compacted{Slot: 1, Ballot: Ballot{Round: 1, Node: 1}}
	if err := l.Compact(c); err != nil {
		t.Fatal(err)
	}
	m.compact(c)
	return fs, m
}

// TestGoldenFormat pins the on-disk format: a change to these bytes is a
// change of format, which needs a new format version and a way to read the
// old one.
func TestGoldenFormat(t *testing.T) {
	fs, _ := goldenLog(t)
	name := segmentName(1, 1)
	got, err := fs.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("the log's bytes differ from %s from byte %d on (%d bytes written, %d in the file)", path, i, len(got), len(want))
	}
}

// TestGoldenReadsBack opens a copy of the golden directories with the real
// file system: this build must read what the pinned formats hold, the
// current one and version 1 (whose header has no record limit).
func TestGoldenReadsBack(t *testing.T) {
	for _, dir := range []string{goldenDir, goldenV1Dir} {
		t.Run(filepath.Base(dir), func(t *testing.T) { goldenReadsBack(t, dir) })
	}
}

// goldenV1Dir holds the golden log as format version 1 wrote it.
const goldenV1Dir = "testdata/golden-v1"

func goldenReadsBack(t *testing.T, goldenDir string) {
	_, m := goldenLog(t)
	dir := t.TempDir()
	names, err := OSFS(goldenDir).List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, _, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := m.check(l); err != nil {
		t.Fatal(err)
	}
}
