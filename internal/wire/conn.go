package wire

import (
	"errors"
	"fmt"
	stdnet "net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The handshake opens every connection, peer or client. The dialer sends a
// Hello frame; the listener checks it and answers with a Welcome frame,
// closing the connection after a refusal:
//
//	Hello   msgpack [magic "PXNT", version 1, clusterID, nodeID, kind,
//	                 fresh, joining, peerAddr]
//	Welcome msgpack [ok, reason, nodeID of the listener (0 in a refusal), code]
//
// The last three fields of a Hello and the code of a Welcome came with
// membership changes. They are optional on the wire: a decoder fills the
// fields an older peer did not send with zero values (not fresh, not
// joining, no address, no code) and skips fields it does not know, so the
// version stays 1 and replicas of both kinds still talk.
//
// Both frames are at most DefaultMaxHelloBytes (or Options.MaxHelloBytes).
// On a peer port with TLS, the handshake runs inside the TLS session, after
// both sides have verified each other's certificate.

const (
	handshakeMagic   = "PXNT"
	handshakeVersion = 1
)

// Kinds of connection.
const (
	KindPeer   uint8 = 1 // replica to replica
	KindClient uint8 = 2 // client to replica
)

// Hello is what a dialer says about itself.
type Hello struct {
	ClusterID string
	// NodeID is the dialing replica, for a peer connection; a client's
	// connections carry 0.
	NodeID uint64
	Kind   uint8
	// The rest is for peer connections only (see PeerState).
	//
	// Fresh says the dialing replica holds no durable protocol state: no
	// promise, no log, no snapshot. A replica whose data directory is new
	// or was wiped says so until it has written something; the cluster
	// uses it to refuse a replica that lost its data and came back under
	// its old ID.
	Fresh bool
	// Joining says the dialing replica was started to join a running
	// cluster and knows no configuration yet.
	Joining bool
	// PeerAddr is the address the dialing replica listens on for peers, so
	// that a listener that has no address for it yet (a joining replica)
	// can answer.
	PeerAddr string
}

type helloWire struct {
	Magic     string
	Version   uint8
	ClusterID string
	NodeID    uint64
	Kind      uint8
	Fresh     bool
	Joining   bool
	PeerAddr  string
}

type welcomeWire struct {
	OK     bool
	Reason string
	NodeID uint64
	Code   RefusalCode
}

// ErrRefused is matched by the error a dialer gets when the listener
// refuses the handshake; the error carries the listener's reason, and is a
// *RefusedError.
var ErrRefused = errors.New("net: connection refused by the peer")

// RefusalCode says why a listener refused a peer, when the reason is one
// the dialer must act on instead of retrying: the cluster will never take
// it back.
type RefusalCode uint8

// Refusal codes. Zero is any other refusal (one to retry: a replica not
// added yet, a misconfiguration being fixed).
const (
	// RefusalRemoved: the dialer was removed from the cluster.
	RefusalRemoved RefusalCode = 1
	// RefusalDataLost: the dialer lost its data (or was started as a new
	// replica under the ID of one the cluster knows had state).
	RefusalDataLost RefusalCode = 2
)

// PeerRefusal is the error an Options.Admit hook returns to refuse a peer
// with a code: the dialer's transport reports it to its Options.OnRefused.
// Reason is sent to the dialer.
type PeerRefusal struct {
	Code   RefusalCode
	Reason string
}

// Error returns the reason sent to the dialer.
func (r *PeerRefusal) Error() string { return r.Reason }

// RefusedError is the error of a handshake the listener refused: its
// reason, and its code (zero unless the listener gave one). It matches
// ErrRefused.
type RefusedError struct {
	Code   RefusalCode
	Reason string
}

// Error is ErrRefused with the listener's reason.
func (e *RefusedError) Error() string { return fmt.Sprintf("%v: %s", ErrRefused, e.Reason) }

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// msgpackHandle encodes the handshake. Structs are arrays on the wire.
var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	h.StructToArray = true
	h.MaxInitLen = 1024
	return h
}()

