package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// allocated returns the bytes allocated while fn runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLargeFrameAllocatedAsItArrives declares a 16 MiB frame and sends 10
// bytes of it: the reader must not allocate the 16 MiB.
func TestLargeFrameAllocatedAsItArrives(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 16<<20)
	stream := append(hdr[:], "0123456789"...)
	var err error
	grew := allocated(func() {
		_, err = NewFrameReader(bytes.NewReader(stream), 0).ReadFrame()
	})
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadFrame: %v, want io.ErrUnexpectedEOF", err)
	}
	if grew > 512<<10 {
		t.Fatalf("allocated %d bytes for a frame of which 10 bytes arrived", grew)
	}
	// Frames of every size around the chunk boundaries still arrive whole.
	for _, n := range []int{0, 1, frameChunk - 1, frameChunk, frameChunk + 1, 3*frameChunk + 7, 1 << 20, 5<<20 + 3} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		for i := range payload {
			payload[i] ^= byte(i >> 8)
		}
		stream := AppendFrame(AppendFrame(nil, payload), []byte("next"))
		fr := NewFrameReader(io.MultiReader(bytes.NewReader(stream[:len(stream)/3]), bytes.NewReader(stream[len(stream)/3:])), 0)
		got, err := fr.ReadFrame()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("frame of %d bytes: %d bytes, %v", n, len(got), err)
		}
		if next, err := fr.ReadFrame(); err != nil || string(next) != "next" {
			t.Fatalf("after a frame of %d bytes: %q %v", n, next, err)
		}
	}
}

// TestHandshakeFrameBounded: a handshake frame longer than its bound is
// refused before it is allocated.
func TestHandshakeFrameBounded(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 0x00FFFFFF)
	var err error
	grew := allocated(func() {
		_, err = readSmallFrame(bytes.NewReader(hdr[:]), DefaultMaxHelloBytes)
	})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("readSmallFrame: %v, want ErrFrameTooLarge", err)
	}
	if grew > 16<<10 {
		t.Fatalf("allocated %d bytes to refuse a handshake of 16 MiB", grew)
	}
	// It reads nothing past its frame: what follows is left for the next
	// reader.
	r := bytes.NewReader(append(AppendFrame(nil, []byte("hello")), "rest"...))
	if f, err := readSmallFrame(r, DefaultMaxHelloBytes); err != nil || string(f) != "hello" {
		t.Fatalf("readSmallFrame: %q %v", f, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "rest" {
		t.Fatalf("left %q", rest)
	}
}
