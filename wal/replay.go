package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
)

// ErrCorrupt is matched (with errors.Is) by every error that reports damage
// in the log's files. The error itself is a *CorruptError naming the file
// and byte offset.
var ErrCorrupt = errors.New("wal: corrupt")

// CorruptError reports damage found in a segment file. The log refuses to
// open rather than guess: the bytes at Offset in File were written and
// synced by the log and no longer read back as they were.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

// Error says where the log is corrupt and why.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: %s is damaged at byte %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(file string, off int64, format string, args ...any) error {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// SegmentReport describes one segment file as found by a replay.
type SegmentReport struct {
	Name      string
	Seq       uint64
	FirstSlot uint64
	// Size is the file size; End is where its last complete batch ends.
	Size, End int64
	Batches   int
	Records   int // records in complete batches, commit records included
	Entries   int // entry records in complete batches
	// MinSlot and MaxSlot bound the slots of its entry records (both 0 when
	// it has none).
	MinSlot, MaxSlot uint64
	Sealed           bool
}

// TornTail describes the end of an interrupted write found in the tail
// segment: bytes after the last complete batch that Open cuts off.
type TornTail struct {
	File string
	// Offset is the end of the last complete batch, where the log is cut.
	Offset int64
	// StopOffset is where reading stopped, and Reason why.
	StopOffset int64
	Reason     string
}

// replayed is what a read-only replay of a log directory found.
type replayed struct {
	st      logState
	reports []SegmentReport
	temps   []string  // leftover temporary files, deleted by Open
	torn    *TornTail // set when the tail must be cut
	// tailFirstEnd is where the tail's first batch (its copy of the log's
	// state) ends.
	tailFirstEnd int64
}

// readBufBytes is the size of the window through which replay reads a
// segment. A record that fits is decoded from it; a larger one (an entry
// with a large value) is checksummed through it, and its value is never
// held in memory. So replay needs this much memory per log, plus the index
// of the entries, whatever the size of the segments.
const readBufBytes = 64 << 10

// replay reads every segment of the log in fs and rebuilds its state,
// without changing anything on disk. Each segment is read with the record
// limit its header names, not the one the reader is configured with.
// Segments are opened, and stay open in the returned state, when keepOpen
// is set; otherwise they are closed.
//
// live is set when a running Log holds the directory (see Inspect): the
// tail is then read up to its last complete batch, and what follows is
// not judged, since the writer may be appending to it as it is read.
func replay(fs FS, keepOpen, live bool) (r *replayed, err error) {
	names, err := fs.List()
	if err != nil {
		return nil, fmt.Errorf("wal: listing the log directory: %w", err)
	}
	r = &replayed{}
	type found struct {
		name           string
		seq, firstSlot uint64
	}
	var segs []found
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, tempSuffix):
			r.temps = append(r.temps, name)
		case strings.HasSuffix(name, segmentSuffix):
			seq, first, err := parseSegmentName(name)
			if err != nil {
				return nil, corruptf(name, 0, "%v", err)
			}
			segs = append(segs, found{name, seq, first})
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	for i := 1; i < len(segs); i++ {
		if segs[i].seq == segs[i-1].seq {
			return nil, corruptf(segs[i].name, 0, "two segments with seq %d (the other is %s)", segs[i].seq, segs[i-1].name)
		}
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, corruptf(segs[i].name, 0, "segments %d to %d are missing before this one", segs[i-1].seq+1, segs[i].seq-1)
		}
	}
	defer func() {
		if err != nil || !keepOpen {
			for _, s := range r.st.segs {
				s.f.Close()
			}
		}
	}()
	dec := newBodyDecoder()
	buf := make([]byte, readBufBytes)
	for i, fd := range segs {
		f, err := fs.Open(fd.name)
		if err != nil {
			return r, fmt.Errorf("wal: opening %s: %w", fd.name, err)
		}
		seg := &segment{name: fd.name, seq: fd.seq, firstSlot: fd.firstSlot, f: f}
		if err := r.st.addSegment(seg); err != nil {
			f.Close()
			return r, corruptf(fd.name, 0, "%v", err)
		}
		sr, err := newSegReader(f, buf)
		if err != nil {
			return r, fmt.Errorf("wal: reading %s: %w", fd.name, err)
		}
		sealed := i < len(segs)-1
		rep, err := r.replaySegment(seg, sr, sealed, live, dec)
		if err != nil {
			var ioe *readError
			if errors.As(err, &ioe) {
				return r, fmt.Errorf("wal: reading %s: %w", fd.name, ioe.err)
			}
			return r, err
		}
		r.reports = append(r.reports, rep)
	}
	if len(segs) > 0 {
		if err := r.st.checkComplete(); err != nil {
			if ce, ok := err.(*CorruptError); ok {
				return r, ce
			}
			return r, corruptf(segs[0].name, 0, "%v", err)
		}
	}
	return r, nil
}