func encode(v any) []byte {
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(v); err != nil {
		panic(fmt.Sprintf("net: encoding %T: %v", v, err)) // fixed structs: a bug
	}
	return b
}

func decode(b []byte, v any) error {
	return codec.NewDecoderBytes(b, msgpackHandle).Decode(v)
}

// DefaultMaxHelloBytes bounds the frames of the handshake (Hello and
// Welcome), read before the other side is trusted: a longer length closes
// the connection before anything is allocated for it.
const DefaultMaxHelloBytes = 4 << 10

// Conn is a framed connection after its handshake. ReadFrame may be called
// from one goroutine while WriteFrames is called from another.
type Conn struct {
	c      stdnet.Conn
	fr     *FrameReader
	wmu    sync.Mutex
	wbuf   []byte
	remote Hello // what the other side said, on the listening side
}

func newConn(c stdnet.Conn, maxFrame int) *Conn {
	return &Conn{c: c, fr: NewFrameReader(c, maxFrame)}
}

// ReadFrame reads the next frame (see FrameReader.ReadFrame).
func (c *Conn) ReadFrame() ([]byte, error) { return c.fr.ReadFrame() }

// FrameBuffered reports whether a whole frame can be read without waiting.
func (c *Conn) FrameBuffered() bool { return c.fr.Buffered() }

// SetReadDeadline sets the deadline for reads.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// WriteFrames writes payloads as consecutive frames with a single write,
// which must finish within timeout (none if 0).
func (c *Conn) WriteFrames(timeout time.Duration, payloads ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = c.wbuf[:0]
	for _, p := range payloads {
		c.wbuf = AppendFrame(c.wbuf, p)
	}
	return c.writeBuf(timeout)
}

// writeBuf writes c.wbuf; c.wmu must be held.
func (c *Conn) writeBuf(timeout time.Duration) error {
	if timeout > 0 {
		c.c.SetWriteDeadline(time.Now().Add(timeout))
	}
	_, err := c.c.Write(c.wbuf)
	if cap(c.wbuf) > 4<<20 {
		c.wbuf = nil // do not keep a burst's buffer forever
	}
	return err
}

// Remote returns what the dialer said in its handshake (listening side).
func (c *Conn) Remote() Hello { return c.remote }

// RemoteAddr returns the address of the other side.
func (c *Conn) RemoteAddr() stdnet.Addr { return c.c.RemoteAddr() }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// writeSmallFrame writes one handshake frame.
func writeSmallFrame(c stdnet.Conn, payload []byte) error {
	_, err := c.Write(AppendFrame(nil, payload))
	return err
}

// Raw returns the connection under the frames (TCP, or TLS over it), for
// a writer that frames its own batches (the transport).
func (c *Conn) Raw() stdnet.Conn { return c.c }

// SetWriteDeadlineAfter sets the write deadline d from now.
func (c *Conn) SetWriteDeadlineAfter(d time.Duration) { c.c.SetWriteDeadline(time.Now().Add(d)) }

// CountPartialFrames makes the reader count in p the frames longer than
// 64 KiB that are being read and of which some bytes have arrived (for
// tests: how many frames a peer keeps half-sent).
func (c *Conn) CountPartialFrames(p *atomic.Int64) { c.fr.partial = p }

// EncodeHello returns the payload of the Hello frame a dialer sends for h.
func EncodeHello(h Hello) []byte {
	return encode(&helloWire{Magic: handshakeMagic, Version: handshakeVersion, ClusterID: h.ClusterID, NodeID: h.NodeID, Kind: h.Kind,
		Fresh: h.Fresh, Joining: h.Joining, PeerAddr: h.PeerAddr})
}

// ClientHandshake runs the dialer's side of the handshake on c, which it
// closes on failure; the whole handshake, and the TLS handshake if c is a
// *tls.Conn that has not had it yet, must finish within timeout. A refusal
// is an error matching ErrRefused that carries the listener's reason.
func ClientHandshake(c stdnet.Conn, h Hello, maxFrame int, timeout time.Duration) (*Conn, error) {
	return ClientHandshakeUntil(c, h, maxFrame, DefaultMaxHelloBytes, time.Now().Add(timeout))
}

