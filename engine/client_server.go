package engine

import (
	"errors"
	"fmt"
	stdnet "net"
	"sync"

	paxosnet "github.com/paxos-go/paxos/net"
)

// The client protocol: after the handshake (kind client), a client sends
// request frames and gets response frames, matched by ID, in any order;
// requests may be pipelined.
//
//	request  msgpack [id, op, clientID, seq, payload, redirect]
//	response msgpack [id, status, result, leader, code, message]
//
// op 1 submits a command (exactly once per clientID and seq); op 2 asks a
// read-only query; op 3 asks for the replica's Status (msgpack), for tools.
// With redirect set, a follower that knows the leader's client address
// answers status 1 with it instead of forwarding (ops 1 and 2).

const (
	opSubmit uint8 = 1
	opQuery  uint8 = 2
	opStatus uint8 = 3

	statusOK       uint8 = 0
	statusRedirect uint8 = 1
	statusError    uint8 = 2
)

// Error codes of the client protocol.
const (
	codeNotLeader uint8 = iota + 1
	codeBusy
	codeTimeout
	codeClosed
	codeStale
	codeExpired
	codeBadRequest
)

var codeErrors = map[uint8]error{
	codeNotLeader: ErrNotLeader, codeBusy: ErrBusy, codeTimeout: ErrTimeout, codeClosed: ErrClosed,
	codeStale: ErrStale, codeExpired: ErrSessionExpired,
}

func errorCode(err error) uint8 {
	for code, e := range codeErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return codeBadRequest
}

type clientRequest struct {
	ID       uint64
	Op       uint8
	ClientID uint64
	Seq      uint64
	Payload  view
	Redirect bool
}

type clientResponse struct {
	ID      uint64
	Status  uint8
	Result  view
	Leader  string
	Code    uint8
	Message string
}

// maxInflightPerConn bounds the requests of one connection waiting for an
// answer; beyond it the connection gets ErrBusy.
const maxInflightPerConn = 4096

// clientServer serves clients on Config.ClientAddr.
type clientServer struct {
	n     *Node
	ln    stdnet.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*clientConn]struct{}
	done  bool
}

