package client

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/msgp"
	"github.com/paxos-go/paxos/internal/wire"
)

// Window is the most commands a Client has outstanding with SubmitAsync
// (engine.Window, the session table's window).
const Window = 64

// Future is the outcome of a command sent with SubmitAsync.
type Future struct {
	seq     uint64
	payload []byte
	done    chan struct{} // closed when resp and err are set
	resp    []byte
	err     error

	// Guarded by the pipeline's mu.
	finished bool
	sent     bool  // on the current connection
	last     error // the last refusal, for the timeout's message
	stop     func() bool
}

// Done returns a channel that is closed when the outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Seq returns the command's sequence number.
func (f *Future) Seq() uint64 { return f.seq }

// Wait waits for the outcome: the state machine's response, or the
// errors of Submit. SubmitAsync's context bounds the command's retries;
// ctx bounds only this wait: when it ends first, Wait returns ErrTimeout
// and the command goes on.
func (f *Future) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-f.done:
		return f.resp, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w (the command is still outstanding)", ErrTimeout, ctx.Err())
	}
}

// SubmitAsync sends a command and returns at once, without waiting for
// the outcome: a Client has up to Window (64) commands outstanding this
// way, on one connection, with the same exactly-once guarantee as Submit
// (engine.Node.SubmitAsync gives the rule: with each command the client
// says its oldest command still without an answer, so that the cluster
// keeps the responses a retry may ask for, and no more). It waits (until
// ctx ends) while Window commands are outstanding, and while a Submit is
// under way.
//
// The client retries the command, with the same sequence number, on this
// server or another, until it is answered or ctx ends; then the Future
// gives ErrTimeout, and the command may or may not have been applied.
// Commands of one client may be applied in any order among themselves:
// submit a command only once those it depends on are answered.
func (c *Client) SubmitAsync(ctx context.Context, payload []byte) *Future {
	f := &Future{payload: payload, done: make(chan struct{})}
	if err := c.checkSize(payload); err != nil {
		f.resp, f.err, f.finished = nil, err, true
		close(f.done)
		return f
	}
	p := c.pipeline()
	if p == nil {
		f.err, f.finished = ErrClosed, true
		close(f.done)
		return f
	}
	for {
		c.mu.Lock() // no Submit under way, nor starting
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			c.mu.Unlock()
			f.err, f.finished = ErrClosed, true
			close(f.done)
			return f
		case len(p.pending) == 0 || c.seq+1 < p.pending[0].seq+Window:
			c.seq++
			f.seq = c.seq
			p.pending = append(p.pending, f)
			f.stop = context.AfterFunc(ctx, func() { p.expire(f, ctx) })
			more := c.seq+1 < p.pending[0].seq+Window
			p.mu.Unlock()
			c.mu.Unlock()
			if more {
				signal(p.room) // pass on a wake-up this call may have taken from another
			}
			signal(p.kick)
			return f
		}
		p.mu.Unlock()
		c.mu.Unlock()
		select {
		case <-p.room:
		case <-ctx.Done():
			f.err, f.finished = fmt.Errorf("%w: %w (waiting for room in the window; nothing sent)", ErrTimeout, ctx.Err()), true
			close(f.done)
			return f
		}
	}
}

// pipeline returns the client's pipeline, started at the first call; nil
// after Close.
func (c *Client) pipeline() *pipeline {
	c.pipeOnce.Do(func() {
		p := &pipeline{c: c, kick: make(chan struct{}, 1), room: make(chan struct{}, 1),
			stop: make(chan struct{}), in: make(chan inbound, 16), byID: map[uint64]*Future{}}
		p.wg.Add(1)
		go p.run()
		c.pipe.Store(p)
	})
	return c.pipe.Load()
}

// closePipeline stops the pipeline, if it started, and keeps another from
// starting.
func (c *Client) closePipeline() {
	c.pipeOnce.Do(func() {})
	if p := c.pipe.Load(); p != nil {
		p.close()
	}
}

// waitPipeline waits until no command sent with SubmitAsync is
// outstanding (Submit's commands say that all before them are answered).
func (c *Client) waitPipeline(ctx context.Context) error {
	if p := c.pipe.Load(); p != nil {
		return p.waitEmpty(ctx)
	}
	return nil
}

