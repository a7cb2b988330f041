package wal

import (
	"fmt"
	"slices"
)

// segment is one segment file of an open log.
type segment struct {
	name      string
	seq       uint64
	firstSlot uint64
	f         File
	// maxRecordBytes is the record limit the segment was written with (see
	// segmentHeader.recordLimit): what its records are read with.
	maxRecordBytes int

	// base is the slot of the entry at offs[0], and offs holds the offsets
	// of the segment's live entry records in slot order. An entry is live
	// until a later entry for the same or a smaller slot, or a compaction,
	// replaces it.
	// Invariant: the live ranges [base, base+len(offs)) of the non-empty
	// segments of a log are disjoint and increase with seq. (An empty
	// segment's base means nothing: a segment created to overwrite slots
	// from firstSlot on is empty, and lower than its predecessors, until its
	// first entry is durable.)
	base uint64
	offs []uint32

	// maxSlot is the highest slot of any entry record in the file, live or
	// not, or firstSlot-1 if it has none. A sealed segment may be deleted
	// once a compaction covers maxSlot.
	maxSlot uint64
}

// liveEnd is one past the slot of the segment's last live entry.
func (s *segment) liveEnd() uint64 { return s.base + uint64(len(s.offs)) }

// logState is what a replay of the log yields: the hard state, the
// compaction point and where every live entry is. Open builds it by
// replaying the segments; the running log then applies each durable batch
// to it with the same methods, so that recovery and normal operation cannot
// disagree on what a record means.
type logState struct {
	hard      HardState
	compacted Compacted
	segs      []*segment

	// origin is the firstSlot of the oldest segment: the log holds nothing
	// below it. With compacted, it must leave no hole (see checkComplete).
	origin uint64
	// last is the slot of the last entry, or the compacted slot when that is
	// higher, or origin-1 when the log holds nothing.
	// Invariant: entries exist for every slot in (max(compacted.Slot,
	// origin-1), last], but for the holes below, during a replay.
	last uint64

	// holes are ranges of slots that no segment holds, met during a replay
	// between one segment and the next. A crash in the middle of deleting
	// compacted segments (oldest first) leaves a suffix of the segments;
	// when overwrites made their first slots go down and up, a surviving
	// segment can start above the end of the one before it. That is
	// harmless if a later compaction record covers the hole (or a later
	// overwrite replaces it), which replay only knows once it has read on;
	// checkComplete fails on any hole left.
	holes []hole
}

// hole is a range of slots [first, last] that no segment holds, met before
// the segment named seg.
type hole struct {
	first, last uint64
	seg         string
}

// firstSlot is the first slot the log can return an entry for.
func (st *logState) firstSlot() uint64 {
	return max(st.compacted.Slot+1, st.origin)
}

// addSegment appends a segment that was just created or opened.
// firstSlot may be at most last+1 (no hole) and above the compacted slot.
func (st *logState) addSegment(seg *segment) error {
	if len(st.segs) == 0 {
		st.origin = seg.firstSlot
		st.last = seg.firstSlot - 1
	} else if seg.firstSlot > st.last+1 {
		// Only a replay can meet this: the writer starts every segment at
		// or below last+1.
		st.holes = append(st.holes, hole{first: st.last + 1, last: seg.firstSlot - 1, seg: seg.name})
		st.last = seg.firstSlot - 1
	}
	if seg.firstSlot <= st.compacted.Slot {
		return fmt.Errorf("segment starts at slot %d, at or below the compacted slot %d", seg.firstSlot, st.compacted.Slot)
	}
	seg.base = seg.firstSlot
	seg.maxSlot = seg.firstSlot - 1
	st.segs = append(st.segs, seg)
	return nil
}

// checkEntry reports whether an entry for slot may be appended to seg, the
// newest segment, without breaking the log's shape.
func (st *logState) checkEntry(seg *segment, slot uint64) error {
	switch {
	case slot <= st.compacted.Slot:
		return fmt.Errorf("entry for slot %d is at or below the compacted slot %d", slot, st.compacted.Slot)
	case slot > st.last+1:
		return fmt.Errorf("entry for slot %d leaves a hole after slot %d", slot, st.last)
	case slot < seg.firstSlot:
		return fmt.Errorf("entry for slot %d in a segment that starts at slot %d", slot, seg.firstSlot)
	}
	return nil
}

// applyEntry records that the entry for slot is at off in seg, the newest
// segment, replacing every entry from slot on. checkEntry must pass.
func (st *logState) applyEntry(seg *segment, slot uint64, off uint32) {
	for i := len(st.segs) - 1; i >= 0; i-- {
		s := st.segs[i]
		if len(s.offs) == 0 {
			continue
		}
		if s.liveEnd() <= slot {
			break // by the invariant, older segments end even earlier
		}
		if slot <= s.base {
			s.offs = s.offs[:0]
		} else {
			s.offs = s.offs[:slot-s.base]
		}
	}
	// Slots from slot on are replaced: a hole there is gone.
	st.holes = slices.DeleteFunc(st.holes, func(h hole) bool { return h.first >= slot })
	if len(seg.offs) == 0 {
		seg.base = slot
	}
	seg.offs = append(seg.offs, off)
	seg.maxSlot = max(seg.maxSlot, slot)
	st.last = slot
}

// checkCompacted reports whether the log may be compacted to c.
func (st *logState) checkCompacted(c Compacted) error {
	if c.Slot < st.compacted.Slot {
		return fmt.Errorf("compaction to slot %d is behind the compacted slot %d", c.Slot, st.compacted.Slot)
	}
	return nil
}

// applyCompacted drops the entries up to c.Slot. When c.Slot is past the
// last entry (a snapshot from elsewhere), the log continues at c.Slot+1.
func (st *logState) applyCompacted(c Compacted) {
	st.compacted = c
	st.holes = slices.DeleteFunc(st.holes, func(h hole) bool { return h.last <= c.Slot })
	for _, s := range st.segs {
		switch {
		case s.liveEnd() <= c.Slot+1:
			s.offs = s.offs[:0]
			s.base = max(s.base, c.Slot+1)
		case s.base <= c.Slot:
			s.offs = s.offs[c.Slot+1-s.base:]
			s.base = c.Slot + 1
		}
	}
	st.last = max(st.last, c.Slot)
}

// checkComplete reports whether the log has a hole between the compaction
// point and its oldest segment, or between two segments, that no compaction
// covers: only missing files can cause one.
func (st *logState) checkComplete() error {
	if st.origin > st.compacted.Slot+1 {
		return fmt.Errorf("the oldest segment starts at slot %d but the log is only compacted up to slot %d: slots are missing", st.origin, st.compacted.Slot)
	}
	if len(st.holes) > 0 {
		h := st.holes[0]
		return &CorruptError{File: h.seg, Reason: fmt.Sprintf("segment starts at slot %d but the log before it ends at slot %d, and the log is only compacted up to slot %d: slots are missing",
			h.last+1, h.first-1, st.compacted.Slot)}
	}
	return nil
}

// locate returns the segment and offset of the live entry for slot, which
// must be in [firstSlot(), last].
func (st *logState) locate(slot uint64) (*segment, uint32, bool) {
	for i := len(st.segs) - 1; i >= 0; i-- {
		s := st.segs[i]
		if len(s.offs) > 0 && s.base <= slot && slot < s.liveEnd() {
			return s, s.offs[slot-s.base], true
		}
	}
	return nil, 0, false
}
