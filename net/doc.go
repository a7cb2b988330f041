// Package net is the transport of paxos-go: framed TCP between the
// replicas of a cluster, and the framing and handshake of client
// connections. It carries opaque payloads (the engine encodes its messages
// with msgpack) and imports nothing else of this module.
//
// The package is named net, like the standard library's. Inside it the
// standard package is imported as stdnet; callers import this one as
// paxosnet:
//
//	import paxosnet "github.com/paxos-go/paxos/net"
//
// Wire format: every connection starts with a handshake (a Hello frame
// from the dialer with magic, protocol version, cluster ID, node ID and
// kind; a Welcome frame back), then carries frames of a big-endian u32
// length and the payload (diagram in frame.go). A frame longer than the
// maximum is refused before it is allocated, and the connection is closed
// with the reason logged; so is a handshake from another cluster or an
// unknown replica.
//
// Each peer gets one outbound connection, kept up by one writer goroutine
// that reconnects with jittered backoff and drains everything queued into
// one write: many messages per syscall under load. The outbound queue is
// bounded; when it is full the oldest message is dropped and counted, since
// the protocol retransmits. Each inbound connection has one reader
// goroutine, which hands over everything already buffered as one batch.
//
// MemNetwork provides the same interface in memory, for tests.
package net
