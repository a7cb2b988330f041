package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Frames, on peer and client connections alike:
//
//	0          4
//	+----------+---------------------------+
//	| length   | payload (length bytes)    |
//	| u32 BE   |                           |
//	+----------+---------------------------+
//
// A length above the reader's maximum is refused before anything is
// allocated for it, and the connection is closed: after a bad length the
// stream cannot be resynchronised.

// DefaultMaxFrameBytes is the default largest frame a reader accepts.
const DefaultMaxFrameBytes = 16 << 20

// frameHeaderSize is the size of the length prefix.
const frameHeaderSize = 4

// ErrFrameTooLarge is returned for a frame longer than the maximum.
var ErrFrameTooLarge = errors.New("net: frame larger than the maximum frame size")

// AppendFrame appends payload, framed, to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// frameChunk is the most ReadFrame allocates for a frame ahead of its
// bytes: a longer frame's buffer starts at this size and doubles as the
// bytes arrive, so that a length the other side declares but never sends
// costs little.
const frameChunk = 64 << 10

// FrameReader reads frames from a stream.
type FrameReader struct {
	r   *bufio.Reader
	max int
	// chunk is frameChunk, smaller in fuzz tests to exercise the growth.
	chunk int
	// partial, if set, counts the frames longer than frameChunk that are
	// being read and of which some bytes have arrived (for tests).
	partial *atomic.Int64
}

// NewFrameReader reads frames of at most max bytes (DefaultMaxFrameBytes if
// max is 0) from r, buffering it.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrameBytes
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: max, chunk: frameChunk}
}

// ReadFrame reads the next frame into a new slice, which the caller owns.
// It returns io.EOF at a clean end of stream, io.ErrUnexpectedEOF for a
// stream cut inside a frame, and an error wrapping ErrFrameTooLarge for a
// length above the maximum (without reading or allocating the frame). A
// frame is allocated as its bytes arrive, not from its declared length,
// beyond the first 64 KiB.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	hdr, err := fr.r.Peek(frameHeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d bytes, the maximum is %d", ErrFrameTooLarge, n, fr.max)
	}
	fr.r.Discard(frameHeaderSize)
	if int(n) > fr.chunk {
		return fr.readLarge(int(n))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// readLarge reads a frame of n bytes into a buffer that starts at
// fr.chunk bytes and doubles, up to n, each time it fills up.
func (fr *FrameReader) readLarge(n int) ([]byte, error) {
	buf := make([]byte, 0, fr.chunk)
	counted := false
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := fr.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if m > 0 && !counted && fr.partial != nil {
			counted = true
			fr.partial.Add(1)
			defer fr.partial.Add(-1)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// Buffered reports whether a whole frame is already buffered, so that
// ReadFrame would return without waiting for the network.
func (fr *FrameReader) Buffered() bool {
	if fr.r.Buffered() < frameHeaderSize {
		return false
	}
	hdr, _ := fr.r.Peek(frameHeaderSize)
	n := binary.BigEndian.Uint32(hdr)
	return uint64(n) > uint64(fr.max) || fr.r.Buffered() >= frameHeaderSize+int(n)
}

// readSmallFrame reads one frame of at most max bytes from r without
// buffering beyond it: for the handshake, before the other side is
// trusted. A longer length is refused before anything is allocated.
func readSmallFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("connection closed before the handshake: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: a handshake of %d bytes, the maximum is %d", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