// readError is an I/O error met while reading a segment, as opposed to
// bytes that do not decode.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// segReader reads a segment file through a window of bounded size.
type segReader struct {
	f    File
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // bytes of buf that hold [off, off+n)
}

func newSegReader(f File, buf []byte) (*segReader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	return &segReader{f: f, size: size, buf: buf}, nil
}

// peek returns the n bytes at off, or fewer where the file ends. n must be
// at most the window's size. The bytes are valid until the next call.
func (r *segReader) peek(off int64, n int) ([]byte, error) {
	if off >= r.size || n <= 0 {
		return nil, nil
	}
	n = int(min(int64(n), r.size-off))
	if off >= r.off && off+int64(n) <= r.off+int64(r.n) {
		return r.buf[off-r.off : off-r.off+int64(n)], nil
	}
	m := int(min(int64(len(r.buf)), r.size-off))
	k, err := r.f.ReadAt(r.buf[:m], off)
	if k < m {
		r.n = 0
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, &readError{err}
	}
	r.off, r.n = off, m
	return r.buf[:n], nil
}

// checksum is the record checksum, in the segment with the given seq, of
// the n bytes at off, read through the window.
func (r *segReader) checksum(seq uint64, off int64, n int) (uint32, error) {
	crc := uint32(seq)
	for n > 0 {
		b, err := r.peek(off, min(n, len(r.buf)))
		if err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, &readError{io.ErrUnexpectedEOF}
		}
		crc = crc32.Update(crc, castagnoli, b)
		off += int64(len(b))
		n -= len(b)
	}
	return crc, nil
}

// allZero reports whether the bytes in [lo, hi) are all zero; bytes past
// the end of the file count as zero (they were never written).
func (r *segReader) allZero(lo, hi int64) (bool, error) {
	for lo < hi {
		b, err := r.peek(lo, int(min(hi-lo, int64(len(r.buf)))))
		if err != nil || len(b) == 0 {
			return err == nil, err
		}
		if !allZero(b) {
			return false, nil
		}
		lo += int64(len(b))
	}
	return true, nil
}

// zeroTailStart returns the smallest z >= from such that every byte from z
// to the end of the file is zero: where the non-zero content ends.
func (r *segReader) zeroTailStart(from int64) (int64, error) {
	z := from
	for off := from; off < r.size; {
		b, err := r.peek(off, len(r.buf))
		if err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				z = off + int64(i) + 1
				break
			}
		}
		off += int64(len(b))
	}
	return z, nil
}

