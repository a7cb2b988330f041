package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// FS is the file system under a log: one directory of flat files. It is the
// seam where tests inject crashes and errors (see MemFS). Implementations
// must be safe for concurrent use.
type FS interface {
	// Lock takes an exclusive lock on the directory, creating it if needed,
	// and fails at once if another process or Log holds it. Closing the
	// returned Closer releases the lock.
	Lock() (io.Closer, error)
	// List returns the names of the files in the directory, sorted.
	List() ([]string, error)
	// Create creates a new file, truncating any file of that name, open for
	// reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Rename renames a file, replacing any file of the new name.
	Rename(oldName, newName string) error
	// Remove deletes a file.
	Remove(name string) error
	// SyncDir makes earlier Create, Rename and Remove calls durable.
	SyncDir() error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the data written so far durable (fdatasync on Linux). The
	// log never retries a failed Sync: after an error, what reached the disk
	// is unknown, so the log fails closed.
	Sync() error
	// Truncate changes the size of the file. It is durable after Sync.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	Close() error
}

// OSFS returns the real file system rooted at dir. The directory is created
// by Lock if it does not exist.
func OSFS(dir string) FS { return osFS{dir: dir} }

type osFS struct{ dir string }

func (fs osFS) path(name string) string { return filepath.Join(fs.dir, name) }

// Lock creates the directory, and any missing parent, durably: the
// directory entry of each new directory is synced in its parent, or a power
// loss could take away the whole log, acknowledged entries and all.
func (fs osFS) Lock() (io.Closer, error) {
	dir, err := filepath.Abs(fs.dir)
	if err != nil {
		return nil, err
	}
	// The directories MkdirAll will create, deepest first.
	var created []string
	for d := dir; ; {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Sync the parent of each new directory, outermost first. (The log
	// directory's own entries are synced by Open.)
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDirPath(filepath.Dir(created[i])); err != nil {
			return nil, fmt.Errorf("wal: syncing %s after creating %s: %w", filepath.Dir(created[i]), created[i], err)
		}
	}
	return lockDir(dir)
}

func (fs osFS) List() ([]string, error) {
	ents, err := os.ReadDir(fs.dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (fs osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(fs.path(name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (fs osFS) Open(name string) (File, error) {
	f, err := os.OpenFile(fs.path(name), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (fs osFS) Rename(oldName, newName string) error {
	return os.Rename(fs.path(oldName), fs.path(newName))
}

func (fs osFS) Remove(name string) error { return os.Remove(fs.path(name)) }

func (fs osFS) SyncDir() error { return syncDirPath(fs.dir) }

// syncDirPath fsyncs a directory, making the creation, renaming and removal
// of its entries durable. It is a variable so that tests can see which
// directories are synced.
var syncDirPath = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (f osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f osFile) Sync() error                              { return datasync(f.f) }
func (f osFile) Truncate(size int64) error                { return f.f.Truncate(size) }
func (f osFile) Close() error                             { return f.f.Close() }

func (f osFile) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// ErrLocked is returned by Open when another Log, in this process or
// another, has the directory open.
var ErrLocked = errors.New("wal: directory is locked by another process")
