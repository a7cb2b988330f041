package net

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/internal/wire"
	"github.com/paxos-go/paxos/net/certs"
)

// Inbound is a payload received from a peer.
type Inbound struct {
	From    uint64
	Payload []byte
}

// Options configure a Transport. ClusterID, ID and Peers are required, and
// so is TLS, unless Insecure is set.
type Options struct {
	// ClusterID must be the same on every replica of a cluster: a
	// connection from another cluster is refused.
	ClusterID string
	// ID is this replica; Peers maps every replica of the cluster (this one
	// may be left out) to its address. Connections from replicas not in
	// Peers are refused, unless Admit says otherwise. SetPeers changes the
	// set at run time.
	ID    uint64
	Peers map[uint64]string
	// ListenAddr is where peers reach this replica. Default: Peers[ID].
	ListenAddr string
	// Listener, if set, is used instead of listening on ListenAddr.
	Listener stdnet.Listener
	// AdvertiseAddr is the address this replica's Hellos give for it
	// (Hello.PeerAddr). Default: ListenAddr; the listener's address if
	// either has no port, or port 0.
	AdvertiseAddr string
	// State is what this replica's Hellos say about its data (see
	// PeerState); SetState changes it.
	State PeerState

	// Admit, if set, decides whether to take a peer connection whose Hello
	// passed the transport's own checks (the cluster, the certificate, not
	// this replica's own ID); known says the peer is in the transport's set
	// of peers. Its error refuses the connection and is sent to the dialer
	// as the reason (with its code, if it is a *PeerRefusal). Without
	// Admit, peers not in the set are refused. A peer that Admit takes and
	// that is not in the set is added to it, with the address its Hello
	// advertises, so that it can be answered (until the next SetPeers).
	// Admit is called from the transport's goroutines, concurrently; it
	// must not call the transport.
	Admit func(h Hello, known bool) error
	// OnRefused, if set, is told when a peer refuses this replica with a
	// code (see PeerRefusal): the cluster will not take this replica back,
	// and it should stop. It is called from a writer goroutine each time a
	// dial is so refused (the transport goes on retrying); it must not
	// block, and must not call Close.
	OnRefused func(peer uint64, e *RefusedError)
	// OnPeer, if set, is told when the connection to a peer (the outbound
	// one, which this replica sends on) is established (connected true)
	// and when it ends (false): failed, replaced by a reconnection, or
	// closed because the peer was removed; not when the transport closes.
	// It is called from that peer's writer goroutine, in order for each
	// peer; it must not block, and must not call the transport.
	OnPeer func(peer uint64, connected bool)

	// TLS secures the peer port: the listener serves with it and dialers
	// use it. It must hold this replica's certificate and trust the
	// cluster's CA as RootCAs and ClientCAs; certs.PeerConfig builds such
	// a config from the files of a certificate directory. Whatever else
	// the config says, the transport itself verifies the other side's
	// certificate chain against that CA (TLS 1.3 only) and takes the
	// other side's identity from it: a listener refuses a dialer whose
	// Hello claims another replica than its certificate, a dialer a
	// listener whose certificate is not the replica it dialed.
	TLS *tls.Config
	// Insecure runs the peer port in plaintext, without TLS: then anyone
	// who can reach it and knows the cluster ID and a member's ID can act
	// as that member. Only for tests, and for networks where every host is
	// trusted. Listen refuses to start without one of TLS and Insecure.
	Insecure bool

	// MaxFrameBytes bounds a frame. Default DefaultMaxFrameBytes (16 MiB).
	// A frame's buffer grows as its bytes arrive (64 KiB, then doubling),
	// so a declared length costs nothing until its bytes come.
	MaxFrameBytes int
	// MaxHelloBytes bounds the handshake frames, read before the other
	// side is known. Default DefaultMaxHelloBytes (4 KiB).
	MaxHelloBytes int
	// MaxConns bounds the inbound connections open at once, established
	// or in their handshake. Default 64. When a connection arrives with
	// MaxConns open, one still in its handshake, chosen at random (so that
	// a real peer's retries get in however fast strangers churn), is
	// closed to make room, so that strangers holding or
	// churning connections cannot lock the replicas out; if all are
	// established, the new one is closed.
	MaxConns int
	// QueueLen and QueueBytes bound each peer's outbound queue, in
	// messages and in bytes of payload; beyond either, the oldest messages
	// are dropped (the protocol retransmits) and counted. A message longer
	// than QueueBytes is queued alone. Defaults 8192 and 64 MiB.
	QueueLen, QueueBytes int
	// DialTimeout bounds connecting; HandshakeTimeout the TLS handshake
	// and the Hello exchange after it, on either side; WriteTimeout a
	// write; ReadTimeout closes an inbound connection that carried nothing
	// for that long (replicas heartbeat far more often). Defaults 1 s,
	// 5 s, 5 s and 30 s.
	DialTimeout, HandshakeTimeout, WriteTimeout, ReadTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the jittered, doubling wait
	// between attempts to reach a peer. Defaults 20 ms and 2 s. For
	// RecentWindow after a connection to the peer was lost, the wait is at
	// most RecentReconnectMax (default 50 ms, jittered to 25-75 ms): a peer
	// that restarts is back within 100 ms, not after the seconds of
	// backoff a long-dead peer has earned. And when a peer connects to
	// this replica, the wait to dial it ends at once: it is up.
	ReconnectMin, ReconnectMax time.Duration
	// RecentWindow: see ReconnectMin. Default 10 s.
	RecentWindow time.Duration
	// RecentReconnectMax: see ReconnectMin. Default 50 ms (or
	// ReconnectMax, if lower).
	RecentReconnectMax time.Duration
	// RefusalLogInterval: each refused inbound connection is logged at
	// debug level; at warn level, the first refusal after a quiet period
	// is logged at once, and those that follow as one summary line per
	// interval at most. Errors of the accept loop are rate-limited alike.
	// Default 10 s.
	RefusalLogInterval time.Duration
	// Logger receives connection events. Default: no logging.
	Logger hclog.Logger
}

