package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func validMeta(slot uint64) []byte {
	return encodeMeta(storedMeta{Meta: Meta{Slot: slot, Ballot: Ballot{Round: 3, Node: 1}, Size: 5000, Checksum: 0xdeadbeef}, gen: 7})
}

// v1Meta is metadata as the first version of the store wrote it.
func v1Meta(slot uint64, size int64, sum uint32) []byte {
	b := []byte{metaV1}
	b = append(b, bytes.Repeat([]byte{0}, 36)...)
	putUint64(b[1:], slot)
	putUint64(b[9:], 3)
	putUint64(b[17:], 1)
	putUint64(b[25:], uint64(size))
	b[33], b[34], b[35], b[36] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
	return b
}

func putUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (56 - 8*i))
	}
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
	f.Add(uint64(9), v1Meta(9, 10, 1))
	f.Add(uint64(9), v1Meta(9, -1, 1))
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

// TestDamagedMetadata stores damaged metadata for slot 9 beside a sound
// snapshot of slot 7. (Before, empty metadata panicked List, with an
// index out of range.) List, Latest and Open must return an error
// matching ErrCorrupt that names slot 9; the store must still open, and
// the sound snapshot still read.
func TestDamagedMetadata(t *testing.T) {
	for name, v := range map[string][]byte{
		"empty":         {},
		"one byte":      {metaV2},
		"truncated":     validMeta(9)[:20],
		"too long":      append(validMeta(9), 0),
		"flipped bit":   func() []byte { b := validMeta(9); b[12] ^= 1; return b }(),
		"other slot":    validMeta(10),
		"version 200":   append([]byte{200}, validMeta(9)[1:]...),
		"negative size": v1Meta(9, -1, 0),
	} {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			s, err := OpenPebble("snaps", PebbleOptions{FS: fs, ChunkBytes: 100})
			if err != nil {
				t.Fatal(err)
			}
			writeSnapshot(t, s, 7, []byte(strings.Repeat("seven ", 50)))
			if err := s.db.Set(metaKey(9), v, pebble.Sync); err != nil {
				t.Fatal(err)
			}
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

// TestReadsVersion1: a store written by the first version (metadata
// version 1, chunks under d/) reads back, and a snapshot committed at
// its slot replaces it in the new layout, leaving no chunk of the old.
func TestReadsVersion1(t *testing.T) {
	s, err := OpenPebble("snaps", PebbleOptions{FS: vfs.NewMem(), ChunkBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := []byte(strings.Repeat("v1 state ", 30))
	for i := 0; i*100 < len(old); i++ {
		if err := s.db.Set(chunkKey(4, 0, uint32(i)), old[i*100:min(len(old), i*100+100)], pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Set(metaKey(4), v1Meta(4, int64(len(old)), crc32c(old)), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := readSnapshot(t, s, 4); !bytes.Equal(got, old) {
		t.Fatalf("the version 1 snapshot reads back %q", got)
	}
	fresh := []byte("v2 state")
	writeSnapshot(t, s, 4, fresh)
	if got := readSnapshot(t, s, 4); !bytes.Equal(got, fresh) {
		t.Fatalf("the replacement reads back %q", got)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("d/"), UpperBound: []byte("d0")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.First() {
		t.Fatalf("a chunk of the replaced version 1 snapshot is left: %x", it.Key())
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
