package client_test

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/msgp"
	"github.com/paxos-go/paxos/internal/wire"
)

// fakeServer is a client port that answers each submitted command as
// answer says, and records the commands it saw.
type fakeServer struct {
	ln     stdnet.Listener
	answer func(req clientproto.Request) (clientproto.Response, bool) // false: no answer
	mu     sync.Mutex
	seen   []string      // "seq:payload"
	conns  []stdnet.Conn // closed at the end of the test, so that serve ends
	wg     sync.WaitGroup
}

func newFakeServer(t *testing.T, answer func(clientproto.Request) (clientproto.Response, bool)) *fakeServer {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, answer: answer}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) serve(c stdnet.Conn) {
	conn, err := wire.ServerHandshake(c, 1, func(wire.Hello) error { return nil }, 1<<20, 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		frame, err := conn.ReadFrame()
		if err != nil {
			return
		}
		var req clientproto.Request
		if err := msgp.Decode(frame, &req); err != nil {
			return
		}
		s.mu.Lock()
		s.seen = append(s.seen, fmt.Sprintf("%d:%s", req.Seq, req.Payload))
		s.mu.Unlock()
		if resp, ok := s.answer(req); ok {
			resp.ID = req.ID
			conn.WriteFrames(time.Second, msgp.Encode(&resp))
		}
	}
}

func (s *fakeServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// TestNoServers: a client given no address fails at once with ErrConfig,
// instead of panicking.
func TestNoServers(t *testing.T) {
	for _, addrs := range [][]string{nil, {}} {
		c := client.New(addrs, client.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := c.Submit(ctx, []byte("x")); !errors.Is(err, client.ErrConfig) || !client.IsPermanent(err) || ctx.Err() != nil {
			t.Fatalf("Submit with addresses %v: %v", addrs, err)
		}
		if c.Seq() != 0 {
			t.Fatalf("a command that no server saw used number %d", c.Seq())
		}
		if _, err := c.Status(ctx); !errors.Is(err, client.ErrConfig) {
			t.Fatalf("Status with addresses %v: %v", addrs, err)
		}
		if _, err := c.Query(ctx, nil); !errors.Is(err, client.ErrConfig) {
			t.Fatalf("Query with addresses %v: %v", addrs, err)
		}
		cancel()
		c.Close()
	}
}

// TestTimeoutResendsBeforeMovingOn: after a command timed out, having
// reached a server, the next Submit sends it again, with its number and
// payload, before its own, so that the client never skips a number.
func TestTimeoutResendsBeforeMovingOn(t *testing.T) {
	var mu sync.Mutex
	silent := true
	s := newFakeServer(t, func(req clientproto.Request) (clientproto.Response, bool) {
		mu.Lock()
		defer mu.Unlock()
		return clientproto.Response{Result: []byte("ok")}, !silent
	})
	c := client.New([]string{s.ln.Addr().String()}, client.Options{ClusterID: "test"})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.Submit(ctx, []byte("a"))
	cancel()
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("a command the server never answered: %v", err)
	}
	mu.Lock()
	silent = false
	mu.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Submit(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	got := s.commands()
	// The first command, one or more times, then again once the server
	// answers, then the second: numbers 1, 1, ..., 2, never a gap.
	if len(got) < 3 || got[len(got)-1] != "2:b" || slices.ContainsFunc(got[:len(got)-1], func(c string) bool { return c != "1:a" }) {
		t.Fatalf("the server saw %q, want 1:a (at least twice), then 2:b", got)
	}
	if c.Seq() != 2 {
		t.Fatalf("Seq %d, want 2", c.Seq())
	}
}

// TestPermanentRefusalsFailAtOnce: a server's definite refusal ends the
// call at once, and a retry is not attempted.
func TestPermanentRefusalsFailAtOnce(t *testing.T) {
	for _, code := range []uint8{clientproto.CodeBadSequence, clientproto.CodeExpired, clientproto.CodeStale, clientproto.CodeBadRequest} {
		s := newFakeServer(t, func(req clientproto.Request) (clientproto.Response, bool) {
			return clientproto.Response{Status: clientproto.StatusError, Code: code, Message: "refused"}, true
		})
		c := client.New([]string{s.ln.Addr().String()}, client.Options{ClusterID: "test"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.Submit(ctx, []byte("x"))
		if !client.IsPermanent(err) || ctx.Err() != nil || len(s.commands()) != 1 {
			t.Errorf("code %d: %v, after %d attempts; want a permanent error at once", code, err, len(s.commands()))
		}
		if want := clientproto.CodeErrors[code]; want != nil && !errors.Is(err, want) {
			t.Errorf("code %d: %v, want %v", code, err, want)
		}
		cancel()
		c.Close()
	}
	for _, err := range []error{client.ErrNotLeader, client.ErrBusy, client.ErrTimeout, client.ErrClosed, fmt.Errorf("x: %w", stdnet.ErrClosed)} {
		if client.IsPermanent(err) {
			t.Errorf("%v is classed permanent", err)
		}
	}
}