// Defaults of Options.
const (
	DefaultMaxConns   = 64
	DefaultQueueLen   = 8192
	DefaultQueueBytes = 64 << 20
)

// ErrInsecure is matched by the error of Listen without TLS or Insecure.
var ErrInsecure = errors.New("net: the peer port needs TLS")

func (o Options) withDefaults() (Options, error) {
	if o.ClusterID == "" {
		return o, errors.New("net: Options.ClusterID is empty")
	}
	switch {
	case o.TLS == nil && !o.Insecure:
		return o, fmt.Errorf("%w: set Options.TLS (certs.PeerConfig builds it from the files `paxos certs` makes), "+
			"or set Options.Insecure to run the peer port unauthenticated on a network where every host is trusted", ErrInsecure)
	case o.TLS != nil && o.Insecure:
		return o, errors.New("net: Options.TLS and Options.Insecure are both set; choose one")
	case o.TLS != nil && (o.TLS.RootCAs == nil || o.TLS.ClientCAs == nil):
		return o, errors.New("net: Options.TLS must trust the cluster's CA as both RootCAs and ClientCAs (see certs.PeerConfig)")
	case o.TLS != nil && len(o.TLS.Certificates) == 0 && o.TLS.GetCertificate == nil && o.TLS.GetConfigForClient == nil:
		return o, errors.New("net: Options.TLS holds no certificate for this replica")
	}
	if o.ListenAddr == "" {
		o.ListenAddr = o.Peers[o.ID]
	}
	if len(o.AdvertiseAddr) > maxAdvertiseLen {
		return o, fmt.Errorf("net: Options.AdvertiseAddr is longer than %d bytes", maxAdvertiseLen)
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
	def(&o.RecentWindow, 10*time.Second)
	def(&o.RecentReconnectMax, min(50*time.Millisecond, o.ReconnectMax))
	def(&o.RefusalLogInterval, 10*time.Second)
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&o.MaxFrameBytes, DefaultMaxFrameBytes)
	defInt(&o.MaxHelloBytes, DefaultMaxHelloBytes)
	defInt(&o.MaxConns, DefaultMaxConns)
	defInt(&o.QueueLen, DefaultQueueLen)
	defInt(&o.QueueBytes, DefaultQueueBytes)
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
	// Received counts messages received.
	Received uint64
	// Accepted counts the inbound connections the listener accepted;
	// Refused those closed before their handshake succeeded (refused by
	// the checks, failed, timed out, or closed for MaxConns); Replaced
	// the established connections closed because the same replica
	// connected again.
	Accepted, Refused, Replaced uint64
}

