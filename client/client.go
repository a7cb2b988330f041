// Package client is the Go client of a paxos-go cluster: it talks to the
// replicas' client ports (engine.Config.ClientAddr), finds the leader,
// follows redirects, and retries a command with the same sequence number
// until it is answered, so that it is applied exactly once.
//
// It is a package of its own so that a program that only talks to a
// cluster does not link the replica, its write-ahead log or its snapshot
// store. Its errors are the engine's (client.ErrNotLeader is
// engine.ErrNotLeader): errors.Is and errors.As match them from either
// package.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	stdnet "net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/msgp"
	"github.com/paxos-go/paxos/internal/wire"
	"github.com/paxos-go/paxos/net/certs"
)

// Options configure a Client.
type Options struct {
	// ClusterID must match the servers'. Default "paxos".
	ClusterID string
	// ClientID names this client's session; commands are numbered from 1
	// within it. Default: a random ID. Reuse an ID only to resume a session
	// whose last sequence number you also restore (SetSeq).
	ClientID uint64
	// AttemptTimeout bounds one try at one server before the client tries
	// again elsewhere. Default 2 s.
	AttemptTimeout time.Duration
	// MaxFrameBytes bounds a response; a command or query longer than it
	// is refused at once with ErrTooLarge, without being sent. Default
	// 16 MiB. (A server refuses, with ErrTooLarge, a command above its own
	// MaxCommandBytes, 1 MiB by default.)
	MaxFrameBytes int

	// TLS secures the connections: the servers' client ports run TLS
	// unless they are Insecure, and by default they require a client
	// certificate of the cluster. certs.ClientConfig builds the config
	// from a certificate directory's files (TLSDir does it for you). If the
	// config sets neither ServerName nor InsecureSkipVerify, the host of
	// each address is the name verified.
	//
	// TLSDir, instead of TLS, is a directory made by `paxos certs`: the
	// client presents client.pem (client-key.pem) and trusts ca.pem, for
	// ClusterID. It is read at the first connection; an error reading it
	// is returned by every call.
	//
	// With neither, the client speaks plaintext, which only a server with
	// engine.Config.Insecure accepts.
	TLS    *tls.Config
	TLSDir string
}

// Client talks to a cluster's client ports. It finds the leader, follows
// redirects, and retries a command with the same (ClientID, seq) until the
// context ends, so that the command is applied exactly once. A Client has
// one command in flight at a time with Submit (calls are serialised), and
// up to Window with SubmitAsync; use several Clients for more. It numbers its commands by the engine's
// sequence rule (see package engine): 1, 2, 3, ..., never skipping one.
//
// Errors that no retry can fix (IsPermanent) end a call at once: the
// client's own configuration, a server that refuses the connection (the
// wrong cluster ID) or the certificates, and the servers' definite
// refusals of the command (too large, malformed, breaking the sequence
// rule, stale). The others (no leader, a busy leader, a server down) are
// retried until the context ends.
type Client struct {
	addrs []string
	opts  Options

	mu  sync.Mutex
	seq uint64
	// pending is the last command when its outcome is unknown (the
	// context ended, or the servers became unreachable, after it may have
	// been proposed). The next command sends it again first, with its
	// number, so that no number is skipped: a command numbered past it
	// would be refused (ErrBadSequence) if it was never applied.
	pending []byte
	hasPend bool

	next int    // index of the server to try next
	cur  string // address of the current connection
	conn *wire.Conn
	id   uint64 // request ID

	tlsOnce sync.Once
	tls     *tls.Config // TLS, or loaded from TLSDir; nil for plaintext
	tlsErr  error

	// pipe carries SubmitAsync's commands (see pipeline.go).
	pipeOnce sync.Once
	pipe     atomic.Pointer[pipeline]
}

// New returns a client of the servers at addrs (their client ports,
// engine.Config.ClientAddr), which it tries in turn. It connects lazily:
// with no address, every call fails at once with ErrConfig.
func New(addrs []string, opts Options) *Client {
	if opts.ClusterID == "" {
		opts.ClusterID = "paxos"
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Second
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = wire.DefaultMaxFrameBytes
	}
	if opts.ClientID == 0 {
		var b [8]byte
		rand.Read(b[:])
		opts.ClientID = binary.LittleEndian.Uint64(b[:]) | 1
	}
	return &Client{addrs: append([]string(nil), addrs...), opts: opts}
}