// replaySegment applies the complete batches of one segment to r.st. A
// sealed segment must be whole; the tail may end in a torn write, which is
// recorded in r.torn. See tornTail for what counts as one.
func (r *replayed) replaySegment(seg *segment, sr *segReader, sealed, live bool, dec *bodyDecoder) (SegmentReport, error) {
	rep := SegmentReport{Name: seg.name, Seq: seg.seq, FirstSlot: seg.firstSlot, Size: sr.size, Sealed: sealed}
	b, err := sr.peek(0, segmentHeaderSize)
	if err != nil {
		return rep, err
	}
	hdr, err := parseSegmentHeader(b)
	if err != nil {
		return rep, corruptf(seg.name, 0, "segment header: %v", err)
	}
	if hdr.seq != seg.seq || hdr.firstSlot != seg.firstSlot {
		return rep, corruptf(seg.name, 0, "header says seq %d, first slot %d; the file name says seq %d, first slot %d",
			hdr.seq, hdr.firstSlot, seg.seq, seg.firstSlot)
	}
	// The segment is read with the limit it was written with.
	seg.maxRecordBytes = hdr.recordLimit()
	apply := func(batch []parsedRecord) error {
		for _, rec := range batch {
			switch rec.typ {
			case typeEntry:
				if err := r.st.checkEntry(seg, rec.slot); err != nil {
					return corruptf(seg.name, rec.off, "%v", err)
				}
				if rec.off > maxRecordOffset {
					return corruptf(seg.name, rec.off, "entry record past byte %d, which the log never writes", int64(maxRecordOffset))
				}
				r.st.applyEntry(seg, rec.slot, uint32(rec.off))
				if rep.Entries == 0 || rec.slot < rep.MinSlot {
					rep.MinSlot = rec.slot
				}
				rep.MaxSlot = max(rep.MaxSlot, rec.slot)
				rep.Entries++
			case typeHardState:
				r.st.hard = rec.hard
			case typeCompacted:
				if err := r.st.checkCompacted(rec.compacted); err != nil {
					return corruptf(seg.name, rec.off, "%v", err)
				}
				r.st.applyCompacted(rec.compacted)
			}
		}
		rep.Records += len(batch) + 1
		rep.Batches++
		return nil
	}
	sc, err := scanSegment(sr, seg.seq, seg.maxRecordBytes, dec, apply)
	if err != nil {
		return rep, err
	}
	rep.End = sc.end
	if sc.fatal != nil {
		return rep, corruptf(seg.name, sc.fatalOff, "%v", sc.fatal)
	}
	if sc.end == segmentHeaderSize {
		// Every segment is created with a first batch (a copy of the hard
		// state) that is synced before the file gets its name.
		return rep, corruptf(seg.name, segmentHeaderSize, "first batch unreadable: %v", sc.describeStop())
	}
	if !sealed {
		r.tailFirstEnd = sc.firstEnd
	}
	if live && !sealed {
		// The tail of a running log, read while it is written: what
		// follows the last complete batch read may be a batch being
		// written, or one written after the bytes there were read.
		return rep, nil
	}
	z, err := sr.zeroTailStart(sc.stop)
	if err != nil {
		return rep, err
	}
	if sc.stopErr == errEndOfRecords && sc.stop == sc.end && z == sc.stop {
		return rep, nil // the clean end: nothing but zeros after the last batch
	}
	if sealed {
		// A sealed segment was truncated to its last batch and synced before
		// the next segment was created: nothing in it can be torn.
		return rep, corruptf(seg.name, sc.stop, "%s", sc.describeStop())
	}
	reason, err := tornTail(sr, seg, sc, z)
	if err != nil {
		return rep, err
	}
	r.torn = &TornTail{File: seg.name, Offset: sc.end, StopOffset: sc.stop, Reason: reason}
	return rep, nil
}

// maxSmallRecord bounds the length field of every record but an entry: a
// hard state, a compaction point or a commit record is a few integers.
const maxSmallRecord = 64

// sectorBytes is the smallest unit a disk writes whole (or, torn by a power
// cut, writes a prefix of). The torn-write rule is stated in it.
const sectorBytes = 512

