package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/paxos-go/paxos/storage"
)

type snapshotCmd struct {
	Ls snapshotLsCmd `cmd:"" help:"List the snapshots in a store, verifying each: slot, ballot, size, checksum status."`
}

type snapshotLsCmd struct {
	Dir  string `arg:"" type:"existingdir" help:"A replica's data directory, or its snapshot store (the data directory's snapshots/)."`
	Copy bool   `help:"List a copy of the store taken now, for a store that a running replica holds (best effort: a copy taken while the replica writes may not open; try again). The store itself is only read."`
}

// errCorruptSnapshots makes snapshot ls exit 1 when a snapshot does not
// verify, after listing them all.
var errCorruptSnapshots = errors.New("some snapshots do not verify")

// Run lists the snapshots of the Pebble store in c.Dir, read-only: it
// never changes the store. A running replica holds its store (Pebble
// locks it, read-only openers too), so beside one it says so, and --copy
// lists a copy instead.
func (c *snapshotLsCmd) Run(g *globals) error {
	dir := c.Dir
	if fi, err := os.Stat(filepath.Join(dir, "snapshots")); err == nil && fi.IsDir() {
		dir = filepath.Join(dir, "snapshots")
	}
	var store *storage.Pebble
	var err error
	if c.Copy {
		// A copy taken while the replica writes may miss a file it
		// needs; another is taken, a few times.
		for try := 0; try < 5 && (try == 0 || err != nil); try++ {
			var tmp string
			if tmp, err = copyStore(dir); err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			store, err = storage.OpenPebble(tmp, storage.PebbleOptions{ReadOnly: true, Logger: g.log})
		}
		if err != nil {
			return fmt.Errorf("no copy of the snapshot store in %s opens (is it one?): %w", dir, err)
		}
	} else if store, err = storage.OpenPebble(dir, storage.PebbleOptions{ReadOnly: true, Logger: g.log}); err != nil {
		if lockHeld(dir) {
			return fmt.Errorf("the snapshot store in %s is held by a running replica (its LOCK file is locked): stop the replica to list it, or run `paxos snapshot ls --copy %s` to list a copy taken now", dir, c.Dir)
		}
		return fmt.Errorf("%s is not a snapshot store (nor a data directory holding one): %w", c.Dir, err)
	}
	defer store.Close()
	list, err := store.List()
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(g.out, "%s: no snapshots\n", dir)
		return nil
	}
	tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tBALLOT\tBYTES\tCHECKSUM\tSTATUS")
	bad := 0
	for _, m := range list {
		status := "ok"
		if _, err := storage.Verify(store, m.Slot); err != nil {
			status, bad = "CORRUPT: "+err.Error(), bad+1
		}
		fmt.Fprintf(tw, "%d\t%d.%d\t%d\t%08x\t%s\n", m.Slot, m.Ballot.Round, m.Ballot.Node, m.Size, m.Checksum, status)
	}
	tw.Flush()
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d", errCorruptSnapshots, bad, len(list))
	}
	return nil
}

// lockHeld reports whether another opener holds the Pebble store in dir.
// It tries the lock itself, without waiting, and only on a store that has
// a LOCK file (so that it creates nothing elsewhere).
func lockHeld(dir string) bool {
	path := filepath.Join(dir, "LOCK")
	if _, err := os.Stat(path); err != nil {
		return false
	}
	l, err := vfs.Default.Lock(path)
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// copyStore copies the files of the store in dir, but its LOCK, into a
// new temporary directory, and returns it. A file deleted meanwhile (the
// replica compacts) is skipped: if the copy needed it, it does not open.
func copyStore(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "paxos-snapshots-")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		err := copyFile(filepath.Join(dir, e.Name()), filepath.Join(tmp, e.Name()))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("copying the snapshot store in %s: %w", dir, err)
		}
	}
	return tmp, nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
