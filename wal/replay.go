package wal

import (
	"errors"
	"fmt"
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
	// tailData is the tail segment's content, kept for Open to zero what
	// follows a torn tail without reading it again.
	tailData []byte
}

// replay reads every segment of the log in fs and rebuilds its state,
// without changing anything on disk. Each segment is read with the record
// limit its header names, not the one the reader is configured with. Segments are opened, and stay open in
// the returned state, when keepOpen is set; otherwise they are closed.
func replay(fs FS, keepOpen bool) (r *replayed, err error) {
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
		data, err := readAll(f)
		if err != nil {
			return r, fmt.Errorf("wal: reading %s: %w", fd.name, err)
		}
		sealed := i < len(segs)-1
		rep, err := r.replaySegment(seg, data, sealed, dec)
		if err != nil {
			return r, err
		}
		r.reports = append(r.reports, rep)
		if !sealed {
			r.tailData = data
		}
	}
	if len(segs) > 0 {
		if err := r.st.checkComplete(); err != nil {
			return r, corruptf(segs[0].name, 0, "%v", err)
		}
	}
	return r, nil
}

func readAll(f File) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return data, nil
}

// replaySegment applies the complete batches of one segment to r.st. A
// sealed segment must be whole; the tail may end in a torn batch, which is
// recorded in r.torn unless it hides synced data.
func (r *replayed) replaySegment(seg *segment, data []byte, sealed bool, dec *bodyDecoder) (SegmentReport, error) {
	rep := SegmentReport{Name: seg.name, Seq: seg.seq, FirstSlot: seg.firstSlot, Size: int64(len(data)), Sealed: sealed}
	hdr, err := parseSegmentHeader(data)
	if err != nil {
		return rep, corruptf(seg.name, 0, "segment header: %v", err)
	}
	if hdr.seq != seg.seq || hdr.firstSlot != seg.firstSlot {
		return rep, corruptf(seg.name, 0, "header says seq %d, first slot %d; the file name says seq %d, first slot %d",
			hdr.seq, hdr.firstSlot, seg.seq, seg.firstSlot)
	}
	// The segment is read with the limit it was written with.
	seg.maxRecordBytes = hdr.recordLimit()
	maxRecordBytes := seg.maxRecordBytes
	apply := func(batch []parsedRecord) error {
		for _, rec := range batch {
			switch rec.typ {
			case typeEntry:
				if err := r.st.checkEntry(seg, rec.slot); err != nil {
					return corruptf(seg.name, int64(rec.off), "%v", err)
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
					return corruptf(seg.name, int64(rec.off), "%v", err)
				}
				r.st.applyCompacted(rec.compacted)
			}
		}
		rep.Records += len(batch) + 1
		rep.Batches++
		return nil
	}
	sc := scanSegment(data, seg.seq, maxRecordBytes, dec, apply)
	rep.End = int64(sc.end)
	if sc.fatal != nil {
		return rep, corruptf(seg.name, int64(sc.fatalOff), "%v", sc.fatal)
	}
	if sc.end == segmentHeaderSize {
		// Every segment is created with a first batch (a copy of the hard
		// state) that is synced before the file gets its name.
		return rep, corruptf(seg.name, segmentHeaderSize, "first batch unreadable: %v", sc.describeStop())
	}
	clean := sc.stopErr == errEndOfRecords && sc.stop == sc.end && allZero(data[sc.stop:])
	if clean {
		return rep, nil
	}
	if sealed {
		// A sealed segment was truncated to its last batch and synced before
		// the next segment was created: nothing in it can be torn.
		return rep, corruptf(seg.name, int64(sc.stop), "%s", sc.describeStop())
	}
	// The tail segment ends in bytes that are not a complete batch. If a
	// valid commit record further on says data past the damage had been
	// synced, acknowledged data is damaged. Otherwise it is the unfinished
	// write of a crash, and nothing in it was acknowledged.
	if off, synced, ok := findSyncedCommitAfter(data, sc.stop, sc.end, seg.seq); ok {
		return rep, corruptf(seg.name, int64(sc.stop), "%s, but the commit record at byte %d says bytes up to %d were synced",
			sc.describeStop(), off, synced)
	}
	r.torn = &TornTail{File: seg.name, Offset: int64(sc.end), StopOffset: int64(sc.stop), Reason: sc.describeStop()}
	return rep, nil
}

