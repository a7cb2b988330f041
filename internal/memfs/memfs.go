// Package memfs is an in-memory file system for the write-ahead log's crash
// and fault tests: it implements wal.FS (the interfaces of internal/walfs)
// and knows what a crash or a power loss would leave of what was written.
//
// It is test machinery, internal so that it is no part of wal's API; it
// imports walfs rather than wal so that wal's own tests can use it.
package memfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/paxos-go/paxos/internal/walfs"
)

// FS is an in-memory walfs.FS for crash tests. It remembers, for every file
// and for the directory, what was made durable (by File.Sync and
// FS.SyncDir) and what was only written, and models two events:
//
//   - Crash, a process crash: the process's open files stop working and its
//     lock is released, but everything it wrote, synced or not, and every
//     directory change it made stay visible to the next process, as the
//     kernel's page cache keeps them. None of it becomes durable by
//     surviving: a later power loss still drops what nobody synced.
//   - PowerLoss: only what was synced survives: file contents as of their
//     last Sync, and the directory as of its last SyncDir. Optionally, some
//     unsynced writes and directory changes reach the disk too, as they may
//     on a real one (see PowerLoss).
//
// Any number of process lives may pass between power losses. It is safe for
// concurrent use.
type FS struct {
	mu sync.Mutex
	// epoch increases at every Crash and PowerLoss; files opened before it
	// fail after it, as a crashed process's descriptors would.
	epoch   int
	names   map[string]*memInode // the namespace as the running process sees it
	durable map[string]*memInode // the namespace as of the last SyncDir
	dirOps  []memDirOp           // namespace changes since the last SyncDir
	locked  bool
	fault   func(op FaultOp, name string) error
	// hookMu makes calls of fault one at a time, as hooks that keep
	// counts expect, without holding mu (see SetFault).
	hookMu sync.Mutex
}

// FaultOp names an operation for FS.SetFault.
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

// ErrCrashed is returned by a file opened before the last Crash or
// PowerLoss.
var ErrCrashed = errors.New("memfs: file belongs to a crashed process")

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

// FS is what the log runs on.
var _ walfs.FS = (*FS)(nil)

// New returns an empty in-memory file system.
func New() *FS {
	return &FS{names: map[string]*memInode{}, durable: map[string]*memInode{}}
}

// SetFault installs f, which is asked before every mutating operation; a
// non-nil error fails the operation without any effect. A nil f removes the
// hook. f is called one call at a time, but without the file system's
// lock, so it may block, to hold one operation at its start while the
// operations that need no hook go on (as a slow disk would), and may call
// into the file system. An operation f lets through
// takes effect as if it started when f returned: a file whose process
// crashed meanwhile fails with ErrCrashed, a file removed meanwhile is not
// found.
func (m *FS) SetFault(f func(op FaultOp, name string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// check asks the fault hook about op. m.mu is held, and released while the
// hook runs (see SetFault): callers check what may have changed after it.
func (m *FS) check(op FaultOp, name string) error {
	f := m.fault
	if f == nil {
		return nil
	}
	m.mu.Unlock()
	m.hookMu.Lock()
	err := f(op, name)
	m.hookMu.Unlock()
	m.mu.Lock()
	if err != nil {
		return fmt.Errorf("memfs %s %s: %w", op, name, err)
	}
	return nil
}

// Crash simulates the crash of the process using the file system: files it
// had open fail with ErrCrashed, its lock is released and the fault hook is
// removed. Nothing is lost, and nothing becomes durable: unsynced data and
// directory changes stay visible, and stay unsynced until someone syncs
// them or a PowerLoss drops them.
func (m *FS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endProcess()
}

func (m *FS) endProcess() {
	m.epoch++
	m.locked = false
	m.fault = nil
}

// PowerLoss simulates a power cut followed by a restart; it also ends the
// running process, as Crash does. With a nil rng only durable state
// survives: each file as of its last Sync, the directory as of its last
// SyncDir. Otherwise some unsynced changes survive as well, in one of the
// ways a disk that has lost power can be found:
//
//   - in order: a random prefix of each file's unsynced writes, the last of
//     them torn at a random byte (what follows the tear keeps its old
//     content, a torn sector being partly written, never scrambled);
//   - out of order: of the 512-byte sectors that unsynced writes changed,
//     a random subset, each whole.
//
// and the directory keeps a random prefix of its unsynced changes.
func (m *FS) PowerLoss(rng *rand.Rand) {
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
			ino.powerLoss(rng)
		}
	}
	m.names = names
	m.durable = make(map[string]*memInode, len(names))
	for name, ino := range names {
		m.durable[name] = ino
	}
	m.dirOps = nil
	m.endProcess()
}