// Transport carries payloads between the replicas of a cluster over TCP:
// one outbound connection per peer, kept up by one writer goroutine that
// drains everything queued into a single write; one reader goroutine per
// inbound connection. Send never blocks.
//
// Each replica has at most one established inbound connection: when a
// replica connects again (after a crash, or when it saw its connection
// fail first), the new connection replaces the old one, but only once it
// has been authenticated, so a stranger cannot push a replica out (with
// Insecure, anyone who knows the cluster ID and a member's ID can).
type Transport struct {
	opts Options
	log  hclog.Logger
	ln   stdnet.Listener
	recv chan []Inbound
	// peers is the set of peers, by ID: copied on write under mu, so that
	// Send reads it without a lock.
	peers atomic.Pointer[map[uint64]*peer]
	// state is what Hellos say (PeerState); advertise the address they give.
	state     atomic.Pointer[PeerState]
	advertise string
	// serverTLS and dialTLS are Options.TLS for each side (nil without).
	serverTLS, dialTLS *tls.Config
	// ctx is cancelled by Close; stop is its Done channel.
	ctx    context.Context
	cancel context.CancelFunc
	stop   <-chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	pending  wire.Pending          // accepted, handshake not done
	inbound  map[uint64]*wire.Conn // the established connection of each replica
	closed   bool
	refusals *wire.RateLog
	acceptLg *wire.RateLog

	sent, dropped, received, accepted, refused, replaced atomic.Uint64
	// partialFrames counts inbound frames being read whose bytes are still
	// arriving (FrameReader.partial), for tests.
	partialFrames atomic.Int64
}

// peer is the outbound side towards one replica at one address. A peer
// removed, or whose address changes, is stopped (cancel) and replaced by
// a new one.
type peer struct {
	id         uint64
	addr       string
	ctx        context.Context // cancelled when the peer is removed or the transport closes
	cancel     context.CancelFunc
	mu         sync.Mutex
	queue      [][]byte // payloads waiting, oldest first
	queueBytes int      // their total length
	kick       chan struct{}
	// rehello asks the writer to connect again, so that the peer hears
	// this replica's new PeerState.
	rehello chan struct{}

	// connected says the writer holds an established connection (see
	// PeerStats).
	connected atomic.Bool

	// redial ends the writer's wait between two attempts to connect: the
	// peer connected to this replica, so it is up.
	redial chan struct{}
	// lost is when the writer's last connection to the peer failed (zero
	// if it never had one); the writer's own.
	lost time.Time
	// failedDials counts the writer's failed attempts to connect, for
	// tests.
	failedDials atomic.Uint64
}

// PeerState is what a replica's Hellos say about its data: see
// Hello.Fresh and Hello.Joining.
type PeerState struct {
	Fresh, Joining bool
}

// maxAdvertiseLen bounds the advertised address, so that a Hello stays far
// below MaxHelloBytes.
const maxAdvertiseLen = 1024

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
	t := &Transport{
		opts:    opts,
		log:     opts.Logger,
		ln:      ln,
		recv:    make(chan []Inbound, 1024),
		inbound: map[uint64]*wire.Conn{},
	}
	t.peers.Store(&map[uint64]*peer{})
	state := opts.State
	t.state.Store(&state)
	t.advertise = opts.AdvertiseAddr
	if t.advertise == "" {
		t.advertise = opts.ListenAddr
	}
	if _, port, err := stdnet.SplitHostPort(t.advertise); err != nil || port == "" || port == "0" {
		t.advertise = ln.Addr().String() // a port chosen by the system
	}
	if opts.TLS != nil {
		t.serverTLS = opts.TLS.Clone()
		t.serverTLS.MinVersion = max(t.serverTLS.MinVersion, tls.VersionTLS13)
		t.serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
		t.dialTLS = opts.TLS.Clone()
		t.dialTLS.MinVersion = max(t.dialTLS.MinVersion, tls.VersionTLS13)
	}
	t.refusals = wire.NewRateLog(t.log, opts.RefusalLogInterval, "refused a peer connection", "refused %d peer connections in the last %v")
	t.acceptLg = wire.NewRateLog(t.log, opts.RefusalLogInterval, "accepting peer connections failed; retrying", "accepting peer connections failed %d times in the last %v")
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.stop = t.ctx.Done()
	t.SetPeers(opts.Peers)
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// SetPeers makes peers (ID to address; this replica's own ID is ignored)
// the set of replicas the transport talks to: writers start for the new
// ones; a replica no longer in the set is stopped, its queue dropped and
// its connections, both ways, closed (a replica whose address changed is
// reconnected at the new one). Connections from replicas outside the set
// are refused from then on, unless Options.Admit takes them. The caller
// keeps peers.
func (t *Transport) SetPeers(peers map[uint64]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	old := *t.peers.Load()
	next := make(map[uint64]*peer, len(peers))
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		if id != t.opts.ID {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if p, ok := old[id]; ok && p.addr == peers[id] {
			next[id] = p
			continue
		}
		next[id] = t.startPeerLocked(id, peers[id])
	}
	for id, p := range old {
		if next[id] == p {
			continue
		}
		p.cancel()
		if _, still := next[id]; !still {
			if c := t.inbound[id]; c != nil {
				c.Close()
			}
			t.log.Info("stopped talking to a replica no longer in the configuration", "peer", id, "addr", p.addr)
		} else {
			t.log.Info("a replica's address changed", "peer", id, "old", p.addr, "new", next[id].addr)
		}
	}
	t.peers.Store(&next)
}