// ID returns the client's ID.
func (c *Client) ID() uint64 { return c.opts.ClientID }

// Seq returns the sequence number of the client's last command.
func (c *Client) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// SetSeq sets the sequence number of the client's last command, to resume
// a session; the next command is seq+1. It forgets a command whose outcome
// was unknown.
func (c *Client) SetSeq(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = seq
	c.pending, c.hasPend = nil, false
}

// Submit sends a command and returns the state machine's response, once
// it is applied. It retries (same sequence number, so at most once) until
// ctx ends; then it returns ErrTimeout, and the command may or may not
// have been applied. The next Submit then sends that command again first
// (same number, same payload: applied at most once, its response
// dropped), and only then its own, so that no number is skipped; if its
// context ends before the old command is settled, it returns ErrTimeout
// without sending its own.
//
// It waits first for the commands sent with SubmitAsync to be answered.
func (c *Client) Submit(ctx context.Context, payload []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkSize(payload); err != nil {
		return nil, err
	}
	if err := c.waitPipeline(ctx); err != nil {
		return nil, err
	}
	if err := c.settlePending(ctx); err != nil {
		return nil, err
	}
	c.seq++
	resp, err := c.do(ctx, clientproto.Request{Op: clientproto.OpSubmit, ClientID: c.opts.ClientID, Seq: c.seq, Payload: payload})
	var nr notRun
	var ou outcomeUnknown
	switch {
	case errors.As(err, &nr):
		// No server can have proposed the command: its number is free,
		// and skipping it would break the sequence rule.
		c.seq--
		err = nr.err
	case errors.As(err, &ou):
		err = ou.err
		fallthrough
	case errors.Is(err, ErrTimeout):
		// (A copy: the caller may reuse payload once Submit returns.)
		c.pending, c.hasPend = bytes.Clone(payload), true
	}
	return resp, err
}

// settlePending sends the command whose outcome is unknown again, until a
// server answers it (its response is dropped: the caller was told
// ErrTimeout). c.mu is held.
func (c *Client) settlePending(ctx context.Context) error {
	if !c.hasPend {
		return nil
	}
	_, err := c.do(ctx, clientproto.Request{Op: clientproto.OpSubmit, ClientID: c.opts.ClientID, Seq: c.seq, Payload: c.pending})
	var nr notRun
	var ou outcomeUnknown
	switch {
	case errors.As(err, &nr):
		return nr.err
	case errors.As(err, &ou):
		return fmt.Errorf("resending command %d, whose outcome was unknown, before this one: %w", c.seq, ou.err)
	case errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w (resending command %d, whose outcome was unknown, before this one)", err, c.seq)
	}
	// Answered (applied once, or refused for good): the number is used.
	c.pending, c.hasPend = nil, false
	return nil
}

// notRun wraps the error of a request that no server can have run: the
// client's configuration refused it, or the only server that saw it
// refused it as too large.
type notRun struct{ err error }

func (e notRun) Error() string { return e.err.Error() }
func (e notRun) Unwrap() error { return e.err }

// outcomeUnknown wraps a permanent error met after the request may have
// reached a server: whether it ran is unknown.
type outcomeUnknown struct{ err error }

func (e outcomeUnknown) Error() string { return e.err.Error() }
func (e outcomeUnknown) Unwrap() error { return e.err }

// checkSize refuses a payload that cannot fit in a frame.
func (c *Client) checkSize(payload []byte) error {
	if len(payload)+clientproto.EnvelopeBytes > c.opts.MaxFrameBytes {
		return fmt.Errorf("%w: %d bytes, above the client's MaxFrameBytes (%d) less %d bytes for the request",
			ErrTooLarge, len(payload), c.opts.MaxFrameBytes, clientproto.EnvelopeBytes)
	}
	return nil
}

