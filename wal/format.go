package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// The on-disk format. doc.go explains why each piece is there; this file
// holds the byte layouts and the pure functions that read and write them.

const (
	// segmentHeaderSize is the size of the header at the start of every
	// segment file. It is a multiple of 8 so that records stay aligned.
	segmentHeaderSize = 32

	// recordHeaderSize is the crc32c and length fields in front of a record.
	recordHeaderSize = 8

	// formatVersion is written into every new segment header. Version 2
	// added the MaxRecordBytes that the segment was written with; version 1
	// segments are still read (see segmentHeader.recordLimit). Open refuses
	// a segment of any other version rather than guess at its layout.
	formatVersion = 2

	// maxRecordLimit is the largest MaxRecordBytes a log accepts. A version
	// 1 segment does not say what limit it was written with, so it is read
	// with this one: a length field is still bounded, and replay streams
	// records, so a large length costs reading, not memory.
	maxRecordLimit = maxBatchBytes / 2

	segmentSuffix = ".paxos"
	tempSuffix    = ".paxos.tmp"
)

var (
	segmentMagic = [4]byte{'P', 'X', 'W', 'L'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// recordType says what a record's body holds.
type recordType uint8

const (
	// typeEntry holds an Entry: a value accepted for one slot. An entry for
	// slot s replaces every entry from s on (logical tail overwrite).
	typeEntry recordType = 1
	// typeHardState holds a HardState. The last one replayed wins.
	typeHardState recordType = 2
	// typeCompacted holds a Compacted marker: entries up to its slot are
	// covered by a snapshot and dropped on replay.
	typeCompacted recordType = 3
	// typeCommit ends a batch. Records after the last valid commit record of
	// the tail segment belong to a batch that never became durable.
	typeCommit recordType = 4
)

func (t recordType) String() string {
	switch t {
	case typeEntry:
		return "entry"
	case typeHardState:
		return "hardstate"
	case typeCompacted:
		return "compacted"
	case typeCommit:
		return "commit"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Segment header, little-endian, 32 bytes:
//
//	0        4     5     6        8                16               24          28        32
//	+--------+-----+-----+--------+----------------+----------------+-----------+---------+
//	| magic  | ver |flags| rsvd   | seq            | firstSlot      | maxRecord | crc32c  |
//	| "PXWL" | 2   | 0   | 0      | u64            | u64            | u32       | of 0:28 |
//	+--------+-----+-----+--------+----------------+----------------+-----------+---------+
//
// seq is unique and strictly increasing across the segments of one log;
// firstSlot is the slot of the first entry the segment holds (or would hold).
// Both are repeated in the file name, and Open checks that they agree.
// maxRecord is the Options.MaxRecordBytes the segment was written with: the
// limit its records are read with, whatever the reader is configured with,
// so that reopening with a smaller limit cannot turn acknowledged records
// into "damage" or a "torn tail". Version 1 headers have zero there.

// segmentHeader is the decoded form of a segment header.
type segmentHeader struct {
	seq       uint64
	firstSlot uint64
	// maxRecordBytes is the limit the segment was written with; 0 in a
	// version 1 header, which did not record it.
	maxRecordBytes uint32
}

// recordLimit is the largest record length field the segment can hold.
func (h segmentHeader) recordLimit() int {
	if h.maxRecordBytes == 0 {
		return maxRecordLimit
	}
	return int(h.maxRecordBytes)
}

func (h segmentHeader) appendTo(b []byte) []byte {
	start := len(b)
	b = append(b, segmentMagic[:]...)
	b = append(b, formatVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint64(b, h.firstSlot)
	b = binary.LittleEndian.AppendUint32(b, h.maxRecordBytes)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:start+28], castagnoli))
}

func parseSegmentHeader(b []byte) (segmentHeader, error) {
	if len(b) < segmentHeaderSize {
		return segmentHeader{}, fmt.Errorf("header is %d bytes, want %d", len(b), segmentHeaderSize)
	}
	if [4]byte(b[0:4]) != segmentMagic {
		return segmentHeader{}, fmt.Errorf("bad magic %q", b[0:4])
	}
	if got, want := binary.LittleEndian.Uint32(b[28:32]), crc32.Checksum(b[0:28], castagnoli); got != want {
		return segmentHeader{}, fmt.Errorf("header checksum %08x, want %08x", got, want)
	}
	h := segmentHeader{
		seq:       binary.LittleEndian.Uint64(b[8:16]),
		firstSlot: binary.LittleEndian.Uint64(b[16:24]),
	}
	switch b[4] {
	case 1:
		// No record limit was written: see recordLimit.
	case 2:
		h.maxRecordBytes = binary.LittleEndian.Uint32(b[24:28])
		if h.maxRecordBytes < minRecordLimit || h.maxRecordBytes > maxRecordLimit {
			return segmentHeader{}, fmt.Errorf("record limit %d is outside [%d, %d]", h.maxRecordBytes, minRecordLimit, maxRecordLimit)
		}
	default:
		return segmentHeader{}, fmt.Errorf("format version %d, this build reads versions 1 and %d", b[4], formatVersion)
	}
	return h, nil
}

// segmentName is the file name of a segment: <seq:016x>-<firstSlot:016x>.paxos.
func segmentName(seq, firstSlot uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, firstSlot, segmentSuffix)
}

// tempName is the name of a segment being prepared: <seq:016x>.paxos.tmp.
func tempName(seq uint64) string {
	return fmt.Sprintf("%016x%s", seq, tempSuffix)
}

// parseSegmentName reads seq and firstSlot from a segment file name.
func parseSegmentName(name string) (seq, firstSlot uint64, err error) {
	base, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(base) != 33 || base[16] != '-' {
		return 0, 0, fmt.Errorf("%q is not named <seq:016x>-<firstSlot:016x>%s", name, segmentSuffix)
	}
	if seq, err = strconv.ParseUint(base[:16], 16, 64); err == nil {
		firstSlot, err = strconv.ParseUint(base[17:], 16, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not named <seq:016x>-<firstSlot:016x>%s", name, segmentSuffix)
	}
	return seq, firstSlot, nil
}

// Record framing, 8-byte aligned:
//
//	0        4        8
//	+--------+--------+------+----------------------+-----------+
//	| crc32c | length | type | body                 | 0-7 zero  |
//	|  u32   |  u32   |  u8  | (length-1 bytes)     | pad bytes |
//	+--------+--------+------+----------------------+-----------+
//
// length counts type and body and is at least 1, so a length of zero can only
// be unwritten (pre-zeroed) space: the clean end of the log. The crc32c
// (Castagnoli) covers type and body and starts from the low 32 bits of the
// segment's seq, so a record copied from, or left over by, another segment
// never validates here. Records start on 8-byte boundaries, so the 8-byte
// header never straddles a disk sector.

// recordSize is the number of bytes a record with a body of n bytes occupies.
func recordSize(n int) int {
	return recordHeaderSize + align8(1+n)
}

func align8(n int) int { return (n + 7) &^ 7 }

// recordChecksum is the checksum of a record's type byte and body, which
// follow each other in typeAndBody, in the segment with the given seq.
func recordChecksum(seq uint64, typeAndBody []byte) uint32 {
	return crc32.Update(uint32(seq), castagnoli, typeAndBody)
}

// appendRecord appends one framed record to dst.
func appendRecord(dst []byte, seq uint64, t recordType, body []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, byte(t))
	dst = append(dst, body...)
	return sealRecord(dst, start, seq)
}

// sealRecord finishes the record whose type byte and body were appended to
// dst after 8 reserved header bytes at start: it fills in the checksum and
// length and appends the zero padding.
func sealRecord(dst []byte, start int, seq uint64) []byte {
	typeAndBody := dst[start+recordHeaderSize:]
	binary.LittleEndian.PutUint32(dst[start:], recordChecksum(seq, typeAndBody))
	binary.LittleEndian.PutUint32(dst[start+4:], uint32(len(typeAndBody)))
	for pad := align8(len(typeAndBody)) - len(typeAndBody); pad > 0; pad-- {
		dst = append(dst, 0)
	}
	return dst
}

// Reasons a record does not decode. errEndOfRecords is the clean end of a
// segment; all the others mean the bytes are not a record this log wrote.
var (
	errEndOfRecords = errors.New("end of records")
	errTruncated    = errors.New("record runs past the end of the file")
	errTooLarge     = errors.New("record length above the maximum record size")
	errChecksum     = errors.New("record checksum mismatch")
	errBadType      = errors.New("unknown record type")
	errBadPadding   = errors.New("non-zero padding after record")
	errZeroLength   = errors.New("zero record length with a non-zero checksum")
)

// decodeRecord reads the record at the start of b, which holds the rest of a
// segment of the given seq. It returns the record's type, its body (aliasing
// b) and the number of bytes the record occupies. The length field is checked
// against maxRecordBytes before anything else is done with it, so a corrupt
// length can never cause a large allocation or read.
func decodeRecord(b []byte, seq uint64, maxRecordBytes int) (t recordType, body []byte, size int, err error) {
	if len(b) < recordHeaderSize {
		if allZero(b) {
			return 0, nil, 0, errEndOfRecords
		}
		return 0, nil, 0, errTruncated
	}
	crc := binary.LittleEndian.Uint32(b[0:4])
	length := binary.LittleEndian.Uint32(b[4:8])
	if length == 0 {
		if crc == 0 {
			return 0, nil, 0, errEndOfRecords
		}
		return 0, nil, 0, errZeroLength
	}
	if uint64(length) > uint64(maxRecordBytes)+1 {
		return 0, nil, 0, errTooLarge
	}
	size = recordHeaderSize + align8(int(length))
	if size > len(b) {
		return 0, nil, 0, errTruncated
	}
	typeAndBody := b[recordHeaderSize : recordHeaderSize+int(length)]
	if recordChecksum(seq, typeAndBody) != crc {
		return 0, nil, 0, errChecksum
	}
	t, body = recordType(typeAndBody[0]), typeAndBody[1:]
	if t < typeEntry || t > typeCommit {
		return 0, nil, 0, errBadType
	}
	if !allZero(b[recordHeaderSize+int(length) : size]) {
		return 0, nil, 0, errBadPadding
	}
	return t, body, size, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
