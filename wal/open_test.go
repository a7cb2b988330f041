package wal

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

// segmentBuilder crafts segment files byte by byte, for states the log
// itself would never write.
type segmentBuilder struct {
	seq, firstSlot uint64
	buf            []byte
	enc            *bodyEncoder
	records        uint32
}

func newSegment(seq, firstSlot uint64) *segmentBuilder {
	b := &segmentBuilder{seq: seq, firstSlot: firstSlot, enc: newBodyEncoder()}
	b.buf = segmentHeader{seq: seq, firstSlot: firstSlot, maxRecordBytes: DefaultMaxRecordBytes}.appendTo(nil)
	return b.hard(HardState{}).commit()
}

func (b *segmentBuilder) hard(h HardState) *segmentBuilder {
	b.buf = b.enc.appendRecord(b.buf, b.seq, typeHardState, &h)
	b.records++
	return b
}

func (b *segmentBuilder) entries(from, to uint64) *segmentBuilder {
	for s := from; s <= to; s++ {
		b.buf = b.enc.appendRecord(b.buf, b.seq, typeEntry, &Entry{Slot: s, Ballot: Ballot{Round: 1, Node: 1}, Value: value(s)})
		b.records++
	}
	return b
}

func (b *segmentBuilder) commit() *segmentBuilder {
	b.buf = b.enc.appendRecord(b.buf, b.seq, typeCommit, &commitBody{SyncedOffset: uint64(len(b.buf)), Records: b.records})
	b.records = 0
	return b
}

func (b *segmentBuilder) name() string { return segmentName(b.seq, b.firstSlot) }

func TestOpen(t *testing.T) {
	type files map[string][]byte
	seg := func(b *segmentBuilder) (string, []byte) { return b.name(), b.buf }
	build := func(segs ...*segmentBuilder) files {
		f := files{}
		for _, s := range segs {
			name, data := seg(s)
			f[name] = data
		}
		return f
	}
	cases := []struct {
		name  string
		files files
		// want is the recovered state, unless wantErr is set: a substring
		// of the error, which must also match ErrCorrupt.
		want     InitialState
		wantErr  string
		wantFile string // the file the error must name
		wantGone []string
	}{
		{name: "empty directory", files: files{}, want: InitialState{FirstSlot: 1, LastSlot: 0}},
		{
			name:  "one segment",
			files: build(newSegment(1, 1).entries(1, 5).commit()),
			want:  InitialState{FirstSlot: 1, LastSlot: 5},
		},
		{
			name: "many segments",
			files: build(
				newSegment(1, 1).entries(1, 5).commit(),
				newSegment(2, 6).entries(6, 9).commit(),
				newSegment(3, 10).hard(HardState{Commit: 8}).entries(10, 12).commit(),
			),
			want: InitialState{HardState: HardState{Commit: 8}, FirstSlot: 1, LastSlot: 12},
		},
		{
			name: "overwrite in a later segment",
			files: build(
				newSegment(1, 1).entries(1, 9).commit(),
				newSegment(2, 4).entries(4, 5).commit(),
			),
			want: InitialState{FirstSlot: 1, LastSlot: 5},
		},
		{
			name: "leftover temp file",
			files: func() files {
				f := build(newSegment(1, 1).entries(1, 3).commit())
				f[tempName(2)] = make([]byte, 4096)
				return f
			}(),
			want:     InitialState{FirstSlot: 1, LastSlot: 3},
			wantGone: []string{tempName(2)},
		},
		{
			name:  "other files are left alone",
			files: files{"README": []byte("hello"), segmentName(1, 1): newSegment(1, 1).entries(1, 2).commit().buf},
			want:  InitialState{FirstSlot: 1, LastSlot: 2},
		},
		{
			name:     "header does not match the name",
			files:    files{segmentName(1, 1): newSegment(1, 2).entries(2, 3).commit().buf},
			wantErr:  "file name says",
			wantFile: segmentName(1, 1),
		},
		{
			name:     "bad header checksum",
			files:    files{segmentName(1, 1): func() []byte { b := newSegment(1, 1).buf; b[9] ^= 1; return b }()},
			wantErr:  "header checksum",
			wantFile: segmentName(1, 1),
		},
		{
			name:     "badly named segment",
			files:    files{"1-1.paxos": newSegment(1, 1).buf},
			wantErr:  "is not named",
			wantFile: "1-1.paxos",
		},
		{
			name: "gap in seq",
			files: build(
				newSegment(1, 1).entries(1, 5).commit(),
				newSegment(3, 6).entries(6, 9).commit(),
			),
			wantErr:  "segments 2 to 2 are missing",
			wantFile: segmentName(3, 6),
		},
		{
			name: "gap in slots",
			files: build(
				newSegment(1, 1).entries(1, 5).commit(),
				newSegment(2, 8).entries(8, 9).commit(),
			),
			wantErr:  "slots are missing",
			wantFile: segmentName(2, 8),
		},
		{
			name:     "oldest segment does not start at slot 1 and nothing is compacted",
			files:    build(newSegment(4, 50).entries(50, 52).commit()),
			wantErr:  "slots are missing",
			wantFile: segmentName(4, 50),
		},
		{
			name:     "hole inside a segment",
			files:    build(newSegment(1, 1).entries(1, 3).entries(5, 6).commit()),
			wantErr:  "leaves a hole",
			wantFile: segmentName(1, 1),
		},
		{
			name: "sealed segment with a torn batch",
			files: build(
				newSegment(1, 1).entries(1, 5), // no commit record
				newSegment(2, 6).entries(6, 9).commit(),
			),
			wantErr:  "has no commit record",
			wantFile: segmentName(1, 1),
		},
		{
			name:     "segment without its first batch",
			files:    files{segmentName(1, 1): segmentHeader{seq: 1, firstSlot: 1, maxRecordBytes: DefaultMaxRecordBytes}.appendTo(nil)},
			wantErr:  "first batch",
			wantFile: segmentName(1, 1),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := memfs.New()
			for name, data := range tc.files {
				fs.WriteFile(name, data)
			}
			l, st, err := Open("", Options{FS: fs, SegmentBytes: 4096, inlinePrealloc: true})
			if tc.wantErr != "" {
				if err == nil {
					l.Close()
					t.Fatalf("Open succeeded with %+v, want an error containing %q", st, tc.wantErr)
				}
				var ce *CorruptError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) || ce.File != tc.wantFile {
					t.Fatalf("Open: %v; want a CorruptError naming %s and containing %q", err, tc.wantFile, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			if st != tc.want {
				t.Fatalf("Open: %+v, want %+v", st, tc.want)
			}
			names, _ := fs.List()
			for _, gone := range tc.wantGone {
				for _, n := range names {
					if n == gone {
						t.Errorf("%s is still there", gone)
					}
				}
			}
			// The log must take a write and keep it.
			appendEntries(t, l, nil, st.LastSlot+1, st.LastSlot+1)
		})
	}
}

// TestOpenSyncsNewDirectories: Open on a path whose parents do not exist
// yet creates them, and must sync the parent of each new directory and the
// log directory itself, or a power loss could remove the log with its
// acknowledged entries.
func TestOpenSyncsNewDirectories(t *testing.T) {
	root := t.TempDir()
	var synced []string
	defer func(orig func(string) error) { syncDirPath = orig }(syncDirPath)
	orig := syncDirPath
	syncDirPath = func(dir string) error {
		synced = append(synced, dir)
		return orig(dir)
	}
	dir := filepath.Join(root, "a", "b", "wal")
	l, _, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, want := range []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b"), dir} {
		if !slices.Contains(synced, want) {
			t.Errorf("%s was not synced; synced: %v", want, synced)
		}
	}
}