// tornTail decides whether what follows the last complete batch of the
// tail segment (ending at sc.end; reading stopped at sc.stop) is an
// interrupted write, and returns a description of it, or a *CorruptError
// if it is damage to bytes that may have been acknowledged. z is where the
// file's non-zero content ends. The rule and the reasons for it are in
// doc.go ("Torn writes and damage").
func tornTail(sr *segReader, seg *segment, sc scanned, z int64) (string, error) {
	stop, end := sc.stop, sc.end
	switch sc.stopErr {
	case errTooLarge, errBadPadding, errBadType:
		// A torn write only leaves zeros where new bytes should be: it can
		// make a length smaller, never larger, and cannot make padding
		// non-zero; a record with a valid checksum was written whole.
		return "", corruptf(seg.name, stop, "%s, which an interrupted write cannot cause", sc.describeStop())
	}
	// Records other than entries are small. If the type byte is there (a
	// tear would have left it zero) and names one, a length above what it
	// can be did not come from a tear, which can only zero bytes and so
	// only make a length smaller.
	if sc.stopLen > maxSmallRecord {
		b, err := sr.peek(stop+recordHeaderSize, 1)
		if err != nil {
			return "", err
		}
		if len(b) == 1 && recordType(b[0]) > typeEntry && recordType(b[0]) <= typeCommit {
			return "", corruptf(seg.name, stop, "%s: a %s record of %d bytes, which an interrupted write cannot cause",
				sc.describeStop(), recordType(b[0]), sc.stopLen)
		}
	}
	// The first valid commit record after the stop, if any, and whether
	// one says that bytes after the last complete batch had been synced.
	next := int64(-1)
	for off := int64(align8(int(stop) + 1)); off+recordHeaderSize < z; off += 8 {
		b, err := sr.peek(off, recordSize(maxSmallRecord))
		if err != nil {
			return "", err
		}
		if len(b) <= recordHeaderSize {
			break
		}
		length := binary.LittleEndian.Uint32(b[4:8])
		if length < 2 || length > maxSmallRecord || len(b) <= recordHeaderSize || recordType(b[recordHeaderSize]) != typeCommit {
			continue
		}
		t, body, _, err := decodeRecord(b, seg.seq, maxSmallRecord)
		if err != nil || t != typeCommit {
			continue
		}
		var c commitBody
		if newBodyDecoder().decode(body, &c) != nil {
			continue
		}
		if c.SyncedOffset > uint64(end) {
			return "", corruptf(seg.name, stop, "%s, but the commit record at byte %d says bytes up to %d were synced",
				sc.describeStop(), off, c.SyncedOffset)
		}
		if next < 0 {
			next = off
		}
	}
	// The failing record as its header describes it. A torn header can
	// only under-state the length (zeros replace bytes), so the real record
	// covers at least this much.
	claimedEnd := stop + recordHeaderSize + sc.stopLen
	// An in-order tear: the write stopped inside this record (possibly in
	// the middle of a sector), and everything after is zeros, with no
	// complete batch anywhere after it. A file that ends inside the record
	// is the same: the bytes past its end were never written.
	if next < 0 && (z < claimedEnd || sc.stopErr == errTruncated) {
		return fmt.Sprintf("%s; only zeros from byte %d on", sc.describeStop(), z), nil
	}
	// An out-of-order tear: a sector of this record was never written (the
	// page cache writes pages back in any order, and a disk its sectors),
	// while later ones were. The zero sector must lie before the next valid
	// commit record, or it is the clean space after the batch, reached by
	// a damaged length.
	for u := stop &^ (sectorBytes - 1); u < claimedEnd && (next < 0 || u < next); u += sectorBytes {
		zero, err := sr.allZero(max(stop, u), u+sectorBytes)
		if err != nil {
			return "", err
		}
		if zero {
			return fmt.Sprintf("%s; the sector at byte %d was never written", sc.describeStop(), u), nil
		}
	}
	return "", corruptf(seg.name, stop, "%s, and its bytes are there (no unwritten sector, more data after it): "+
		"damage to a batch that may have been acknowledged, not an interrupted write", sc.describeStop())
}

// parsedRecord is a record of a batch that is waiting for its commit record.
type parsedRecord struct {
	typ       recordType
	off       int64
	slot      uint64
	hard      HardState
	compacted Compacted
}

// scanned is the outcome of scanSegment.
type scanned struct {
	// end is the offset just past the last complete batch, and firstEnd
	// just past the first.
	end, firstEnd int64
	// stop is where reading stopped and stopErr why: errEndOfRecords at
	// zeroed space, or a framing error. Records between end and stop
	// belong to an incomplete batch. stopLen is the length field of the
	// record at stop (0 if there was none).
	stop    int64
	stopErr error
	stopLen int64
	pending int // records read after end
	// fatal is set, at fatalOff, when a record has a valid checksum but
	// does not make sense: it cannot be explained by a torn write.
	fatal    error
	fatalOff int64
}

