package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sort"
	"sync"
)

// MemFS is an in-memory FS for crash tests. It remembers, for every file and
// for the directory, what was made durable (by File.Sync and FS.SyncDir) and
// what was only written. Crash throws away what was not durable, optionally
// keeping a random part of it torn at any byte, the way a power cut leaves a
// real disk. It is safe for concurrent use.
type MemFS struct {
	mu sync.Mutex
	// epoch increases at every Crash; files opened before it fail after it,
	// as a crashed process's descriptors would.
	epoch   int
	names   map[string]*memInode // the namespace as the running process sees it
	durable map[string]*memInode // the namespace as of the last SyncDir
	dirOps  []memDirOp           // namespace changes since the last SyncDir
	locked  bool
	fault   func(op FaultOp, name string) error
}

// FaultOp names an operation for MemFS.SetFault.
type FaultOp string

// The operations a fault can be injected into.
const (
	OpCreate   FaultOp = "create"
	OpWrite    FaultOp = "write"
	OpSync     FaultOp = "sync"
	OpTruncate FaultOp = "truncate"
	OpRename   FaultOp = "rename"
	OpRemove   FaultOp = "remove"
	OpSyncDir  FaultOp = "syncdir"
)

// ErrCrashed is returned by a MemFS file opened before the last Crash.
var ErrCrashed = errors.New("wal: memfs: file belongs to a crashed process")

type memInode struct {
	data     []byte     // what reads see now
	synced   []byte     // what survives a crash for sure
	unsynced []memWrite // changes since the last Sync, oldest first
}

// memWrite is one change to a file's content: a write, or a truncation when
// data is nil.
type memWrite struct {
	off  int64
	data []byte
	size int64
}

type memDirOp struct {
	name  string
	inode *memInode // nil removes name
}

// NewMemFS returns an empty in-memory file system.
func NewMemFS() *MemFS {
	return &MemFS{names: map[string]*memInode{}, durable: map[string]*memInode{}}
}

// SetFault installs f, which is asked before every mutating operation; a
// non-nil error fails the operation without any effect. A nil f removes the
// hook. f is called with the file system's lock held and must not call back
// into it.
func (m *MemFS) SetFault(f func(op FaultOp, name string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

func (m *MemFS) check(op FaultOp, name string) error {
	if m.fault != nil {
		if err := m.fault(op, name); err != nil {
			return fmt.Errorf("memfs %s %s: %w", op, name, err)
		}
	}
	return nil
}

// Crash simulates a power cut followed by a restart. With a nil rng only
// durable state survives. Otherwise every file also keeps a random prefix of
// its unsynced writes, the last of them torn at a random byte (and, one time
// in four, with random bytes where the torn part should be), and the
// directory keeps a random prefix of its unsynced changes. Files opened
// before the crash stop working, the lock is released and the fault hook is
// removed.
func (m *MemFS) Crash(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make(map[string]*memInode, len(m.durable))
	for name, ino := range m.durable {
		names[name] = ino
	}
	keep := 0
	if rng != nil {
		keep = rng.IntN(len(m.dirOps) + 1)
	}
	for _, op := range m.dirOps[:keep] {
		if op.inode == nil {
			delete(names, op.name)
		} else {
			names[op.name] = op.inode
		}
	}
	seen := map[*memInode]bool{}
	for _, ino := range names {
		if !seen[ino] {
			seen[ino] = true
			ino.crash(rng)
		}
	}
	m.names = names
	m.durable = make(map[string]*memInode, len(names))
	for name, ino := range names {
		m.durable[name] = ino
	}
	m.dirOps = nil
	m.epoch++
	m.locked = false
	m.fault = nil
}

func (ino *memInode) crash(rng *rand.Rand) {
	data := append([]byte(nil), ino.synced...)
	if rng != nil && len(ino.unsynced) > 0 {
		keep := rng.IntN(len(ino.unsynced) + 1)
		for i, w := range ino.unsynced[:keep] {
			if i == keep-1 && w.data != nil && len(w.data) > 0 && rng.IntN(2) == 0 {
				// Tear the last kept write at a random byte.
				torn := append([]byte(nil), w.data[:rng.IntN(len(w.data))]...)
				if rng.IntN(4) == 0 {
					for j := range torn {
						torn[j] = byte(rng.Uint32())
					}
				}
				w = memWrite{off: w.off, data: torn}
			}
			data = w.apply(data)
		}
	}
	ino.data = data
	ino.synced = append([]byte(nil), data...)
	ino.unsynced = nil
}

func (w memWrite) apply(data []byte) []byte {
	if w.data == nil {
		if w.size <= int64(len(data)) {
			return data[:w.size]
		}
		return append(data, make([]byte, w.size-int64(len(data)))...)
	}
	if end := w.off + int64(len(w.data)); end > int64(len(data)) {
		data = append(data, make([]byte, end-int64(len(data)))...)
	}
	copy(data[w.off:], w.data)
	return data
}

// ReadFile returns a copy of a file's current content.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[name]
	if !ok {
		return nil, fmt.Errorf("memfs: %s: %w", name, fs.ErrNotExist)
	}
	return append([]byte(nil), ino.data...), nil
}

// WriteFile replaces a file's content, durably, as a test's way of planting
// damage; it bypasses the fault hook.
func (m *MemFS) WriteFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[name]
	if !ok {
		ino = &memInode{}
		m.names[name] = ino
	}
	m.durable[name] = ino
	ino.data = append([]byte(nil), data...)
	ino.synced = append([]byte(nil), data...)
	ino.unsynced = nil
}

