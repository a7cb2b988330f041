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
//
// # Membership: the configuration is replicated state
//
// Which replicas vote (the voters), which only follow the log (the
// learners), and the addresses of each, are a Configuration. It changes
// only by a configuration value chosen in a slot, like any command, is
// kept with snapshots (ConfigState) and is recovered at restart from the
// snapshot and the log; Config.Peers only bootstraps a new cluster.
//
// The rule is the window rule of "Paxos Made Moderately Complex": a
// configuration chosen in slot s governs the slots from s+α on, where
// α = ConfigWindow (32) is a constant of the protocol. Each slot has
// exactly one configuration, a function of the values chosen in the
// slots at least α before it, so no slot is ever decided under two.
//
// Phase 2. The leader sends an Accept for slot t only when t <= commit+α
// (sendLimit), so every slot up to t-α is chosen and known to it: it knows
// the configuration of every slot it proposes, and counts slot t committed
// when a quorum of the voters of that configuration hold it. Its pipeline
// window (MaxInflightSlots) may not exceed α. The commit index advances
// range by range (committable): each range of slots under one
// configuration needs a quorum of that configuration.
//
// Phase 1. A candidate whose commit index is c knows the configurations
// of slots c+1 ... c+α exactly (they depend on committed slots). Slots
// after that may have been chosen by a leader that knew more, under a
// configuration chosen in a slot the candidate has not committed. So
// phase 1 grows its requirements as it learns (requiredConfigs): the
// configuration of each slot from c+1 to E+α is computed from the values
// the candidate will propose for the slots before it (the value reported
// under the highest ballot, its own, or a no-op), where E is the last slot
// any promise or its own log reports, and the candidate needs a quorum of
// promises from every one of them, asking new voters as they appear. It
// leads only once every configuration in that set has a quorum.
//
// Why that is safe, by induction on slots: suppose the candidate
// recovers correctly every slot before t. If some value v was chosen in
// slot t under a ballot b below the candidate's, then the leader of b
// knew every slot up to t-α chosen when it sent the Accept (the rule
// above), so the configuration that chose v is the one the values chosen
// up to t-α determine, which are the values the candidate recovered
// there: it computes the same configuration for t, and by the time it
// leads it holds promises from a quorum of it. That quorum meets the one
// that accepted v, so some promise reports v or a value of a higher
// ballot, which by the usual Paxos argument is v too; the candidate
// proposes v. Slots past E+α have the newest configuration of the set,
// whose quorum reported nothing there, so nothing was chosen there.
//
// A leader's own acceptance of its recovered tail happens before that
// gating: it is one acceptor, and a slot is chosen only by a quorum, which
// the other acceptors join only through gated Accepts (a one-voter
// configuration's voter is asked in every phase 1 that needs it).
//
// Reads. A read round is confirmed by a quorum of every configuration the
// leader needs (those of the slots it holds or may open): any later
// leader needs a quorum of at least one of them.
//
// A configuration value is a whole configuration, which the leader
// computes from the newest one it knows; one that is not that
// configuration with exactly one change made changes nothing when it is
// chosen (NextConfiguration). One change at a time keeps each leader's
// log to one, but two leaders can each propose one, from the same
// configuration, in two slots of a window, and a later phase 1 recover
// both (the first leader cut off before the second took over): taken
// whole, the second would undo the first, bringing a removed ID back.
// This is a function of the chosen log like the rest, so each slot still
// has one configuration.
//
// Learners receive Accepts, heartbeats and snapshots like voters; their
// promises and acceptances count in no quorum. ProposeChange promotes a
// learner only once it holds the log up to the change that added it and
// is within Config.CatchUpSlots of the commit index, so that adding a
// replica never costs availability. One change at a time: a change (or a
// leadership transfer) is refused with ErrChangeInProgress until the
// previous one governs. After a change is chosen the leader pads with
// no-ops up to the slot where it governs, so that it takes effect without
// traffic.
//
// A replica joining a cluster starts knowing no configuration: it never
// campaigns, takes no entries, and asks the leader for a snapshot
// (AcceptedNeedSnapshot), which carries the configuration state.
//
// Removal. A removed ID is never used again (Configuration.Removed): a
// replica that lost its disk forgot its promises and accepted values, and
// must come back under a new ID. A replica knows it is removed once its
// removal governs every slot after its commit index: it stops campaigning
// and Status says Removed. A leader that removed itself keeps leading
// until then, and then hands over (MsgTimeoutNow to the most up-to-date
// voter of the new configuration) and steps down. Replicas answer any
// message from a removed replica with MsgRemoved, so one that missed the
// end of its configuration still learns.
//
// Leadership transfer. The leader stops opening slots (proposals wait in
// its queue), waits until the target holds every slot it has, and sends
// MsgTimeoutNow; the target campaigns at once, without a poll, and its
// Prepare (Context PrepareTransfer) is answered even by acceptors that
// heard from the leader recently. The old leader promises the new ballot
// like any acceptor, and forwards the proposals that waited to the new
// leader when it learns of it. If no new leader takes over within two
// election timeouts, the leader carries on.
package paxos
