package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func validMeta(slot uint64) []byte {
	return encodeMeta(storedMeta{Meta: Meta{Slot: slot, Ballot: Ballot{Round: 3, Node: 1}, Size: 5000, Checksum: 0xdeadbeef}, gen: 7})
}

// FuzzDecodeMeta: whatever bytes are stored as metadata, decodeMeta
// returns an error naming the snapshot and matching ErrCorrupt, or
// metadata of the slot it was read for, which encodes back to the same
// bytes (version 2).
func FuzzDecodeMeta(f *testing.F) {
	f.Add(uint64(9), []byte{})
	f.Add(uint64(9), []byte{metaV2})
	f.Add(uint64(9), validMeta(9))
	f.Add(uint64(9), validMeta(9)[:metaV2Len-1])
	f.Add(uint64(9), validMeta(10))
	f.Add(uint64(9), v1Meta(Meta{Slot: 9, Size: 10, Checksum: 1}))
	f.Add(uint64(9), v1Meta(Meta{Slot: 9, Size: -1, Checksum: 1}))
	f.Add(uint64(9), bytes.Repeat([]byte{0xff}, metaV2Len))
	f.Fuzz(func(t *testing.T, slot uint64, b []byte) {
		m, err := decodeMeta(slot, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("slot %d", slot)) {
				t.Fatalf("decodeMeta(%d, %x): %v; want ErrCorrupt naming the slot", slot, b, err)
			}
			return
		}
		if m.Slot != slot || m.Size < 0 {
			t.Fatalf("decodeMeta(%d, %x) = %+v", slot, b, m)
		}
		if b[0] == metaV2 && !bytes.Equal(encodeMeta(m), b) {
			t.Fatalf("decodeMeta(%d, %x) = %+v, which encodes to %x", slot, b, m, encodeMeta(m))
		}
	})
}

// FuzzDecodeTrailer: whatever bytes end a snapshot's file, decodeTrailer
// returns an error naming the snapshot and matching ErrCorrupt, or
// metadata of the slot it was read for, which encodes back to the same
// bytes.
func FuzzDecodeTrailer(f *testing.F) {
	good := encodeTrailer(Meta{Slot: 9, Ballot: Ballot{Round: 3, Node: 1}, Size: 5000, Checksum: 0xdeadbeef})
	f.Add(uint64(9), []byte{})
	f.Add(uint64(9), good)
	f.Add(uint64(9), good[:trailerLen-1])
	f.Add(uint64(10), good)
	f.Add(uint64(9), bytes.Repeat([]byte{0xff}, trailerLen))
	f.Fuzz(func(t *testing.T, slot uint64, b []byte) {
		m, err := decodeTrailer(slot, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("slot %d", slot)) {
				t.Fatalf("decodeTrailer(%d, %x): %v; want ErrCorrupt naming the slot", slot, b, err)
			}
			return
		}
		if m.Slot != slot || m.Size < 0 || !bytes.Equal(encodeTrailer(m), b) {
			t.Fatalf("decodeTrailer(%d, %x) = %+v, which encodes to %x", slot, b, m, encodeTrailer(m))
		}
	})
}

// TestDamagedMetadata damages the metadata (the trailer) of the file of
// the snapshot of slot 9, beside a sound snapshot of slot 7. List, Latest
// and Open must return an error matching ErrCorrupt that names slot 9;
// the store must still open, and the sound snapshot still read.
func TestDamagedMetadata(t *testing.T) {
	data := []byte(strings.Repeat("nine ", 50))
	good := append(append([]byte(nil), data...), encodeTrailer(Meta{Slot: 9, Size: int64(len(data)), Checksum: crc32c(data)})...)
	withTrailer := func(m Meta) []byte { return append(append([]byte(nil), data...), encodeTrailer(m)...) }
	for name, v := range map[string][]byte{
		"empty":         {},
		"shorter":       good[:trailerLen-1],
		"truncated":     good[:len(good)-1],
		"flipped bit":   func() []byte { b := append([]byte(nil), good...); b[len(b)-20] ^= 1; return b }(),
		"other slot":    withTrailer(Meta{Slot: 10, Size: int64(len(data))}),
		"version 200":   func() []byte { b := append([]byte(nil), good...); b[len(data)+4] = 200; return fixCRC(b) }(),
		"negative size": withTrailer(Meta{Slot: 9, Size: -1}),
	} {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			s, err := OpenPebble("snaps", PebbleOptions{FS: fs, ChunkBytes: 100})
			if err != nil {
				t.Fatal(err)
			}
			writeSnapshot(t, s, 7, []byte(strings.Repeat("seven ", 50)))
			writeFile(t, fs, "snaps/"+snapName(9), v)
			wantErr := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "slot 9") {
					t.Errorf("%s with damaged metadata: %v; want ErrCorrupt naming slot 9", what, err)
				}
			}
			_, err = s.List()
			wantErr("List", err)
			_, _, err = s.Latest()
			wantErr("Latest", err)
			_, _, err = s.Open(9)
			wantErr("Open", err)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = OpenPebble("snaps", PebbleOptions{FS: fs, ChunkBytes: 100})
			if err != nil {
				t.Fatalf("reopening a store with damaged metadata: %v", err)
			}
			defer s.Close()
			if _, err := Verify(s, 7); err != nil {
				t.Fatalf("the sound snapshot beside damaged metadata: %v", err)
			}
		})
	}
}