// Lock implements FS.
func (m *MemFS) Lock() (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked {
		return nil, fmt.Errorf("%w: memfs", ErrLocked)
	}
	m.locked = true
	return &memLock{m: m, epoch: m.epoch}, nil
}

type memLock struct {
	m     *MemFS
	epoch int
	once  sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.m.mu.Lock()
		defer l.m.mu.Unlock()
		if l.epoch == l.m.epoch {
			l.m.locked = false
		}
	})
	return nil
}

// List implements FS.
func (m *MemFS) List() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.names))
	for name := range m.names {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(OpCreate, name); err != nil {
		return nil, err
	}
	ino := &memInode{}
	m.names[name] = ino
	m.dirOps = append(m.dirOps, memDirOp{name: name, inode: ino})
	return &memFile{m: m, ino: ino, name: name, epoch: m.epoch}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[name]
	if !ok {
		return nil, fmt.Errorf("memfs: open %s: %w", name, fs.ErrNotExist)
	}
	return &memFile{m: m, ino: ino, name: name, epoch: m.epoch}, nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[oldName]
	if !ok {
		return fmt.Errorf("memfs: rename %s: %w", oldName, fs.ErrNotExist)
	}
	if err := m.check(OpRename, oldName); err != nil {
		return err
	}
	delete(m.names, oldName)
	m.names[newName] = ino
	m.dirOps = append(m.dirOps, memDirOp{name: newName, inode: ino}, memDirOp{name: oldName})
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.names[name]; !ok {
		return fmt.Errorf("memfs: remove %s: %w", name, fs.ErrNotExist)
	}
	if err := m.check(OpRemove, name); err != nil {
		return err
	}
	delete(m.names, name)
	m.dirOps = append(m.dirOps, memDirOp{name: name})
	return nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(OpSyncDir, ""); err != nil {
		return err
	}
	m.durable = make(map[string]*memInode, len(m.names))
	for name, ino := range m.names {
		m.durable[name] = ino
	}
	m.dirOps = nil
	return nil
}

type memFile struct {
	m     *MemFS
	ino   *memInode
	name  string
	epoch int
}

func (f *memFile) lock() error {
	f.m.mu.Lock()
	if f.epoch != f.m.epoch {
		f.m.mu.Unlock()
		return ErrCrashed
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.lock(); err != nil {
		return 0, err
	}
	defer f.m.mu.Unlock()
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.lock(); err != nil {
		return 0, err
	}
	defer f.m.mu.Unlock()
	if err := f.m.check(OpWrite, f.name); err != nil {
		return 0, err
	}
	w := memWrite{off: off, data: append([]byte(nil), p...)}
	f.ino.data = w.apply(f.ino.data)
	f.ino.unsynced = append(f.ino.unsynced, w)
	return len(p), nil
}

func (f *memFile) Sync() error {
	if err := f.lock(); err != nil {
		return err
	}
	defer f.m.mu.Unlock()
	if err := f.m.check(OpSync, f.name); err != nil {
		return err
	}
	f.ino.synced = append(f.ino.synced[:0], f.ino.data...)
	f.ino.unsynced = nil
	return nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.lock(); err != nil {
		return err
	}
	defer f.m.mu.Unlock()
	if err := f.m.check(OpTruncate, f.name); err != nil {
		return err
	}
	w := memWrite{size: size}
	f.ino.data = w.apply(f.ino.data)
	f.ino.unsynced = append(f.ino.unsynced, w)
	return nil
}

func (f *memFile) Size() (int64, error) {
	if err := f.lock(); err != nil {
		return 0, err
	}
	defer f.m.mu.Unlock()
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Close() error { return nil }
