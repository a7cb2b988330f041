package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/wire"
)

// The client protocol (frames, operations, error codes) is defined in
// internal/clientproto, whose package doc describes it; this file serves it.

// changeRequestOf returns the change wc asks for.
func changeRequestOf(wc clientproto.Change) (changeRequest, error) {
	cc := paxos.ConfChange{ID: paxos.NodeID(wc.ID), PeerAddr: wc.PeerAddr, ClientAddr: wc.ClientAddr}
	switch changeKind(wc.Kind) {
	case changeAddLearner:
		cc.Type = paxos.AddLearner
	case changePromote:
		cc.Type = paxos.Promote
	case changeRemove:
		cc.Type = paxos.Remove
	case changeTransfer:
		cc.PeerAddr, cc.ClientAddr = "", ""
	default:
		return changeRequest{}, fmt.Errorf("unknown change kind %d", wc.Kind)
	}
	return changeRequest{kind: changeKind(wc.Kind), cc: cc}, nil
}

// Reasons a client connection was refused or closed, for the log.
const (
	clientRefusedLimit     = "max_conns" // ClientMaxConns reached
	clientRefusedTLS       = "tls"       // the TLS handshake failed (no client certificate, among others)
	clientRefusedHandshake = "handshake" // no Hello, a malformed, foreign or oversized one, or a timeout
	clientClosedMalformed  = "malformed" // a request that does not decode
	clientClosedTooLarge   = "too_large" // a request frame above the limit
	clientClosedIdle       = "idle"      // ClientIdleTimeout
)

// clientServer serves clients on Config.ClientAddr.
type clientServer struct {
	n      *Node
	ln     stdnet.Listener
	tls    *tls.Config // nil: plaintext
	maxReq int         // the longest request frame
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending wire.Pending // accepted, handshake not done
	conns   map[*clientConn]struct{}
	done    bool

	refusals *wire.RateLog
	acceptLg *wire.RateLog
	// Counters, for tests: connections accepted, refused before or during
	// their handshake, closed for being idle.
	accepted, refused, idleClosed atomic.Uint64
}

func startClientServer(n *Node) (*clientServer, error) {
	ln := n.cfg.ClientListener
	if ln == nil {
		var err error
		if ln, err = stdnet.Listen("tcp", n.cfg.ClientAddr); err != nil {
			return nil, fmt.Errorf("engine: listening for clients on %s: %w", n.cfg.ClientAddr, err)
		}
	}
	s := &clientServer{
		n: n, ln: ln, conns: map[*clientConn]struct{}{},
		maxReq: min(n.cfg.MaxCommandBytes+clientproto.EnvelopeBytes, n.cfg.MaxFrameBytes),
	}
	if n.cfg.ClientTLS != nil {
		s.tls = n.cfg.ClientTLS.Clone()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	log := n.log.Named("clients")
	s.refusals = wire.NewRateLog(log, n.cfg.RefusalLogInterval, "refused a client connection", "refused or closed %d client connections in the last %v")
	s.acceptLg = wire.NewRateLog(log, n.cfg.RefusalLogInterval, "accepting client connections failed; retrying", "accepting client connections failed %d times in the last %v")
	s.wg.Add(2)
	go s.accept()
	go s.sweep()
	return s, nil
}

// ClientAddr returns the address the node serves clients on, if it does.
func (n *Node) ClientAddr() stdnet.Addr {
	if n.cs == nil {
		return nil
	}
	return n.cs.ln.Addr()
}

// accept takes connections until the server closes. An error (out of file
// descriptors, above all) does not stop it: it waits, 5 ms doubling up to
// 1 s, and carries on, as net/http does; a replica that stopped accepting
// would be lost to its clients for good.
func (s *clientServer) accept() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := wire.Accept(s.ln, s.ctx.Done(), &delay, func(err error) { s.acceptLg.Add("", nil, err) })
		if err != nil {
			if s.ctx.Err() == nil {
				s.n.log.Error("the client listener was closed; no longer accepting clients", "error", err)
			}
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		pc, evicted := s.pending.Admit(c, len(s.conns), s.n.cfg.ClientMaxConns)
		s.mu.Unlock()
		if pc == nil {
			// Counted before it is closed, so that whoever sees it
			// closed sees it counted.
			s.refuse(c.RemoteAddr(), clientRefusedLimit, errors.New("ClientMaxConns connections are established"))
			c.Close()
			continue
		}
		if evicted != nil {
			evicted.Conn.Close()
			s.refuse(evicted.Conn.RemoteAddr(), clientRefusedLimit, errors.New("ClientMaxConns connections are open: closed one still in its handshake, at random"))
		}
		s.wg.Add(1)
		go s.serve(pc)
	}
}

