package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	stdnet "net"
	"sync"
	"time"

	paxosnet "github.com/paxos-go/paxos/net"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// ClusterID must match the servers'. Default "paxos".
	ClusterID string
	// ClientID names this client's session; commands are numbered from 1
	// within it. Default: a random ID. Reuse an ID only to resume a session
	// whose last sequence number you also restore (SetSeq).
	ClientID uint64
	// AttemptTimeout bounds one try at one server before the client tries
	// again elsewhere. Default 2 s.
	AttemptTimeout time.Duration
	// MaxFrameBytes bounds a response. Default 16 MiB.
	MaxFrameBytes int
}

// Client talks to a cluster's client ports. It finds the leader, follows
// redirects, and retries a command with the same (ClientID, seq) until the
// context ends, so that the command is applied exactly once. A Client has
// one command in flight at a time (calls are serialised); use several
// Clients for concurrency.
type Client struct {
	addrs []string
	opts  ClientOptions

	mu   sync.Mutex
	seq  uint64
	next int    // index of the server to try next
	cur  string // address of the current connection
	conn *paxosnet.Conn
	id   uint64 // request ID
}

// NewClient returns a client of the servers at addrs. It connects lazily.
func NewClient(addrs []string, opts ClientOptions) *Client {
	if opts.ClusterID == "" {
		opts.ClusterID = "paxos"
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Second
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
// a session.
func (c *Client) SetSeq(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = seq
}

// Submit sends a command and returns the state machine's response, once
// it is applied. It retries (same sequence number, so at most once) until
// ctx ends; then it returns ErrTimeout, and the command may or may not
// have been applied: the next Submit moves on to a new sequence number.
func (c *Client) Submit(ctx context.Context, payload []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.do(ctx, clientRequest{Op: opSubmit, ClientID: c.opts.ClientID, Seq: c.seq, Payload: payload})
}

// Query asks a read-only query, answered linearizably.
func (c *Client) Query(ctx context.Context, q []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.do(ctx, clientRequest{Op: opQuery, Payload: q})
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
	resp, err := c.roundTrip(ctx, clientRequest{ID: c.id, Op: opStatus})
	if err != nil {
		c.disconnect()
		return Status{}, err
	}
	var st Status
	if err := decodeMsgpack(resp.Result, &st); err != nil {
		return Status{}, fmt.Errorf("engine: malformed status: %w", err)
	}
	return st, nil
}

// Close closes the client's connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disconnect()
	return nil
}

// do sends req until it gets a final answer or ctx ends. c.mu is held.
func (c *Client) do(ctx context.Context, req clientRequest) ([]byte, error) {
	var last error
	redirect := ""
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
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
			last, redirect = err, ""
			continue
		}
		redirect = ""
		c.id++
		req.ID = c.id
		req.Redirect = true
		resp, err := c.roundTrip(ctx, req)
		if err != nil {
			last = err
			c.disconnect()
			continue
		}
		switch resp.Status {
		case statusOK:
			return resp.Result, nil
		case statusRedirect:
			redirect = resp.Leader
			continue
		}
		err = codeErrors[resp.Code]
		if err == nil {
			return nil, fmt.Errorf("engine: the server refused the request: %s", resp.Message)
		}
		switch resp.Code {
		case codeNotLeader:
			last = &NotLeaderError{LeaderAddr: resp.Leader}
			redirect = resp.Leader
			if redirect == "" {
				c.disconnect() // try another server
			}
		case codeBusy, codeTimeout:
			last = err
		default: // closed, stale, expired
			if resp.Code == codeClosed {
				last = err
				c.disconnect()
				continue
			}
			return nil, fmt.Errorf("%w: %s", err, resp.Message)
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
		addr = c.addrs[c.next%len(c.addrs)]
		c.next++
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	var d stdnet.Dialer
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn, err := paxosnet.ClientHandshake(raw, paxosnet.Hello{ClusterID: c.opts.ClusterID, Kind: paxosnet.KindClient}, c.opts.MaxFrameBytes, c.opts.AttemptTimeout)
	if err != nil {
		if errors.Is(err, paxosnet.ErrRefused) {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return err
	}
	c.conn, c.cur = conn, addr
	return nil
}

func (c *Client) disconnect() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.cur = nil, ""
	}
}

// roundTrip sends req and reads until the response with its ID.
func (c *Client) roundTrip(ctx context.Context, req clientRequest) (clientResponse, error) {
	deadline := time.Now().Add(c.opts.AttemptTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.WriteFrames(time.Until(deadline), encodeMsgpack(&req)); err != nil {
		return clientResponse{}, err
	}
	c.conn.SetReadDeadline(deadline)
	for {
		frame, err := c.conn.ReadFrame()
		if err != nil {
			return clientResponse{}, err
		}
		var resp clientResponse
		if err := decodeMsgpack(frame, &resp); err != nil {
			return clientResponse{}, fmt.Errorf("engine: malformed response: %w", err)
		}
		if resp.ID == req.ID {
			return resp, nil
		}
		// An answer to an earlier attempt that timed out: skip it.
	}
}
