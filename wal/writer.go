package wal

import (
	"errors"
	"fmt"
)

// writer is the state of the goroutine that is flushing: it alone touches
// the tail file, and only one goroutine flushes at a time (Log.flushing).
type writer struct {
	tail *segment
	// off is where the next write goes in the tail; synced is how much of
	// the tail is known durable; tailStart is the end of the tail's first
	// batch (its copy of the hard state), so off > tailStart means the tail
	// holds batches of its own.
	off, synced, tailStart int64
	nextSeq                uint64
	// tailHasEntries is set once the tail holds an entry record. The first
	// entry of a segment must be for its firstSlot (see writeGroup).
	tailHasEntries bool

	// The log's state as of the last batch encoded, which may not be
	// durable yet: what a new segment copies, and where a roll starts.
	hard      HardState
	compacted Compacted
	last      uint64

	enc     *bodyEncoder
	buf     []byte
	effects []effect
	pre     *prealloc
}

// effect is one change a written group makes to the readers' logState,
// applied by Log.applyEffects once the group is written.
type effect struct {
	kind      effectKind
	seg       *segment
	slot      uint64
	off       uint32
	hard      HardState
	compacted Compacted
}

type effectKind uint8

const (
	effectEntry effectKind = iota
	effectHardState
	effectCompacted
	effectSegment
)

// writeGroup writes a group of queued saves with one write and, if any of
// them asked for it, one fdatasync (plus what rolling to a new segment
// takes). It returns the changes to apply to the readers' state, and
// whether the group is durable.
func (w *writer) writeGroup(l *Log, group []queued) (effects []effect, synced bool, err error) {
	w.effects, w.buf = w.effects[:0], w.buf[:0]
	start := w.off
	syncNeeded := false
	for _, q := range group {
		syncNeeded = syncNeeded || q.sync
		end := start + int64(len(w.buf))
		// A new segment starts at the slot of the batch's first entry (or
		// after the last slot), so that a segment never holds an entry for
		// a slot before its firstSlot.
		rollAt := w.last + 1
		if q.batch != nil && len(q.batch.Entries) > 0 {
			rollAt = q.batch.Entries[0].Slot
		}
		// Roll when an overwrite reaches back before the tail segment, or
		// when the batch would take the tail past SegmentBytes, or when the
		// tail has no entry yet and this one is not for its firstSlot. The
		// last happens when the batch that a roll was made for was never
		// written (the process died): a segment whose entries started above
		// its firstSlot would need the segment before it for the slots in
		// between, and once a compaction had deleted that one, replay
		// would find a hole.
		hasEntries := q.batch != nil && len(q.batch.Entries) > 0
		if rollAt < w.tail.firstSlot || (end > w.tailStart && end+estimate(q) > l.opts.SegmentBytes) ||
			(hasEntries && !w.tailHasEntries && rollAt != w.tail.firstSlot) {
			if err := w.write(l, start); err != nil {
				return nil, false, err
			}
			seg, err := w.roll(l, rollAt)
			if err != nil {
				return nil, false, err
			}
			w.effects = append(w.effects, effect{kind: effectSegment, seg: seg})
			start = w.off
		}
		// The index holds record offsets as uint32. SegmentBytes (at most
		// 1 GiB) and the roll above keep a segment within SegmentBytes plus
		// one batch (at most 1 GiB), far below 4 GiB: this cannot happen,
		// but an offset must never wrap silently.
		if end := start + int64(len(w.buf)); end+estimate(q) > maxRecordOffset {
			return nil, false, fmt.Errorf("wal: a batch of %d bytes at byte %d of %s would put records past byte %d", estimate(q), end, w.tail.name, int64(maxRecordOffset))
		}
		w.encode(q, start)
	}
	if err := w.write(l, start); err != nil {
		return nil, false, err
	}
	if syncNeeded {
		// The durability point of every save in the group: Wait returns
		// for a synced save only after this fdatasync has returned.
		if err := l.sync(w.tail.f); err != nil {
			return nil, false, fmt.Errorf("wal: fdatasync %s: %w", w.tail.name, err)
		}
		w.synced = w.off
	}
	return w.effects, syncNeeded, nil
}

// estimate bounds the bytes q takes once encoded.
func estimate(q queued) int64 {
	n := int64(2 * recordSize(32))
	if q.batch != nil {
		for _, e := range q.batch.Entries {
			n += int64(recordSize(len(e.Value) + 40))
		}
	}
	return n
}

// encode appends q's records and its commit record to w.buf, which is
// written at file offset start.
func (w *writer) encode(q queued, start int64) {
	seq, n := w.tail.seq, uint32(0)
	if c := q.compacted; c != nil {
		w.buf = w.enc.appendRecord(w.buf, seq, typeCompacted, c)
		w.effects = append(w.effects, effect{kind: effectCompacted, compacted: *c})
		w.compacted, w.last = *c, max(w.last, c.Slot)
		n++
	}
	if b := q.batch; b != nil {
		if h := b.HardState; h != nil {
			w.buf = w.enc.appendRecord(w.buf, seq, typeHardState, h)
			w.effects = append(w.effects, effect{kind: effectHardState, hard: *h})
			w.hard = *h
			n++
		}
		for i := range b.Entries {
			e := &b.Entries[i]
			off := uint32(start + int64(len(w.buf)))
			w.buf = w.enc.appendRecord(w.buf, seq, typeEntry, e)
			w.effects = append(w.effects, effect{kind: effectEntry, seg: w.tail, slot: e.Slot, off: off})
			w.last = e.Slot
			w.tailHasEntries = true
			n++
		}
	}
	w.buf = w.enc.appendRecord(w.buf, seq, typeCommit, &commitBody{SyncedOffset: uint64(w.synced), Records: n})
}

