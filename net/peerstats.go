package net

import "slices"

// PeerStats is the state of the transport's link to one peer, for
// monitoring.
type PeerStats struct {
	ID uint64
	// Connected says the transport holds an established (handshaken)
	// connection to the peer, on which it sends; it turns false when a
	// write on it fails or the transport reconnects, so a peer that died
	// shows as connected until the next message to it fails (a leader
	// sends every heartbeat interval).
	Connected bool
	// QueueBytes is the payload bytes waiting to be sent to the peer.
	QueueBytes int
}

// PeerStats returns the state of the link to each peer, by ID.
func (t *Transport) PeerStats() []PeerStats {
	peers := *t.peers.Load()
	out := make([]PeerStats, 0, len(peers))
	for id, p := range peers {
		p.mu.Lock()
		q := p.queueBytes
		p.mu.Unlock()
		out = append(out, PeerStats{ID: id, Connected: p.connected.Load(), QueueBytes: q})
	}
	slices.SortFunc(out, func(a, b PeerStats) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}
