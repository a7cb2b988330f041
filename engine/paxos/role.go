package paxos

// Role is what a replica is doing, as Node.Status reports it (engine.Role
// and client.Role are this type). It is a string, so that logs, JSON and
// the client port's status carry its name.
type Role string

// The roles. Every replica is also an acceptor, whatever its role.
const (
	// RoleFollower: a voter that follows the leader it knows, if any
	// (Status.HasLead says whether it knows one).
	RoleFollower Role = "follower"
	// RolePreCandidate: a voter that heard from no leader for an election
	// timeout and polls the others (pre-vote) before it starts an election,
	// so that a replica cut off does not disturb a working leader.
	RolePreCandidate Role = "pre-candidate"
	// RoleCandidate: a voter running phase 1 (Prepare) under a new ballot
	// of its own.
	RoleCandidate Role = "candidate"
	// RoleLeader: the replica whose ballot a majority promised; it
	// proposes, commits and answers linearizable reads.
	RoleLeader Role = "leader"
	// RoleLearner: a member that receives the log but does not vote and
	// never campaigns (added by AddLearner, not yet promoted).
	RoleLearner Role = "learner"
	// RoleJoining: a replica started with Config.Join that knows no
	// configuration yet: it waits for the cluster to add it.
	RoleJoining Role = "joining"
	// RoleRemoved: the cluster removed this replica for good; it has
	// stopped.
	RoleRemoved Role = "removed"
)

// RoleOf is the Role that st describes: Joining and Removed first, then a
// follower that is not a voter of the newest configuration is a learner,
// and otherwise the core's role.
func RoleOf(st Status) Role {
	switch {
	case st.Removed:
		return RoleRemoved
	case st.Joining:
		return RoleJoining
	case st.Role == string(RoleFollower) && !st.Config.IsVoter(st.ID):
		return RoleLearner
	}
	return Role(st.Role)
}