// refuse counts and logs a refused (or closed) connection.
func (s *clientServer) refuse(remote stdnet.Addr, reason string, err error) {
	s.refused.Add(1)
	s.refusals.Add(reason, remote, err)
}

// sweep closes the connections idle for ClientIdleTimeout.
func (s *clientServer) sweep() {
	defer s.wg.Done()
	idle := s.n.cfg.ClientIdleTimeout
	tick := time.NewTicker(min(max(idle/4, time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		var stale []*clientConn
		s.mu.Lock()
		for cc := range s.conns {
			if cc.idleSince(now) >= idle {
				stale = append(stale, cc)
			}
		}
		s.mu.Unlock()
		for _, cc := range stale {
			s.idleClosed.Add(1)
			s.refusals.Add(clientClosedIdle, cc.conn.RemoteAddr(), fmt.Errorf("idle for %v", idle))
			cc.shutdown()
		}
	}
}

func (s *clientServer) close() error {
	s.mu.Lock()
	s.done = true
	s.pending.CloseAll()
	for cc := range s.conns {
		cc.shutdown()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	s.refusals.Close()
	s.acceptLg.Close()
	return err
}

// serve runs the handshake of a connection, then serves it until it fails,
// goes idle, or the server closes.
func (s *clientServer) serve(pc *wire.PendingConn) {
	defer s.wg.Done()
	conn, raw, reason, err := s.handshake(pc.Conn)
	s.mu.Lock()
	evicted := s.pending.Done(pc)
	if err != nil {
		closing := s.done
		s.mu.Unlock()
		switch {
		case evicted:
		case closing:
			// The server closed the connection as it stopped.
		case errors.Is(err, io.EOF):
			// The dialer hung up before saying anything (io.EOF, not
			// io.ErrUnexpectedEOF: no byte of a Hello, or of a TLS
			// handshake, came): a port probe or a client that gave up,
			// nothing to warn an operator about.
			s.refused.Add(1)
			s.n.log.Named("clients").Debug("a client closed its connection before its handshake", "remote", pc.Conn.RemoteAddr().String())
		default:
			s.refuse(pc.Conn.RemoteAddr(), reason, err)
		}
		return
	}
	if evicted || s.done {
		s.mu.Unlock()
		conn.Close()
		return
	}
	cc := &clientConn{s: s, conn: conn, raw: raw, kick: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{})}
	cc.mayChange = s.tls == nil // plaintext: every host is trusted
	if tc, ok := raw.(*tls.Conn); ok {
		cc.mayChange = len(tc.ConnectionState().VerifiedChains) > 0
	}
	cc.lastActive.Store(time.Now().UnixNano())
	s.conns[cc] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go cc.writeLoop()
	cc.readLoop()
	cc.shutdown()
	s.mu.Lock()
	delete(s.conns, cc)
	s.mu.Unlock()
}

// handshake runs TLS, if configured, then the Hello exchange, within
// ClientHandshakeTimeout. On failure c is closed, and a reason is
// returned. A refusal tells the dialer nothing about this cluster: with
// TLS, a dialer without a valid client certificate gets only a TLS alert;
// past TLS (or without it), a Hello of another cluster is told "wrong
// cluster", not which cluster this is.
func (s *clientServer) handshake(c stdnet.Conn) (*wire.Conn, stdnet.Conn, string, error) {
	deadline := time.Now().Add(s.n.cfg.ClientHandshakeTimeout)
	if s.tls != nil {
		c.SetDeadline(deadline)
		tc := tls.Server(c, s.tls)
		ctx, cancel := context.WithDeadline(s.ctx, deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, nil, clientRefusedTLS, err
		}
		c = tc
	}
	conn, err := wire.ServerHandshake(c, s.n.cfg.ID, s.checkHello, s.maxReq, time.Until(deadline))
	if err != nil {
		return nil, nil, clientRefusedHandshake, err
	}
	return conn, c, "", nil
}

func (s *clientServer) checkHello(h wire.Hello) error {
	switch {
	case h.Kind != wire.KindClient:
		return errors.New("not a client connection")
	case h.ClusterID != s.n.cfg.ClusterID:
		return errors.New("wrong cluster")
	}
	return nil
}

// clientConn is one client connection: a reader goroutine that takes
// requests, and a writer goroutine that sends what the node answers. The
// reader waits, without reading, while the connection has
// ClientMaxInflight requests being served or ClientMaxQueuedBytes of
// responses waiting: a client that does not read its responses stops
// being read, and the TCP window pushes back on it.
type clientConn struct {
	s    *clientServer
	conn *wire.Conn
	raw  stdnet.Conn // under conn: the TLS or TCP connection
	// mayChange says the client may change the configuration: it
	// presented a certificate that TLS verified (or the port is
	// plaintext). A port that serves clients without one
	// (ClientTLSServerOnly) serves anyone their commands, not changes.
	mayChange bool

	mu       sync.Mutex
	out      []clientproto.Response // queued responses, oldest first
	queued   int                    // size() of the responses queued or being written
	inflight int                    // requests being served

	// lastActive is when the connection last completed a request or a
	// write (Unix nanoseconds).
	lastActive atomic.Int64

	kick chan struct{} // wakes the writer: a response was queued
	room chan struct{} // wakes the reader: a request ended or a write drained
	done chan struct{} // closed by shutdown
	once sync.Once
}

// shutdown closes the connection and stops both goroutines.
func (cc *clientConn) shutdown() {
	cc.once.Do(func() {
		close(cc.done)
		cc.conn.Close()
	})
}

func (cc *clientConn) touch() { cc.lastActive.Store(time.Now().UnixNano()) }

// idleSince returns how long the connection has been idle at now: 0 while
// it has requests in flight or responses to send.
func (cc *clientConn) idleSince(now time.Time) time.Duration {
	cc.mu.Lock()
	busy := cc.inflight > 0 || cc.queued > 0
	cc.mu.Unlock()
	if busy {
		return 0
	}
	return now.Sub(time.Unix(0, cc.lastActive.Load()))
}

// waitRoom waits until the connection may take another request; false if
// it closed meanwhile.
func (cc *clientConn) waitRoom() bool {
	cfg := &cc.s.n.cfg
	for {
		cc.mu.Lock()
		ok := cc.inflight < cfg.ClientMaxInflight && cc.queued < cfg.ClientMaxQueuedBytes
		cc.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-cc.room:
		case <-cc.done:
			return false
		}
	}
}

func (cc *clientConn) readLoop() {
	s := cc.s
	for {
		if !cc.waitRoom() {
			return
		}
		frame, err := cc.conn.ReadFrame()
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				s.refusals.Add(clientClosedTooLarge, cc.conn.RemoteAddr(), err)
				cc.refuseTooLarge()
			}
			return
		}
		var req clientproto.Request
		if err := decodeMsgpack(frame, &req); err != nil {
			s.refusals.Add(clientClosedMalformed, cc.conn.RemoteAddr(), fmt.Errorf("malformed request: %w", err))
			return
		}
		cc.touch()
		cc.handle(req)
	}
}

