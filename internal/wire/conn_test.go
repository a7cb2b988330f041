package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameReaderRefusesBeforeAllocating(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<31)
	fr := NewFrameReader(bytes.NewReader(hdr[:]), 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := fr.ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame: %v, want ErrFrameTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("allocated %d bytes to refuse a 2 GiB frame", grew)
	}
	// A stream cut inside a frame is not a clean end.
	cut := append(AppendFrame(nil, []byte("whole")), AppendFrame(nil, []byte("cut short"))[:6]...)
	fr = NewFrameReader(bytes.NewReader(cut), 0)
	if f, err := fr.ReadFrame(); err != nil || string(f) != "whole" {
		t.Fatalf("first frame: %q %v", f, err)
	}
	if _, err := fr.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestHelloOfAnOlderVersion: a Hello without the membership fields (as an
// older replica sends it) is taken, with those fields zero; an older
// decoder skips them.
func TestHelloOfAnOlderVersion(t *testing.T) {
	type oldHello struct {
		Magic     string
		Version   uint8
		ClusterID string
		NodeID    uint64
		Kind      uint8
	}
	var hw helloWire
	if err := decodeHello(encode(&oldHello{handshakeMagic, handshakeVersion, "c1", 7, KindPeer}), &hw); err != nil {
		t.Fatal(err)
	}
	if hw.NodeID != 7 || hw.Fresh || hw.Joining || hw.PeerAddr != "" {
		t.Fatalf("decoded %+v", hw)
	}
	var old oldHello
	if err := decode(encode(&helloWire{Magic: handshakeMagic, Version: handshakeVersion, ClusterID: "c1", NodeID: 7, Kind: KindPeer, Fresh: true, PeerAddr: "a:1"}), &old); err != nil || old.NodeID != 7 {
		t.Fatalf("an older decoder got %+v, %v", old, err)
	}
}
