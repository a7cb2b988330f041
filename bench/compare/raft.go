package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/paxos-go/paxos/bench"
)

// raftCluster is a hashicorp/raft cluster in this process, set up the way
// its documentation and its users set it up: DefaultConfig, the TCP
// transport on loopback, raft-wal as log and stable store (it fsyncs
// every append), file snapshots. It implements bench.Writer, so it runs
// exactly the workload paxos-go runs.
type raftCluster struct {
	rafts  []*raft.Raft
	wals   []*raftwal.WAL
	trans  []*raft.NetworkTransport
	dir    string
	mu     sync.Mutex
	leader *raft.Raft
}

// counter is the trivial state machine, as in the paxos-go cluster.
type counter struct{ n uint64 }

func (c *counter) Apply(*raft.Log) any { c.n++; return nil }
func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	return counterSnapshot(c.n), nil
}
func (c *counter) Restore(r io.ReadCloser) error {
	defer r.Close()
	_, err := fmt.Fscan(r, &c.n)
	return err
}

type counterSnapshot uint64

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprint(sink, uint64(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (counterSnapshot) Release() {}

func startRaft(cfg bench.Config, logger hclog.Logger) (*raftCluster, error) {
	dir, err := os.MkdirTemp("", "raft-bench-")
	if err != nil {
		return nil, err
	}
	c := &raftCluster{dir: dir}
	var servers []raft.Server
	for i := 0; i < cfg.Nodes; i++ {
		t, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, logger)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.trans = append(c.trans, t)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: t.LocalAddr()})
	}
	for i := 0; i < cfg.Nodes; i++ {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(fmt.Sprint(i))
		conf.Logger = logger
		nodeDir := filepath.Join(dir, fmt.Sprint("node-", i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			c.Close()
			return nil, err
		}
		w, err := raftwal.Open(nodeDir)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.wals = append(c.wals, w)
		snaps, err := raft.NewFileSnapshotStoreWithLogger(nodeDir, 1, logger)
		if err != nil {
			c.Close()
			return nil, err
		}
		if i == 0 {
			err := raft.BootstrapCluster(conf, w, w, snaps, c.trans[i], raft.Configuration{Servers: servers})
			if err != nil {
				c.Close()
				return nil, err
			}
		}
		r, err := raft.NewRaft(conf, &counter{}, w, w, snaps, c.trans[i])
		if err != nil {
			c.Close()
			return nil, err
		}
		c.rafts = append(c.rafts, r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.findLeader() == nil {
		if time.Now().After(deadline) {
			c.Close()
			return nil, errors.New("raft: no leader elected within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c, nil
}

func (c *raftCluster) findLeader() *raft.Raft {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.rafts {
		if r.State() == raft.Leader {
			c.leader = r
			return r
		}
	}
	return nil
}

// Write applies the command on the leader and waits until it is
// committed and applied, as paxos-go's Submit does.
func (c *raftCluster) Write(ctx context.Context, client int, payload []byte) error {
	c.mu.Lock()
	leader := c.leader
	c.mu.Unlock()
	err := leader.Apply(payload, 10*time.Second).Error()
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		c.findLeader()
	}
	return err
}

// Close stops the cluster and removes its data.
func (c *raftCluster) Close() error {
	var errs []error
	for _, r := range c.rafts {
		errs = append(errs, r.Shutdown().Error())
	}
	for _, t := range c.trans {
		errs = append(errs, t.Close())
	}
	for _, w := range c.wals {
		errs = append(errs, w.Close())
	}
	errs = append(errs, os.RemoveAll(c.dir))
	return errors.Join(errs...)
}
