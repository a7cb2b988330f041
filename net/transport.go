package net

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Inbound is a payload received from a peer.
type Inbound struct {
	From    uint64
	Payload []byte
}

// Options configure a Transport. ClusterID, ID and Peers are required.
type Options struct {
	// ClusterID must be the same on every replica of a cluster: a
	// connection from another cluster is refused.
	ClusterID string
	// ID is this replica; Peers maps every replica of the cluster (this one
	// may be left out) to its address. Connections from replicas not in
	// Peers are refused.
	ID    uint64
	Peers map[uint64]string
	// ListenAddr is where peers reach this replica. Default: Peers[ID].
	ListenAddr string
	// Listener, if set, is used instead of listening on ListenAddr.
	Listener stdnet.Listener

	// MaxFrameBytes bounds a frame. Default DefaultMaxFrameBytes (16 MiB).
	MaxFrameBytes int
	// QueueLen bounds each peer's outbound queue, in messages; when it is
	// full the oldest message is dropped (the protocol retransmits) and
	// counted. Default 8192.
	QueueLen int
	// DialTimeout, HandshakeTimeout and WriteTimeout bound those steps;
	// ReadTimeout closes an inbound connection that carried nothing for
	// that long (replicas heartbeat far more often). Defaults 1 s, 5 s, 5 s
	// and 30 s.
	DialTimeout, HandshakeTimeout, WriteTimeout, ReadTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the jittered, doubling wait
	// between attempts to reach a peer. Defaults 20 ms and 2 s.
	ReconnectMin, ReconnectMax time.Duration
	// TLS, if set, wraps every connection: the listener serves with it (set
	// ClientAuth and ClientCAs for mutual TLS) and dialers use it.
	TLS *tls.Config
	// Logger receives connection events. Default: no logging.
	Logger hclog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.ClusterID == "" {
		return o, errors.New("net: Options.ClusterID is empty")
	}
	if o.ListenAddr == "" {
		o.ListenAddr = o.Peers[o.ID]
	}
	if o.ListenAddr == "" && o.Listener == nil {
		return o, fmt.Errorf("net: no address to listen on for replica %d", o.ID)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.DialTimeout, time.Second)
	def(&o.HandshakeTimeout, 5*time.Second)
	def(&o.WriteTimeout, 5*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.ReconnectMin, 20*time.Millisecond)
	def(&o.ReconnectMax, 2*time.Second)
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 8192
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o, nil
}

// Stats count what a Transport did.
type Stats struct {
	// Sent counts messages written to a connection; Dropped those dropped
	// from a full queue or lost with a failed connection.
	Sent, Dropped uint64
	// Received counts messages received; Refused the connections refused
	// at the handshake.
	Received, Refused uint64
}

// Transport carries payloads between the replicas of a cluster over TCP:
// one outbound connection per peer, kept up by one writer goroutine that
// drains everything queued into a single write; one reader goroutine per
// inbound connection. Send never blocks.
type Transport struct {
	opts  Options
	log   hclog.Logger
	ln    stdnet.Listener
	recv  chan []Inbound
	peers map[uint64]*peer
	// ctx is cancelled by Close; stop is its Done channel.
	ctx    context.Context
	cancel context.CancelFunc
	stop   <-chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	inbound map[*Conn]struct{}
	closed  bool

	sent, dropped, received, refused atomic.Uint64
}

// peer is the outbound side towards one replica.
type peer struct {
	id    uint64
	addr  string
	mu    sync.Mutex
	queue [][]byte // payloads waiting, oldest first
	kick  chan struct{}
}