// Query asks a read-only query, answered linearizably.
func (c *Client) Query(ctx context.Context, q []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkSize(q); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, clientproto.Request{Op: clientproto.OpQuery, Payload: q})
	return resp, unwrapDo(err)
}

// Status asks the server the client is connected to (or the next one it
// tries) for its state, without redirects or retries.
func (c *Client) Status(ctx context.Context) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx, ""); err != nil {
		return Status{}, err
	}
	c.id++
	resp, err := c.roundTrip(ctx, clientproto.Request{ID: c.id, Op: clientproto.OpStatus}, 0)
	if err != nil {
		c.disconnect()
		return Status{}, err
	}
	var st Status
	if err := msgp.Decode(resp.Result, &st); err != nil {
		return Status{}, fmt.Errorf("client: malformed status: %w", err)
	}
	return st, nil
}

// AddLearner asks the cluster's leader to add replica id as a learner
// (see engine.Node.AddLearner): the client finds the leader as for a
// command, and retries until the change is made or ctx ends. Asking again for a change
// already made returns nil, so a retry after a timeout is safe. Errors:
// ErrBadChange and ErrChangeInProgress (not retried), ErrTimeout.
//
// A follower does not forward a change: it redirects the client to the
// leader's client address, which the configuration gives when the
// replicas have one (engine.Config.ClientAddrs at bootstrap, AddLearner's
// clientAddr after). Without it, the client tries its other addresses
// in turn: give it every replica's.
func (c *Client) AddLearner(ctx context.Context, id uint64, peerAddr, clientAddr string) error {
	return c.change(ctx, clientproto.Change{Kind: clientproto.ChangeAddLearner, ID: id, PeerAddr: peerAddr, ClientAddr: clientAddr})
}

// Promote asks the leader to make learner id a voter once it has caught
// up (see engine.Node.Promote). When ctx ends first, the error wraps
// ErrTimeout and, if the learner was still behind, ErrNotCaughtUp.
func (c *Client) Promote(ctx context.Context, id uint64) error {
	return c.change(ctx, clientproto.Change{Kind: clientproto.ChangePromote, ID: id})
}

// RemoveReplica asks the leader to remove replica id for good (see
// engine.Node.RemoveReplica).
func (c *Client) RemoveReplica(ctx context.Context, id uint64) error {
	return c.change(ctx, clientproto.Change{Kind: clientproto.ChangeRemove, ID: id})
}

// TransferLeadership asks the leader to hand its leadership to voter id
// (see engine.Node.TransferLeadership); it returns once the old leader
// knows id leads.
func (c *Client) TransferLeadership(ctx context.Context, id uint64) error {
	return c.change(ctx, clientproto.Change{Kind: clientproto.ChangeTransfer, ID: id})
}

// Configuration returns the newest configuration the leader's committed
// log chose (or, with no leader known, that of the first replica that
// answers).
func (c *Client) Configuration(ctx context.Context) (paxos.Configuration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.do(ctx, clientproto.Request{Op: clientproto.OpConfig})
	if err = unwrapDo(err); err != nil {
		return paxos.Configuration{}, err
	}
	conf, err := paxos.DecodeConfigValue(resp)
	if err != nil {
		return paxos.Configuration{}, fmt.Errorf("client: malformed configuration: %w", err)
	}
	return conf, nil
}

// change asks for a configuration change or a transfer.
func (c *Client) change(ctx context.Context, wc clientproto.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.do(ctx, clientproto.Request{Op: clientproto.OpChange, Change: &wc})
	return unwrapDo(err)
}

// unwrapDo is the error of do for a request that is not a command: whether
// it ran does not matter.
func unwrapDo(err error) error {
	var nr notRun
	var ou outcomeUnknown
	switch {
	case errors.As(err, &nr):
		return nr.err
	case errors.As(err, &ou):
		return ou.err
	}
	return err
}

// changeWait is how long the server waits for a change before it answers
// ErrTimeout (the client asks again): bounded, so that a client whose
// server died moves on.
const changeWait = 10 * time.Second

// Close closes the client's connections. The commands sent with
// SubmitAsync and still outstanding end with ErrClosed (they may or may
// not be applied).
func (c *Client) Close() error {
	c.closePipeline()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disconnect()
	return nil
}

