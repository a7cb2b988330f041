package engine

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/paxos-go/paxos/internal/memfs"
)

// TestWALFailureStopsTheNode: an fsync error is never retried; the replica
// stops, and everything waiting, and everything after, gets ErrClosed.
func TestWALFailureStopsTheNode(t *testing.T) {
	fs := memfs.New()
	cfg := Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(t.TempDir(), "1"), ElectionTimeout: 100 * time.Millisecond, Insecure: true}
	cfg.WAL.FS, cfg.WAL.SegmentBytes = fs, 1<<20
	n, err := Start(cfg, &logMachine{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Status().Role == "leader" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Submit(ctx, 1, 1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if op == memfs.OpSync {
			return errors.New("EIO")
		}
		return nil
	})
	if _, err := n.Submit(ctx, 1, 2, []byte("doomed")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit when fsync fails: %v, want ErrClosed", err)
	}
	if _, err := n.Submit(ctx, 1, 3, []byte("after")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after the failure: %v, want ErrClosed", err)
	}
}
