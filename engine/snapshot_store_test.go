package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/paxos-go/paxos/storage"
)

// flakyMachine is a logMachine whose Snapshot fails, after writing part of
// the state, while fail is set. It counts the calls.
type flakyMachine struct {
	logMachine
	fail  atomic.Bool
	calls atomic.Int64
}

func (m *flakyMachine) Snapshot(w io.Writer) error {
	m.calls.Add(1)
	if m.fail.Load() {
		io.WriteString(w, "half of the state")
		return errors.New("the state machine failed to snapshot")
	}
	return m.logMachine.Snapshot(w)
}

// startSingle starts a one-replica cluster in dir with a compacting
// snapshot policy driven by hand, and waits for it to lead.
func startSingle(t *testing.T, dir string, sm StateMachine, mod func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: dir, Insecure: true,
		ElectionTimeout:       100 * time.Millisecond,
		DisableAutoSnapshots:  true,
		SnapshotTrailingSlots: 1,
	}
	cfg.WAL.SegmentBytes = 64 << 10
	if mod != nil {
		mod(&cfg)
	}
	n, err := Start(cfg, sm)
	if err != nil {
		t.Fatalf("starting the replica: %v", err)
	}
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Status().Role == "leader" })
	return n
}

// TestSecondSnapshotAtTheSameSlot takes a snapshot, which compacts the
// log, then asks for another with nothing applied in between while the
// state machine would fail to snapshot. The engine must not write a
// second snapshot of the slot (it could only put the first at risk, in a
// store less careful than ours): it returns the first, without asking the
// state machine. And the first must survive: the replica restarts from
// it. (Before, the second Create deleted the first snapshot's chunks
// while its metadata stayed, and the restart failed with "the log is
// compacted up to slot 29, but no usable snapshot covers it".)
func TestSecondSnapshotAtTheSameSlot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sm := &flakyMachine{}
	n := startSingle(t, dir, sm, nil)
	for seq := uint64(1); seq <= 30; seq++ {
		if _, err := n.Submit(ctx, 1, seq, []byte(fmt.Sprint("command-", seq))); err != nil {
			t.Fatal(err)
		}
	}
	first, err := n.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm.fail.Store(true)
	second, err := n.Snapshot(ctx)
	if err != nil || second != first {
		t.Errorf("a second snapshot at slot %d: %+v, %v; want the first, %+v", first.Slot, second, err, first)
	}
	if calls := sm.calls.Load(); calls != 1 {
		t.Errorf("the state machine was asked for %d snapshots of slot %d, want 1", calls, first.Slot)
	}
	want := sm.entries()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	restored := &logMachine{}
	n = startSingle(t, dir, restored, nil)
	defer n.Close()
	if got := restored.entries(); !slices.Equal(got, want) {
		t.Fatalf("restarted with %d entries, want the %d snapshotted", len(got), len(want))
	}
}

// FullDisk is a disk in memory for a Pebble snapshot store, on which
// every write fails with ENOSPC while it is full.
type FullDisk struct {
	mem  vfs.FS
	full *errorfs.Toggle
}

// NewFullDisk returns an empty disk, with room.
func NewFullDisk() *FullDisk {
	return &FullDisk{mem: vfs.NewMem(), full: &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.ENOSPC
		}
		return nil
	})}}
}

// Fill makes every write fail; Free gives room again.
func (d *FullDisk) Fill() { d.full.On() }

// Free gives the disk room again.
func (d *FullDisk) Free() { d.full.Off() }

// Open opens the snapshot store on the disk.
func (d *FullDisk) Open(t testing.TB) storage.SnapshotStore {
	t.Helper()
	s, err := storage.OpenPebble("snapshots", storage.PebbleOptions{FS: errorfs.Wrap(d.mem, d.full), ChunkBytes: 4 << 10})
	if err != nil {
		t.Fatalf("opening the snapshot store: %v", err)
	}
	return s
}

// TestFullSnapshotDiskStopsTheReplica fills the snapshot store's disk
// and has the replica snapshot, by hand and by its policy. (Before,
// Pebble's fatal commit error reached its logger's Fatalf, which
// panicked: the process died.) The snapshot must fail with an error
// matching storage.ErrFailed; the replica must stop with that cause, as
// on a failed fsync, having lost nothing it acknowledged; and once the
// disk has room again it must restart, and snapshot.
func TestFullSnapshotDiskStopsTheReplica(t *testing.T) {
	for _, auto := range []bool{false, true} {
		t.Run(map[bool]string{false: "by-hand", true: "by-policy"}[auto], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			disk := NewFullDisk()
			dir := filepath.Join(t.TempDir(), "1")
			sm := &logMachine{}
			n := startSingle(t, dir, sm, func(cfg *Config) {
				cfg.Snapshots = disk.Open(t)
				if auto {
					cfg.DisableAutoSnapshots, cfg.SnapshotEverySlots = false, 10
				}
			})
			defer func() { n.Close() }()
			var acked int
			submit := func() error {
				_, err := n.Submit(ctx, 1, uint64(acked+1), []byte(fmt.Sprint("command-", acked+1)))
				if err == nil {
					acked++
				}
				return err
			}
			for range 5 {
				if err := submit(); err != nil {
					t.Fatal(err)
				}
			}
			disk.Fill()
			if !auto {
				if _, err := n.Snapshot(ctx); !errors.Is(err, storage.ErrFailed) {
					t.Fatalf("Snapshot on a full disk: %v, want an error matching storage.ErrFailed", err)
				}
			}
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				err = submit()
			}
			if !errors.Is(err, ErrClosed) || !errors.Is(err, storage.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Submit after the snapshot store failed: %v; want ErrClosed, with the store's failure (ENOSPC) as the cause", err)
			}
			n.Close()

			disk.Free()
			restored := &logMachine{}
			n = startSingle(t, dir, restored, func(cfg *Config) { cfg.Snapshots = disk.Open(t) })
			if got := len(restored.entries()); got < acked {
				t.Fatalf("restarted with %d commands applied, %d were acknowledged", got, acked)
			}
			if err := submit(); err != nil {
				t.Fatal(err)
			}
			if _, err := n.Snapshot(ctx); err != nil {
				t.Fatalf("Snapshot once the disk has room: %v", err)
			}
		})
	}
}
