package clientproto

import "github.com/paxos-go/paxos/engine/paxos"

// Status is a replica's state: what engine.Node.Status returns, and what
// the client port answers a status request with (msgpack, the fields in
// this order). engine.Status and client.Status are this type, so that the
// two cannot drift apart.
//
// Promised is the ballot: the highest this replica promised, under which
// a leader leads (a follower of a stable leader promised the leader's).
type Status struct {
	ID       uint64
	Role     paxos.Role
	Leader   uint64 // valid when HasLead
	HasLead  bool
	Promised paxos.Ballot
	Commit   uint64
	Applied  uint64
	LastSlot uint64
	// Joining says the replica knows no configuration yet: it waits to be
	// added (engine.Config.Join). Removed says the cluster removed it: it
	// stopped. ChangeInProgress says this leader has a configuration
	// change or a leadership transfer under way.
	Joining, Removed, ChangeInProgress bool

	// LeaderCommit is the highest commit index a leader told this replica
	// (its own, on the leader): how far the cluster committed, as far as
	// it knows, where Commit is how much of that it holds. Applied far
	// below it is a replica catching up (see engine.Node.Readiness).
	LeaderCommit uint64
	// LeaderAddr is the leader's client address, when the configuration
	// gives one (engine.Config.ClientAddrs, AddLearner): where a client
	// should go.
	LeaderAddr string
}
