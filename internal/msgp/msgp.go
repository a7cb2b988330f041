// Package msgp holds the msgpack settings that the replicas' and the
// clients' wire formats share: one handle, a byte slice that decodes as a
// view of its input, and strict whole-buffer decoding.
package msgp

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Handle is the msgpack handle of every wire format: structs as arrays
// (so a struct's field order is its format), with extensions written.
var Handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.StructToArray = true
	// Bounds what a decoder allocates up front for a length read from the
	// wire; longer collections grow as their bytes are actually read.
	h.MaxInitLen = 4096
	return h
}()

// View is a []byte that decodes as a view of the decoder's input instead
// of a copy. It is on the wire exactly what []byte is (msgpack bin), but
// msgpack decodes a []byte by growing it MaxInitLen bytes at a time and
// copying all of it at each step: quadratic in the value's length. A 256
// KiB batch took 8.7 ms to decode that way and takes 1 µs as a view;
// profiling 1 KiB commands at 256 clients found 56% of the CPU there.
// Every decoder here reads a buffer its caller owns (a received frame),
// so the view may outlive the decode.
type View []byte

// MarshalBinary returns v itself: msgpack writes it as bin.
func (v View) MarshalBinary() ([]byte, error) { return v, nil }

// UnmarshalBinary keeps data, the bin's bytes in the input, without
// copying. (An empty bin stays empty, not nil, as with []byte.)
func (v *View) UnmarshalBinary(data []byte) error {
	if data == nil {
		data = []byte{}
	}
	*v = data
	return nil
}

// Encode returns v's encoding. v is one of the fixed structs of a wire
// format: it panics if v does not encode, which is a bug.
func Encode(v any) []byte {
	var b []byte
	if err := codec.NewEncoderBytes(&b, Handle).Encode(v); err != nil {
		panic(fmt.Sprintf("engine: encoding %T: %v", v, err)) // fixed structs: a bug
	}
	return b
}

// Decode decodes b, all of it, into v: trailing bytes are an error.
func Decode(b []byte, v any) error {
	dec := codec.NewDecoderBytes(b, Handle)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if n := dec.NumBytesRead(); n != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	return nil
}
