// Package sim is a deterministic simulator that tries to break the
// protocol of engine/paxos. It runs 3, 5 or 7 replicas of the real core in
// one goroutine with a fake network (per-message delay, loss, duplication,
// reordering; symmetric, one-way and flapping partitions; leader
// isolation), a fake clock (per-replica rate skew, pauses), fake disks that
// keep only completed writes (a crash loses the write under way), crashes
// and restarts at random points, and clients that retry with the same
// (ClientID, Seq) until they are answered. Everything random comes from one
// seed, so a seed replays exactly.
//
// After every step it checks: no slot ever has two chosen values (a value
// is chosen when a majority of replicas durably hold it under one ballot);
// replicas apply only chosen values, and every replica's applied sequence
// is a prefix of one history; no command executes twice; a replica's
// promise never goes backwards, within a run or across a restart. After
// the faults heal, every outstanding request must complete within a bounded
// simulated time, the replicas must converge, and every put a client saw
// acknowledged must be in the log exactly once. Client histories of some
// runs are checked for linearizability with porcupine.
//
// The tests run at least 300 seeds across the fault profiles:
//
//	go test ./engine/sim                                  # the CI budget
//	go test ./engine/sim -run 'TestSimulation$' -sim.seeds=20000   # a soak
//	go test ./engine/sim -run 'TestSimulation$' -sim.seed=42 -v    # replay one seed, with its trace
//
// A failure prints the replay command and the tail of the seed's trace.
package sim
