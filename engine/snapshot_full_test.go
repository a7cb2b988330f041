package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/storage"
)

// TestFullDiskWhileReceivingASnapshot fills the snapshot store's disk of
// a follower that must catch up by snapshot. (Before, Pebble's fatal
// commit error panicked in the follower's loop, and again after every
// restart.) The follower must stop, with the store's failure as the
// cause; once the disk has room, it must restart, receive the snapshot
// and catch up.
func TestFullDiskWhileReceivingASnapshot(t *testing.T) {
	const memory = 1
	disk := engine.NewFullDisk()
	var onDisk atomic.Uint64 // the replica whose store is on disk
	c := newMemCluster(t, 3, memory, func(cfg *engine.Config) {
		if cfg.ID == onDisk.Load() {
			cfg.Snapshots = disk.Open(t)
		}
	})
	_, lagger, _ := c.roles()
	c.stop(lagger)
	onDisk.Store(lagger)
	c.start(lagger)
	c.net.Isolate(lagger)
	for seq := uint64(1); seq <= 100; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("command-%03d", seq))
	}
	disk.Fill()
	c.net.Heal()
	waitFor(t, 20*time.Second, "the follower to stop", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.node(lagger).Submit(ctx, 10, 1, []byte("probe"))
		if errors.Is(err, engine.ErrClosed) {
			if !errors.Is(err, storage.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("the follower stopped with %v; want the snapshot store's failure as the cause", err)
			}
			return true
		}
		return false
	})
	c.stop(lagger)

	disk.Free()
	c.start(lagger)
	want := c.sm(lagger%3 + 1).Entries()
	waitFor(t, 30*time.Second, "the follower to catch up", func() bool {
		got := c.sm(lagger).Entries()
		return len(got) >= len(want) && slices.Equal(got[:len(want)], want)
	})
}