// parsedRecord is a record of a batch that is waiting for its commit record.
type parsedRecord struct {
	typ       recordType
	off       int
	slot      uint64
	hard      HardState
	compacted Compacted
}

// scanned is the outcome of scanSegment.
type scanned struct {
	// end is the offset just past the last complete batch.
	end int
	// stop is where reading stopped and stopErr why: errEndOfRecords at
	// zeroed space, or a framing error. Records between end and stop
	// belong to an incomplete batch.
	stop    int
	stopErr error
	pending int // records read after end
	// fatal is set, at fatalOff, when a record has a valid checksum but
	// does not make sense: it cannot be explained by a torn write.
	fatal    error
	fatalOff int
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

// entryHead is the part of an entry record replay needs; the value is
// skipped over without being copied.
type entryHead struct {
	Slot   uint64
	Ballot Ballot
}

// scanSegment walks the records of a whole segment and hands each complete
// batch to apply. It never panics on any input and allocates only in
// proportion to the records it reads.
func scanSegment(data []byte, seq uint64, maxRecordBytes int, dec *bodyDecoder, apply func([]parsedRecord) error) scanned {
	s := scanned{end: segmentHeaderSize, stop: segmentHeaderSize}
	var batch []parsedRecord
	off := segmentHeaderSize
	for {
		t, body, size, err := decodeRecord(data[off:], seq, maxRecordBytes)
		if err != nil {
			s.stop, s.stopErr, s.pending = off, err, len(batch)
			return s
		}
		rec := parsedRecord{typ: t, off: off}
		switch t {
		case typeEntry:
			var e entryHead
			err = dec.decode(body, &e)
			rec.slot = e.Slot
		case typeHardState:
			err = dec.decode(body, &rec.hard)
		case typeCompacted:
			err = dec.decode(body, &rec.compacted)
		case typeCommit:
			var c commitBody
			if err = dec.decode(body, &c); err == nil && int(c.Records) != len(batch) {
				err = fmt.Errorf("commit record counts %d records, the batch has %d", c.Records, len(batch))
			}
		}
		if err != nil {
			s.fatal, s.fatalOff = fmt.Errorf("%s record: %v", t, err), off
			return s
		}
		off += size
		if t != typeCommit {
			batch = append(batch, rec)
			continue
		}
		if err := apply(batch); err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				s.fatal, s.fatalOff = errors.New(ce.Reason), int(ce.Offset)
			} else {
				s.fatal, s.fatalOff = err, off-size
			}
			return s
		}
		batch = batch[:0]
		s.end = off
	}
}

// findSyncedCommitAfter looks past a damaged spot, at every 8-byte aligned
// offset after stop, for a valid commit record whose SyncedOffset is beyond
// end: proof that the bytes after end had been synced before it was written.
// Commit records are small, so the check at each offset is cheap.
func findSyncedCommitAfter(data []byte, stop, end int, seq uint64) (off int, synced uint64, ok bool) {
	dec := newBodyDecoder()
	for off = align8(stop + 1); off+recordHeaderSize < len(data); off += 8 {
		length := int(data[off+4]) | int(data[off+5])<<8 | int(data[off+6])<<16 | int(data[off+7])<<24
		if length < 2 || length > 64 || recordType(data[off+recordHeaderSize]) != typeCommit {
			continue
		}
		t, body, _, err := decodeRecord(data[off:], seq, 64)
		if err != nil || t != typeCommit {
			continue
		}
		var c commitBody
		if dec.decode(body, &c) == nil && c.SyncedOffset > uint64(end) {
			return off, c.SyncedOffset, true
		}
	}
	return 0, 0, false
}
