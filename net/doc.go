// Package net is the transport of paxos-go: framed TCP between the
// replicas of a cluster. It carries opaque payloads (the engine encodes
// its messages with msgpack). Its exported API is what an embedder who
// runs the transport needs (Listen, Options, Transport); the frames and
// the handshake, which the replicas' client ports and the Go client speak
// too, are internal/wire's, and an in-memory transport for tests is
// internal/memnet.
//
// The package is named net, like the standard library's. Inside it the
// standard package is imported as stdnet; callers import this one as
// paxosnet:
//
//	import paxosnet "github.com/paxos-go/paxos/net"
//
// Security: the peer port runs mutual TLS 1.3 unless Options.Insecure
// says otherwise (Listen refuses to start with neither). Package certs
// makes a cluster's CA and its replicas' certificates, which name
// paxos://<cluster>/<id>; the transport verifies the other side's chain
// against the cluster CA and takes its replica ID from the certificate, on
// both sides: a listener refuses a Hello that claims another replica than
// the certificate, a dialer a listener that is not the replica it dialed.
// A side that has not authenticated is told nothing: no refusal reason, no
// replica ID, no Welcome. The one exception is inherent to TLS: the
// listener's certificate, which names the cluster and the replica, goes to
// any client that starts a TLS handshake (encrypted against eavesdroppers
// in TLS 1.3, but readable by that client).
//
// Wire format: every connection starts with a handshake (a Hello frame
// from the dialer with magic, protocol version, cluster ID, node ID and
// kind; a Welcome frame back), inside TLS if configured, then carries
// frames of a big-endian u32 length and the payload (diagram in
// internal/wire/frame.go).
//
// Bounds, each an Options field with a default: the handshake frames
// (MaxHelloBytes, 4 KiB) and every frame (MaxFrameBytes, 16 MiB) are
// refused before anything is allocated if longer, and a frame's buffer
// grows with the bytes that arrive, not with the length it declares; the
// handshake, TLS included, has a deadline (HandshakeTimeout); the listener
// keeps at most MaxConns connections (64), evicting the oldest one still
// in its handshake for a newcomer; each replica has one established
// inbound connection, which a new authenticated one replaces. The accept
// loop backs off and carries on after errors such as EMFILE. Refused
// connections are logged at debug level, and summarised at warn level at
// most once per RefusalLogInterval.
//
// Each peer gets one outbound connection, kept up by one writer goroutine
// that reconnects with jittered backoff and drains everything queued into
// one write: many messages per syscall under load. The outbound queue is
// bounded in messages and in bytes; beyond either, the oldest messages are
// dropped and counted, since the protocol retransmits. Each inbound
// connection has one reader goroutine, which hands over everything already
// buffered as one batch.
//
// Membership: the set of peers follows the cluster's configuration.
// SetPeers adds and removes peers at run time (a removed peer's queue is
// dropped and its connections closed, both ways). Options.Admit lets the
// caller decide which dialers to take beyond the set (a member of the
// configuration not in the set yet; anyone, for a replica that is joining
// and knows no configuration), and refuse one with a code the dialer acts
// on (RefusalRemoved, RefusalDataLost: see Options.OnRefused). A Hello
// says whether the dialer holds durable state (Fresh) and is joining
// (Joining), and the address it listens on, which a listener that admitted
// it without knowing it answers to.
package net
