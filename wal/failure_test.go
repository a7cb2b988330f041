package wal

import (
	"errors"
	"sync"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

// opRecorder records the mutating file operations a memfs.FS is asked for.
type opRecorder struct {
	mu  sync.Mutex
	ops []memfs.FaultOp
}

func (r *opRecorder) add(op memfs.FaultOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

func (r *opRecorder) take() []memfs.FaultOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// TestNothingIsWrittenOrAcknowledgedAfterAFailedSync queues a batch while
// the fsync of the one before it is failing: neither Close nor anything
// else may write it afterwards, and its Wait must report the failure, not
// success.
func TestNothingIsWrittenOrAcknowledgedAfterAFailedSync(t *testing.T) {
	fs := memfs.New()
	l := mustOpen(t, fs, Options{SegmentBytes: 1 << 16, inlinePrealloc: true})
	appendEntries(t, l, nil, 1, 3)

	inSync, release := make(chan struct{}), make(chan struct{})
	boom := errors.New("EIO")
	var rec opRecorder
	failed := false
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if failed {
			rec.add(op)
			return nil
		}
		if op == memfs.OpSync {
			close(inSync)
			<-release // hold the fsync until the next batch is queued
			failed = true
			return boom
		}
		return nil
	})
	doomed, err := l.Enqueue(Batch{Entries: []Entry{{Slot: 4, Value: value(4)}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error)
	go func() { waited <- l.Wait(doomed) }()
	<-inSync
	// The flush of slot 4 is inside its fsync: this batch joins the queue.
	later, err := l.Enqueue(Batch{Entries: []Entry{{Slot: 5, Value: value(5)}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-waited; !errors.Is(err, boom) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait for the batch whose fsync failed: %v, want EIO and ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after the failure: %v, want the failure", err)
	}
	if ops := rec.take(); len(ops) > 0 {
		t.Errorf("after the failed fsync the log still did %v", ops)
	}
	if err := l.Wait(later); err == nil {
		t.Error("Wait acknowledged a batch queued when the log had failed")
	}
	if err := l.Save(Batch{Entries: []Entry{{Slot: 5}}}, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after the failure: %v, want ErrClosed", err)
	}
}

// TestCompactionFailuresCloseTheLog: a failure to delete a compacted
// segment or to sync the directory afterwards is an I/O error like any
// other: the log refuses everything after it.
func TestCompactionFailuresCloseTheLog(t *testing.T) {
	for _, op := range []memfs.FaultOp{memfs.OpRemove, memfs.OpSyncDir} {
		t.Run(string(op), func(t *testing.T) {
			fs := memfs.New()
			l := mustOpen(t, fs, Options{SegmentBytes: 4096, inlinePrealloc: true})
			for s := uint64(1); s <= 300; s += 10 {
				appendEntries(t, l, nil, s, s+9)
			}
			boom := errors.New("EIO")
			var rec opRecorder
			failed := false
			fs.SetFault(func(o memfs.FaultOp, name string) error {
				if failed {
					rec.add(o)
					return nil
				}
				if o == op {
					failed = true
					return boom
				}
				return nil
			})
			if err := l.Compact(Compacted{Slot: 250, Ballot: Ballot{Round: 1, Node: 1}}); !errors.Is(err, boom) {
				t.Fatalf("Compact: %v, want the injected failure", err)
			}
			if err := l.Save(Batch{Entries: []Entry{{Slot: 301}}}, true); !errors.Is(err, ErrClosed) {
				t.Errorf("Save after a failed compaction: %v, want ErrClosed", err)
			}
			if err := l.Compact(Compacted{Slot: 260}); !errors.Is(err, ErrClosed) {
				t.Errorf("Compact after a failed compaction: %v, want ErrClosed", err)
			}
			if err := l.Close(); !errors.Is(err, boom) {
				t.Errorf("Close: %v, want the failure", err)
			}
			if ops := rec.take(); len(ops) > 0 {
				t.Errorf("after the failure the log still did %v", ops)
			}
		})
	}
}
