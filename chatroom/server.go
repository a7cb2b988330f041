package chatroom

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/internal/durable"
)

// ServerConfig configures one chat room replica.
type ServerConfig struct {
	// ID is this replica, from 0 to Count-1; Peers maps every replica to
	// its peer address. They bootstrap a new cluster: once a replica has
	// started, its configuration is the cluster's (see engine.Config.Peers).
	ID, Count int
	Peers     map[uint64]string
	// Join starts a replica that joins a running cluster instead (Count
	// is then 0, and Peers needs only this replica's address): if its data
	// dir holds no state it waits, with engine.Config.Join, until the
	// cluster adds it; if it does (it joined before), it restarts from it.
	// So one command line serves the first start and every restart.
	Join bool
	// ClientAddr is where clients connect. ClientAddrs, optional, maps
	// every replica to its client address, for the first configuration
	// (like Peers), so that followers can send clients to the leader; give
	// every replica the same map, or none.
	ClientAddr  string
	ClientAddrs map[uint64]string
	// PeerListenAddr, if set, is where the replica listens for peers,
	// instead of its own address in Peers (and in the configuration), at
	// which the others dial it: see engine.Config.PeerListenAddr.
	PeerListenAddr string
	// DataDir holds the replica's log and snapshots. It is claimed for
	// this cluster and replica on first use (an IDENTITY file); a replica
	// refuses a data dir claimed by another.
	DataDir   string
	ClusterID string
	// ElectionTimeout defaults to 1 s (at least MinElectionTimeout if
	// set); SegmentBytes, the WAL's segment size, to 8 MiB (a chat room
	// needs no bigger). Negative values are refused.
	ElectionTimeout time.Duration
	SegmentBytes    int64
	// TLSDir and Insecure secure both ports (the client port requires a
	// client certificate of the same directory), or not: see
	// engine.Config. One of them is required.
	TLSDir   string
	Insecure bool
	Logger   hclog.Logger
	// Metrics, if set, receives the replica's Prometheus metrics (see
	// engine.Config.Metrics).
	Metrics prometheus.Registerer
}

// MinElectionTimeout is the shortest ServerConfig.ElectionTimeout: the
// engine heartbeats every tenth of it, and a heartbeat interval that
// rounds to nothing would stop it.
const MinElectionTimeout = 10 * time.Millisecond

// check refuses what the engine would replace silently or fail on later.
func (cfg ServerConfig) check() error {
	switch {
	case cfg.Join && cfg.Count != 0:
		return fmt.Errorf("chatroom: ServerConfig.Count %d with Join: a joining replica learns the cluster from it (Count 0)", cfg.Count)
	case cfg.Join && cfg.ID < 0:
		return fmt.Errorf("chatroom: ServerConfig.ID %d is negative", cfg.ID)
	case cfg.Join:
	case cfg.Count < 1:
		return fmt.Errorf("chatroom: ServerConfig.Count %d: a cluster has at least one replica", cfg.Count)
	case cfg.ID < 0 || cfg.ID >= cfg.Count:
		return fmt.Errorf("chatroom: ServerConfig.ID %d: IDs run from 0 to Count-1 (%d)", cfg.ID, cfg.Count-1)
	case cfg.ElectionTimeout < 0 || (cfg.ElectionTimeout > 0 && cfg.ElectionTimeout < MinElectionTimeout):
		return fmt.Errorf("chatroom: ServerConfig.ElectionTimeout %v: at least %v (0 for the default)", cfg.ElectionTimeout, MinElectionTimeout)
	case cfg.SegmentBytes < 0:
		return fmt.Errorf("chatroom: ServerConfig.SegmentBytes %d is negative", cfg.SegmentBytes)
	case cfg.DataDir == "":
		return fmt.Errorf("chatroom: ServerConfig.DataDir is empty")
	}
	return nil
}

// StartServer claims the data dir and starts a replica running a Room.
func StartServer(cfg ServerConfig) (*engine.Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = 8 << 20
	}
	if err := ClaimDataDir(cfg.DataDir, cfg.ClusterID, cfg.ID, cfg.Count); err != nil {
		return nil, err
	}
	ec := engine.Config{
		Join:            cfg.Join,
		ID:              uint64(cfg.ID),
		Peers:           cfg.Peers,
		ClusterID:       cfg.ClusterID,
		DataDir:         cfg.DataDir,
		ClientAddr:      cfg.ClientAddr,
		ClientAddrs:     cfg.ClientAddrs,
		PeerListenAddr:  cfg.PeerListenAddr,
		ElectionTimeout: cfg.ElectionTimeout,
		TLSDir:          cfg.TLSDir,
		Insecure:        cfg.Insecure,
		Logger:          cfg.Logger,
		Metrics:         cfg.Metrics,
	}
	ec.WAL.SegmentBytes = cfg.SegmentBytes
	n, err := engine.Start(ec, New())
	if cfg.Join && errors.Is(err, engine.ErrJoinNotEmpty) {
		// It joined before: restart from its data, which holds the
		// configuration. Peers only bootstraps a data dir with no record
		// of how the replica began, and this one has it (the engine
		// records the join before it writes any log, and ClaimDataDir
		// above let through only a dir claimed by a joined replica):
		// the engine takes from Peers only this replica's address, for as
		// long as the configuration it recovers gives none (its newest
		// snapshot is older than its own addition, which the log after it
		// holds).
		ec.Join = false
		n, err = engine.Start(ec, New())
	}
	return n, err
}

// ClaimDataDir makes sure dir holds the data of this cluster and replica,
// or none: it writes an IDENTITY file on first use and compares it after.
// A count of 0 stands for a replica that joined a running cluster.
func ClaimDataDir(dir, cluster string, id, count int) error {
	want := fmt.Sprintf("cluster=%s\nid=%d\ncount=%d\n", cluster, id, count)
	if count == 0 {
		want = fmt.Sprintf("cluster=%s\nid=%d\njoined\n", cluster, id)
	}
	path := filepath.Join(dir, "IDENTITY")
	got, err := os.ReadFile(path)
	switch {
	case err == nil:
		if string(got) != want {
			return fmt.Errorf("data dir %s belongs to another server (%s); start it with that server's flags or use another data dir",
				dir, strings.ReplaceAll(strings.TrimSpace(string(got)), "\n", ", "))
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := durable.MkdirAll(dir, 0o755, true); err != nil {
		return err
	}
	// Synced, file and directory: a crash must not leave an empty IDENTITY
	// that refuses every later start.
	return durable.WriteFile(path, []byte(want), 0o644, true)
}