// startPeerLocked starts the writer of a new peer; t.mu is held.
func (t *Transport) startPeerLocked(id uint64, addr string) *peer {
	p := &peer{id: id, addr: addr, kick: make(chan struct{}, 1), rehello: make(chan struct{}, 1), redial: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	t.wg.Add(1)
	go t.writeLoop(p)
	return p
}

// Peers returns the replicas the transport talks to, with their
// addresses.
func (t *Transport) Peers() map[uint64]string {
	ps := *t.peers.Load()
	out := make(map[uint64]string, len(ps))
	for id, p := range ps {
		out[id] = p.addr
	}
	return out
}

// Reconnect makes every outbound connection again, with a new handshake.
// A replica that hears from nobody for a while calls it: the peers then
// tell it, in their answer to the handshake, if they will not take it any
// more (see Options.OnRefused), which a connection that stays up would
// never tell it.
func (t *Transport) Reconnect() {
	for _, p := range *t.peers.Load() {
		select {
		case p.rehello <- struct{}{}:
		default:
		}
	}
}

// SetState changes what this replica's Hellos say about its data. When it
// changes, the outbound connections are made again, so that every peer
// hears the new state (a replica that now holds state says so: that is
// what lets the cluster tell, later, that it lost it).
func (t *Transport) SetState(s PeerState) {
	if old := t.state.Swap(&s); *old == s {
		return
	}
	for _, p := range *t.peers.Load() {
		select {
		case p.rehello <- struct{}{}:
		default:
		}
	}
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() stdnet.Addr { return t.ln.Addr() }

// Receive returns the channel on which payloads from peers arrive, in
// batches (a batch holds what one connection had buffered). Payloads are
// owned by the receiver.
func (t *Transport) Receive() <-chan []Inbound { return t.recv }

// Send queues payload for replica to. It never blocks: if the peer's queue
// is full (QueueLen messages or QueueBytes bytes), the oldest queued
// messages are dropped. Sending to an unknown replica is dropped too. The
// transport keeps payload until it is written; the caller must not modify
// it.
func (t *Transport) Send(to uint64, payload []byte) {
	p, ok := (*t.peers.Load())[to]
	if !ok {
		t.dropped.Add(1)
		return
	}
	p.mu.Lock()
	p.queue = append(p.queue, payload)
	p.queueBytes += len(payload)
	for len(p.queue) > t.opts.QueueLen || p.queueBytes > t.opts.QueueBytes && len(p.queue) > 1 {
		p.queueBytes -= len(p.queue[0])
		p.queue[0] = nil
		p.queue = p.queue[1:]
		t.dropped.Add(1)
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Sent: t.sent.Load(), Dropped: t.dropped.Load(), Received: t.received.Load(),
		Accepted: t.accepted.Load(), Refused: t.refused.Load(), Replaced: t.replaced.Load(),
	}
}

// Close stops the transport and waits for all its goroutines.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, c := range t.inbound {
		c.Close()
	}
	for _, p := range *t.peers.Load() {
		p.cancel()
	}
	t.pending.CloseAll()
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	t.wg.Wait()
	t.refusals.Close()
	t.acceptLg.Close()
	return err
}

