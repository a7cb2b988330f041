package wal

// Report is what Inspect found in a log directory.
type Report struct {
	State    InitialState
	Segments []SegmentReport
	// Temps lists leftover temporary files, which Open deletes.
	Temps []string
	// Torn is set when the tail segment ends in an interrupted write, which
	// Open cuts off. It is not damage: nothing in it was acknowledged.
	Torn *TornTail
}

// Inspect replays the log in dir (or in opts.FS) and reports what it holds,
// without writing anything and without taking the directory lock, so it may
// be pointed at the log of a running process (and then describes whatever
// was on disk as it read). Damage is reported as a *CorruptError, as Open
// would report it.
func Inspect(dir string, opts Options) (*Report, error) {
	opts, err := opts.withDefaults(dir)
	if err != nil {
		return nil, err
	}
	r, err := replay(opts.FS, false)
	if err != nil {
		return nil, err
	}
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
	}, nil
}
