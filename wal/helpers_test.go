package wal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// model is what a log should hold: the reference the tests compare with.
type model struct {
	hard      HardState
	compacted Compacted
	last      uint64
	entries   map[uint64]Entry
}

func newModel() *model { return &model{entries: map[uint64]Entry{}} }

func (m *model) clone() *model {
	c := *m
	c.entries = make(map[uint64]Entry, len(m.entries))
	for k, v := range m.entries {
		c.entries[k] = v
	}
	return &c
}

func (m *model) save(b Batch) {
	if b.HardState != nil {
		m.hard = *b.HardState
	}
	if len(b.Entries) > 0 {
		for s := b.Entries[0].Slot; s <= m.last; s++ {
			delete(m.entries, s)
		}
		for _, e := range b.Entries {
			m.entries[e.Slot] = e
		}
		m.last = b.Entries[len(b.Entries)-1].Slot
	}
}

func (m *model) compact(c Compacted) {
	for s := m.compacted.Slot + 1; s <= c.Slot; s++ {
		delete(m.entries, s)
	}
	m.compacted = c
	m.last = max(m.last, c.Slot)
}

// check compares an open log with the model.
func (m *model) check(l *Log) error {
	st := l.State()
	want := InitialState{HardState: m.hard, Compacted: m.compacted, FirstSlot: m.compacted.Slot + 1, LastSlot: m.last}
	if st != want {
		return fmt.Errorf("state %+v, want %+v", st, want)
	}
	return m.checkEntries(l)
}

func (m *model) checkEntries(l *Log) error {
	if m.last < m.compacted.Slot+1 {
		return nil
	}
	got, err := l.Entries(m.compacted.Slot+1, m.last+1, 1<<62)
	if err != nil {
		return fmt.Errorf("Entries: %v", err)
	}
	if uint64(len(got)) != m.last-m.compacted.Slot {
		return fmt.Errorf("Entries returned %d entries, want %d", len(got), m.last-m.compacted.Slot)
	}
	for _, e := range got {
		w := m.entries[e.Slot]
		if e.Slot != w.Slot || e.Ballot != w.Ballot || !bytes.Equal(e.Value, w.Value) {
			return fmt.Errorf("slot %d: got %+v, want %+v", e.Slot, e, w)
		}
	}
	return nil
}

// equalState reports whether the log matches the model exactly.
func (m *model) equal(l *Log) bool { return m.check(l) == nil }

// randomBatch makes a batch that follows m: mostly appends, sometimes an
// overwrite of a recent suffix, sometimes only a hard state.
func randomBatch(rng *rand.Rand, m *model, maxValue int) Batch {
	var b Batch
	if rng.IntN(4) == 0 {
		h := HardState{Promised: Ballot{Round: rng.Uint64N(100), Node: rng.Uint64N(5)}, Commit: rng.Uint64N(m.last + 1)}
		b.HardState = &h
		if rng.IntN(2) == 0 {
			return b
		}
	}
	start := m.last + 1
	if rng.IntN(5) == 0 && m.last > m.compacted.Slot {
		back := rng.Uint64N(min(m.last-m.compacted.Slot, 20)) + 1
		start = m.last + 1 - back
	}
	n := rng.IntN(8) + 1
	round := rng.Uint64N(50)
	for i := 0; i < n; i++ {
		v := make([]byte, rng.IntN(maxValue+1))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		b.Entries = append(b.Entries, Entry{Slot: start + uint64(i), Ballot: Ballot{Round: round, Node: 1}, Value: v})
	}
	return b
}

func mustOpen(t testing.TB, fs FS, opts Options) *Log {
	t.Helper()
	opts.FS = fs
	l, _, err := Open("", opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func value(slot uint64) []byte { return []byte(fmt.Sprintf("value-%d", slot)) }

// appendEntries saves entries for slots [from, to] with value(slot).
func appendEntries(t testing.TB, l *Log, m *model, from, to uint64) {
	t.Helper()
	var b Batch
	for s := from; s <= to; s++ {
		b.Entries = append(b.Entries, Entry{Slot: s, Ballot: Ballot{Round: 1, Node: 1}, Value: value(s)})
	}
	if err := l.Save(b, true); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if m != nil {
		m.save(b)
	}
}
