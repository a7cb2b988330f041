package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/engine/paxos"
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

// Config configures a Node. ID, Peers and DataDir are required; every
// other field has the default its comment gives.
type Config struct {
	// ID is this replica. Peers maps every replica of the cluster, this one
	// included, to the address replicas use to reach it.
	ID    uint64
	Peers map[uint64]string
	// ClusterID must be the same on every replica; connections from
	// another cluster are refused. Default "paxos".
	ClusterID string
	// DataDir holds the write-ahead log (DataDir/wal) and, unless
	// Snapshots is set, the snapshot store (DataDir/snapshots).
	DataDir string

	// ClientAddr, if set, is where this replica serves clients (see
	// Client). ClientAddrs maps replicas to their client addresses, so
	// that a follower can redirect clients to the leader; without it,
	// followers forward.
	ClientAddr  string
	ClientAddrs map[uint64]string

	// ElectionTimeout: a follower that hears nothing from the leader for
	// between one and two of these starts an election. Default 1 s.
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
	// The client port (ClientAddr) has no TLS yet, whatever they say.
	TLSDir   string
	PeerTLS  *tls.Config
	Insecure bool

	// Logger receives the node's log. Default: no logging.
	Logger hclog.Logger
}

// Transport is what the node needs from a transport; *paxosnet.Transport
// and *paxosnet.MemTransport provide it. Send must not block.
type Transport interface {
	Send(to uint64, payload []byte)
	Receive() <-chan []paxosnet.Inbound
	Close() error
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Peers) == 0 {
		return c, errors.New("engine: Config.Peers is empty")
	}
	if _, ok := c.Peers[c.ID]; !ok {
		return c, fmt.Errorf("engine: Config.ID %d is not in Config.Peers", c.ID)
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
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = c.ElectionTimeout / 10
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
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.WAL.NoSync = c.WAL.NoSync || c.NoSync
	if c.WAL.Logger == nil {
		c.WAL.Logger = c.Logger.Named("wal")
	}
	return c, nil
}

func (c Config) walDir() string { return filepath.Join(c.DataDir, "wal") }

func (c Config) snapshotDir() string { return filepath.Join(c.DataDir, "snapshots") }
