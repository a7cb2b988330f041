package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	stdnet "net"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// Defaults of the snapshot policy; see Config.
const (
	DefaultSnapshotEverySlots      = 10_000
	DefaultSnapshotEveryBytes      = 64 << 20
	DefaultSnapshotTrailingSlots   = 1_000
	DefaultSnapshotsKept           = 2
	DefaultSnapshotSendBytesPerSec = 64 << 20
	DefaultSnapshotChunkBytes      = 256 << 10
)

// Defaults of the client port's bounds and of the command size; see
// Config.
const (
	DefaultClientHandshakeTimeout = 5 * time.Second
	DefaultClientIdleTimeout      = 60 * time.Second
	DefaultClientMaxConns         = 1024
	DefaultClientMaxInflight      = 64 // a pipelining client's whole window (session.Window)
	DefaultClientMaxQueuedBytes   = 8 << 20
	DefaultClientWriteTimeout     = 5 * time.Second
	DefaultRefusalLogInterval     = 10 * time.Second
	DefaultMaxCommandBytes        = 1 << 20
)

// Config configures a Node. ID and DataDir are required, and Peers or
// Join at the first start; every other field has the default its comment
// gives.
type Config struct {
	// ID is this replica. Peers maps every replica of the cluster, this one
	// included, to the address replicas use to reach it.
	//
	// Peers (with ClientAddrs) only bootstraps a new cluster: at the first
	// start, in an empty data directory, it is recorded there as the
	// cluster's first configuration, and every later start uses the
	// recorded one and the changes made since (AddLearner, Promote,
	// RemoveReplica), which the log and the snapshots carry; Peers may then
	// be left out, and if it differs the node logs it and ignores it. An
	// empty data directory with neither Peers nor Join is refused
	// (ErrNoPeers).
	ID    uint64
	Peers map[uint64]string
	// Join starts a replica that joins a running cluster: its data
	// directory must be empty (ErrJoinNotEmpty otherwise), it knows no
	// configuration and never campaigns, and it waits until the cluster
	// adds it (AddLearner, on the leader, with this replica's addresses);
	// then the leader sends it a snapshot, from which it learns the
	// configuration, and the log. Peers needs only this replica's own
	// address, to listen on; other entries are replicas to reach meanwhile
	// (none is needed: the leader reaches the new replica, which takes any
	// replica of the cluster while it knows no configuration). Once it has
	// joined, restart it without Join: a Join start of a directory that
	// holds state is refused.
	Join bool
	// ClusterID must be the same on every replica; connections from
	// another cluster are refused. Default "paxos".
	ClusterID string
	// DataDir holds the write-ahead log (DataDir/wal) and, unless
	// Snapshots is set, the snapshot store (DataDir/snapshots).
	DataDir string

	// ClientAddr, if set, is where this replica serves clients (see
	// Client). ClientAddrs maps replicas to their client addresses, so
	// that a follower can redirect clients to the leader; without it,
	// followers forward. Like Peers, ClientAddrs only bootstraps: the
	// configuration carries each replica's client address from then on
	// (AddLearner gives a new replica's).
	ClientAddr  string
	ClientAddrs map[uint64]string
	// PeerListenAddr, if set, is where the default transport listens for
	// peers, instead of this replica's peer address (the configuration's,
	// or Peers[ID] before it has one), which the other replicas go on
	// dialling and its Hellos go on advertising: for a proxy, a NAT or a
	// port mapping between the replicas (the fault harness puts a proxy
	// in front of every replica).
	PeerListenAddr string

	// ElectionTimeout: a follower that hears nothing from the leader for
	// between one and two of these starts an election. Default 1 s; at
	// least 1 ms. Negative durations are refused.
	ElectionTimeout time.Duration
	// HeartbeatInterval is the leader's heartbeat and the node's tick.
	// Default ElectionTimeout/10.
	HeartbeatInterval time.Duration

	// MaxInflightSlots is the pipeline window in slots (default 8);
	// MaxBatchBytes bounds a slot's batch of commands (default 512 KiB);
	// MaxUncommittedBytes bounds what waits to commit before Submit
	// returns ErrBusy (default 64 MiB); MaxMsgBytes bounds the entries of
	// one message (default 4 MiB). See paxos.Config.
	MaxInflightSlots, MaxBatchBytes, MaxUncommittedBytes, MaxMsgBytes int
	// MaxFrameBytes bounds a frame on any connection. Default 16 MiB.
	MaxFrameBytes int
	// SessionTTL is how many slots a client's session lives unused.
	// Default session.DefaultTTL (about a million).
	SessionTTL uint64

	// WAL configures the write-ahead log (segment size, record limit, a
	// file system for tests). NoSync turns fsync off: nothing is durable;
	// for tests and benchmarks only.
	WAL    wal.Options
	NoSync bool

	// Snapshots stores snapshots. Default: Pebble in DataDir/snapshots.
	// Any storage.SnapshotStore may be plugged in; the node closes it.
	Snapshots storage.SnapshotStore

	// The snapshot policy. The node snapshots the state machine and the
	// session table after SnapshotEverySlots applied slots (default
	// 10,000) or SnapshotEveryBytes applied bytes of commands (default 64
	// MiB), whichever comes first, verifies the snapshot, and compacts the
	// log up to SnapshotTrailingSlots slots behind it (default 1,000: a
	// follower that far behind still catches up from the log; one further
	// behind gets the snapshot). It keeps the newest SnapshotsKept
	// snapshots (default 2). DisableAutoSnapshots turns the policy off:
	// then only Snapshot snapshots, and the log grows until it does.
	SnapshotEverySlots    uint64
	SnapshotEveryBytes    int64
	SnapshotTrailingSlots uint64
	SnapshotsKept         int
	DisableAutoSnapshots  bool
	// SnapshotSendBytesPerSec throttles sending a snapshot to a follower,
	// so that it cannot starve replication (default 64 MiB/s);
	// SnapshotChunkBytes is the size of its chunks (default 256 KiB).
	SnapshotSendBytesPerSec int64
	SnapshotChunkBytes      int
	// Transport carries messages between replicas. Default: framed TCP
	// (package net) listening on Peers[ID]. The node closes it.
	Transport Transport

	// The default transport's peer port runs mutual TLS: each replica
	// proves who it is with a certificate of the cluster's CA, and a
	// connection from anyone else is refused. Set one of:
	//
	// TLSDir, a directory made by `paxos certs` (certs.CreateDir), of which
	// the node reads ca.pem, node-<ID>.pem and node-<ID>-key.pem;
	//
	// PeerTLS, a config built elsewhere (certs.PeerConfig builds one);
	//
	// or Insecure, to run the peer port in plaintext and unauthenticated:
	// anyone who can reach it and knows the cluster ID can then act as a
	// replica. Only for tests and for networks where every host is
	// trusted.
	//
	// Start refuses a config with none of them, unless Transport is set.
	//
	// The client port (ClientAddr) runs TLS too, with client certificates
	// required: only clients holding a certificate of the cluster's CA
	// (client.pem of the TLSDir, or any certificate the CA issued for this
	// cluster) get past the TLS handshake. Its config is, in order:
	// ClientTLS if set; else, with TLSDir, certs.ClientPortConfig of this
	// replica's certificate (ClientTLSServerOnly drops the client
	// certificate requirement: the connection is encrypted and the replica
	// authenticated, but anyone who reaches the port may use it (a change
	// of the configuration still needs a client certificate of the
	// cluster), and the replica's certificate, which names the cluster
	// and the replica, goes to anyone
	// who starts a TLS handshake); else, with Insecure, plaintext. Start
	// refuses a ClientAddr with none of them. Insecure thus means "every
	// port that has no TLS config runs in plaintext".
	TLSDir              string
	PeerTLS             *tls.Config
	ClientTLS           *tls.Config
	ClientTLSServerOnly bool
	Insecure            bool

	// Bounds of the client port, each checked before anything is
	// allocated for what it bounds:
	//
	// ClientListener, if set, is used instead of listening on ClientAddr
	// (the node closes it).
	//
	// ClientHandshakeTimeout bounds the TLS handshake and the Hello
	// exchange of a new connection (default 5 s).
	//
	// ClientIdleTimeout closes a connection that has no request in flight,
	// no response waiting to be sent, and completed no request for that
	// long; a request frame that takes longer than that to arrive closes
	// it too (default 60 s). The Go client reconnects by itself.
	//
	// ClientMaxConns bounds the connections open at once, established or
	// in their handshake (default DefaultClientMaxConns, 1024). The policy
	// is the peer port's: a newcomer beyond it evicts a connection still in
	// its handshake, at random, or, if every connection is established, is
	// closed at once (without a word: before the handshake there is nobody
	// to tell).
	//
	// ClientMaxInflight bounds the requests of one connection being
	// served, and ClientMaxQueuedBytes the bytes of its responses waiting
	// to be written (defaults 64, a pipelining client's window, and 8
	// MiB). Beyond either, the node stops
	// reading the connection's requests until its responses drain: a
	// client that pipelines requests and reads no responses holds at most
	// ClientMaxQueuedBytes plus ClientMaxInflight of the largest responses
	// the state machine gives, and the TCP window does the rest.
	//
	// ClientWriteTimeout closes a connection whose client does not take a
	// write's bytes within it (default 5 s).
	//
	// RefusalLogInterval: each refused client connection (and each failed
	// accept) is logged at debug level; at warn level, the first after a
	// quiet period at once, then one summary line per interval at most
	// (default 10 s).
	ClientListener         stdnet.Listener
	ClientHandshakeTimeout time.Duration
	ClientIdleTimeout      time.Duration
	ClientMaxConns         int
	ClientMaxInflight      int
	ClientMaxQueuedBytes   int
	ClientWriteTimeout     time.Duration
	RefusalLogInterval     time.Duration

	// MaxCommandBytes bounds one command's payload, on the client port and
	// in Node.Submit; a longer one is refused with ErrTooLarge, and never
	// proposed. A client-port request frame is bounded by it too (plus
	// 1 KiB for the request's envelope), so it also bounds a query.
	// Default DefaultMaxCommandBytes (1 MiB); at most MaxMsgBytes minus
	// 1 KiB, so that a command always fits in one message.
	MaxCommandBytes int

	// Logger receives the node's log. Default: no logging.
	Logger hclog.Logger

	// Metrics, if set, receives the node's Prometheus metrics (names and
	// meaning in the README's Metrics section), each with a replica label
	// holding ID, so that replicas of one process may share a registry.
	// The node registers them at Start and unregisters them at Close; it
	// registers nothing anywhere else. Nil (the default): no metrics, and
	// nothing of them on the hot path.
	Metrics prometheus.Registerer

	// EventBuffer is the capacity of the channel Node.Events returns
	// (default DefaultEventBuffer, 256): the events a slow consumer may
	// fall behind by before the node drops new ones (see Node.Events).
	EventBuffer int
}

