package wal

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Ballot orders proposals: by Round, then by Node. The WAL stores ballots
// but gives them no meaning beyond ordering them.
type Ballot struct {
	Round uint64
	Node  uint64
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	return b.Round < o.Round || (b.Round == o.Round && b.Node < o.Node)
}

// Entry is a value accepted for one slot under a ballot. Value is opaque to
// the WAL.
type Entry struct {
	Slot   uint64
	Ballot Ballot
	Value  []byte
}

// HardState is the small piece of acceptor state that must survive a crash
// besides the entries: the highest ballot promised, and how far the log is
// known to be committed (a hint; it may lag).
type HardState struct {
	Promised Ballot
	Commit   uint64
}

// Compacted marks the log as covered by a snapshot up to and including Slot,
// whose entry was accepted under Ballot. Entries at or below Slot are gone.
type Compacted struct {
	Slot   uint64
	Ballot Ballot
}

// commitBody is the body of a commit record, which ends every batch.
type commitBody struct {
	// SyncedOffset is the offset in this segment up to which data was known
	// durable before the batch was written. Recovery uses it to tell a torn
	// tail (nothing acknowledged after the damage) from corruption of bytes
	// that had already been synced.
	SyncedOffset uint64
	// Records counts the records of the batch before this commit record.
	Records uint32
}

// msgpackHandle encodes record bodies. Structs are written as arrays (no
// field names on disk) and []byte as msgpack bin. A handle must not be
// changed after first use; this one never is.
var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.StructToArray = true
	// Bounds what a decoder allocates up front for a length read from the
	// input; longer values grow as their bytes are actually read.
	h.MaxInitLen = 4096
	return h
}()

// bodyEncoder encodes record bodies with msgpack into a reused buffer. It is
// not safe for concurrent use.
type bodyEncoder struct {
	scratch []byte
	enc     *codec.Encoder
}

func newBodyEncoder() *bodyEncoder {
	e := &bodyEncoder{scratch: make([]byte, 0, 256)}
	e.enc = codec.NewEncoderBytes(&e.scratch, msgpackHandle)
	return e
}

// appendRecord encodes v as the body of a record of type t and appends the
// framed record to dst.
func (e *bodyEncoder) appendRecord(dst []byte, seq uint64, t recordType, v any) []byte {
	e.enc.ResetBytes(&e.scratch)
	if err := e.enc.Encode(v); err != nil {
		// Every type given here is a fixed struct of integers and byte
		// slices: failing to encode one is a bug, not a runtime condition.
		panic(fmt.Sprintf("wal: encoding %s record: %v", t, err))
	}
	return appendRecord(dst, seq, t, e.scratch)
}

// entryBody is how an entry record is decoded: as Entry, but with a
// value that msgpack copies once. (Decoding a []byte, msgpack grows it
// MaxInitLen bytes at a time and copies all of it at each step: a 512 KiB
// batch cost 128 copies of up to itself, which made reading a log of big
// batches quadratic.) It encodes exactly as Entry does.
type entryBody struct {
	Slot   uint64
	Ballot Ballot
	Value  copiedBytes
}

// copiedBytes is a []byte that msgpack decodes as one exact-size copy of
// the input's bin (the input is a reused read buffer, so the value must
// not alias it).
type copiedBytes []byte

// MarshalBinary returns b itself: msgpack writes it as bin.
func (b copiedBytes) MarshalBinary() ([]byte, error) { return b, nil }

// UnmarshalBinary copies data, a view of the input.
func (b *copiedBytes) UnmarshalBinary(data []byte) error {
	*b = append(make([]byte, 0, len(data)), data...)
	return nil
}

// bodyDecoder decodes record bodies. It is not safe for concurrent use.
type bodyDecoder struct {
	dec *codec.Decoder
}

func newBodyDecoder() *bodyDecoder {
	return &bodyDecoder{dec: codec.NewDecoderBytes(nil, msgpackHandle)}
}

// decode fills v from body and checks that body held exactly one value.
// Decoded byte slices never alias body.
func (d *bodyDecoder) decode(body []byte, v any) error {
	d.dec.ResetBytes(body)
	if err := d.dec.Decode(v); err != nil {
		return err
	}
	if n := d.dec.NumBytesRead(); n != len(body) {
		return fmt.Errorf("%d trailing bytes after the record body", len(body)-n)
	}
	return nil
}
