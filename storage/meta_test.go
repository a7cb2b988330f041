package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func validMeta(slot uint64) []byte {
	return encodeMeta(Meta{Slot: slot, Ballot: Ballot{Round: 3, Node: 1}, Size: 5000, Checksum: 0xdeadbeef})
}

// v1Meta is metadata of version 1, whatever its fields.
func v1Meta(slot uint64, size int64, sum uint32) []byte {
	b := []byte{metaVersion}
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
// bytes.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(uint64(9), []byte{})
	f.Add(uint64(9), []byte{metaVersion})
	f.Add(uint64(9), validMeta(9))
	f.Add(uint64(9), validMeta(9)[:metaLen-1])
	f.Add(uint64(9), validMeta(10))
	f.Add(uint64(9), v1Meta(9, 10, 1))
	f.Add(uint64(9), v1Meta(9, -1, 1))
	f.Add(uint64(9), bytes.Repeat([]byte{0xff}, metaLen))
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
		if !bytes.Equal(encodeMeta(m), b) {
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
		"one byte":      {metaVersion},
		"truncated":     validMeta(9)[:20],
		"too long":      append(validMeta(9), 0),
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