func fixCRC(b []byte) []byte {
	t := b[len(b)-trailerLen:]
	binary.BigEndian.PutUint32(t[trailerLen-4:], crc32c(t[:trailerLen-4]))
	return b
}

func writeFile(t *testing.T, fs vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestMigratesPebbleLayout: a store that earlier versions kept in a Pebble
// database (metadata version 1 with chunks under d/, and version 2 with
// generations under c/) is listed as it is when opened read-only, and
// opened for writing, its snapshots move into files, checked as they
// were recorded (a damaged one stays damaged), and the database goes.
func TestMigratesPebbleLayout(t *testing.T) {
	fs := vfs.NewMem()
	v1 := []byte(strings.Repeat("v1 state ", 30))
	v2 := []byte(strings.Repeat("v2 state ", 300))
	rotten := []byte(strings.Repeat("rotten ", 40))
	snaps := []LegacySnapshot{
		{Meta: Meta{Slot: 4, Ballot: Ballot{Round: 3, Node: 1}, Size: int64(len(v1)), Checksum: crc32c(v1)}, Data: v1},
		{Meta: Meta{Slot: 8, Ballot: Ballot{Round: 5, Node: 2}, Size: int64(len(v2)), Checksum: crc32c(v2)}, Gen: 3, Data: v2, Chunk: 1000},
		{Meta: Meta{Slot: 9, Size: int64(len(rotten)), Checksum: crc32c(rotten) ^ 1}, Gen: 4, Data: rotten},
		{Meta: Meta{Slot: 11}, Gen: 5}, // empty
	}
	if err := WriteLegacy(fs, "snaps", snaps...); err != nil {
		t.Fatal(err)
	}
	check := func(s *Pebble, when string) {
		t.Helper()
		l, err := s.List()
		if err != nil {
			t.Fatalf("%s: List: %v", when, err)
		}
		if len(l) < len(snaps) {
			t.Fatalf("%s: List = %+v", when, l)
		}
		for i, m := range l[:len(snaps)] {
			if m != snaps[i].Meta {
				t.Fatalf("%s: List has %+v, %+v was recorded", when, m, snaps[i].Meta)
			}
			_, err := Verify(s, m.Slot)
			switch {
			case m.Slot == 9 && !errors.Is(err, ErrChecksum):
				t.Fatalf("%s: the damaged snapshot verifies: %v", when, err)
			case m.Slot != 9 && err != nil:
				t.Fatalf("%s: %v", when, err)
			}
		}
		if got := readSnapshot(t, s, 8); !bytes.Equal(got, v2) {
			t.Fatalf("%s: the snapshot of slot 8 reads back %d bytes", when, len(got))
		}
	}
	ro, err := OpenPebble("snaps", PebbleOptions{FS: fs, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(ro, "read-only")
	if _, err := ro.Create(20, Ballot{}); err == nil {
		t.Fatal("a read-only store takes a snapshot")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		s, err := OpenPebble("snaps", PebbleOptions{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		check(s, fmt.Sprintf("open %d for writing", i+1))
		writeSnapshot(t, s, 12, []byte("new"))
		if err := s.Prune(len(snaps) + 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		names, _ := fs.List("snaps")
		for _, name := range names {
			if isPebbleFile(name) {
				t.Fatalf("open %d: the Pebble database's %s is left: %v", i+1, name, names)
			}
		}
	}
}

// TestMigrationRefusesDamagedMetadata: a Pebble database whose metadata is
// damaged is not moved into files, and not deleted; the error names the
// snapshot.
func TestMigrationRefusesDamagedMetadata(t *testing.T) {
	fs := vfs.NewMem()
	if err := WriteLegacy(fs, "snaps", LegacySnapshot{Meta: Meta{Slot: 9}, Gen: 1, RawMeta: []byte{metaV2, 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPebble("snaps", PebbleOptions{FS: fs})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "slot 9") {
		t.Fatalf("opening a Pebble-layout store with damaged metadata: %v; want ErrCorrupt naming slot 9", err)
	}
	names, _ := fs.List("snaps")
	if !isLegacyStore(names) || slices.Contains(names, formatFile) {
		t.Fatalf("after a refused migration the directory holds %v", names)
	}
}

func writeSnapshot(t *testing.T, s SnapshotStore, slot uint64, data []byte) Meta {
	t.Helper()
	w, err := s.Create(slot, Ballot{Round: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readSnapshot(t *testing.T, s SnapshotStore, slot uint64) []byte {
	t.Helper()
	r, _, err := s.Open(slot)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