// refuseTooLarge answers a request frame above the limit, which was not
// read, with ErrTooLarge under ID 0, then closes the connection gently:
// it stops writing and reads (and drops) what the client is still sending
// for a moment, so that its response is not lost in a reset.
func (cc *clientConn) refuseTooLarge() {
	s := cc.s
	resp := clientproto.Response{Status: clientproto.StatusError, Code: clientproto.CodeTooLarge,
		Message: fmt.Sprintf("%v: a request frame is at most %d bytes (MaxCommandBytes %d, plus %d for the request)",
			ErrTooLarge, s.maxReq, s.n.cfg.MaxCommandBytes, clientproto.EnvelopeBytes)}
	if err := cc.conn.WriteFrames(s.n.cfg.ClientWriteTimeout, encodeMsgpack(&resp)); err != nil {
		return
	}
	if cw, ok := cc.raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	cc.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, io.LimitReader(cc.raw, 64<<20))
}

func (cc *clientConn) handle(req clientproto.Request) {
	n := cc.s.n
	cc.mu.Lock()
	cc.inflight++
	cc.mu.Unlock()
	if req.Op == clientproto.OpStatus {
		st := n.Status()
		cc.queue(clientproto.Response{ID: req.ID, Result: encodeMsgpack(&st)})
		return
	}
	if req.Op == clientproto.OpChange && !cc.mayChange {
		cc.reply(req.ID, nil, errors.New("a configuration change needs a client certificate of the cluster: this port serves clients without one (ClientTLSServerOnly), but takes changes only from those that present one"))
		return
	}
	if req.Redirect && (req.Op == clientproto.OpSubmit || req.Op == clientproto.OpQuery || req.Op == clientproto.OpChange || req.Op == clientproto.OpConfig) {
		if st := n.Status(); st.Role != "leader" && st.HasLead {
			if addr := n.clientAddrOf(st.Leader); addr != "" {
				cc.queue(clientproto.Response{ID: req.ID, Status: clientproto.StatusRedirect, Leader: addr})
				return
			}
		}
	}
	var err error
	switch req.Op {
	case clientproto.OpSubmit:
		// (submit refuses a client ID or number 0 first, with ErrBadSequence.)
		reply := func(r result) { cc.reply(req.ID, r.Response, r.Err) }
		err = n.submit(req.ClientID, req.Seq, req.Oldest, req.Payload, &reply)
	case clientproto.OpQuery:
		qr, ok := n.sm.(Querier)
		if !ok {
			err = errors.New("this state machine answers no queries")
			break
		}
		var resp []byte
		_, err = n.read(func() { resp = qr.Query(req.Payload) }, func(err error) { cc.reply(req.ID, resp, err) })
	case clientproto.OpChange:
		var wc clientproto.Change
		if err = decodeMsgpack(req.Payload, &wc); err != nil {
			err = fmt.Errorf("malformed change: %w", err)
			break
		}
		var r changeRequest
		if r, err = changeRequestOf(wc); err != nil {
			break
		}
		err = n.changeAsync(r, wc.Wait(), func(err error) { cc.reply(req.ID, nil, err) })
	case clientproto.OpConfig:
		v := n.view.Load()
		if v == nil || v.joining {
			err = fmt.Errorf("%w: this replica is joining and knows no configuration yet", n.notLeaderHint())
			break
		}
		cc.reply(req.ID, paxos.EncodeConfigValue(v.conf), nil)
		return
	default:
		err = fmt.Errorf("unknown operation %d", req.Op)
	}
	if err != nil {
		cc.reply(req.ID, nil, err)
	}
}

