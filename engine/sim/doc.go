// Package sim is a deterministic simulator that tries to break the
// protocol of engine/paxos. It starts 3, 5 or 7 replicas of the real core in
// one goroutine with a fake network (per-message delay, loss, duplication,
// reordering; symmetric, one-way and flapping partitions; leader
// isolation; stale messages), a fake clock (per-replica rate skew,
// pauses), fake disks, crashes and restarts at random points, and clients
// that retry with the same (ClientID, Seq) until they are answered.
// Everything random comes from one seed, so a seed replays exactly.
//
// The faults that matter most for safety:
//
//   - Stale messages (a tenth of them in the stale profile, a little in
//     chaos): a share of the messages is held back for up to ten election
//     timeouts. One that comes due while its destination is down waits for
//     its next life and arrives just after the restart, as a transport's
//     queue drains on reconnecting. The stale profile also crashes a replica every few
//     hundred milliseconds, so that answers sent to a replica's previous
//     life, and Accepts of long-deposed leaders, reach its next one.
//   - Disk faults (the profiles with crashes): at a crash, of the writes
//     under way (several in the pipelined runtime), a random prefix
//     survives whole and the rest is lost, since the WAL writes each Ready
//     as one batch with a commit record, drops a torn batch whole at
//     replay, and the disk takes batches in order. An fsync error stops the
//     replica at once, as a crash does. Slow writes (5 to 50 ms) let a
//     pipelined replica act long before its state is durable.
//   - Crashes planted at points of the runtime loop: before sending, during
//     the write, after the write, after the replies; a leader that has just
//     learned a commit, a candidate that has just raised its promise and a
//     new leader are favourite victims.
//   - Lives that overlap (the rebirth profile): faults aimed at the
//     moments a replica's next life can be confused with its last. A
//     candidate's ballot write stalls; a new leader dies right after
//     sending its first proposals, the network holds those Accepts, and
//     its next life, with a clock that jumps, campaigns before anyone else
//     and just before they arrive. A leader that has just committed loses
//     its messages and dies after answering its clients, who then read;
//     the next leader and some followers stall on their first writes, so
//     that reads reach it while its commit index lags. Connections are
//     modelled as the engine's transport has them: what was sent to a life
//     that died is lost, and what peers queue for a replica that is down
//     reaches its next life after a reconnection backoff.
//   - Leaders deposed behind their backs (the deposed profile): nothing
//     reaches the leader and its transport queues what it sends, so it
//     goes on proposing while the others elect a new leader; the acceptors
//     that promise the new leader die right after promising, and the
//     deposed leader's queue drains into their next lives.
//
// Membership changes (Options.Reconfig, half the seeds, under every
// profile): while the faults last, the leader adds replicas (a new replica
// starts with an empty disk, joining, and catches up as a learner from a
// snapshot, which the leader takes if it has none), promotes learners once
// they are caught up, removes learners and voters, itself included, and
// transfers its leadership, one change at a time, with 1 to 7 voters and
// never an ID used twice (see reconfig.go). A removed replica runs on, its
// messages delivered and refused, until it says it was removed; then it
// is stopped for good.
//
// Checked after every step, as safety: no slot ever has two chosen values,
// where a value is chosen once a quorum of the voters of the slot's
// configuration has durably accepted one (ballot, value) proposal for it
// at some time, whatever they accepted later (the checker keeps every
// acceptance of the run); the configuration of a slot is computed from
// the chosen log itself, by the protocol's rule (one chosen in slot s
// governs from s+paxos.ConfigWindow), so a slot is judged once every slot
// a window before it has a chosen value. Replicas apply only the chosen
// values, so one history; a removed replica applies no slot its removal
// governs (but those it proposed itself, as the leader that removed
// itself), and once it says it was removed it neither leads nor sends a
// poll, a Prepare, an Accept or a heartbeat; no command executes twice; a
// restarted replica still holds every promise it reported in a message
// (Options.SkipPromiseCheck turns this one off). After the faults heal,
// as liveness: every outstanding request completes within a bounded
// simulated time, a leader exists, has no change under way, and every
// member of its configuration has applied its commit index; then, as
// safety, those members hold the same state and every put a client saw
// acknowledged is in it exactly once. Every run that passes has its client history checked for
// linearizability with porcupine, against the chat room's specification
// guided by the final log. Result.Kind says which kind of check a failure
// failed (Safety, Liveness, Refused, Other): a deliberate bug counts as
// caught only by a safety check or a porcupine verdict. TestCheckersCatchBugs
// turns on each deliberate bug the core and the options offer, one at a
// time, and requires it to be caught within 300 seeds (of the profile
// built to reach it, for those that need one).
//
// The tests run 1,000 seeds across the fault profiles:
//
//	go test ./engine/sim                                                         # the CI budget
//	go test ./engine/sim -run 'TestSimulation$' -sim.start=2000000 -sim.seeds=20000  # a soak, away from the CI seeds
//	go test ./engine/sim -run 'TestSimulation$' -sim.seed=42 -v                  # replay one seed, with its trace
//
// A failure prints its kind, the replay command and the tail of the seed's
// trace.
package sim
