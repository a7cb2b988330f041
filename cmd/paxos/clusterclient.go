package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/paxos-go/paxos/engine"
)

// engineMembership is the cluster commands' client: an engine.Client,
// which finds the leader among the addresses and follows redirects.
type engineMembership struct{ c *engine.Client }

func newEngineMembership(addrs []string, cluster string, tlsConfig *tls.Config) membership {
	return engineMembership{engine.NewClient(addrs, engine.ClientOptions{ClusterID: cluster, TLS: tlsConfig})}
}

// Configuration asks for the configuration (through the leader, when one
// is known), then the status of the replica that answered, for the leader
// it follows.
func (m engineMembership) Configuration(ctx context.Context) (clusterView, error) {
	conf, err := m.c.Configuration(ctx)
	if err != nil {
		return clusterView{}, err
	}
	v := clusterView{Config: conf}
	if st, err := m.c.Status(ctx); err == nil && st.HasLead {
		v.Leader, v.HasLeader = st.Leader, true
	}
	return v, nil
}

func (m engineMembership) AddLearner(ctx context.Context, id uint64, peerAddr, clientAddr string) error {
	return m.c.AddLearner(ctx, id, peerAddr, clientAddr)
}

func (m engineMembership) Promote(ctx context.Context, id uint64) error {
	return m.c.Promote(ctx, id)
}

func (m engineMembership) RemoveReplica(ctx context.Context, id uint64) error {
	return m.c.RemoveReplica(ctx, id)
}

func (m engineMembership) TransferLeadership(ctx context.Context, id uint64) error {
	return m.c.TransferLeadership(ctx, id)
}

func (m engineMembership) Close() error { return m.c.Close() }

// explainEngine says what to do about the engine's typed errors.
func explainEngine(err error) error {
	switch {
	case errors.Is(err, engine.ErrChangeInProgress):
		return fmt.Errorf("%w: the cluster makes one change at a time; wait for the one under way (paxos cluster status shows it once made) and ask again", err)
	case errors.Is(err, engine.ErrNotCaughtUp):
		return fmt.Errorf("%w: the replica is still behind the log (is it running, and reachable at its peer address?); ask again, or give more --timeout", err)
	case errors.Is(err, engine.ErrBadChange):
		return fmt.Errorf("%w (paxos cluster status shows the configuration)", err)
	}
	return err
}