// writeLoop keeps a connection to p up and writes its queue to it.
func (t *Transport) writeLoop(p *peer) {
	defer t.wg.Done()
	backoff := t.opts.ReconnectMin
	var buf []byte
	stop := p.ctx.Done()
	for {
		select { // a reconnection asked for before this one is done by it
		case <-p.rehello:
		default:
		}
		conn := t.connect(p, &backoff)
		if conn == nil {
			return // stopped
		}
		p.connected.Store(true)
		t.notePeer(p.id, true)
		select { // whatever was queued while disconnected goes out now
		case p.kick <- struct{}{}:
		default:
		}
	write:
		for {
			select {
			case <-stop:
				p.connected.Store(false)
				conn.Close()
				if t.ctx.Err() == nil {
					t.notePeer(p.id, false) // removed, or its address changed
				}
				return
			case <-p.rehello:
				conn.Close()
				p.lost = time.Now()
				t.notePeer(p.id, false)
				break write
			case <-p.kick:
			}
			p.mu.Lock()
			batch := p.queue
			p.queue, p.queueBytes = nil, 0
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
				p.lost = time.Now()
				t.notePeer(p.id, false)
				break write
			}
			t.sent.Add(uint64(len(batch)))
		}
		p.connected.Store(false)
	}
}

// notePeer tells Options.OnPeer, if set, of a peer connection's change.
func (t *Transport) notePeer(id uint64, connected bool) {
	if t.opts.OnPeer != nil {
		t.opts.OnPeer(id, connected)
	}
}

// writeChunk is the most a single write carries; a bigger batch is split,
// so the buffer stays small and warm in the cache.
const writeChunk = 1 << 20