// sectorSize is the unit in which PowerLoss keeps unsynced data out of
// order.
const sectorSize = 512

func (ino *memInode) powerLoss(rng *rand.Rand) {
	data := append([]byte(nil), ino.synced...)
	truncated := false
	for _, w := range ino.unsynced {
		truncated = truncated || w.data == nil
	}
	switch {
	case rng == nil || len(ino.unsynced) == 0:
	case !truncated && rng.IntN(2) == 0:
		// Out of order: whole sectors of the unsynced result.
		for off := 0; off < len(ino.data); off += sectorSize {
			end := min(off+sectorSize, len(ino.data))
			if rng.IntN(2) == 0 {
				continue
			}
			if end > len(data) {
				data = append(data, make([]byte, end-len(data))...)
			}
			copy(data[off:end], ino.data[off:end])
		}
	default:
		keep := rng.IntN(len(ino.unsynced) + 1)
		for i, w := range ino.unsynced[:keep] {
			if i == keep-1 && len(w.data) > 0 && rng.IntN(2) == 0 {
				// Tear the last kept write at a random byte.
				w = memWrite{off: w.off, data: w.data[:rng.IntN(len(w.data))]}
				if len(w.data) == 0 {
					continue
				}
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
func (m *FS) ReadFile(name string) ([]byte, error) {
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
func (m *FS) WriteFile(name string, data []byte) {
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

// Lock implements walfs.FS.
func (m *FS) Lock() (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked {
		return nil, fmt.Errorf("%w: memfs", walfs.ErrLocked)
	}
	m.locked = true
	return &memLock{m: m, epoch: m.epoch}, nil
}

type memLock struct {
	m     *FS
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

// List implements walfs.FS.
func (m *FS) List() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.names))
	for name := range m.names {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Create implements walfs.FS.
func (m *FS) Create(name string) (walfs.File, error) {
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

// Open implements walfs.FS.
func (m *FS) Open(name string) (walfs.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[name]
	if !ok {
		return nil, fmt.Errorf("memfs: open %s: %w", name, fs.ErrNotExist)
	}
	return &memFile{m: m, ino: ino, name: name, epoch: m.epoch}, nil
}

// Rename implements walfs.FS.
func (m *FS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.names[oldName]; !ok {
		return fmt.Errorf("memfs: rename %s: %w", oldName, fs.ErrNotExist)
	}
	if err := m.check(OpRename, oldName); err != nil {
		return err
	}
	ino, ok := m.names[oldName]
	if !ok {
		return fmt.Errorf("memfs: rename %s: %w", oldName, fs.ErrNotExist)
	}
	delete(m.names, oldName)
	m.names[newName] = ino
	m.dirOps = append(m.dirOps, memDirOp{name: newName, inode: ino}, memDirOp{name: oldName})
	return nil
}

// Remove implements walfs.FS.
func (m *FS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.names[name]; !ok {
		return fmt.Errorf("memfs: remove %s: %w", name, fs.ErrNotExist)
	}
	if err := m.check(OpRemove, name); err != nil {
		return err
	}
	if _, ok := m.names[name]; !ok {
		return fmt.Errorf("memfs: remove %s: %w", name, fs.ErrNotExist)
	}
	delete(m.names, name)
	m.dirOps = append(m.dirOps, memDirOp{name: name})
	return nil
}

// SyncDir implements walfs.FS.
func (m *FS) SyncDir() error {
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
	m     *FS
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
	if f.epoch != f.m.epoch {
		return 0, ErrCrashed
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
	if f.epoch != f.m.epoch {
		return ErrCrashed
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
	if f.epoch != f.m.epoch {
		return ErrCrashed
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