// do sends req until it gets a final answer or ctx ends. c.mu is held.
// An error that no server can have run req comes as a notRun.
func (c *Client) do(ctx context.Context, req clientproto.Request) ([]byte, error) {
	var last error
	redirect := ""
	sent := 0 // the attempts that may have reached a server
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			if sent == 0 {
				// No attempt reached a server: nothing can have run.
				return nil, notRun{fmt.Errorf("%w: %w (last error: %v)", ErrTimeout, err, last)}
			}
			if errors.Is(last, ErrNotCaughtUp) {
				return nil, fmt.Errorf("%w: %w: %w", ErrTimeout, err, last)
			}
			return nil, fmt.Errorf("%w: %w (last error: %v)", ErrTimeout, err, last)
		}
		if attempt > 0 && redirect == "" {
			// A short, jittered pause before trying again, so that a
			// cluster electing a leader is not flooded.
			pause := time.Duration(10+mrand.IntN(40)) * time.Millisecond * time.Duration(min(attempt, 10))
			select {
			case <-ctx.Done():
				continue
			case <-time.After(pause):
			}
		}
		if err := c.connect(ctx, redirect); err != nil {
			if IsPermanent(err) && sent == 0 {
				return nil, notRun{err}
			}
			if IsPermanent(err) {
				return nil, outcomeUnknown{err}
			}
			if last == nil || ctx.Err() == nil {
				last = err // (see below)
			}
			redirect = ""
			continue
		}
		redirect = ""
		c.id++
		req.ID = c.id
		req.Redirect = true
		var wait time.Duration
		if req.Change != nil {
			// The server waits for the change up to most of what is left
			// of ctx (at most changeWait), so that its answer, and why
			// the change is not made yet, arrives before ctx ends; the
			// attempt waits for the server.
			wait = changeWait
			if d, ok := ctx.Deadline(); ok {
				left := time.Until(d)
				wait = max(min(wait, left-left/10), time.Millisecond)
			}
			req.Change.WaitMillis = uint64(wait / time.Millisecond)
			req.Payload = msgp.Encode(req.Change)
		}
		sent++
		resp, err := c.roundTrip(ctx, req, wait)
		if err != nil {
			if last == nil || ctx.Err() == nil {
				// (An attempt cut short by the end of ctx says less than
				// what a server answered before.)
				last = err
			}
			c.disconnect()
			continue
		}
		switch resp.Status {
		case clientproto.StatusOK:
			return resp.Result, nil
		case clientproto.StatusRedirect:
			redirect = resp.Leader
			continue
		}
		err = clientproto.CodeErrors[resp.Code]
		if err == nil {
			// CodeBadRequest, or a code of a later version.
			return nil, fmt.Errorf("%w: %s", ErrBadRequest, resp.Message)
		}
		switch resp.Code {
		case clientproto.CodeNotLeader:
			last = &NotLeaderError{LeaderAddr: resp.Leader}
			redirect = resp.Leader
			if redirect == "" {
				c.disconnect() // try another server
			}
		case clientproto.CodeBusy, clientproto.CodeTimeout:
			last = err
		case clientproto.CodeNotCaughtUp:
			last = serverError(err, resp.Message)
		default: // closed, removed, data lost, stale, expired, too large, not kept, bad change, change in progress
			if resp.Code == clientproto.CodeClosed || resp.Code == clientproto.CodeRemoved || resp.Code == clientproto.CodeDataLost {
				// That server stopped: try another.
				last = serverError(err, resp.Message)
				c.disconnect()
				continue
			}
			if resp.Code == clientproto.CodeTooLarge && sent == 1 {
				// Refused before it was proposed, by the only server
				// that saw it.
				return nil, notRun{serverError(err, resp.Message)}
			}
			return nil, serverError(err, resp.Message)
		}
	}
}

// connect makes sure the client is connected: to addr if given, else to
// the current server, else to the next one in turn.
func (c *Client) connect(ctx context.Context, addr string) error {
	if addr != "" && addr != c.cur {
		c.disconnect()
	}
	if c.conn != nil {
		return nil
	}
	if addr == "" {
		if len(c.addrs) == 0 {
			return fmt.Errorf("%w: no server addresses (client.New was given none)", ErrConfig)
		}
		addr = c.addrs[c.next%len(c.addrs)]
		c.next++
	}
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return err
	}
	c.conn, c.cur = conn, addr
	return nil
}

