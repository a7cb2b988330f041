package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for Options.
const (
	DefaultSegmentBytes   = 64 << 20
	DefaultMaxRecordBytes = 16 << 20

	// maxSegmentBytes keeps record offsets within a segment below 2^32
	// (a segment may exceed SegmentBytes by at most one batch).
	maxSegmentBytes = 1 << 30
	// maxBatchBytes bounds the encoded size of one Save.
	maxBatchBytes = 1 << 30
	// maxRecordOffset bounds the offsets of records in a segment: the
	// index holds them as uint32.
	maxRecordOffset = 1<<32 - 1
	// minRecordLimit is the smallest MaxRecordBytes accepted.
	minRecordLimit = 64
	// slowSync is how long an fdatasync may take before it is logged.
	slowSync = time.Second
)

// Options configure a Log. The zero value is valid.
type Options struct {
	// SegmentBytes is the size at which the log moves on to a new segment
	// file, and the size to which segment files are pre-written with zeros.
	// Default DefaultSegmentBytes (64 MiB); at most 1 GiB.
	SegmentBytes int64
	// MaxRecordBytes bounds one record (an entry's value plus about 40
	// bytes). Save refuses larger entries. Each segment records the limit
	// it was written with, and recovery reads it with that limit, not this
	// one, treating a larger length field as damage without allocating it.
	// Default DefaultMaxRecordBytes (16 MiB).
	MaxRecordBytes int
	// NoSync skips every fdatasync and directory sync. Nothing the log
	// writes is then durable: it exists for tests and benchmarks only.
	NoSync bool
	// FS is the file system holding the log. Default: OSFS of the
	// directory passed to Open.
	FS FS
	// Logger receives warnings (torn tails cut off, slow fsyncs) and debug
	// messages (segment rolls and deletions). Default: no logging.
	Logger hclog.Logger
	// OnSync, if set, is called after each fdatasync of a log file with
	// how long it took (for metrics: engine.Config.Metrics feeds
	// paxos_wal_fsync_seconds with it). It runs on the goroutine that
	// synced, inside the log's flush: it must be quick and must not call
	// the log. Not called with NoSync, nor for directory syncs.
	OnSync func(time.Duration)

	// inlinePrealloc prepares the next segment on the flushing goroutine
	// instead of in the background, so that tests on memfs see the same
	// sequence of file operations on every run.
	inlinePrealloc bool
}

