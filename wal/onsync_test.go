package wal

import (
	"sync/atomic"
	"testing"
	"time"
)

// OnSync hears of every fdatasync a synced save makes, with its duration,
// and of none without sync: what the engine's fsync histogram counts.
func TestOnSyncReportsEachFdatasync(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		var calls atomic.Int64
		var negative atomic.Bool
		l, _, err := Open(t.TempDir(), Options{SegmentBytes: 4096, NoSync: noSync, OnSync: func(d time.Duration) {
			calls.Add(1)
			negative.Store(negative.Load() || d < 0)
		}})
		if err != nil {
			t.Fatal(err)
		}
		before := calls.Load() // opening may sync a new segment
		h := HardState{Commit: 1}
		if err := l.Save(Batch{HardState: &h}, true); err != nil {
			t.Fatal(err)
		}
		if err := l.Save(Batch{HardState: &h}, false); err != nil {
			t.Fatal(err)
		}
		got := calls.Load() - before
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		switch {
		case noSync && calls.Load() != 0:
			t.Errorf("NoSync: OnSync called %d times, want never", calls.Load())
		case !noSync && got < 1:
			t.Errorf("a synced save: OnSync called %d times, want at least once", got)
		case negative.Load():
			t.Errorf("OnSync got a negative duration")
		}
	}
}
