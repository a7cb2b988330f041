package main

import (
	"context"
	"crypto/tls"
	"errors"
)

// errNoMembershipAPI stands in for the engine's membership client until it
// lands (the engine-membership branch).
var errNoMembershipAPI = errors.New("the engine has no membership client yet")

type noMembership struct{}

func newEngineMembership(addrs []string, cluster string, tlsConfig *tls.Config) membership {
	return noMembership{}
}

func (noMembership) Configuration(context.Context) (clusterView, error) {
	return clusterView{}, errNoMembershipAPI
}
func (noMembership) AddLearner(context.Context, uint64, string, string) error {
	return errNoMembershipAPI
}
func (noMembership) Promote(context.Context, uint64) error            { return errNoMembershipAPI }
func (noMembership) RemoveReplica(context.Context, uint64) error      { return errNoMembershipAPI }
func (noMembership) TransferLeadership(context.Context, uint64) error { return errNoMembershipAPI }
func (noMembership) Close() error                                     { return nil }

func explainEngine(err error) error { return err }