func (o Options) withDefaults(dir string) (Options, error) {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.SegmentBytes < 4096 || o.SegmentBytes > maxSegmentBytes {
		return o, fmt.Errorf("wal: SegmentBytes %d is outside [4096, %d]", o.SegmentBytes, maxSegmentBytes)
	}
	if o.MaxRecordBytes < minRecordLimit || o.MaxRecordBytes > maxRecordLimit {
		return o, fmt.Errorf("wal: MaxRecordBytes %d is outside [%d, %d]", o.MaxRecordBytes, minRecordLimit, maxRecordLimit)
	}
	if o.FS == nil {
		if dir == "" {
			return o, errors.New("wal: no directory given")
		}
		o.FS = OSFS(dir)
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o, nil
}

// InitialState is what Open recovered.
type InitialState struct {
	HardState HardState
	// Compacted is the last compaction point; zero if there was none.
	Compacted Compacted
	// The log holds an entry for every slot in [FirstSlot, LastSlot]; it is
	// empty when LastSlot < FirstSlot. The next entry may be for any slot
	// in [FirstSlot, LastSlot+1].
	FirstSlot, LastSlot uint64
}

// Batch is what one Save writes: an optional new hard state and entries
// for consecutive slots. If Entries[0].Slot <= LastSlot, the entries from
// that slot on are replaced (logical tail overwrite).
type Batch struct {
	HardState *HardState
	Entries   []Entry
}

// ErrClosed is matched by every error from a Log that was closed, or that
// failed: after an I/O error, and an fsync error above all, the log cannot
// know what reached the disk, so it refuses all further work instead of
// retrying. Reopen it to recover from what is on disk.
var ErrClosed = errors.New("wal: log is closed")

// ErrCompacted is returned by Entries for slots covered by a compaction.
var ErrCompacted = errors.New("wal: slots compacted")

// ErrUnavailable is returned by Entries for slots past the last entry.
var ErrUnavailable = errors.New("wal: slots not in the log")

// failedError is the sticky error of a log that hit an I/O error.
type failedError struct{ cause error }

func (e *failedError) Error() string   { return "wal: log failed and is closed: " + e.cause.Error() }
func (e *failedError) Unwrap() []error { return []error{ErrClosed, e.cause} }

// Log is an open write-ahead log. Save, Compact and Entries may be called
// concurrently.
type Log struct {
	opts Options
	fs   FS
	log  hclog.Logger
	lock io.Closer

	// mu guards everything below it but w, which belongs to whichever
	// goroutine is flushing (flushing == true).
	mu   sync.Mutex
	cond sync.Cond // broadcast when a flush ends
	err  error     // sticky: ErrClosed or a *failedError

	// failed is set, with err, when an I/O error has closed the log. The
	// writer checks it before every write, sync, truncate, create and
	// rename, so that an operation already under way when another one
	// failed (a flush while a compaction's directory sync fails, the
	// background preparation of the next segment) does nothing more.
	failed atomic.Bool

	// Group commit is run by the callers of Wait. Each save gets the next
	// ticket (issued) and waits in queue. Whoever finds no flush in
	// progress takes the whole queue and writes it as one group, with one
	// write and, if any save in it asked for it, one fdatasync (flushing).
	// Saves that arrive meanwhile form the next group.
	//
	// (Writing the next group while the previous one is being synced was
	// tried and measured: on Linux a write to a page under writeback waits
	// for the writeback, so it only made the groups smaller and the
	// throughput lower.)
	//
	// Invariant: durable <= written <= issued; written is the last ticket
	// written, durable the last one synced.
	queue    []queued
	spare    []queued
	flushing bool
	issued   uint64
	written  uint64
	durable  uint64
	// proj is the shape of the log once every queued save is applied; Save
	// checks new batches against it, so that the flusher never meets an
	// invalid one.
	proj struct{ last, compacted uint64 }
	st   logState // what readers see: every batch written

	// segMu keeps segment files open while Entries reads them; Compact
	// takes it exclusively to close and delete files.
	segMu sync.RWMutex
	// compactMu serialises the deletion of segment files, and Close takes
	// it to wait for a deletion in progress: once Close returns, and the
	// directory lock is free for the next Log, this one deletes nothing.
	compactMu sync.Mutex
	// closing is set by Close before it waits for compactMu: deletions
	// that have not started by then are left to the next Log.
	closing atomic.Bool

	w writer
}

type queued struct {
	batch     *Batch
	compacted *Compacted
	sync      bool
}

// Open opens the log in dir (or in opts.FS), recovering it, or creates it
// if the directory holds no segments. It takes an exclusive lock on the
// directory until Close.
//
// Recovery: every segment but the last must read back whole, and the last
// may only end in an incomplete batch (an interrupted write), which is cut
// off, zeroed and logged. Anything else is an error that names the file and
// the byte offset (errors.Is(err, ErrCorrupt)). Nothing is repaired
// silently.
func Open(dir string, opts Options) (*Log, InitialState, error) {
	opts, err := opts.withDefaults(dir)
	if err != nil {
		return nil, InitialState{}, err
	}
	lock, err := opts.FS.Lock()
	if err != nil {
		return nil, InitialState{}, err
	}
	l := &Log{opts: opts, fs: opts.FS, log: opts.Logger, lock: lock}
	l.cond.L = &l.mu
	l.w.enc = newBodyEncoder()
	if err := l.recover(); err != nil {
		for _, s := range l.st.segs {
			s.f.Close()
		}
		lock.Close()
		return nil, InitialState{}, err
	}
	l.proj.last, l.proj.compacted = l.st.last, l.st.compacted.Slot
	return l, l.initialState(), nil
}

func (l *Log) initialState() InitialState {
	return InitialState{
		HardState: l.st.hard,
		Compacted: l.st.compacted,
		FirstSlot: l.st.firstSlot(),
		LastSlot:  l.st.last,
	}
}

// recover replays the directory and prepares the tail for appending.
func (l *Log) recover() error {
	r, err := replay(l.fs, true, false)
	if err != nil {
		return err // replay closed what it opened
	}
	l.st = r.st
	for _, name := range r.temps {
		// A segment being prepared when the process stopped: it was never
		// renamed into place, so it holds nothing.
		if err := l.fs.Remove(name); err != nil {
			return fmt.Errorf("wal: removing leftover %s: %w", name, err)
		}
	}
	if len(l.st.segs) == 0 {
		l.w.nextSeq = 1
		seg, err := l.w.roll(l, 1)
		if err != nil {
			return err
		}
		return l.st.addSegment(seg)
	}
	tail := l.st.segs[len(l.st.segs)-1]
	l.w.tail, l.w.nextSeq = tail, tail.seq+1
	l.w.hard, l.w.compacted, l.w.last = l.st.hard, l.st.compacted, l.st.last
	l.w.off = r.reports[len(r.reports)-1].End
	l.w.tailHasEntries = r.reports[len(r.reports)-1].Entries > 0
	if r.torn != nil {
		l.log.Warn("cutting off the torn tail of an interrupted write",
			"file", r.torn.File, "offset", r.torn.Offset, "stopped_at", r.torn.StopOffset, "reason", r.torn.Reason)
	}
	if r.torn == nil {
		// What was read back may have been written but never synced by the
		// process that stopped; sync it before anything is built on it.
		if err := l.sync(tail.f); err != nil {
			return fmt.Errorf("wal: syncing %s: %w", tail.name, err)
		}
	} else {
		// Cut off whatever follows the last complete batch, so that stale
		// bytes can never be read as records later: truncate the file to
		// the batch's end and sync, which a power loss leaves done or not
		// done, never half done (overwriting the torn bytes with zeros in
		// place could be half done: some sectors zeroed and others not,
		// which the next Open would take for damage). Repeating it is
		// harmless. Only then is the space after it pre-written with
		// zeros again; a power loss during that leaves zeros, or a file
		// that ends early, both the clean end of the log.
		if err := l.alive(); err != nil {
			return err
		}
		if err := tail.f.Truncate(l.w.off); err != nil {
			return fmt.Errorf("wal: cutting the torn tail of %s: %w", tail.name, err)
		}
		// (This also syncs what the process that stopped wrote before the
		// cut and may not have synced.)
		if err := l.sync(tail.f); err != nil {
			return fmt.Errorf("wal: cutting the torn tail of %s: fdatasync: %w", tail.name, err)
		}
		if err := zeroRange(tail.f, l.w.off, r.reports[len(r.reports)-1].Size); err != nil {
			return fmt.Errorf("wal: pre-writing the tail of %s: %w", tail.name, err)
		}
		if err := l.sync(tail.f); err != nil {
			return fmt.Errorf("wal: syncing %s: %w", tail.name, err)
		}
	}
	l.w.synced = l.w.off
	// The tail's first batch is its copy of the log's state; a batch after
	// it makes the tail roll once it would pass SegmentBytes.
	l.w.tailStart = r.tailFirstEnd
	// The directory as this process sees it may hold changes that the
	// process before it made and never synced: a segment renamed into place
	// just before a crash, the deletions of a compaction, the removal of the
	// leftover temporary files above. Appending to a segment whose name is
	// not durable would acknowledge entries that a power loss then takes
	// away with the rename. So the directory is synced, always, before
	// anything is acknowledged.
	if err := l.syncDir(); err != nil {
		return err
	}
	l.w.startPrealloc(l)
	return nil
}

// zeroRange overwrites [from, to) with zeros.
func zeroRange(f File, from, to int64) error {
	for from < to {
		n := min(int64(len(zeros)), to-from)
		if _, err := f.WriteAt(zeros[:n], from); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// Save writes b and returns once it is on disk: with sync set, after one
// fdatasync shared by every Save that is waiting at the same time (group
// commit); without it, after the write, and the batch becomes durable with
// the next synced Save. A batch is all or nothing across a crash.
//
// An entry that does not follow the log (a hole after LastSlot, a slot at
// or below the compaction point, slots out of order, a value larger than
// MaxRecordBytes) is refused with an error and nothing is written. Any I/O
// error closes the log; see ErrClosed.
func (l *Log) Save(b Batch, sync bool) error {
	t, err := l.Enqueue(b, sync)
	if err != nil {
		return err
	}
	return l.Wait(t)
}

// Ticket identifies a batch queued by Enqueue.
type Ticket struct {
	n    uint64
	sync bool
}

// Enqueue queues b to be written, as Save does, and returns without waiting.
// The order of Enqueue calls is the order of the batches in the log, so
// concurrent writers that choose slots can take a lock around choosing the
// slots and Enqueue, and wait outside it. The slices of b must not change
// until Wait returns, and every ticket must be waited for: the waiting
// callers are the ones that write.
func (l *Log) Enqueue(b Batch, sync bool) (Ticket, error) {
	return l.enqueue(queued{batch: &b, sync: sync})
}

func (l *Log) enqueue(q queued) (Ticket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Ticket{}, l.err
	}
	if err := l.checkProjected(q); err != nil {
		return Ticket{}, err
	}
	l.queue = append(l.queue, q)
	l.issued++
	return Ticket{n: l.issued, sync: q.sync}, nil
}

// Wait returns once the batch of ticket t is written, and synced if it
// asked for that, or the log has failed.
func (l *Log) Wait(t Ticket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		switch {
		case l.durable >= t.n:
			return nil // synced before anything failed
		case l.failed.Load():
			// A batch that was written but not synced when the log failed
			// is not acknowledged: whether it reached the disk is unknown.
			return l.err
		case !t.sync && l.written >= t.n:
			return nil
		case l.err != nil:
			return l.err
		case !l.flushing:
			l.flush()
		default:
			l.cond.Wait()
		}
	}
}

// checkProjected checks q against the log as it will be once everything
// queued is written, and advances that projection.
func (l *Log) checkProjected(q queued) error {
	if q.compacted != nil {
		if q.compacted.Slot < l.proj.compacted {
			return fmt.Errorf("wal: compaction to slot %d is behind the compacted slot %d", q.compacted.Slot, l.proj.compacted)
		}
		l.proj.compacted = q.compacted.Slot
		l.proj.last = max(l.proj.last, q.compacted.Slot)
		return nil
	}
	ents := q.batch.Entries
	if len(ents) == 0 {
		return nil
	}
	if s := ents[0].Slot; s <= l.proj.compacted || s > l.proj.last+1 {
		return fmt.Errorf("wal: entry for slot %d does not follow the log (compacted to %d, last slot %d)", s, l.proj.compacted, l.proj.last)
	}
	total := 0
	for i, e := range ents {
		if i > 0 && e.Slot != ents[i-1].Slot+1 {
			return fmt.Errorf("wal: entries for slots %d and %d are not consecutive", ents[i-1].Slot, e.Slot)
		}
		if len(e.Value)+64 > l.opts.MaxRecordBytes {
			return fmt.Errorf("wal: entry for slot %d has %d bytes, above MaxRecordBytes %d", e.Slot, len(e.Value), l.opts.MaxRecordBytes)
		}
		total += len(e.Value) + 64
	}
	if total > maxBatchBytes {
		return fmt.Errorf("wal: batch of %d bytes is above the limit of %d", total, maxBatchBytes)
	}
	l.proj.last = ents[len(ents)-1].Slot
	return nil
}

// flush writes everything queued as one group. It is called with l.mu
// held and returns with it held, but releases it for the I/O.
func (l *Log) flush() {
	l.flushing = true
	group := l.queue
	l.queue, l.spare = l.spare[:0], nil
	last := l.issued
	l.mu.Unlock()

	effects, synced, err := l.w.writeGroup(l, group)

	l.mu.Lock()
	clear(group) // drop the callers' batches
	l.spare = group[:0]
	l.flushing = false
	if err == nil && l.failed.Load() {
		// Another operation (a compaction's deletions) failed while this
		// group was being written: nothing is acknowledged after a failure.
		err = l.err
	}
	if err != nil {
		l.fail(err)
		clear(l.queue) // never written: their Waits return the error
		l.queue = l.queue[:0]
	} else {
		l.applyEffects(effects)
		l.written = last
		if synced {
			l.durable = last
		}
	}
	l.cond.Broadcast()
}

// fail closes the log after an I/O error. It is called with l.mu held.
// From then on nothing is written, synced or acknowledged: Enqueue, Wait,
// Save and Compact return the error, and Close writes nothing.
func (l *Log) fail(err error) {
	if l.err == ErrClosed {
		// Closed meanwhile (a deletion Close waited for): Close has
		// reported what it had to report; the error is only logged.
		l.log.Error("write-ahead log operation failed after Close", "error", err)
		return
	}
	if !l.failed.Load() {
		l.err = &failedError{cause: err}
		l.failed.Store(true)
		l.log.Error("write-ahead log failed; it accepts no more writes", "error", err)
	}
}

// errFailed is returned by the writer when it finds the log failed before
// an operation: the operation is not attempted.
var errFailed = errors.New("wal: the log failed during this operation")

// alive returns errFailed once the log has failed. The writer calls it
// before every mutating file operation.
func (l *Log) alive() error {
	if l.failed.Load() {
		return errFailed
	}
	return nil
}

// failNow closes the log after an I/O error outside a flush (deleting
// compacted segments) and returns the sticky error.
func (l *Log) failNow(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail(err)
	l.cond.Broadcast()
	return l.err
}

// applyEffects makes a written group visible to readers.
func (l *Log) applyEffects(effects []effect) {
	for i := range effects {
		switch e := &effects[i]; e.kind {
		case effectSegment:
			// Save checked the batch that made the writer create it.
			_ = l.st.addSegment(e.seg)
		case effectHardState:
			l.st.hard = e.hard
		case effectCompacted:
			l.st.applyCompacted(e.compacted)
		case effectEntry:
			l.st.applyEntry(e.seg, e.slot, e.off)
		}
	}
}

// Compact records that a durable snapshot covers every slot up to c.Slot,
// then deletes the sealed segments that hold nothing above it, oldest
// first. Call it only once the snapshot itself is durable.
func (l *Log) Compact(c Compacted) error {
	t, err := l.enqueue(queued{compacted: &c, sync: true})
	if err == nil {
		err = l.Wait(t)
	}
	if err != nil {
		return err
	}
	return l.deleteCompacted()
}

// deleteCompacted deletes the sealed segments whose every entry is covered
// by the compaction point, oldest first, so that a crash midway leaves a
// log whose segments are still consecutive.
func (l *Log) deleteCompacted() error {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	n := 0
	for n < len(l.st.segs)-1 && l.st.segs[n].maxSlot <= l.st.compacted.Slot {
		n++
	}
	if l.err == ErrClosed {
		// Closed between the compaction record and here: the next Log
		// deletes them.
		l.mu.Unlock()
		return nil
	}
	victims := append([]*segment(nil), l.st.segs[:n]...)
	l.st.segs = l.st.segs[n:]
	l.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	l.segMu.Lock()
	for _, s := range victims {
		s.f.Close()
	}
	l.segMu.Unlock()
	for _, s := range victims {
		if err := l.alive(); err != nil {
			return l.failNow(err)
		}
		if l.closing.Load() {
			// Close is waiting: what is left stays for the next Log, which
			// replays it harmlessly and deletes it at its next compaction.
			// The deletions made are synced below.
			break
		}
		if err := l.fs.Remove(s.name); errors.Is(err, fs.ErrNotExist) {
			// Already gone: deleted by a Log that stopped before syncing the
			// directory, or by hand. That is what was wanted.
			l.log.Warn("a compacted segment was already deleted", "file", s.name)
		} else if err != nil {
			// The file stays; it holds only compacted entries, and the next
			// Open replays it harmlessly. Later segments are not deleted
			// before it, or the log would have a hole in its seqs. The log
			// fails like after any I/O error: the state of the directory
			// is no longer known.
			return l.failNow(fmt.Errorf("wal: deleting %s: %w", s.name, err))
		}
		l.log.Debug("deleted compacted segment", "file", s.name)
	}
	// The durability point of the deletions. If it fails, which deletions
	// are durable is unknown, and, as after a failed fdatasync, the log
	// accepts nothing more.
	if err := l.syncDir(); err != nil {
		return l.failNow(err)
	}
	return nil
}

// Entries returns copies of the entries for slots [lo, hi), stopping early
// once their values exceed maxBytes in total (but returning at least one).
// It returns ErrCompacted if lo is compacted and ErrUnavailable if hi is
// past LastSlot+1.
func (l *Log) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	type loc struct {
		seg *segment
		off uint32
	}
	l.mu.Lock()
	if l.err == ErrClosed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	switch {
	case lo > hi:
		l.mu.Unlock()
		return nil, fmt.Errorf("wal: Entries(%d, %d): lo is above hi", lo, hi)
	case lo < l.st.firstSlot():
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: slot %d is below the first slot %d", ErrCompacted, lo, l.st.firstSlot())
	case hi > l.st.last+1:
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: slot %d is past the last slot %d", ErrUnavailable, hi-1, l.st.last)
	}
	locs := make([]loc, 0, hi-lo)
	for s := lo; s < hi; s++ {
		seg, off, ok := l.st.locate(s)
		if !ok {
			l.mu.Unlock()
			return nil, fmt.Errorf("wal: no record for slot %d (a bug: the index has a hole)", s)
		}
		locs = append(locs, loc{seg, off})
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	l.mu.Unlock()

	dec := newBodyDecoder()
	ents := make([]Entry, 0, len(locs))
	var size uint64
	var buf []byte
	for i := 0; i < len(locs); {
		// Read a run of records of one segment with a single ReadAt: from
		// the first record's offset to the end of the last one's. The run
		// stops where the values read would pass maxBytes (a record is a
		// value and a few dozen bytes), give or take entriesReadSlack and
		// the last record.
		budget := uint64(entriesReadSlack)
		if size < maxBytes {
			budget += maxBytes - size
		}
		j := i + 1
		for j < len(locs) && locs[j].seg == locs[i].seg && locs[j].off > locs[j-1].off && j-i < 1024 &&
			uint64(locs[j].off-locs[i].off) <= budget {
			j++
		}
		seg, start := locs[i].seg, int64(locs[i].off)
		lastLen, err := recordLength(seg.f, int64(locs[j-1].off))
		if err != nil {
			return nil, fmt.Errorf("wal: reading %s: %w", seg.name, err)
		}
		end := int64(locs[j-1].off) + int64(lastLen)
		if end-start > int64(maxBatchBytes) {
			return nil, corruptf(seg.name, start, "records span %d bytes", end-start)
		}
		buf = growTo(buf, int(end-start))
		if _, err := seg.f.ReadAt(buf, start); err != nil && err != io.EOF {
			return nil, fmt.Errorf("wal: reading %s: %w", seg.name, err)
		}
		for k := i; k < j; k++ {
			off := int64(locs[k].off)
			t, body, _, err := decodeRecord(buf[off-start:], seg.seq, seg.maxRecordBytes)
			if err == nil && t != typeEntry {
				err = fmt.Errorf("a %s record where an entry was indexed", t)
			}
			var e entryBody
			if err == nil {
				err = dec.decode(body, &e)
			}
			if err == nil && e.Slot != lo+uint64(len(ents)) {
				err = fmt.Errorf("entry for slot %d where slot %d was indexed", e.Slot, lo+uint64(len(ents)))
			}
			if err != nil {
				return nil, corruptf(seg.name, off, "%v", err)
			}
			size += uint64(len(e.Value))
			if len(ents) > 0 && size > maxBytes {
				return ents, nil
			}
			ents = append(ents, Entry{Slot: e.Slot, Ballot: e.Ballot, Value: e.Value})
		}
		i = j
	}
	return ents, nil
}

// entriesReadSlack is how far past maxBytes a read of Entries may go, so
// that entries with small values are still read many at a time.
const entriesReadSlack = 4096

// recordLength reads the header of the record at off and returns the
// number of bytes it occupies.
func recordLength(f File, off int64) (int, error) {
	var hdr [recordHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return 0, err
	}
	length := int(uint32(hdr[4]) | uint32(hdr[5])<<8 | uint32(hdr[6])<<16 | uint32(hdr[7])<<24)
	return recordHeaderSize + align8(length), nil
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// State returns the log's current hard state, compaction point and slot
// range, as of the last batch written.
func (l *Log) State() InitialState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.initialState()
}

// Close writes what is queued, unless the log has failed, waits for the
// write in progress, then closes the files and releases the directory
// lock. After a failure it writes nothing and returns the failure. Saves
// after Close return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	for l.flushing || (len(l.queue) > 0 && l.err == nil) {
		if !l.flushing {
			l.flush()
			continue
		}
		l.cond.Wait()
	}
	// After a failure the queue is never written; its Waits return the
	// failure.
	clear(l.queue)
	l.queue = l.queue[:0]
	if l.err == ErrClosed {
		l.mu.Unlock()
		return nil
	}
	failed := l.err
	l.err = ErrClosed
	l.cond.Broadcast()
	l.mu.Unlock()

	// Wait for a compaction that is deleting segments: its files must be
	// gone, or not touched again, before the lock is released to the next
	// Log.
	l.closing.Store(true)
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	segs := l.st.segs
	l.mu.Unlock()

	l.w.stopPrealloc()
	l.segMu.Lock()
	for _, s := range segs {
		s.f.Close()
	}
	if t := l.w.tail; t != nil && (len(segs) == 0 || segs[len(segs)-1] != t) {
		t.f.Close() // created by a flush that then failed
	}
	l.segMu.Unlock()
	err := l.lock.Close()
	if failed != nil {
		return failed
	}
	return err
}

func (l *Log) sync(f File) error {
	if err := l.alive(); err != nil {
		return err
	}
	if l.opts.NoSync {
		return nil
	}
	start := time.Now()
	err := f.Sync()
	d := time.Since(start)
	if d > slowSync {
		l.log.Warn("slow fdatasync", "took", d)
	}
	if l.opts.OnSync != nil {
		l.opts.OnSync(d)
	}
	return err
}

func (l *Log) syncDir() error {
	if err := l.alive(); err != nil {
		return err
	}
	if l.opts.NoSync {
		return nil
	}
	if err := l.fs.SyncDir(); err != nil {
		return fmt.Errorf("wal: syncing the log directory: %w", err)
	}
	return nil
}
