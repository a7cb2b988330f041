package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"testing"
	"time"
)

// FuzzFrame feeds arbitrary bytes to the frame reader, with buffers that
// start at chunk bytes (64 KiB in production; small here, so that the
// growth of big frames is exercised): no panic, no frame above the
// maximum, no buffer beyond twice the bytes that arrived, and every frame
// read is what was framed.
//
//	go test -run '^$' -fuzz=FuzzFrame -fuzztime=60s ./internal/wire
func FuzzFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("hello")), uint8(0))
	f.Add(append(AppendFrame(nil, nil), AppendFrame(nil, []byte("two"))...), uint8(1))
	f.Add(AppendFrame(nil, bytes.Repeat([]byte("big"), 300)), uint8(7))
	f.Add([]byte{0, 0, 3, 0xe8, 1, 2, 3}, uint8(3)) // declares 1000, sends 3
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, uint8(0))
	f.Add([]byte{0, 0, 0}, uint8(0))
	const max = 1024
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		fr := NewFrameReader(bytes.NewReader(data), max)
		fr.chunk = int(chunk%64) + 1
		consumed := 0
		for {
			frame, err := fr.ReadFrame()
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) && binary.BigEndian.Uint32(data[consumed:]) <= max {
					t.Fatalf("refused a frame within the limit")
				}
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && consumed != len(data) {
					t.Fatalf("clean EOF with %d of %d bytes consumed", consumed, len(data))
				}
				return
			}
			if len(frame) > max {
				t.Fatalf("frame of %d bytes above the maximum", len(frame))
			}
			if c := cap(frame); c > fr.chunk && c > 2*len(frame) {
				t.Fatalf("a frame of %d bytes has a buffer of %d", len(frame), c)
			}
			if !bytes.Equal(frame, data[consumed+4:consumed+4+len(frame)]) {
				t.Fatal("frame differs from the bytes framed")
			}
			consumed += 4 + len(frame)
		}
	})
}

// fuzzConn is a connection that reads from a buffer and records writes.
type fuzzConn struct {
	r   *bytes.Reader
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() stdnet.Addr           { return &stdnet.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() stdnet.Addr          { return &stdnet.TCPAddr{} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHello feeds arbitrary bytes to the listener's side of the peer
// handshake, with checks like the transport's (its own reasons are tested
// in net, TestStrangerLearnsNothing): no panic; a Hello is taken only from
// a member of this cluster; whatever is answered is one frame within the
// bound, and never names the cluster.
//
//	go test -run '^$' -fuzz=FuzzHello -fuzztime=60s ./internal/wire
func FuzzHello(f *testing.F) {
	const cluster = "secret-cluster"
	hello := func(h helloWire) []byte { return AppendFrame(nil, encode(&h)) }
	f.Add(hello(helloWire{Magic: handshakeMagic, Version: handshakeVersion, ClusterID: cluster, NodeID: 2, Kind: KindPeer}))
	f.Add(hello(helloWire{Magic: handshakeMagic, Version: handshakeVersion, ClusterID: "other", NodeID: 2, Kind: KindPeer}))
	f.Add(hello(helloWire{Magic: handshakeMagic, Version: handshakeVersion, ClusterID: cluster, NodeID: 9, Kind: KindPeer}))
	f.Add(hello(helloWire{Magic: handshakeMagic, Version: 2, ClusterID: cluster, NodeID: 2, Kind: KindClient}))
	f.Add(hello(helloWire{Magic: "HTTP", Version: handshakeVersion}))
	f.Add([]byte{0, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(AppendFrame(nil, []byte{0x95, 0xa4, 'P', 'X', 'N', 'T', 1, 0xdb, 0xff, 0xff, 0xff, 0xff}))
	check := func(h Hello) error {
		switch {
		case h.Kind != KindPeer:
			return fmt.Errorf("this is a peer port; connection kind %d", h.Kind)
		case h.ClusterID != cluster:
			return errors.New("wrong cluster")
		case h.NodeID != 2 && h.NodeID != 3:
			return fmt.Errorf("replica %d is not a member of this cluster", h.NodeID)
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &fuzzConn{r: bytes.NewReader(data)}
		conn, err := ServerHandshakeUntil(c, 1, check, 0, DefaultMaxHelloBytes, time.Time{})
		if err == nil {
			h := conn.Remote()
			if h.ClusterID != cluster || h.Kind != KindPeer || (h.NodeID != 2 && h.NodeID != 3) {
				t.Fatalf("took %+v", h)
			}
		}
		out := c.out.Bytes()
		if bytes.Contains(out, []byte(cluster)) {
			t.Fatalf("the answer names the cluster: %q", out)
		}
		if len(out) == 0 {
			return
		}
		frame, ferr := readSmallFrame(bytes.NewReader(out), DefaultMaxHelloBytes)
		var w welcomeWire
		if ferr != nil || decode(frame, &w) != nil || w.OK != (err == nil) || (!w.OK && w.NodeID != 0) {
			t.Fatalf("answer %q (%v) to a handshake that returned %v", out, ferr, err)
		}
		if len(out) != 4+len(frame) {
			t.Fatalf("answered more than one frame: %q", out)
		}
	})
}
