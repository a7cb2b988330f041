package client

import (
	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/clientproto"
)

// Status is a replica's state as its client port reports it (see
// Client.Status), for monitoring and tools: engine.Status, the same type
// (its fields are documented on it).
type Status = clientproto.Status

// Role is what a replica is doing (paxos.Role; the constants below are
// paxos's, documented there).
type Role = paxos.Role

// The roles a Status reports.
const (
	RoleFollower     = paxos.RoleFollower
	RolePreCandidate = paxos.RolePreCandidate
	RoleCandidate    = paxos.RoleCandidate
	RoleLeader       = paxos.RoleLeader
	RoleLearner      = paxos.RoleLearner
	RoleJoining      = paxos.RoleJoining
	RoleRemoved      = paxos.RoleRemoved
)