// Transport is what the node needs from a transport; *paxosnet.Transport
// provides it (and, for the module's tests, internal/memnet). Send must not block.
type Transport interface {
	Send(to uint64, payload []byte)
	Receive() <-chan []paxosnet.Inbound
	Close() error
}

func (c Config) withDefaults() (Config, error) {
	if paxos.NodeID(c.ID) == paxos.None {
		return c, fmt.Errorf("engine: Config.ID %d is reserved (it means no replica)", c.ID)
	}

	if c.DataDir == "" {
		return c, errors.New("engine: Config.DataDir is empty")
	}
	if c.ClusterID == "" {
		c.ClusterID = "paxos"
	}
	switch secured := c.TLSDir != "" || c.PeerTLS != nil; {
	case c.TLSDir != "" && c.PeerTLS != nil:
		return c, errors.New("engine: Config.TLSDir and Config.PeerTLS are both set; choose one")
	case secured && c.Insecure:
		return c, errors.New("engine: Config.Insecure is set along with TLS (Config.TLSDir or Config.PeerTLS); choose one")
	case secured && c.Transport != nil:
		return c, errors.New("engine: Config.TLSDir and Config.PeerTLS configure the default transport, but Config.Transport is set")
	case !secured && !c.Insecure && c.Transport == nil:
		return c, ErrNoTLS
	case c.ClientTLS != nil && c.ClientTLSServerOnly:
		return c, errors.New("engine: Config.ClientTLSServerOnly applies to the client port's config derived from Config.TLSDir, but Config.ClientTLS is set")
	case c.ClientTLSServerOnly && c.TLSDir == "":
		return c, errors.New("engine: Config.ClientTLSServerOnly needs Config.TLSDir, whose certificate the client port serves")
	case (c.ClientAddr != "" || c.ClientListener != nil) && c.ClientTLS == nil && c.TLSDir == "" && !c.Insecure:
		return c, ErrNoClientTLS
	}
	if c.ElectionTimeout < 0 || c.HeartbeatInterval < 0 {
		return c, fmt.Errorf("engine: ElectionTimeout %v and HeartbeatInterval %v must not be negative", c.ElectionTimeout, c.HeartbeatInterval)
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.ElectionTimeout / 10
	}
	if c.ElectionTimeout < time.Millisecond {
		// The node ticks every HeartbeatInterval: below a millisecond it
		// would spin (and below 10 ns the default interval is zero).
		return c, fmt.Errorf("engine: ElectionTimeout %v is below 1ms", c.ElectionTimeout)
	}
	if c.HeartbeatInterval*2 > c.ElectionTimeout {
		return c, fmt.Errorf("engine: HeartbeatInterval %v must be at most half of ElectionTimeout %v", c.HeartbeatInterval, c.ElectionTimeout)
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = paxosnet.DefaultMaxFrameBytes
	}
	if c.MaxMsgBytes <= 0 {
		c.MaxMsgBytes = paxos.DefaultMaxMsgBytes
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = paxos.DefaultMaxBatchBytes
	}
	if c.MaxMsgBytes > c.MaxFrameBytes/2 {
		c.MaxMsgBytes = c.MaxFrameBytes / 2
	}
	if c.SnapshotEverySlots == 0 {
		c.SnapshotEverySlots = DefaultSnapshotEverySlots
	}
	if c.SnapshotEveryBytes <= 0 {
		c.SnapshotEveryBytes = DefaultSnapshotEveryBytes
	}
	if c.SnapshotTrailingSlots == 0 {
		c.SnapshotTrailingSlots = DefaultSnapshotTrailingSlots
	}
	if c.SnapshotsKept <= 0 {
		c.SnapshotsKept = DefaultSnapshotsKept
	}
	if c.SnapshotSendBytesPerSec <= 0 {
		c.SnapshotSendBytesPerSec = DefaultSnapshotSendBytesPerSec
	}
	if c.SnapshotChunkBytes <= 0 {
		c.SnapshotChunkBytes = DefaultSnapshotChunkBytes
	}
	if c.SnapshotChunkBytes > c.MaxFrameBytes/2 {
		c.SnapshotChunkBytes = c.MaxFrameBytes / 2
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.ClientHandshakeTimeout, DefaultClientHandshakeTimeout)
	def(&c.ClientIdleTimeout, DefaultClientIdleTimeout)
	def(&c.ClientWriteTimeout, DefaultClientWriteTimeout)
	def(&c.RefusalLogInterval, DefaultRefusalLogInterval)
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&c.ClientMaxConns, DefaultClientMaxConns)
	defInt(&c.ClientMaxInflight, DefaultClientMaxInflight)
	defInt(&c.ClientMaxQueuedBytes, DefaultClientMaxQueuedBytes)
	if c.MaxCommandBytes <= 0 {
		c.MaxCommandBytes = min(DefaultMaxCommandBytes, c.MaxMsgBytes-clientproto.EnvelopeBytes)
	}
	if c.MaxCommandBytes > c.MaxMsgBytes-clientproto.EnvelopeBytes {
		return c, fmt.Errorf("engine: MaxCommandBytes %d is above MaxMsgBytes %d minus 1 KiB: such a command might not fit in a message", c.MaxCommandBytes, c.MaxMsgBytes)
	}
	if c.EventBuffer < 0 {
		return c, fmt.Errorf("engine: EventBuffer %d is negative", c.EventBuffer)
	}
	defInt(&c.EventBuffer, DefaultEventBuffer)
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.WAL.NoSync = c.WAL.NoSync || c.NoSync
	if c.WAL.Logger == nil {
		c.WAL.Logger = c.Logger.Named("wal")
	}
	return c, nil
}

// walDirName is the write-ahead log's directory within DataDir.
const walDirName = "wal"

func (c Config) walDir() string { return filepath.Join(c.DataDir, walDirName) }

func (c Config) snapshotDir() string { return filepath.Join(c.DataDir, "snapshots") }

// peerListenAddr returns where the default transport listens: the
// replica's peer address, unless PeerListenAddr says otherwise.
func (c Config) peerListenAddr(peerAddr string) string {
	if c.PeerListenAddr != "" {
		return c.PeerListenAddr
	}
	return peerAddr
}