func (s scanned) describeStop() string {
	if s.stopErr == errEndOfRecords {
		if s.pending > 0 {
			return fmt.Sprintf("batch of %d records at byte %d has no commit record", s.pending, s.end)
		}
		return "non-zero bytes after the last record"
	}
	return s.stopErr.Error()
}

// scanSegment walks the records of a segment and hands each complete batch
// to apply. It never panics on any input, and allocates only in proportion
// to the records it reads, whatever their length fields say. The error it
// returns is a *readError; damage is reported in the scanned value.
func scanSegment(sr *segReader, seq uint64, maxRecordBytes int, dec *bodyDecoder, apply func([]parsedRecord) error) (scanned, error) {
	s := scanned{end: segmentHeaderSize, stop: segmentHeaderSize}
	var batch []parsedRecord
	off := int64(segmentHeaderSize)
	for {
		rec, length, err := readRecord(sr, off, seq, maxRecordBytes, dec)
		if err != nil {
			var ioe *readError
			if errors.As(err, &ioe) {
				return s, err
			}
			var fe fatalError
			if errors.As(err, &fe) {
				s.fatal, s.fatalOff = fe.err, off
				return s, nil
			}
			s.stop, s.stopErr, s.stopLen, s.pending = off, err, length, len(batch)
			return s, nil
		}
		off += rec.size
		if rec.typ != typeCommit {
			batch = append(batch, rec.parsedRecord)
			continue
		}
		if int(rec.records) != len(batch) {
			s.fatal, s.fatalOff = fmt.Errorf("commit record counts %d records, the batch has %d", rec.records, len(batch)), off-rec.size
			return s, nil
		}
		if err := apply(batch); err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				s.fatal, s.fatalOff = errors.New(ce.Reason), ce.Offset
			} else {
				s.fatal, s.fatalOff = err, off-rec.size
			}
			return s, nil
		}
		batch = batch[:0]
		s.end = off
		if s.firstEnd == 0 {
			s.firstEnd = off
		}
	}
}

// fatalError wraps a record that has a valid checksum but does not make
// sense: it cannot be explained by a torn write.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// scannedRecord is one record read by readRecord.
type scannedRecord struct {
	parsedRecord
	size    int64
	records uint32 // of a commit record
}

// readRecord reads the record at off. It returns one of the framing errors
// of decodeRecord, a fatalError, or a *readError; with a framing error,
// length is the record's length field (0 if unreadable). A record that fits
// the window is decoded from it; a larger one must be an entry, whose bytes
// are checksummed through the window and whose value is never held.
func readRecord(sr *segReader, off int64, seq uint64, maxRecordBytes int, dec *bodyDecoder) (rec scannedRecord, length int64, err error) {
	rec.off = off
	hdr, err := sr.peek(off, recordHeaderSize)
	if err != nil {
		return rec, 0, err
	}
	if len(hdr) < recordHeaderSize {
		if allZero(hdr) {
			return rec, 0, errEndOfRecords
		}
		return rec, 0, errTruncated
	}
	crc := binary.LittleEndian.Uint32(hdr[0:4])
	length = int64(binary.LittleEndian.Uint32(hdr[4:8]))
	switch {
	case length == 0 && crc == 0:
		return rec, 0, errEndOfRecords
	case length == 0:
		return rec, 0, errZeroLength
	case length > int64(maxRecordBytes)+1:
		return rec, length, errTooLarge
	}
	size := int64(recordSize(int(length) - 1))
	if off+size > sr.size {
		return rec, length, errTruncated
	}
	rec.size = size
	var body []byte
	if size <= int64(len(sr.buf)) {
		b, err := sr.peek(off, int(size))
		if err != nil {
			return rec, length, err
		}
		var t recordType
		if t, body, _, err = decodeRecord(b, seq, maxRecordBytes); err != nil {
			return rec, length, err
		}
		rec.typ = t
	} else {
		sum, err := sr.checksum(seq, off+recordHeaderSize, int(length))
		if err != nil {
			return rec, length, err
		}
		if sum != crc {
			return rec, length, errChecksum
		}
		pad, err := sr.allZero(off+recordHeaderSize+length, off+size)
		if err != nil {
			return rec, length, err
		}
		if !pad {
			return rec, length, errBadPadding
		}
		head, err := sr.peek(off+recordHeaderSize, int(min(length, 64)))
		if err != nil {
			return rec, length, err
		}
		if rec.typ = recordType(head[0]); rec.typ < typeEntry || rec.typ > typeCommit {
			return rec, length, errBadType
		}
		if rec.typ != typeEntry {
			return rec, length, fatalError{fmt.Errorf("%s record of %d bytes", rec.typ, length)}
		}
		slot, _, err := parseEntryHead(head[1:], int(length-1))
		if err != nil {
			return rec, length, fatalError{fmt.Errorf("entry record: %v", err)}
		}
		rec.slot = slot
		return rec, length, nil
	}
	switch rec.typ {
	case typeEntry:
		// Read by hand as for large entries: msgpack would allocate for a
		// value that replay skips.
		rec.slot, _, err = parseEntryHead(body[:min(len(body), 64)], len(body))
	case typeHardState:
		var h HardState // a local, so that rec does not escape
		err = dec.decode(body, &h)
		rec.hard = h
	case typeCompacted:
		var c Compacted
		err = dec.decode(body, &c)
		rec.compacted = c
	case typeCommit:
		var c commitBody
		err = dec.decode(body, &c)
		rec.records = c.Records
	}
	if err != nil {
		return rec, length, fatalError{fmt.Errorf("%s record: %v", rec.typ, err)}
	}
	return rec, length, nil
}

