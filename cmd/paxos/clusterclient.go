package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/engine"
)

// engineMembership is the cluster commands' client: a client.Client,
// which finds the leader among the addresses and follows redirects. The
// membership changes and Close are the client's own; only Configuration,
// which adds the leader, is engineMembership's.
type engineMembership struct{ *client.Client }

func newEngineMembership(addrs []string, cluster string, tlsConfig *tls.Config) membership {
	return engineMembership{client.New(addrs, client.Options{ClusterID: cluster, TLS: tlsConfig})}
}

// Configuration asks for the configuration (through the leader, when one
// is known), then the status of the replica that answered, for the leader
// it follows.
func (m engineMembership) Configuration(ctx context.Context) (clusterView, error) {
	conf, err := m.Client.Configuration(ctx)
	if err != nil {
		return clusterView{}, err
	}
	v := clusterView{Config: conf}
	if st, err := m.Status(ctx); err == nil && st.HasLead {
		v.Leader, v.HasLeader = st.Leader, true
	}
	return v, nil
}

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
