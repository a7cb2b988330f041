package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/paxos-go/paxos/internal/walfs"
)

// FS is the file system under a log: one directory of flat files. It is
// the seam where tests inject crashes and errors: Lock (which fails with
// ErrLocked if another Log holds the directory), List, Create, Open,
// Rename, Remove and SyncDir, each with its contract in package
// internal/walfs, where the interface is declared so that the in-memory
// file system of the crash tests can implement it without importing wal
// (wal's own tests use it). Implementations must be safe for concurrent
// use. OSFS is the real one.
type FS = walfs.FS

// File is an open file of an FS: ReadAt, WriteAt, Sync (fdatasync; never
// retried after an error, since what reached the disk is then unknown),
// Truncate (durable after Sync), Size and Close. See internal/walfs.
type File = walfs.File

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
var ErrLocked = walfs.ErrLocked