// ClientHandshakeUntil is ClientHandshake with a bound on the Welcome
// frame (maxHello) and a deadline.
func ClientHandshakeUntil(c stdnet.Conn, h Hello, maxFrame, maxHello int, deadline time.Time) (*Conn, error) {
	c.SetDeadline(deadline)
	err := writeSmallFrame(c, EncodeHello(h))
	var frame []byte
	if err == nil {
		frame, err = readSmallFrame(c, maxHello)
	}
	var w welcomeWire
	if err == nil {
		err = decode(frame, &w)
	}
	if err == nil && !w.OK {
		err = &RefusedError{Code: w.Code, Reason: w.Reason}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("net: handshake with %s: %w", c.RemoteAddr(), err)
	}
	c.SetDeadline(time.Time{})
	return newConn(c, maxFrame), nil
}

// ServerHandshake runs the listener's side of the handshake on c: it reads
// the dialer's Hello (at most DefaultMaxHelloBytes, refused before it is
// allocated if longer) and asks check whether to take the connection. A
// refusal (check's error, or a malformed or foreign Hello) is sent to the
// dialer with its reason, c is closed, and the reason is returned. The
// handshake, and the TLS handshake if c is a *tls.Conn that has not had it
// yet, must finish within timeout. Nothing about the listener is sent
// before check accepts, except check's reason for refusing: it must not
// tell a stranger what it should not know.
func ServerHandshake(c stdnet.Conn, self uint64, check func(Hello) error, maxFrame int, timeout time.Duration) (*Conn, error) {
	conn, err := ServerHandshakeUntil(c, self, check, maxFrame, DefaultMaxHelloBytes, time.Now().Add(timeout))
	if err != nil {
		return nil, fmt.Errorf("net: refused a connection from %s: %w", c.RemoteAddr(), err)
	}
	return conn, nil
}

// ServerHandshakeUntil is ServerHandshake with a bound on the Hello and a
// deadline. Its errors do not name the remote address; IsRefusal tells a
// refusal by check (or of a malformed Hello) from a failure of the
// connection.
func ServerHandshakeUntil(c stdnet.Conn, self uint64, check func(Hello) error, maxFrame, maxHello int, deadline time.Time) (*Conn, error) {
	c.SetDeadline(deadline)
	refuse := func(reason error) (*Conn, error) {
		w := welcomeWire{Reason: reason.Error()}
		var pr *PeerRefusal
		if errors.As(reason, &pr) {
			w.Code = pr.Code
		}
		writeSmallFrame(c, encode(&w))
		c.Close()
		return nil, &refusal{err: reason}
	}
	frame, err := readSmallFrame(c, maxHello)
	if err != nil {
		c.Close()
		return nil, err
	}
	var hw helloWire
	if err := decodeHello(frame, &hw); err != nil {
		return refuse(err)
	}
	h := Hello{ClusterID: hw.ClusterID, NodeID: hw.NodeID, Kind: hw.Kind, Fresh: hw.Fresh, Joining: hw.Joining, PeerAddr: hw.PeerAddr}
	if err := check(h); err != nil {
		return refuse(err)
	}
	if err := writeSmallFrame(c, encode(&welcomeWire{OK: true, NodeID: self})); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	conn := newConn(c, maxFrame)
	conn.remote = h
	return conn, nil
}

// refusal is a handshake refused by the listener's checks (as opposed to
// one that failed on the network).
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// IsRefusal reports whether err, from ServerHandshakeUntil, is a refusal
// of the Hello (by the check, or a malformed or foreign Hello) rather than
// a failure of the connection.
func IsRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// decodeHello decodes and checks a Hello frame.
func decodeHello(frame []byte, hw *helloWire) error {
	if err := decode(frame, hw); err != nil {
		return fmt.Errorf("malformed handshake: %v", err)
	}
	switch {
	case hw.Magic != handshakeMagic:
		return errors.New("not a paxos-go connection")
	case hw.Version != handshakeVersion:
		return fmt.Errorf("protocol version %d, this replica speaks version %d", hw.Version, handshakeVersion)
	}
	return nil
}