// reply queues the response to a request. It is called from the node's
// loop, so it never blocks.
func (cc *clientConn) reply(id uint64, result []byte, err error) {
	resp := clientproto.Response{ID: id, Result: result}
	if err != nil {
		resp.Status, resp.Code, resp.Message = clientproto.StatusError, clientproto.ErrorCode(err), err.Error()
		var nl *NotLeaderError
		if errors.As(err, &nl) {
			resp.Leader = nl.LeaderAddr
		}
	}
	cc.queue(resp)
}

// queue queues resp, which ends a request in flight.
func (cc *clientConn) queue(resp clientproto.Response) {
	cc.mu.Lock()
	cc.inflight--
	select {
	case <-cc.done:
		// Nobody will write it: drop it.
	default:
		cc.out = append(cc.out, resp)
		cc.queued += resp.Size()
	}
	cc.mu.Unlock()
	signal(cc.kick)
	signal(cc.room)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// writeChunk is about the most one write carries, unless a single
// response is longer.
const clientWriteChunk = 256 << 10

// writeLoop sends queued responses, many per write, and releases their
// bytes from the queue's count as each write completes.
func (cc *clientConn) writeLoop() {
	defer cc.s.wg.Done()
	timeout := cc.s.n.cfg.ClientWriteTimeout
	var frames [][]byte
	for {
		select {
		case <-cc.done:
			return
		case <-cc.kick:
		}
		cc.mu.Lock()
		out := cc.out
		cc.out = nil
		cc.mu.Unlock()
		frames, bytes, counted := frames[:0], 0, 0
		for i := range out {
			f := encodeMsgpack(&out[i])
			counted += out[i].Size()
			out[i] = clientproto.Response{} // the frame holds its bytes now
			frames = append(frames, f)
			bytes += len(f)
			if bytes < clientWriteChunk && i < len(out)-1 {
				continue
			}
			err := cc.conn.WriteFrames(timeout, frames...)
			clear(frames)
			frames, bytes = frames[:0], 0
			if err != nil {
				cc.shutdown()
				return
			}
			cc.mu.Lock()
			cc.queued -= counted
			cc.mu.Unlock()
			counted = 0
			cc.touch()
			signal(cc.room)
		}
	}
}
