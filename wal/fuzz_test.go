package wal

import (
	"bytes"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

// FuzzDecode feeds arbitrary bytes to the record decoder, as one record and
// as the body of a whole segment replayed into a log state. Nothing may
// panic or allocate beyond the record size limit; a record that decodes
// must re-encode to the same bytes; an entry body that decodes must survive
// an encode/decode round trip.
//
//	go test -fuzz=FuzzDecode ./wal
func FuzzDecode(f *testing.F) {
	enc := newBodyEncoder()
	var seeds [][]byte
	one := func(t recordType, v any) []byte { return enc.appendRecord(nil, 1, t, v) }
	seeds = append(seeds,
		one(typeEntry, &Entry{Slot: 1, Ballot: Ballot{Round: 1, Node: 2}, Value: []byte("hello")}),
		one(typeHardState, &HardState{Promised: Ballot{Round: 3, Node: 1}, Commit: 9}),
		one(typeCompacted, &Compacted{Slot: 4, Ballot: Ballot{Round: 1}}),
		one(typeCommit, &commitBody{SyncedOffset: 32, Records: 1}),
	)
	batch := append(append([]byte(nil), seeds[0]...), one(typeCommit, &commitBody{SyncedOffset: 32, Records: 1})...)
	seeds = append(seeds,
		batch,
		batch[:len(batch)-3],
		[]byte{0, 0, 0, 0, 0, 0, 0, 0},
		[]byte{1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 1},
		[]byte{0xde, 0xad, 0xbe, 0xef, 2, 0, 0, 0, 1, 0x93, 0, 0, 0, 0, 0, 0},
	)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxRecord = 1 << 16
		dec := newBodyDecoder()
		typ, body, size, err := decodeRecord(data, 1, maxRecord)
		if err == nil {
			if again := appendRecord(nil, 1, typ, body); !bytes.Equal(again, data[:size]) {
				t.Fatalf("record %x re-encodes as %x", data[:size], again)
			}
			if typ == typeEntry {
				var e Entry
				if dec.decode(body, &e) == nil {
					var e2 Entry
					_, body2, _, err := decodeRecord(enc.appendRecord(nil, 1, typeEntry, &e), 1, maxRecord)
					if err == nil {
						err = dec.decode(body2, &e2)
					}
					if err != nil {
						t.Fatalf("entry %+v does not decode after encoding: %v", e, err)
					}
					if e2.Slot != e.Slot || e2.Ballot != e.Ballot || !bytes.Equal(e2.Value, e.Value) {
						t.Fatalf("entry %+v came back as %+v", e, e2)
					}
				}
			}
		}
		// The same bytes as the rest of a segment after its first batch,
		// and, read as [type, length, body...] triples framed with valid
		// checksums (which random bytes almost never have), as records
		// whose bodies the fuzzer chooses: both replayed into a log state.
		head := append(segmentHeader{seq: 1, firstSlot: 1, maxRecordBytes: DefaultMaxRecordBytes}.appendTo(nil), one(typeHardState, &HardState{})...)
		head = append(head, one(typeCommit, &commitBody{Records: 1})...)
		framed := append([]byte(nil), head...)
		for rest := data; len(rest) >= 2; {
			n := min(int(rest[1]), len(rest)-2)
			framed = appendRecord(framed, 1, recordType(rest[0]), rest[2:2+n])
			rest = rest[2+n:]
		}
		for _, seg := range [][]byte{append(head, data...), framed} {
			fs := memfs.New()
			fs.WriteFile(segmentName(1, 1), seg)
			r, err := replay(fs, false, false)
			if err == nil && r.st.last > r.st.compacted.Slot {
				if _, _, ok := r.st.locate(r.st.last); !ok {
					t.Fatalf("replay accepted a log whose last slot %d has no entry", r.st.last)
				}
			}
		}
	})
}