// pipeline carries the commands of SubmitAsync: one goroutine (run) owns
// its connection, sends what is outstanding and resends it on a new
// connection after a failure or a redirect; a reader goroutine per
// connection hands it the responses. The Client's Close stops both.
type pipeline struct {
	c    *Client
	kick chan struct{} // wakes run: a command was queued, or a pause ended
	room chan struct{} // wakes SubmitAsync: a command finished
	stop chan struct{} // closed by close
	in   chan inbound  // from the readers
	wg   sync.WaitGroup

	mu      sync.Mutex
	pending []*Future     // outstanding, by seq
	empty   chan struct{} // closed when pending empties, if someone waits
	closed  bool

	// Owned by run.
	byID     map[uint64]*Future // the requests sent on conn, by ID
	conn     *wire.Conn
	quit     chan struct{} // closed to stop conn's reader
	next     int           // index of the server to try next
	redirect string        // the server to connect to next, if any
	id       uint64
	failures int       // consecutive failures, for the pause
	holdTill time.Time // resend nothing before (after ErrBusy)
}

// inbound is what a reader hands run: a response, or why it stopped.
type inbound struct {
	conn *wire.Conn
	resp clientproto.Response
	err  error
}

func (p *pipeline) run() {
	defer p.wg.Done()
	defer p.dropConn()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		outstanding := len(p.pending)
		p.mu.Unlock()
		if outstanding > 0 && p.conn == nil {
			if p.failures > 0 && p.redirect == "" {
				// A short, jittered pause before trying again, as Submit
				// does, so that a cluster electing a leader is not flooded.
				timer.Reset(time.Duration(10+mrand.IntN(40)) * time.Millisecond * time.Duration(min(p.failures, 10)))
				select {
				case <-p.stop:
					return
				case <-timer.C:
				}
			}
			if err := p.connect(); err != nil {
				p.failures++
				if errors.Is(err, ErrConfig) {
					p.failAll(err)
				}
				continue
			}
		}
		if p.conn != nil {
			if wait := time.Until(p.holdTill); wait > 0 {
				timer.Reset(wait)
			} else if err := p.send(); err != nil {
				p.failures++
				p.dropConn()
				continue
			}
		}
		select {
		case <-p.stop:
			return
		case <-p.kick:
		case <-timer.C:
		case in := <-p.in:
			if in.conn == p.conn {
				p.handle(in)
			}
		}
	}
}

