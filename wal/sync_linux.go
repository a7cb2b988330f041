package wal

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes the file's data durable with fdatasync, which skips the
// metadata (such as mtime) that a read of the data does not need. It is
// called once and never retried: see File.Sync.
func datasync(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