// TestOpenSyncsTheDirectory: Open syncs the log directory even when it has
// nothing to clean up, because the process before may have renamed or
// deleted files without syncing it.
func TestOpenSyncsTheDirectory(t *testing.T) {
	fs := memfs.New()
	l := mustOpen(t, fs, Options{SegmentBytes: 4096, inlinePrealloc: true})
	appendEntries(t, l, nil, 1, 3)
	l.Close()
	syncs := 0
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if op == memfs.OpSyncDir {
			syncs++
		}
		return nil
	})
	l = mustOpen(t, fs, Options{SegmentBytes: 4096, inlinePrealloc: true})
	l.Close()
	if syncs == 0 {
		t.Fatal("Open did not sync the directory")
	}
}

// TestSmallerRecordLimitOnReopen writes records under a large MaxRecordBytes
// and reopens (and inspects) the log with a smaller one: each segment is
// read with the limit it was written with, so nothing acknowledged may be
// cut off as a torn tail or reported as damage.
func TestSmallerRecordLimitOnReopen(t *testing.T) {
	fs := memfs.New()
	l := mustOpen(t, fs, Options{SegmentBytes: 1 << 20, MaxRecordBytes: 256 << 10, inlinePrealloc: true})
	m := newModel()
	for s := uint64(1); s <= 4; s++ {
		b := Batch{Entries: []Entry{{Slot: s, Ballot: Ballot{Round: 1, Node: 1}, Value: bytes.Repeat([]byte{byte(s)}, 100<<10)}}}
		if err := l.Save(b, true); err != nil {
			t.Fatal(err)
		}
		m.save(b)
	}
	l.Close()
	small := Options{FS: fs, SegmentBytes: 1 << 20, MaxRecordBytes: 4096, inlinePrealloc: true}
	rep, err := Inspect("", small)
	if err != nil {
		t.Fatalf("Inspect with a smaller limit: %v", err)
	}
	if rep.Torn != nil || rep.State.LastSlot != 4 {
		t.Fatalf("Inspect with a smaller limit: last slot %d, torn tail %+v; want slot 4 and no torn tail", rep.State.LastSlot, rep.Torn)
	}
	l, _, err = Open("", small)
	if err != nil {
		t.Fatalf("Open with a smaller limit: %v", err)
	}
	if err := m.check(l); err != nil {
		t.Fatalf("Open with a smaller limit: %v", err)
	}
	// New entries are held to the new limit.
	if err := l.Save(Batch{Entries: []Entry{{Slot: 5, Value: make([]byte, 8192)}}}, true); err == nil {
		t.Error("Save accepted an entry above the new limit")
	}
	l.Close()
}
