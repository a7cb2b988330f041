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
