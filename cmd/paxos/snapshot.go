package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/paxos-go/paxos/storage"
)

type snapshotCmd struct {
	Ls snapshotLsCmd `cmd:"" help:"List the snapshots in a store, verifying each: slot, ballot, size, checksum status."`
}

type snapshotLsCmd struct {
	Dir string `arg:"" type:"existingdir" help:"A replica's data directory, or its snapshot store (the data directory's snapshots/)."`
}

// errCorruptSnapshots makes snapshot ls exit 1 when a snapshot does not
// verify, after listing them all.
var errCorruptSnapshots = errors.New("some snapshots do not verify")

// Run lists the snapshots of the Pebble store in c.Dir, read-only: it
// works beside a running replica and never changes the store.
func (c *snapshotLsCmd) Run(g *globals) error {
	dir := c.Dir
	if fi, err := os.Stat(filepath.Join(dir, "snapshots")); err == nil && fi.IsDir() {
		dir = filepath.Join(dir, "snapshots")
	}
	store, err := storage.OpenPebble(dir, storage.PebbleOptions{ReadOnly: true, Logger: g.log})
	if err != nil {
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
