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
package paxos
