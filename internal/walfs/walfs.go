// Package walfs declares the file system under the write-ahead log: the
// interfaces wal.FS and wal.File are these (type aliases), with the
// contract of each method.
//
// They live apart from package wal so that the in-memory file system of
// the crash and fault tests (internal/memfs) can implement them without
// importing wal: wal's own tests import memfs, and memfs importing wal
// would make a cycle. This package imports nothing of ours.
package walfs

import (
	"errors"
	"io"
)

// FS is the file system under a log: one directory of flat files. It is
// the seam where tests inject crashes and errors. Implementations must be
// safe for concurrent use.
type FS interface {
	// Lock takes an exclusive lock on the directory, creating it if needed,
	// and fails at once, with an error that matches ErrLocked, if another
	// process or Log holds it. Closing the returned Closer releases the
	// lock.
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

// ErrLocked is what FS.Lock's error matches when another Log, in this
// process or another, holds the directory; wal.Open returns it then.
var ErrLocked = errors.New("wal: directory is locked by another process")
