package wal

import (
	"bytes"
	"errors"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

// fillSegment writes one segment of about segBytes to dir, in entries of
// valueBytes, and returns the number of entries. The log is written without
// fsync: only its bytes matter here.
func fillSegment(t testing.TB, dir string, segBytes int64, valueBytes int) uint64 {
	t.Helper()
	opts := Options{SegmentBytes: segBytes, NoSync: true, inlinePrealloc: true}
	l, _, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, valueBytes)
	for i := range v {
		v[i] = byte(i*7 + 1)
	}
	var slot uint64
	per := int(segBytes/2) / (valueBytes + 64)
	for batch := 0; batch < 2; batch++ {
		var b Batch
		for i := 0; i < per-1; i++ {
			slot++
			b.Entries = append(b.Entries, Entry{Slot: slot, Ballot: Ballot{Round: 1, Node: 1}, Value: v})
		}
		if err := l.Save(b, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.st.segs); n != 1 {
		t.Fatalf("the log has %d segments, want 1", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return slot
}

// openPeakHeap opens the log in dir with the garbage collector off and
// returns how much the heap grew during Open: with nothing collected, that
// is the peak of what Open had allocated at any moment (and the total it
// allocated), and liveAfter, what Open still holds once it has returned.
func openPeakHeap(t testing.TB, dir string, opts Options) (peak, liveAfter uint64, st InitialState) {
	t.Helper()
	opts.NoSync, opts.inlinePrealloc = true, true
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, st, err := Open(dir, opts)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	peak = after.TotalAlloc - before.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&after)
	liveAfter = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	runtime.KeepAlive(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return peak, liveAfter, st
}

// TestOpenMemoryIsBounded replays a 16 MiB segment: Open must read it
// through a bounded buffer, not hold the whole file.
func TestOpenMemoryIsBounded(t *testing.T) {
	dir := t.TempDir()
	last := fillSegment(t, dir, 16<<20, 4096)
	peak, live, st := openPeakHeap(t, dir, Options{SegmentBytes: 16 << 20})
	if st.LastSlot != last {
		t.Fatalf("recovered up to slot %d, want %d", st.LastSlot, last)
	}
	t.Logf("Open of a 16 MiB segment with %d entries: allocated %d bytes (the peak), %d still live after", last, peak, live)
	// The index of the entries (4 bytes each) and a read buffer; far below
	// the segment's size.
	if limit := uint64(2 << 20); peak > limit {
		t.Fatalf("Open allocated %d bytes for a 16 MiB segment; want at most %d", peak, limit)
	}
}

// BenchmarkOpen64MiB reports the peak heap of Open on one full 64 MiB
// segment of 4 KiB entries (peak-B) and what it holds afterwards (live-B):
//
//	go test ./wal -run '^$' -bench Open64MiB -benchtime 3x
func BenchmarkOpen64MiB(b *testing.B) {
	dir := b.TempDir()
	fillSegment(b, dir, 64<<20, 4096)
	var peak, live uint64
	for b.Loop() {
		p, l, _ := openPeakHeap(b, dir, Options{SegmentBytes: 64 << 20})
		peak, live = max(peak, p), max(live, l)
	}
	b.ReportMetric(float64(peak), "peak-B")
	b.ReportMetric(float64(live), "live-B")
}

// entryHead is how msgpack decodes the head of an entry, skipping the value.
type entryHead struct {
	Slot   uint64
	Ballot Ballot
}

// TestParseEntryHeadAgreesWithMsgpack: replay reads the head of a large
// entry by hand, to skip its value; it must read what msgpack encoded, and
// refuse a body whose value does not fill it exactly.
func TestParseEntryHeadAgreesWithMsgpack(t *testing.T) {
	enc, dec := newBodyEncoder(), newBodyDecoder()
	for _, slot := range []uint64{1, 127, 128, 1 << 16, 1 << 40, 1<<64 - 1} {
		for _, b := range []Ballot{{}, {Round: 300, Node: 2}, {Round: 1 << 33, Node: 1<<64 - 1}} {
			for _, n := range []int{-1, 0, 1, 255, 256, 65535, 65536, 1 << 17} {
				var v []byte
				if n >= 0 {
					v = make([]byte, n)
				}
				rec := enc.appendRecord(nil, 1, typeEntry, &Entry{Slot: slot, Ballot: b, Value: v})
				_, body, _, err := decodeRecord(rec, 1, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				var want entryHead
				if err := dec.decode(body, &want); err != nil {
					t.Fatal(err)
				}
				s, got, err := parseEntryHead(body[:min(len(body), 64)], len(body))
				if err != nil || s != want.Slot || got != want.Ballot {
					t.Fatalf("slot %d ballot %+v value %d: parsed slot %d ballot %+v, %v", want.Slot, want.Ballot, n, s, got, err)
				}
				if _, _, err := parseEntryHead(body[:min(len(body), 64)], len(body)+1); err == nil {
					t.Fatalf("slot %d value %d: a body one byte longer than its value was accepted", slot, n)
				}
			}
		}
	}
}

// TestLargeEntryDamageIsFound damages the value of a large entry (read
// through the window, never whole) in a sealed segment: the streamed
// checksum must catch it.
func TestLargeEntryDamageIsFound(t *testing.T) {
	fs := memfs.New()
	opts := Options{SegmentBytes: 1 << 20, inlinePrealloc: true}
	l := mustOpen(t, fs, opts)
	for s := uint64(1); s <= 12; s++ {
		v := bytes.Repeat([]byte{byte(s)}, 200<<10)
		if err := l.Save(Batch{Entries: []Entry{{Slot: s, Ballot: Ballot{Round: 1, Node: 1}, Value: v}}}, true); err != nil {
			t.Fatal(err)
		}
	}
	first := l.st.segs[0].name
	if len(l.st.segs) < 2 {
		t.Fatal("want a sealed segment")
	}
	l.Close()
	data, _ := fs.ReadFile(first)
	at := segmentHeaderSize + 150<<10
	data[at] ^= 1
	fs.WriteFile(first, data)
	_, _, err := Open("", Options{FS: fs, SegmentBytes: opts.SegmentBytes, inlinePrealloc: true})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != first || ce.Offset > int64(at) {
		t.Fatalf("Open: %v; want a CorruptError naming %s before byte %d", err, first, at)
	}
}