func startClientServer(n *Node) (*clientServer, error) {
	ln, err := stdnet.Listen("tcp", n.cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("engine: listening for clients on %s: %w", n.cfg.ClientAddr, err)
	}
	s := &clientServer{n: n, ln: ln, conns: map[*clientConn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the address the node serves clients on, if it does.
func (n *Node) ClientAddr() stdnet.Addr {
	if n.cs == nil {
		return nil
	}
	return n.cs.ln.Addr()
}

func (s *clientServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *clientServer) close() error {
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.conn.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// clientConn is one client connection: a reader goroutine that takes
// requests, and a writer goroutine that sends what the node answers.
type clientConn struct {
	s        *clientServer
	conn     *paxosnet.Conn
	mu       sync.Mutex
	out      []clientResponse
	inflight int
	kick     chan struct{}
	closed   chan struct{}
}

func (s *clientServer) serve(c stdnet.Conn) {
	defer s.wg.Done()
	n := s.n
	conn, err := paxosnet.ServerHandshake(c, n.cfg.ID, func(h paxosnet.Hello) error {
		switch {
		case h.Kind != paxosnet.KindClient:
			return fmt.Errorf("this is a client port; connection kind %d", h.Kind)
		case h.ClusterID != n.cfg.ClusterID:
			return fmt.Errorf("wrong cluster: this is cluster %q, the client wants %q", n.cfg.ClusterID, h.ClusterID)
		}
		return nil
	}, n.cfg.MaxFrameBytes, 5e9)
	if err != nil {
		n.log.Warn("refused a client", "error", err)
		return
	}
	cc := &clientConn{s: s, conn: conn, kick: make(chan struct{}, 1), closed: make(chan struct{})}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[cc] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go cc.writeLoop()
	cc.readLoop()
	close(cc.closed)
	conn.Close()
	s.mu.Lock()
	delete(s.conns, cc)
	s.mu.Unlock()
}

func (cc *clientConn) readLoop() {
	n := cc.s.n
	for {
		frame, err := cc.conn.ReadFrame()
		if err != nil {
			if errors.Is(err, paxosnet.ErrFrameTooLarge) {
				n.log.Warn("closing a client connection", "remote", cc.conn.RemoteAddr(), "error", err)
			}
			return
		}
		var req clientRequest
		if err := decodeMsgpack(frame, &req); err != nil {
			n.log.Warn("closing a client connection: malformed request", "remote", cc.conn.RemoteAddr(), "error", err)
			return
		}
		cc.handle(req)
	}
}

func (cc *clientConn) handle(req clientRequest) {
	n := cc.s.n
	cc.mu.Lock()
	if cc.inflight >= maxInflightPerConn {
		cc.mu.Unlock()
		cc.reply(req.ID, nil, ErrBusy, false)
		return
	}
	cc.inflight++
	cc.mu.Unlock()
	if req.Op == opStatus {
		st := n.Status()
		cc.mu.Lock()
		cc.out = append(cc.out, clientResponse{ID: req.ID, Result: encodeMsgpack(&st)})
		cc.inflight--
		cc.mu.Unlock()
		cc.wake()
		return
	}
	if req.Redirect {
		if st := n.Status(); st.Role != "leader" && st.HasLead {
			if addr := n.cfg.ClientAddrs[st.Leader]; addr != "" {
				cc.mu.Lock()
				cc.out = append(cc.out, clientResponse{ID: req.ID, Status: statusRedirect, Leader: addr})
				cc.inflight--
				cc.mu.Unlock()
				cc.wake()
				return
			}
		}
	}
	var err error
	switch req.Op {
	case opSubmit:
		if req.ClientID == 0 || req.Seq == 0 {
			err = errors.New("client id and sequence number must not be 0")
			break
		}
		err = n.submit(req.ClientID, req.Seq, req.Payload, func(r Result) { cc.reply(req.ID, r.Response, r.Err, true) })
	case opQuery:
		qr, ok := n.sm.(Querier)
		if !ok {
			err = errors.New("this state machine answers no queries")
			break
		}
		var resp []byte
		_, err = n.read(func() { resp = qr.Query(req.Payload) }, func(err error) { cc.reply(req.ID, resp, err, true) })
	default:
		err = fmt.Errorf("unknown operation %d", req.Op)
	}
	if err != nil {
		cc.reply(req.ID, nil, err, true)
	}
}

// reply queues a response; counted says whether it ends an inflight
// request. It is called from the node's loop, so it never blocks.
func (cc *clientConn) reply(id uint64, result []byte, err error, counted bool) {
	resp := clientResponse{ID: id, Result: result}
	if err != nil {
		resp.Status, resp.Code, resp.Message = statusError, errorCode(err), err.Error()
		var nl *NotLeaderError
		if errors.As(err, &nl) {
			resp.Leader = nl.LeaderAddr
		}
	}
	cc.mu.Lock()
	cc.out = append(cc.out, resp)
	if counted {
		cc.inflight--
	}
	cc.mu.Unlock()
	cc.wake()
}

func (cc *clientConn) wake() {
	select {
	case cc.kick <- struct{}{}:
	default:
	}
}

// writeLoop sends queued responses, all that are queued in one write.
func (cc *clientConn) writeLoop() {
	defer cc.s.wg.Done()
	var frames [][]byte
	for {
		select {
		case <-cc.closed:
			return
		case <-cc.kick:
		}
		cc.mu.Lock()
		out := cc.out
		cc.out = nil
		cc.mu.Unlock()
		frames = frames[:0]
		for i := range out {
			frames = append(frames, encodeMsgpack(&out[i]))
		}
		if len(frames) == 0 {
			continue
		}
		if err := cc.conn.WriteFrames(5e9, frames...); err != nil {
			cc.conn.Close()
			return
		}
	}
}
