package storage

import (
	"bytes"
	"errors"
	"hash"
	"io"
	"sort"
	"sync"
)

// Mem is a SnapshotStore in memory, for tests and the simulator.
type Mem struct {
	mu    sync.Mutex
	snaps map[uint64]*memSnap
}

type memSnap struct {
	meta Meta
	data []byte
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{snaps: map[uint64]*memSnap{}} }

// Create implements SnapshotStore.
func (s *Mem) Create(slot uint64, ballot Ballot) (Writer, error) {
	return &memWriter{s: s, meta: Meta{Slot: slot, Ballot: ballot}, h: NewChecksum()}, nil
}

type memWriter struct {
	s    *Mem
	meta Meta
	buf  bytes.Buffer
	h    hash.Hash32
	done bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("storage: write to a finished snapshot")
	}
	w.h.Write(p)
	return w.buf.Write(p)
}

func (w *memWriter) Commit() (Meta, error) {
	if w.done {
		return Meta{}, errors.New("storage: snapshot already finished")
	}
	w.done = true
	w.meta.Size, w.meta.Checksum = int64(w.buf.Len()), w.h.Sum32()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.snaps[w.meta.Slot] = &memSnap{meta: w.meta, data: w.buf.Bytes()}
	return w.meta, nil
}

func (w *memWriter) Abort() error {
	w.done = true
	return nil
}

// Latest implements SnapshotStore.
func (s *Mem) Latest() (Meta, bool, error) {
	l, _ := s.List()
	if len(l) == 0 {
		return Meta{}, false, nil
	}
	return l[len(l)-1], true, nil
}

// List implements SnapshotStore.
func (s *Mem) List() ([]Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make([]Meta, 0, len(s.snaps))
	for _, sn := range s.snaps {
		l = append(l, sn.meta)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Slot < l[j].Slot })
	return l, nil
}

// Open implements SnapshotStore.
func (s *Mem) Open(slot uint64) (io.ReadCloser, Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snaps[slot]
	if !ok {
		return nil, Meta{}, ErrNotFound
	}
	return io.NopCloser(VerifyingReader(bytes.NewReader(sn.data), sn.meta)), sn.meta, nil
}

// Prune implements SnapshotStore.
func (s *Mem) Prune(keep int) error {
	l, _ := s.List()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < len(l)-keep; i++ {
		delete(s.snaps, l[i].Slot)
	}
	return nil
}

// Close implements SnapshotStore.
func (s *Mem) Close() error { return nil }
