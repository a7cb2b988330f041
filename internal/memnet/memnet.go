// Package memnet connects replicas in memory, for tests: the interface
// the engine needs of a transport (engine.Transport) with no sockets, and
// links that tests can cut. It was net.MemNetwork; it is internal since
// only the module's tests use it.
package memnet

import (
	"sync"

	paxosnet "github.com/paxos-go/paxos/net"
)

// Inbound is a payload received from a peer, as net delivers it.
type Inbound = paxosnet.Inbound

// MemNetwork connects MemTransports in memory, for tests: the same
// interface as net.Transport, no sockets, and links that tests can cut.
type MemNetwork struct {
	mu        sync.Mutex
	endpoints map[uint64]*MemTransport
	cut       map[[2]uint64]bool
}

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{endpoints: map[uint64]*MemTransport{}, cut: map[[2]uint64]bool{}}
}

// Transport returns the endpoint of replica id, creating it if needed (a
// closed endpoint is replaced by a new one, as after a restart).
func (n *MemNetwork) Transport(id uint64) *MemTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.endpoints[id]; ok && !t.closed {
		return t
	}
	t := &MemTransport{net: n, id: id, recv: make(chan []Inbound, 4096)}
	n.endpoints[id] = t
	return t
}

// Cut drops every message from one replica to another until Heal.
func (n *MemNetwork) Cut(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]uint64{from, to}] = true
}

// Isolate cuts every link to and from id.
func (n *MemNetwork) Isolate(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.endpoints {
		if other != id {
			n.cut[[2]uint64{id, other}] = true
			n.cut[[2]uint64{other, id}] = true
		}
	}
}

// Heal restores every link.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]uint64]bool{}
}

// MemTransport is one replica's endpoint on a MemNetwork.
type MemTransport struct {
	net    *MemNetwork
	id     uint64
	recv   chan []Inbound
	closed bool // guarded by net.mu
}

// Send delivers payload to replica to, unless the link is cut, either end
// is closed, or the receiver's queue is full: then it is dropped. It never
// blocks.
func (t *MemTransport) Send(to uint64, payload []byte) {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	dst, ok := t.net.endpoints[to]
	if !ok || t.closed || dst.closed || t.net.cut[[2]uint64{t.id, to}] {
		return
	}
	select {
	case dst.recv <- []Inbound{{From: t.id, Payload: payload}}:
	default:
	}
}

// Receive returns the channel on which payloads arrive.
func (t *MemTransport) Receive() <-chan []Inbound { return t.recv }

// Close detaches the endpoint; messages to and from it are dropped.
func (t *MemTransport) Close() error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.closed = true
	return nil
}
