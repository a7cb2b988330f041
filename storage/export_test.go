package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Test machinery that reaches behind the stores' backs, for the contract
// tests of storage_test: it lives here, in a test file, so that it is no
// part of the package's API.

// CorruptMem flips a byte in the middle of the stored snapshot of slot.
func CorruptMem(s *Mem, slot uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snaps[slot]
	if !ok || len(sn.data) == 0 {
		return fmt.Errorf("no snapshot of slot %d with bytes to damage", slot)
	}
	sn.data = append([]byte(nil), sn.data...)
	sn.data[len(sn.data)/2] ^= 0xff
	return nil
}

// CorruptPebble flips a byte in the middle of the stored bytes of the
// snapshot of slot, writing its file directly.
func CorruptPebble(p *Pebble, slot uint64) error {
	f, err := p.fs.OpenReadWrite(p.path(snapName(slot)), vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer f.Close()
	_, n, err := readTrailer(f, slot)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("the snapshot of slot %d has no bytes to damage", slot)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, n/2); err != nil {
		return err
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, n/2); err != nil {
		return err
	}
	return f.Sync()
}

// PebbleFile is the name of the file of the snapshot of slot in a store.
func PebbleFile(slot uint64) string { return snapName(slot) }

// LegacySnapshot is a snapshot as an earlier version stored it in its
// Pebble database: Gen 0 for the first version's layout.
type LegacySnapshot struct {
	Meta
	Gen  uint64
	Data []byte
	// Chunk is the size of its chunks (default 100).
	Chunk int
	// RawMeta, if set, is stored as its metadata instead.
	RawMeta []byte
}

// WriteLegacy creates, in dir, the Pebble database of a store written by
// an earlier version, holding snaps.
func WriteLegacy(fs vfs.FS, dir string, snaps ...LegacySnapshot) error {
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: pebbleLogger{l: hclog.NewNullLogger(), fail: &failure{}}})
	if err != nil {
		return err
	}
	for _, s := range snaps {
		chunk := s.Chunk
		if chunk == 0 {
			chunk = 100
		}
		for i := 0; i*chunk < len(s.Data); i++ {
			if err := db.Set(chunkKey(s.Slot, s.Gen, uint32(i)), s.Data[i*chunk:min(len(s.Data), (i+1)*chunk)], pebble.Sync); err != nil {
				db.Close()
				return err
			}
		}
		v := s.RawMeta
		if v == nil && s.Gen == 0 {
			v = v1Meta(s.Meta)
		} else if v == nil {
			v = encodeMeta(storedMeta{Meta: s.Meta, gen: s.Gen})
		}
		if err := db.Set(metaKey(s.Slot), v, pebble.Sync); err != nil {
			db.Close()
			return err
		}
	}
	return db.Close()
}

// v1Meta is metadata as the first version of the store wrote it.
func v1Meta(m Meta) []byte {
	b := []byte{metaV1}
	b = binary.BigEndian.AppendUint64(b, m.Slot)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Round)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Node)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	return binary.BigEndian.AppendUint32(b, m.Checksum)
}