// parseEntryHead reads the slot and ballot at the start of the msgpack
// body of an entry record, [slot, [round, node], value], and checks that
// the value's header says it fills the rest of the body (bodyLen bytes in
// all). It reads only the first bytes of the body (b), so that a large
// value is never held in memory; records small enough to be read whole are
// decoded by msgpack itself, and a test checks that both agree.
func parseEntryHead(b []byte, bodyLen int) (slot uint64, ballot Ballot, err error) {
	p := 0
	next := func() (byte, error) {
		if p >= len(b) {
			return 0, errors.New("entry head is cut short")
		}
		p++
		return b[p-1], nil
	}
	readUint := func() (uint64, error) {
		c, err := next()
		if err != nil {
			return 0, err
		}
		n := 0
		switch {
		case c <= 0x7f:
			return uint64(c), nil
		case c == 0xcc || c == 0xd0:
			n = 1
		case c == 0xcd || c == 0xd1:
			n = 2
		case c == 0xce || c == 0xd2:
			n = 4
		case c == 0xcf || c == 0xd3:
			n = 8
		default:
			return 0, fmt.Errorf("byte %#x where an unsigned integer was expected", c)
		}
		var v uint64
		for i := 0; i < n; i++ {
			d, err := next()
			if err != nil {
				return 0, err
			}
			v = v<<8 | uint64(d)
		}
		if c >= 0xd0 && v>>(uint(n)*8-1) != 0 {
			return 0, errors.New("negative integer")
		}
		return v, nil
	}
	expect := func(want byte) error {
		c, err := next()
		if err == nil && c != want {
			err = fmt.Errorf("byte %#x where %#x was expected", c, want)
		}
		return err
	}
	if err = expect(0x93); err != nil {
		return
	}
	if slot, err = readUint(); err != nil {
		return
	}
	if err = expect(0x92); err != nil {
		return
	}
	if ballot.Round, err = readUint(); err != nil {
		return
	}
	if ballot.Node, err = readUint(); err != nil {
		return
	}
	c, err := next()
	if err != nil {
		return
	}
	var n, valueLen int
	switch c {
	case 0xc0: // nil
	case 0xc4:
		n = 1
	case 0xc5:
		n = 2
	case 0xc6:
		n = 4
	default:
		return 0, Ballot{}, fmt.Errorf("value of msgpack type %#x, not bin", c)
	}
	for i := 0; i < n; i++ {
		d, err := next()
		if err != nil {
			return 0, Ballot{}, err
		}
		valueLen = valueLen<<8 | int(d)
	}
	if p+valueLen != bodyLen {
		return 0, Ballot{}, fmt.Errorf("value of %d bytes after a head of %d in a body of %d", valueLen, p, bodyLen)
	}
	return slot, ballot, nil
}
