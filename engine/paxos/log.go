package paxos

// slotLog is a replica's log of accepted entries, in memory, from the
// compaction point on, with the marks that say how far it is committed,
// handed out for applying, and handed out for persisting.
type slotLog struct {
	// compacted is the slot up to which a snapshot covers the log; entries
	// holds the slots after it: entries[i].Slot == compacted.Slot+1+i.
	compacted Compacted
	entries   []Entry

	// commit is the highest slot known chosen.
	// Invariant: compacted.Slot <= commit <= last().
	commit uint64
	// applying is the highest slot handed out in a Ready to be applied;
	// applied the highest the caller reported applied (Advance).
	// Invariant: applied <= applying <= commit.
	applying, applied uint64
	// unstable is the first slot whose entry changed since it was last
	// handed out to be persisted; last()+1 when there is none.
	// Invariant: compacted.Slot < unstable <= last()+1.
	unstable uint64
}

func newSlotLog(c Compacted, entries []Entry, commit, applied uint64) slotLog {
	l := slotLog{compacted: c, entries: entries}
	l.commit = min(max(commit, c.Slot), l.last())
	l.applied = min(max(applied, c.Slot), l.commit)
	l.applying = l.applied
	l.unstable = l.last() + 1
	return l
}

func (l *slotLog) first() uint64 { return l.compacted.Slot + 1 }

func (l *slotLog) last() uint64 { return l.compacted.Slot + uint64(len(l.entries)) }

// entry returns the entry for slot, if the log holds it.
func (l *slotLog) entry(slot uint64) (Entry, bool) {
	if slot <= l.compacted.Slot || slot > l.last() {
		return Entry{}, false
	}
	return l.entries[slot-l.compacted.Slot-1], true
}

// ballotAt returns the ballot of slot's entry, or of the compaction point.
func (l *slotLog) ballotAt(slot uint64) (Ballot, bool) {
	if slot == l.compacted.Slot {
		return l.compacted.Ballot, true
	}
	e, ok := l.entry(slot)
	return e.Ballot, ok
}

// set stores e, which is for a slot the log holds or the next one.
func (l *slotLog) set(e Entry) {
	switch {
	case e.Slot == l.last()+1:
		l.entries = append(l.entries, e)
	case e.Slot > l.compacted.Slot && e.Slot <= l.last():
		l.entries[e.Slot-l.compacted.Slot-1] = e
	default:
		panic("paxos: set outside the log") // callers check; a bug otherwise
	}
	l.unstable = min(l.unstable, e.Slot)
}

// slice returns a copy of the entries for [lo, hi), stopping once their
// values pass maxBytes (but returning at least one). The copy goes out in
// Readys and messages, which may outlive later changes to the log; the
// values themselves are never modified, so they are shared.
func (l *slotLog) slice(lo, hi uint64, maxBytes int) []Entry {
	if lo <= l.compacted.Slot || hi > l.last()+1 || lo >= hi {
		return nil
	}
	ents := l.entries[lo-l.compacted.Slot-1 : hi-l.compacted.Slot-1]
	size := 0
	for i, e := range ents {
		size += len(e.Value)
		if i > 0 && size > maxBytes {
			ents = ents[:i]
			break
		}
	}
	return append([]Entry(nil), ents...)
}

// takeUnstable returns the entries changed since the last call, which must
// be persisted, and marks them handed out.
func (l *slotLog) takeUnstable() []Entry {
	ents := l.slice(l.unstable, l.last()+1, int(^uint(0)>>1))
	l.unstable = l.last() + 1
	return ents
}

// takeCommitted returns the committed entries not yet handed out for
// applying, and marks them handed out.
func (l *slotLog) takeCommitted() []Entry { return l.takeCommittedTo(l.commit) }

// takeCommittedTo is takeCommitted up to slot hi at most.
func (l *slotLog) takeCommittedTo(hi uint64) []Entry {
	hi = min(hi, l.commit)
	if hi <= l.applying {
		return nil
	}
	ents := l.slice(l.applying+1, hi+1, int(^uint(0)>>1))
	l.applying = hi
	return ents
}
