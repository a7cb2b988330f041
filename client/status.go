package client

import "github.com/paxos-go/paxos/engine/paxos"

// Status is a replica's state as its client port reports it (see
// Client.Status), for monitoring and tools: engine.Status, field for field
// (the wire carries the fields in this order).
type Status struct {
	ID       uint64
	Role     Role
	Leader   uint64 // valid when HasLead
	HasLead  bool
	Promised paxos.Ballot
	Commit   uint64
	Applied  uint64
	LastSlot uint64
	// Joining says the replica knows no configuration yet: it waits to be
	// added. Removed says the cluster removed it: it stopped.
	// ChangeInProgress says this leader has a configuration change or a
	// leadership transfer under way.
	Joining, Removed, ChangeInProgress bool
	// LeaderCommit is the highest commit index a leader told the replica:
	// how far the cluster committed, as far as it knows.
	LeaderCommit uint64
	// LeaderAddr is the leader's client address, if known.
	LeaderAddr string
}

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