func (t *Transport) writeBatch(conn *wire.Conn, batch [][]byte, buf *[]byte) error {
	b := (*buf)[:0]
	for i, m := range batch {
		b = wire.AppendFrame(b, m)
		if len(b) >= writeChunk || i == len(batch)-1 {
			conn.SetWriteDeadlineAfter(t.opts.WriteTimeout)
			if _, err := conn.Raw().Write(b); err != nil {
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

// connect dials p until a handshake succeeds or the transport stops (nil),
// waiting a jittered, doubling backoff between attempts.
func (t *Transport) connect(p *peer, backoff *time.Duration) *wire.Conn {
	stop := p.ctx.Done()
	for attempt := 0; ; attempt++ {
		select {
		case <-stop:
			return nil
		default:
		}
		conn, err := t.dial(p)
		var refused *RefusedError
		if errors.As(err, &refused) && refused.Code != 0 && t.opts.OnRefused != nil {
			t.opts.OnRefused(p.id, refused)
		}
		if err == nil {
			if attempt >= 20 {
				t.log.Info("connected to a peer", "peer", p.id, "addr", p.addr)
			}
			*backoff = t.opts.ReconnectMin
			select { // a signal that came while dialing is answered
			case <-p.redial:
			default:
			}
			return conn
		}
		switch {
		case (errors.Is(err, ErrRefused) || errors.Is(err, ErrWrongPeer)) && attempt%20 == 0, attempt == 20:
			// A refusal or the wrong replica at the address is a
			// misconfiguration (or an attack); twenty failures in a row
			// (seconds) a peer that is down.
			t.log.Warn("cannot reach a peer; retrying", "peer", p.id, "addr", p.addr, "error", err)
		case attempt == 0:
			// Peers starting at the same time miss each other at first.
			t.log.Debug("cannot reach a peer yet; retrying", "peer", p.id, "addr", p.addr, "error", err)
		}
		p.failedDials.Add(1)
		wait := t.nextBackoff(p, backoff, time.Now())
		timer := time.NewTimer(wait)
		select {
		case <-stop:
			timer.Stop()
			return nil
		case <-p.redial:
			// The peer connected to this replica: it is up. (A restarted
			// peer dials everyone as it starts.)
			timer.Stop()
			*backoff = t.opts.ReconnectMin
		case <-timer.C:
		}
	}
}

// nextBackoff returns the jittered wait before the next attempt to reach
// p (half to one and a half times *backoff), and doubles *backoff up to
// ReconnectMax; up to RecentReconnectMax only, while p was connected less
// than RecentWindow ago: a peer that was up a moment ago is most likely
// restarting, and a leader that waits seconds for it waits that long for
// a quorum.
func (t *Transport) nextBackoff(p *peer, backoff *time.Duration, now time.Time) time.Duration {
	if !p.lost.IsZero() && now.Sub(p.lost) < t.opts.RecentWindow {
		*backoff = min(*backoff, t.opts.RecentReconnectMax)
	}
	wait := *backoff/2 + time.Duration(rand.Int64N(int64(*backoff)))
	*backoff = min(2**backoff, t.opts.ReconnectMax)
	return wait
}

// ErrWrongPeer is matched by the error of a dialer that reached another
// replica than the one it dialed (by its certificate), or a certificate
// that is not of a replica of this cluster.
var ErrWrongPeer = errors.New("net: the other side is not the replica dialed")

func (t *Transport) dial(p *peer) (*wire.Conn, error) {
	ctx, cancel := context.WithTimeout(p.ctx, t.opts.DialTimeout)
	defer cancel()
	var d stdnet.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(t.opts.HandshakeTimeout)
	if t.dialTLS != nil {
		c.SetDeadline(deadline)
		tc := tls.Client(c, t.dialTLS)
		hctx, cancel := context.WithDeadline(p.ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("net: TLS handshake with %s: %w", p.addr, err)
		}
		id, err := t.peerIdentity(tc, x509.ExtKeyUsageServerAuth)
		if err == nil && id != p.id {
			err = fmt.Errorf("its certificate is replica %d's", id)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: replica %d at %s: %v", ErrWrongPeer, p.id, p.addr, err)
		}
		c = tc
	}
	st := *t.state.Load()
	h := Hello{ClusterID: t.opts.ClusterID, NodeID: t.opts.ID, Kind: KindPeer, Fresh: st.Fresh, Joining: st.Joining, PeerAddr: t.advertise}
	return wire.ClientHandshakeUntil(c, h, t.opts.MaxFrameBytes, t.opts.MaxHelloBytes, deadline)
}

// peerIdentity verifies the certificate of the other side of c against the
// cluster's CA and returns the replica it names, which must be of this
// cluster.
func (t *Transport) peerIdentity(c *tls.Conn, usage x509.ExtKeyUsage) (uint64, error) {
	cs := c.ConnectionState()
	if cs.Version < tls.VersionTLS13 {
		return 0, fmt.Errorf("TLS version %#x, want 1.3", cs.Version)
	}
	roots := t.opts.TLS.RootCAs
	if usage == x509.ExtKeyUsageClientAuth {
		roots = t.opts.TLS.ClientCAs
	}
	id, err := certs.VerifyPeer(cs, roots, usage)
	if err != nil {
		return 0, err
	}
	if id.IsClient() || id.Cluster != t.opts.ClusterID {
		return 0, fmt.Errorf("the certificate is not of a replica of this cluster")
	}
	return id.Replica, nil
}

// Reasons a connection was refused, for the log.
const (
	refusedLimit     = "max_conns"   // MaxConns reached
	refusedTLS       = "tls"         // the TLS handshake failed
	refusedCert      = "certificate" // a valid certificate of the wrong identity
	refusedHandshake = "handshake"   // no Hello, a malformed or oversized one, or a timeout
	refusedCheck     = "refused"     // the Hello did not pass the checks
)

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := wire.Accept(t.ln, t.stop, &delay, func(err error) { t.acceptLg.Add("", nil, err) })
		if err != nil {
			select {
			case <-t.stop:
			default:
				t.log.Error("the peer listener was closed; no longer accepting peer connections", "error", err)
			}
			return
		}
		t.accepted.Add(1)
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		pc, evicted := t.pending.Admit(c, len(t.inbound), t.opts.MaxConns)
		t.mu.Unlock()
		if pc == nil {
			// Counted before it is closed, so that whoever sees it
			// closed sees it counted.
			t.refuse(c.RemoteAddr(), refusedLimit, errors.New("MaxConns connections are established"))
			c.Close()
			continue
		}
		if evicted != nil {
			evicted.Conn.Close()
			t.refuse(evicted.Conn.RemoteAddr(), refusedLimit, errors.New("MaxConns connections are open: closed one still in its handshake, at random"))
		}
		t.wg.Add(1)
		go t.serve(pc)
	}
}

// refuse counts and logs a refused connection.
func (t *Transport) refuse(remote stdnet.Addr, reason string, err error) {
	t.refused.Add(1)
	t.refusals.Add(reason, remote, err)
}

// checkPeer accepts peers of this cluster that it knows (or that
// Options.Admit takes), and that are who their certificate says (certID),
// if any. Its reasons name no cluster and no replica the dialer did not
// name itself.
func (t *Transport) checkPeer(h Hello, certID *uint64) error {
	switch {
	case h.Kind != KindPeer:
		return fmt.Errorf("this is a peer port; connection kind %d", h.Kind)
	case h.ClusterID != t.opts.ClusterID:
		return errors.New("wrong cluster")
	case certID != nil && h.NodeID != *certID:
		return fmt.Errorf("the dialer claims to be replica %d, its certificate is replica %d's", h.NodeID, *certID)
	case h.NodeID == t.opts.ID:
		return fmt.Errorf("the dialer claims to be replica %d, which is this replica", h.NodeID)
	}
	return t.admit(h)
}

// admit is the membership part of checkPeer: the set of peers, or
// Options.Admit.
func (t *Transport) admit(h Hello) error {
	_, known := (*t.peers.Load())[h.NodeID]
	if t.opts.Admit != nil {
		return t.opts.Admit(h, known)
	}
	if !known {
		return fmt.Errorf("replica %d is not a member of this cluster", h.NodeID)
	}
	return nil
}

// serve runs the handshake of an inbound connection, then reads it until
// it fails, is replaced, or the transport stops.
func (t *Transport) serve(pc *wire.PendingConn) {
	defer t.wg.Done()
	conn, reason, err := t.handshake(pc.Conn)
	t.mu.Lock()
	evicted := t.pending.Done(pc)
	if err != nil {
		t.mu.Unlock()
		if !evicted {
			t.refuse(pc.Conn.RemoteAddr(), reason, err)
		}
		return
	}
	if evicted || t.closed {
		t.mu.Unlock()
		conn.Close()
		return
	}
	from := conn.Remote().NodeID
	// Admitted during the handshake; asked again under the lock, so that a
	// SetPeers that removed the replica meanwhile (and closed the
	// connections it had) does not miss this one.
	if err := t.admit(conn.Remote()); err != nil {
		t.mu.Unlock()
		conn.Close()
		t.refuse(conn.RemoteAddr(), refusedCheck, err)
		return
	}
	if peers := *t.peers.Load(); peers[from] == nil && conn.Remote().PeerAddr != "" {
		// Taken by Admit without being in the set: learn where to answer.
		next := make(map[uint64]*peer, len(peers)+1)
		for id, p := range peers {
			next[id] = p
		}
		next[from] = t.startPeerLocked(from, conn.Remote().PeerAddr)
		t.peers.Store(&next)
		t.log.Info("learned a peer's address from its handshake", "peer", from, "addr", conn.Remote().PeerAddr)
	}
	if old := t.inbound[from]; old != nil {
		// The replica connected again: it is authenticated, so the old
		// connection is stale (the replica restarted, or saw it fail
		// first).
		old.Close()
		t.replaced.Add(1)
		t.log.Debug("a peer connected again; closed its previous connection", "peer", from, "remote", conn.RemoteAddr())
	}
	t.inbound[from] = conn
	if p := (*t.peers.Load())[from]; p != nil {
		select { // its writer may be waiting to dial it again: it is up
		case p.redial <- struct{}{}:
		default:
		}
	}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.inbound[from] == conn {
			delete(t.inbound, from)
		}
		t.mu.Unlock()
		conn.Close()
	}()
	conn.CountPartialFrames(&t.partialFrames)
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

// handshake runs the listener's side of the handshake on c, within
// HandshakeTimeout: TLS if configured, then the Hello. On failure c is
// closed, and the reason (refused*) is returned with the error.
func (t *Transport) handshake(c stdnet.Conn) (*wire.Conn, string, error) {
	deadline := time.Now().Add(t.opts.HandshakeTimeout)
	var certID *uint64
	if t.serverTLS != nil {
		c.SetDeadline(deadline)
		tc := tls.Server(c, t.serverTLS)
		ctx, cancel := context.WithDeadline(t.ctx, deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, refusedTLS, err
		}
		id, err := t.peerIdentity(tc, x509.ExtKeyUsageClientAuth)
		if err != nil {
			// Not an alert: the dialer verified nothing wrong with this
			// side; it only learns that the connection closed.
			c.Close()
			return nil, refusedCert, err
		}
		certID, c = &id, tc
	}
	conn, err := wire.ServerHandshakeUntil(c, t.opts.ID, func(h Hello) error { return t.checkPeer(h, certID) },
		t.opts.MaxFrameBytes, t.opts.MaxHelloBytes, deadline)
	if err != nil {
		if wire.IsRefusal(err) {
			return nil, refusedCheck, err
		}
		return nil, refusedHandshake, err
	}
	return conn, "", nil
}
