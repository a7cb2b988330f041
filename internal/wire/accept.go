package wire

import (
	"container/list"
	"errors"
	"math/rand/v2"
	stdnet "net"
	"time"
)

// The wait of Accept after a failed accept: it starts at the first and
// doubles up to the second.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Accept takes the next connection from ln. An error other than a closed
// listener (out of file descriptors, above all) does not end it: it is
// reported to onErr, Accept waits, 5 ms doubling up to 1 s from one error
// to the next (delay carries the wait between calls; a success resets it),
// and tries again, as net/http does: a listener that stopped accepting
// would cut its replica off for good. It returns an error only when ln is
// closed or stop is.
func Accept(ln stdnet.Listener, stop <-chan struct{}, delay *time.Duration, onErr func(error)) (stdnet.Conn, error) {
	for {
		c, err := ln.Accept()
		if err == nil {
			*delay = 0
			return c, nil
		}
		select {
		case <-stop:
			return nil, stdnet.ErrClosed
		default:
		}
		if errors.Is(err, stdnet.ErrClosed) {
			return nil, err
		}
		onErr(err)
		*delay = min(max(2**delay, acceptBackoffMin), acceptBackoffMax)
		timer := time.NewTimer(*delay)
		select {
		case <-stop:
			timer.Stop()
			return nil, stdnet.ErrClosed
		case <-timer.C:
		}
	}
}

// Victim picks the connection to close when a listener is full: one of
// those still in their handshake (the elements of pending), at random, or
// nil if there are none. At random, not the oldest: strangers opening
// connections faster than a real peer completes its handshake would
// otherwise always evict it, and lock it out for as long as they keep
// going; at random, its handshake survives with a fixed chance, and its
// retries get it in.
func Victim(pending *list.List) *list.Element {
	if pending.Len() == 0 {
		return nil
	}
	e := pending.Front()
	for k := rand.IntN(pending.Len()); k > 0; k-- {
		e = e.Next()
	}
	return e
}

// Pending is the set of a listener's connections still in their handshake,
// oldest first. Its owner guards it with its own lock, the one that also
// guards its established connections.
type Pending struct{ l list.List }

// PendingConn is a connection in a Pending set.
type PendingConn struct {
	Conn    stdnet.Conn
	elem    *list.Element
	evicted bool // closed to make room
}

// Len is the number of connections in their handshake.
func (p *Pending) Len() int { return p.l.Len() }

// Admit adds c to the set, if the connections of the set and the
// established ones (of which there are established) are fewer than max.
// Otherwise it makes room by evicting one in its handshake, at random (see
// Victim), and returns it, removed from the set, for the caller to close
// and count once it has released its lock; or, if none is in its
// handshake, it admits nothing and returns a nil pc: c is refused.
func (p *Pending) Admit(c stdnet.Conn, established, max int) (pc, evicted *PendingConn) {
	if p.l.Len()+established >= max {
		victim := Victim(&p.l)
		if victim == nil {
			return nil, nil
		}
		evicted = p.l.Remove(victim).(*PendingConn)
		evicted.evicted = true
	}
	pc = &PendingConn{Conn: c}
	pc.elem = p.l.PushBack(pc)
	return pc, evicted
}

// Done takes pc out of the set as its handshake ends, and reports whether
// Admit evicted it meanwhile (and so took it out already).
func (p *Pending) Done(pc *PendingConn) (evicted bool) {
	if !pc.evicted {
		p.l.Remove(pc.elem)
	}
	return pc.evicted
}

// CloseAll closes every connection in the set (as the listener stops),
// leaving them in it: each one's handshake then fails, and its Done takes
// it out.
func (p *Pending) CloseAll() {
	for e := p.l.Front(); e != nil; e = e.Next() {
		e.Value.(*PendingConn).Conn.Close()
	}
}
