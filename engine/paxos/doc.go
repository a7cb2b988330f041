// Package paxos is the Multi-Paxos protocol of paxos-go as a pure,
// deterministic state machine: it does no I/O, reads no clock, starts no
// goroutine and draws randomness only from the *rand.Rand it is given, so
// a simulation replays exactly from its seed. The runtime (package engine)
// and the simulator (package engine/sim) drive the same code.
//
// # Vocabulary
//
// The words are those of "Paxos Made Moderately Complex"; for readers who
// know Raft:
//
//	ballot   {Round, Node}, ordered by Round then Node   (term)
//	slot     a position in the log, from 1               (index)
//	Prepare/Promise    phase 1a/1b                       (RequestVote)
//	Accept/Accepted    phase 2a/2b                       (AppendEntries)
//	chosen/committed   accepted by a majority under one ballot
//
// Every replica is an acceptor; at most one at a time is, in practice, the
// leader (the proposer that runs phase 2); the others follow it.
//
// # The protocol
//
// A follower that hears nothing from a leader for a randomised election
// timeout first polls the others (PrePrepare): a poll changes nothing, and
// an acceptor answers yes only if it has not heard from a live leader for
// an election timeout itself and the poller has committed at least as much
// as it has. With a majority of yeses, the poller runs phase 1 with a
// ballot above any it has seen, from its first uncommitted slot. For every
// slot from there to the last any promise reports, the new leader proposes
// again, under its own ballot, the value accepted under the highest ballot,
// or a no-op. A replica cut off from the others polls in vain but never
// raises its ballot, so it cannot disrupt the leader when it returns; a
// leader that does not hear from a majority for an election timeout steps
// down.
//
// Phase 2 is pipelined: the leader opens slots for pending proposals while
// fewer than MaxInflightSlots are uncommitted, packing the proposals that
// waited meanwhile into one slot (a batch encoded once, see value.go),
// and sends each follower one Accept per Ready with what it lacks. An
// acceptor takes entries only if it holds the slot before them under the
// same ballot, or knows that slot committed; then its log holds the
// leader's values up to the end of the message, and its Accepted says so
// cumulatively. The commit index advances to the highest slot a majority
// holds, and rides on the next Accept or heartbeat.
//
// Reads are linearizable through the log, or by read index: the leader
// confirms with a round of heartbeats that it still leads, and the read is
// served once the state machine has applied the commit index of the time
// the read arrived.
//
// # Using a RawNode
//
// The caller owns the loop (etcd's raft has the same shape):
//
//	for {
//		feed input: rn.Step(m), rn.Tick(), rn.Propose(batch), rn.ReadIndex(ctx)
//		if rn.HasReady() {
//			rd := rn.Ready()
//			send(rd.Messages)                   // at once; may overlap the write
//			persist(rd.HardState, rd.Entries)   // one atomic write, synced if rd.MustSync
//			send(rd.MessagesAfterPersist)       // only now: they promise durable state
//			apply(rd.Committed); serve(rd.ReadStates)
//			rn.Advance(rd)
//		}
//	}
//
// The split between Messages and MessagesAfterPersist is the heart of
// safety: a Promise or Accepted sent before the state it reports is
// durable is a promise a crash can take back. Keep it in one place.
//
// # Lives, late messages and strangers
//
// A message can arrive late, twice, or after its sender or receiver
// crashed and restarted. The rules that make that harmless:
//
//   - A ballot is never used twice. A proposer must remember every ballot
//     it used; here the memory is the durable promise: a candidate
//     promises its own ballot and sends Prepare only in
//     MessagesAfterPersist, after that promise is synced, and becomes
//     leader only with its own durable promise among the majority. A new
//     ballot is always above the promise a replica restarts with, so no
//     life reuses an earlier life's ballot, and nothing under a ballot
//     (Prepare, Accept, heartbeat) leaves a replica before that ballot is
//     durable there.
//   - Every id that matches a reply to a request is unique across lives:
//     Config.Incarnation, durable and growing, is the high 32 bits of poll
//     ids and read-index request ids; the runtime's snapshot transfer ids
//     are made the same way. A reply sent to an earlier life is ignored.
//   - One ballot has one value per slot. An acceptor offered another
//     value for a slot under the ballot it holds there, or a candidate
//     told two values under one ballot, refuses the message whole with
//     ErrProtocolViolation and counts it (Status.ProtocolViolations); it
//     never acknowledges it.
//   - A read-index answer is taken only from the leader followed, under
//     its ballot, for a request outstanding (at most 4096 are).
//   - A ballot round that cannot be incremented (2^64-1) is refused, so
//     the next ballot never wraps; a promise that would go back stops the
//     core with a panic, an assertion no input can reach.
package paxos