// connect connects to the redirect, or to the next server in turn, and
// marks every outstanding command to be sent on the new connection.
func (p *pipeline) connect() error {
	addr := p.redirect
	p.redirect = ""
	if addr == "" {
		addr = p.c.addrs[p.next%len(p.c.addrs)]
		p.next++
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := p.c.dial(ctx, addr)
	cancel()
	if err != nil {
		p.setLast(err)
		return err
	}
	p.conn, p.quit = conn, make(chan struct{})
	clear(p.byID)
	p.mu.Lock()
	for _, f := range p.pending {
		f.sent = false
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.read(conn, p.quit)
	return nil
}

// dropConn closes the connection, and stops its reader.
func (p *pipeline) dropConn() {
	if p.conn != nil {
		close(p.quit)
		p.conn.Close()
		p.conn, p.quit = nil, nil
	}
}

// read hands run the responses of conn, until it fails or quit closes.
func (p *pipeline) read(conn *wire.Conn, quit chan struct{}) {
	defer p.wg.Done()
	for {
		frame, err := conn.ReadFrame()
		var resp clientproto.Response
		if err == nil {
			if derr := msgp.Decode(frame, &resp); derr != nil {
				err = fmt.Errorf("client: malformed response: %w", derr)
			}
		}
		select {
		case p.in <- inbound{conn, resp, err}:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// send writes the outstanding commands not sent on this connection yet,
// in order, in one write, each with the client's oldest outstanding
// command; and arms the read deadline while commands are outstanding.
func (p *pipeline) send() error {
	var frames [][]byte
	p.mu.Lock()
	for _, f := range p.pending {
		if f.sent {
			continue
		}
		f.sent = true
		p.id++
		p.byID[p.id] = f
		frames = append(frames, msgp.Encode(&clientproto.Request{ID: p.id, Op: clientproto.OpSubmit, ClientID: p.c.opts.ClientID,
			Seq: f.seq, Oldest: p.pending[0].seq, Payload: f.payload, Redirect: true}))
	}
	outstanding := len(p.pending)
	p.mu.Unlock()
	if outstanding == 0 {
		return p.conn.SetReadDeadline(time.Time{})
	}
	if len(frames) > 0 {
		if err := p.conn.WriteFrames(p.c.opts.AttemptTimeout, frames...); err != nil {
			return err
		}
	}
	// A server that answers nothing for AttemptTimeout while commands are
	// outstanding is given up for another.
	return p.conn.SetReadDeadline(time.Now().Add(p.c.opts.AttemptTimeout))
}

// handle acts on what a reader handed over.
func (p *pipeline) handle(in inbound) {
	if in.err != nil {
		p.setLast(in.err)
		p.failures++
		p.dropConn()
		return
	}
	resp := in.resp
	f := p.byID[resp.ID]
	delete(p.byID, resp.ID)
	if f == nil {
		if resp.ID == 0 {
			p.dropConn() // a frame the server refused unread: it closes
		}
		return
	}
	switch resp.Status {
	case clientproto.StatusOK:
		p.failures = 0
		p.finish(f, resp.Result, nil)
		return
	case clientproto.StatusRedirect:
		p.redirect = resp.Leader
		p.dropConn()
		return
	}
	err := clientproto.CodeErrors[resp.Code]
	if err == nil {
		p.finish(f, nil, fmt.Errorf("%w: %s", ErrBadRequest, resp.Message)) // as Submit
		return
	}
	p.setLastOf(f, serverError(err, resp.Message))
	switch resp.Code {
	case clientproto.CodeNotLeader:
		// Another server, or the leader it names.
		p.redirect = resp.Leader
		p.failures++
		p.dropConn()
	case clientproto.CodeBusy, clientproto.CodeTimeout:
		p.mu.Lock()
		f.sent = false
		p.mu.Unlock()
		p.failures++
		p.holdTill = time.Now().Add(time.Duration(10+mrand.IntN(40)) * time.Millisecond * time.Duration(min(p.failures, 10)))
	case clientproto.CodeClosed, clientproto.CodeRemoved, clientproto.CodeDataLost:
		p.failures++
		p.dropConn() // that server stopped: another
	default: // stale, expired, too large, not kept, and the others: final
		p.finish(f, nil, serverError(err, resp.Message))
	}
}

// finish gives f its outcome, once, and makes room in the window.
func (p *pipeline) finish(f *Future, resp []byte, err error) {
	p.mu.Lock()
	if f.finished {
		p.mu.Unlock()
		return
	}
	f.finished = true
	for i, g := range p.pending {
		if g == f {
			p.pending = append(p.pending[:i], p.pending[i+1:]...)
			break
		}
	}
	if len(p.pending) == 0 && p.empty != nil {
		close(p.empty)
		p.empty = nil
	}
	stop := f.stop
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
	f.resp, f.err, f.payload = resp, err, nil
	close(f.done)
	signal(p.room)
	signal(p.kick) // the oldest outstanding may have moved: nothing to send, but the deadline
}

// expire ends f when its context ends: outcome unknown.
func (p *pipeline) expire(f *Future, ctx context.Context) {
	p.mu.Lock()
	last := f.last
	p.mu.Unlock()
	err := fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	if last != nil {
		err = fmt.Errorf("%w: %w (last error: %v)", ErrTimeout, ctx.Err(), last)
	}
	p.finish(f, nil, err)
}

// failAll ends every outstanding command with err.
func (p *pipeline) failAll(err error) {
	p.mu.Lock()
	all := append([]*Future(nil), p.pending...)
	p.mu.Unlock()
	for _, f := range all {
		p.finish(f, nil, err)
	}
}

// setLast records err as the last error of every outstanding command.
func (p *pipeline) setLast(err error) {
	p.mu.Lock()
	for _, f := range p.pending {
		f.last = err
	}
	p.mu.Unlock()
}

func (p *pipeline) setLastOf(f *Future, err error) {
	p.mu.Lock()
	f.last = err
	p.mu.Unlock()
}

// close stops the pipeline: what is outstanding ends with ErrClosed.
func (p *pipeline) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	p.failAll(ErrClosed)
}

// waitEmpty waits until no command sent with SubmitAsync is outstanding.
func (p *pipeline) waitEmpty(ctx context.Context) error {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.empty == nil {
		p.empty = make(chan struct{})
	}
	empty := p.empty
	p.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w (waiting for the commands sent with SubmitAsync)", ErrTimeout, ctx.Err())
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