// dial connects to the server at addr: TCP, TLS if configured, then the
// handshake.
func (c *Client) dial(ctx context.Context, addr string) (*wire.Conn, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	var d stdnet.Dialer
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		if tlsCfg.ServerName == "" && !tlsCfg.InsecureSkipVerify {
			tlsCfg = tlsCfg.Clone()
			tlsCfg.ServerName, _, _ = stdnet.SplitHostPort(addr)
		}
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			if certificateError(err) {
				return nil, fmt.Errorf("%w: TLS handshake with %s: %w", ErrCertificate, addr, err)
			}
			return nil, fmt.Errorf("client: TLS handshake with %s: %w", addr, err)
		}
		raw = tc
	}
	conn, err := wire.ClientHandshake(raw, wire.Hello{ClusterID: c.opts.ClusterID, Kind: wire.KindClient}, c.opts.MaxFrameBytes, c.opts.AttemptTimeout)
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrRefused):
			// The server read the Hello and refused it: the wrong
			// cluster ID, or not a client port.
			return nil, fmt.Errorf("%w: %s: %w", ErrRefused, addr, err)
		case certificateError(err):
			// With TLS 1.3 the server checks the client's certificate
			// after the client's handshake returned: its refusal comes
			// as an alert on the first read.
			return nil, fmt.Errorf("%w: %s refused the client's certificate: %w", ErrCertificate, addr, err)
		}
		return nil, err
	}
	return conn, nil
}

// serverError is err, as the server explained it in msg (which starts
// with err's text, as a rule).
func serverError(err error, msg string) error {
	if rest, ok := strings.CutPrefix(msg, err.Error()); ok {
		return fmt.Errorf("%w%s", err, rest)
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// tlsConfig returns the TLS config of the client's connections, nil for
// plaintext, loading it from TLSDir the first time.
func (c *Client) tlsConfig() (*tls.Config, error) {
	c.tlsOnce.Do(func() {
		switch {
		case c.opts.TLS != nil && c.opts.TLSDir != "":
			c.tlsErr = fmt.Errorf("%w: Options.TLS and Options.TLSDir are both set; choose one", ErrConfig)
		case c.opts.TLS != nil:
			c.tls = c.opts.TLS
		case c.opts.TLSDir != "":
			b, err := certs.LoadClient(c.opts.TLSDir, c.opts.ClusterID)
			if err != nil {
				c.tlsErr = fmt.Errorf("%w: the client's certificates: %w", ErrConfig, err)
				return
			}
			c.tls = certs.ClientConfig(b)
		}
	})
	return c.tls, c.tlsErr
}

func (c *Client) disconnect() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.cur = nil, ""
	}
}

// roundTrip sends req and reads until the response with its ID, waiting
// AttemptTimeout plus wait (what the server may take) at most.
func (c *Client) roundTrip(ctx context.Context, req clientproto.Request, wait time.Duration) (clientproto.Response, error) {
	deadline := time.Now().Add(c.opts.AttemptTimeout + wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.WriteFrames(time.Until(deadline), msgp.Encode(&req)); err != nil {
		return clientproto.Response{}, err
	}
	c.conn.SetReadDeadline(deadline)
	for {
		frame, err := c.conn.ReadFrame()
		if err != nil {
			return clientproto.Response{}, err
		}
		var resp clientproto.Response
		if err := msgp.Decode(frame, &resp); err != nil {
			return clientproto.Response{}, fmt.Errorf("client: malformed response: %w", err)
		}
		if resp.ID == req.ID || resp.ID == 0 && resp.Code == clientproto.CodeTooLarge {
			// (ID 0: the server refused a request frame it did not read,
			// and closes the connection; this client has one request in
			// flight.)
			if resp.ID != req.ID {
				c.disconnect()
			}
			return resp, nil
		}
		// An answer to an earlier attempt that timed out: skip it.
	}
}
