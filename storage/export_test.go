package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
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

// CorruptPebble flips a byte in the middle of the middle chunk of the
// stored snapshot of slot, writing the chunk back directly.
func CorruptPebble(p *Pebble, slot uint64) error {
	v, closer, err := p.db.Get(metaKey(slot))
	if err != nil {
		return err
	}
	m, err := decodeMeta(slot, v)
	closer.Close()
	if err != nil {
		return err
	}
	chunks := (m.Size + int64(p.chunk) - 1) / int64(p.chunk)
	if chunks == 0 {
		return fmt.Errorf("the snapshot of slot %d has no bytes to damage", slot)
	}
	key := chunkKey(slot, m.gen, uint32(chunks/2))
	v, closer, err = p.db.Get(key)
	if err != nil {
		return err
	}
	damaged := append([]byte(nil), v...)
	closer.Close()
	damaged[len(damaged)/2] ^= 0xff
	return p.db.Set(key, damaged, pebble.Sync)
}
