// Package storage holds snapshots of the state machine: the SnapshotStore
// interface an embedder can implement, and two implementations: Pebble
// (the default for durable replicas: a file per snapshot, named for the
// Pebble database it replaced) and memory (tests, the simulator).
// It imports nothing else of this module.
//
// A snapshot is a stream of bytes for one slot, with metadata: the slot,
// the ballot of its entry, the size and a CRC-32C checksum of the bytes.
// A snapshot becomes visible only when its writer's Commit returns, and
// then it is durable; a crash while writing one never leaves it visible.
// Readers verify the checksum, and a snapshot is used only after it
// verifies (see Verify).
package storage

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
)

// Ballot is the ballot of the entry at a snapshot's slot.
type Ballot struct {
	Round uint64
	Node  uint64
}

// Meta describes a committed snapshot.
type Meta struct {
	Slot     uint64
	Ballot   Ballot
	Size     int64
	Checksum uint32 // CRC-32C (Castagnoli) of the bytes
}

// SnapshotStore stores snapshots. Implementations must be safe for
// concurrent use; the engine writes one snapshot at a time but may read
// (to send one to a lagging follower) while it writes another.
type SnapshotStore interface {
	// Create starts a snapshot of the state after applying slot. Nothing
	// of it is visible until its Commit returns.
	Create(slot uint64, ballot Ballot) (Writer, error)
	// Latest returns the newest committed snapshot; ok is false if there
	// is none.
	Latest() (m Meta, ok bool, err error)
	// List returns every committed snapshot, oldest first.
	List() ([]Meta, error)
	// Open opens the committed snapshot of slot for reading; ErrNotFound
	// if there is none. The reader checks size and checksum as it goes:
	// its last Read returns an error matching ErrChecksum if they do not
	// match.
	Open(slot uint64) (io.ReadCloser, Meta, error)
	// Prune deletes every committed snapshot but the newest keep.
	Prune(keep int) error
	// Close releases the store.
	Close() error
}

// Writer is a snapshot being written.
type Writer interface {
	io.Writer
	// Commit makes the snapshot durable and visible, and returns its
	// metadata. Once it returns, a crash cannot lose the snapshot.
	Commit() (Meta, error)
	// Abort discards the snapshot.
	Abort() error
}

var (
	// ErrNotFound is returned for a snapshot that does not exist.
	ErrNotFound = errors.New("storage: no such snapshot")
	// ErrChecksum is matched by errors from reading a snapshot whose bytes
	// do not match its size or checksum.
	ErrChecksum = errors.New("storage: snapshot checksum mismatch")
	// ErrCorrupt is matched by errors about a store's own records of its
	// snapshots (their metadata) that are damaged.
	ErrCorrupt = errors.New("storage: snapshot store damaged")
	// ErrFailed is matched by the errors of a store that failed in a way
	// it cannot recover from while open (the disk is full, a write or an
	// fsync failed where the store cannot tell what reached the disk): it
	// refuses every further call. What it had committed is intact, and
	// reopening it once the cause is gone recovers that.
	ErrFailed = errors.New("storage: the snapshot store failed")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewChecksum returns the hash stores use for Meta.Checksum.
func NewChecksum() hash.Hash32 { return crc32.New(castagnoli) }

// Verify reads the snapshot of slot to its end and reports whether its
// bytes match its metadata.
func Verify(s SnapshotStore, slot uint64) (Meta, error) {
	r, m, err := s.Open(slot)
	if err != nil {
		return m, err
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		if !strings.Contains(err.Error(), fmt.Sprintf("slot %d", slot)) {
			// A store's reader that does not say which snapshot it read.
			err = fmt.Errorf("storage: snapshot of slot %d: %w", slot, err)
		}
		return m, err
	}
	return m, nil
}

// VerifyingReader wraps the reader of a snapshot's bytes: its last Read
// (the one that returns io.EOF) returns an error matching ErrChecksum,
// naming the snapshot's slot, instead if the bytes read do not match m.
// Stores use it in Open.
func VerifyingReader(r io.Reader, m Meta) io.Reader {
	return &verifyingReader{r: r, m: m, h: NewChecksum()}
}

type verifyingReader struct {
	r io.Reader
	m Meta
	h hash.Hash32
	n int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.m.Size {
		return n, fmt.Errorf("%w: snapshot of slot %d: more than the %d bytes recorded", ErrChecksum, v.m.Slot, v.m.Size)
	}
	if err == io.EOF {
		if v.n != v.m.Size {
			return n, fmt.Errorf("%w: snapshot of slot %d: %d bytes, %d recorded", ErrChecksum, v.m.Slot, v.n, v.m.Size)
		}
		if sum := v.h.Sum32(); sum != v.m.Checksum {
			return n, fmt.Errorf("%w: snapshot of slot %d: checksum %08x, %08x recorded", ErrChecksum, v.m.Slot, sum, v.m.Checksum)
		}
	}
	return n, err
}
