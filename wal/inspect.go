package wal

import (
	"errors"
	"fmt"
)

// Report is what Inspect found in a log directory.
type Report struct {
	State    InitialState
	Segments []SegmentReport
	// Temps lists leftover temporary files, which Open deletes (or, in a
	// live log, the next segment being prepared).
	Temps []string
	// Torn is set when the tail segment ends in an interrupted write, which
	// Open cuts off. It is not damage: nothing in it was acknowledged.
	Torn *TornTail
	// Live is set when a running Log held the directory: its tail was
	// checked up to the last complete batch read (see Inspect).
	Live bool
}

// livePasses bounds the replays Inspect makes of a live log.
const livePasses = 5

// Inspect replays the log in dir (or in opts.FS) and reports what it holds,
// without writing anything. Damage is reported as a *CorruptError, as Open
// would report it.
//
// If no Log holds the directory, Inspect takes its lock while it reads, so
// that the log does not change under it (a Log opened meanwhile fails with
// ErrLocked), and checks everything, as Open would. If a running Log holds
// it, Inspect reads it as it is being written (Report.Live): the sealed
// segments are checked whole, and the tail up to the last complete batch
// read, since what follows may be a batch being written; so the tail is
// never reported torn or damaged after that batch. A live log changes while
// it is read (segments are added, sealed, deleted by a compaction): a
// replay that fails is made again, and an error is reported only once two
// replays in a row agree on it.
func Inspect(dir string, opts Options) (*Report, error) {
	opts, err := opts.withDefaults(dir)
	if err != nil {
		return nil, err
	}
	// Before the lock, which would create a missing directory.
	if _, err := opts.FS.List(); err != nil {
		return nil, fmt.Errorf("wal: listing the log directory: %w", err)
	}
	lock, err := opts.FS.Lock()
	switch {
	case err == nil:
		defer lock.Close()
		r, err := replay(opts.FS, false, false)
		if err != nil {
			return nil, err
		}
		return newReport(r, false), nil
	case !errors.Is(err, ErrLocked):
		return nil, err
	}
	var last error
	for pass := 0; pass < livePasses; pass++ {
		r, err := replay(opts.FS, false, true)
		if err == nil {
			return newReport(r, true), nil
		}
		if last != nil && err.Error() == last.Error() {
			return nil, err
		}
		last = err
	}
	return nil, last
}

func newReport(r *replayed, live bool) *Report {
	return &Report{
		State: InitialState{
			HardState: r.st.hard,
			Compacted: r.st.compacted,
			FirstSlot: r.st.firstSlot(),
			LastSlot:  r.st.last,
		},
		Segments: r.reports,
		Temps:    r.temps,
		Torn:     r.torn,
		Live:     live,
	}
}