// Listen starts a transport: it listens for peers and starts a writer for
// each of them, which connects in the background.
func Listen(opts Options) (*Transport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = stdnet.Listen("tcp", opts.ListenAddr); err != nil {
			return nil, fmt.Errorf("net: listening for peers on %s: %w", opts.ListenAddr, err)
		}
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	t := &Transport{
		opts:    opts,
		log:     opts.Logger,
		ln:      ln,
		recv:    make(chan []Inbound, 1024),
		peers:   map[uint64]*peer{},
		inbound: map[*Conn]struct{}{},
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.stop = t.ctx.Done()
	ids := make([]uint64, 0, len(opts.Peers))
	for id := range opts.Peers {
		if id != opts.ID {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		p := &peer{id: id, addr: opts.Peers[id], kick: make(chan struct{}, 1)}
		t.peers[id] = p
		t.wg.Add(1)
		go t.writeLoop(p)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() stdnet.Addr { return t.ln.Addr() }

// Receive returns the channel on which payloads from peers arrive, in
// batches (a batch holds what one connection had buffered). Payloads are
// owned by the receiver.
func (t *Transport) Receive() <-chan []Inbound { return t.recv }

// Send queues payload for replica to. It never blocks: if the peer's queue
// is full, the oldest queued message is dropped. Sending to an unknown
// replica is dropped too. The transport keeps payload until it is written;
// the caller must not modify it.
func (t *Transport) Send(to uint64, payload []byte) {
	p, ok := t.peers[to]
	if !ok {
		t.dropped.Add(1)
		return
	}
	p.mu.Lock()
	if len(p.queue) >= t.opts.QueueLen {
		p.queue[0] = nil
		p.queue = p.queue[1:]
		t.dropped.Add(1)
	}
	p.queue = append(p.queue, payload)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{Sent: t.sent.Load(), Dropped: t.dropped.Load(), Received: t.received.Load(), Refused: t.refused.Load()}
}

// Close stops the transport and waits for all its goroutines.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for c := range t.inbound {
		c.Close()
	}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	t.wg.Wait()
	return err
}

// writeLoop keeps a connection to p up and writes its queue to it.
func (t *Transport) writeLoop(p *peer) {
	defer t.wg.Done()
	backoff := t.opts.ReconnectMin
	var buf []byte
	for {
		conn := t.connect(p, &backoff)
		if conn == nil {
			return // stopped
		}
		select { // whatever was queued while disconnected goes out now
		case p.kick <- struct{}{}:
		default:
		}
		for {
			select {
			case <-t.stop:
				conn.Close()
				return
			case <-p.kick:
			}
			p.mu.Lock()
			batch := p.queue
			p.queue = nil
			p.mu.Unlock()
			if len(batch) == 0 {
				continue
			}
			// Everything queued goes out in as few writes as possible: one
			// syscall per writeChunk bytes of messages that piled up while
			// the last write was under way.
			if err := t.writeBatch(conn, batch, &buf); err != nil {
				t.dropped.Add(uint64(len(batch)))
				t.log.Debug("lost the connection to a peer", "peer", p.id, "error", err)
				conn.Close()
				break
			}
			t.sent.Add(uint64(len(batch)))
		}
	}
}

// writeChunk is the most a single write carries; a bigger batch is split,
// so the buffer stays small and warm in the cache.
const writeChunk = 1 << 20

func (t *Transport) writeBatch(conn *Conn, batch [][]byte, buf *[]byte) error {
	b := (*buf)[:0]
	for i, m := range batch {
		b = AppendFrame(b, m)
		if len(b) >= writeChunk || i == len(batch)-1 {
			conn.SetWriteDeadlineAfter(t.opts.WriteTimeout)
			if _, err := conn.c.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	if cap(b) <= 2*writeChunk {
		*buf = b
	}
	return nil
}

// SetWriteDeadlineAfter sets the write deadline d from now.
func (c *Conn) SetWriteDeadlineAfter(d time.Duration) { c.c.SetWriteDeadline(time.Now().Add(d)) }

// connect dials p until a handshake succeeds or the transport stops (nil),
// waiting a jittered, doubling backoff between attempts.
func (t *Transport) connect(p *peer, backoff *time.Duration) *Conn {
	for attempt := 0; ; attempt++ {
		select {
		case <-t.stop:
			return nil
		default:
		}
		conn, err := t.dial(p)
		if err == nil {
			if attempt >= 20 {
				t.log.Info("connected to a peer", "peer", p.id, "addr", p.addr)
			}
			*backoff = t.opts.ReconnectMin
			return conn
		}
		switch {
		case errors.Is(err, ErrRefused) || attempt == 20:
			// A refusal is a misconfiguration; twenty failures in a row
			// (seconds) a peer that is down.
			t.log.Warn("cannot reach a peer; retrying", "peer", p.id, "addr", p.addr, "error", err)
		case attempt == 0:
			// Peers starting at the same time miss each other at first.
			t.log.Debug("cannot reach a peer yet; retrying", "peer", p.id, "addr", p.addr, "error", err)
		}
		wait := *backoff/2 + time.Duration(rand.Int64N(int64(*backoff)))
		*backoff = min(2**backoff, t.opts.ReconnectMax)
		timer := time.NewTimer(wait)
		select {
		case <-t.stop:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

func (t *Transport) dial(p *peer) (*Conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.DialTimeout)
	defer cancel()
	var d stdnet.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if t.opts.TLS != nil {
		tc := tls.Client(c, t.opts.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return ClientHandshake(c, Hello{ClusterID: t.opts.ClusterID, NodeID: t.opts.ID, Kind: KindPeer}, t.opts.MaxFrameBytes, t.opts.HandshakeTimeout)
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			var ne stdnet.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			t.log.Error("accepting peer connections failed", "error", err)
			return
		}
		t.wg.Add(1)
		go t.serve(c)
	}
}

// checkPeer accepts peers of this cluster that it knows.
func (t *Transport) checkPeer(h Hello) error {
	switch {
	case h.Kind != KindPeer:
		return fmt.Errorf("this is a peer port; connection kind %d", h.Kind)
	case h.ClusterID != t.opts.ClusterID:
		return fmt.Errorf("wrong cluster: this is cluster %q, the dialer belongs to %q", t.opts.ClusterID, h.ClusterID)
	case h.NodeID == t.opts.ID:
		return fmt.Errorf("the dialer claims to be replica %d, which is this replica", h.NodeID)
	}
	if _, ok := t.peers[h.NodeID]; !ok {
		return fmt.Errorf("replica %d is not a member of cluster %q", h.NodeID, t.opts.ClusterID)
	}
	return nil
}

// serve reads an inbound connection until it fails or the transport stops.
func (t *Transport) serve(c stdnet.Conn) {
	defer t.wg.Done()
	conn, err := ServerHandshake(c, t.opts.ID, t.checkPeer, t.opts.MaxFrameBytes, t.opts.HandshakeTimeout)
	if err != nil {
		t.refused.Add(1)
		t.log.Warn("refused a connection", "error", err)
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		conn.Close()
		return
	}
	t.inbound[conn] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.inbound, conn)
		t.mu.Unlock()
		conn.Close()
	}()
	from := conn.Remote().NodeID
	for {
		conn.SetReadDeadline(time.Now().Add(t.opts.ReadTimeout))
		frame, err := conn.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				t.log.Error("closing a peer connection: frame too large", "peer", from, "error", err)
			}
			return
		}
		// Hand over everything already buffered as one batch.
		batch := []Inbound{{From: from, Payload: frame}}
		for len(batch) < 256 && conn.FrameBuffered() {
			if frame, err = conn.ReadFrame(); err != nil {
				break
			}
			batch = append(batch, Inbound{From: from, Payload: frame})
		}
		t.received.Add(uint64(len(batch)))
		select {
		case t.recv <- batch:
		case <-t.stop:
			return
		}
		if err != nil {
			return
		}
	}
}