// write writes w.buf to the tail at start.
func (w *writer) write(l *Log, start int64) error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := l.alive(); err != nil {
		return err
	}
	if _, err := w.tail.f.WriteAt(w.buf, start); err != nil {
		return fmt.Errorf("wal: writing %s: %w", w.tail.name, err)
	}
	w.off = start + int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// roll seals the tail and moves to a new segment whose first slot is
// firstSlot. Each step leaves a log that recovers:
//
//  1. The tail is cut to its written length and synced: it is sealed and
//     never written again. (A crash here leaves it as the tail, whole.)
//  2. The next segment, a temporary file pre-written with zeros, gets a
//     header and a first batch copying the hard state and compaction
//     point, and is synced. (A crash leaves a temporary file, which Open
//     deletes.)
//  3. It is renamed to its segment name and the directory is synced.
//     (Before the directory sync, a crash leaves either name; both
//     recover.) Only then is anything written to it.
func (w *writer) roll(l *Log, firstSlot uint64) (*segment, error) {
	seq := w.nextSeq
	f, err := w.takePrealloc(l, seq)
	if err != nil {
		return nil, err
	}
	if w.tail != nil {
		if err := l.alive(); err != nil {
			f.Close()
			return nil, err
		}
		if err := w.tail.f.Truncate(w.off); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: sealing %s: %w", w.tail.name, err)
		}
		if err := l.sync(w.tail.f); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: sealing %s: fdatasync: %w", w.tail.name, err)
		}
	}
	seg := &segment{name: segmentName(seq, firstSlot), seq: seq, firstSlot: firstSlot, f: f, maxRecordBytes: l.opts.MaxRecordBytes}
	buf := segmentHeader{seq: seq, firstSlot: firstSlot, maxRecordBytes: uint32(l.opts.MaxRecordBytes)}.appendTo(nil)
	buf = w.enc.appendRecord(buf, seq, typeHardState, &w.hard)
	n := uint32(1)
	if w.compacted != (Compacted{}) {
		buf = w.enc.appendRecord(buf, seq, typeCompacted, &w.compacted)
		n++
	}
	buf = w.enc.appendRecord(buf, seq, typeCommit, &commitBody{Records: n})
	if err := l.alive(); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: writing %s: %w", tempName(seq), err)
	}
	if err := l.sync(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: fdatasync %s: %w", tempName(seq), err)
	}
	if err := l.alive(); err != nil {
		f.Close()
		return nil, err
	}
	if err := l.fs.Rename(tempName(seq), seg.name); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: renaming %s to %s: %w", tempName(seq), seg.name, err)
	}
	if err := l.syncDir(); err != nil {
		f.Close()
		return nil, err
	}
	l.log.Debug("new segment", "file", seg.name)
	w.tail, w.nextSeq, w.tailHasEntries = seg, seq+1, false
	w.off, w.synced, w.tailStart = int64(len(buf)), int64(len(buf)), int64(len(buf))
	w.startPrealloc(l)
	return seg, nil
}

// prealloc is the preparation of the next segment file in the background:
// a temporary file filled with zeros and synced, so that appending to it
// later overwrites blocks that already exist, which makes each fdatasync
// cheaper than one that must also grow the file.
type prealloc struct {
	seq  uint64
	stop chan struct{}
	done chan struct{}
	f    File
	err  error
}

var errPreallocStopped = errors.New("wal: preparation of the next segment was stopped")

func (w *writer) startPrealloc(l *Log) {
	if l.opts.inlinePrealloc {
		return
	}
	p := &prealloc{seq: w.nextSeq, stop: make(chan struct{}), done: make(chan struct{})}
	w.pre = p
	go func() {
		defer close(p.done)
		p.f, p.err = createZeroed(l, p.seq, p.stop)
		if p.err != nil && !errors.Is(p.err, errPreallocStopped) && !errors.Is(p.err, errFailed) {
			// An I/O error here, a failed fdatasync above all, fails the log
			// as any other does, at once: what reached the disk is unknown,
			// and an fsync is never retried.
			l.failNow(p.err)
		}
	}()
}

// takePrealloc returns the prepared file for seq, preparing it now if it
// was not prepared in the background. If the background preparation
// failed, the log has failed, and so does this.
func (w *writer) takePrealloc(l *Log, seq uint64) (File, error) {
	if p := w.pre; p != nil && p.seq == seq {
		w.pre = nil
		<-p.done
		return p.f, p.err
	}
	return createZeroed(l, seq, nil)
}

// stopPrealloc stops and waits for the background preparation, if any.
func (w *writer) stopPrealloc() {
	if p := w.pre; p != nil {
		w.pre = nil
		close(p.stop)
		<-p.done
		if p.f != nil {
			p.f.Close()
		}
	}
}

// zeros is written, never modified, to pre-fill segment files.
var zeros = make([]byte, 1<<20)

func createZeroed(l *Log, seq uint64, stop <-chan struct{}) (File, error) {
	name := tempName(seq)
	if err := l.alive(); err != nil {
		return nil, err
	}
	f, err := l.fs.Create(name)
	if err != nil {
		return nil, fmt.Errorf("wal: creating %s: %w", name, err)
	}
	for off := int64(0); off < l.opts.SegmentBytes; {
		select {
		case <-stop:
			f.Close()
			return nil, errPreallocStopped
		default:
		}
		if err := l.alive(); err != nil {
			f.Close()
			return nil, err
		}
		n := min(int64(len(zeros)), l.opts.SegmentBytes-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: pre-writing %s: %w", name, err)
		}
		off += n
	}
	if err := l.sync(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: fdatasync %s: %w", name, err)
	}
	return f, nil
}
