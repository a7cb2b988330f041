package paxos

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Errors returned by Propose and ReadIndex.
var (
	// ErrNoLeader means no leader is known to forward to; try later or
	// another replica.
	ErrNoLeader = errors.New("paxos: no leader known")
	// ErrBusy means the leader holds MaxUncommittedBytes of proposals that
	// are pending or not yet committed; try later.
	ErrBusy = errors.New("paxos: too many uncommitted proposals")
	// ErrProtocolViolation is wrapped by Step's error for a message that
	// breaks the protocol in a way no correct replica can: another value
	// for a slot under a ballot that already has one there, or a ballot
	// round that cannot be incremented. The message is refused whole;
	// Status counts these. A runtime should log them loudly: they mean a
	// bug, a corrupted replica or a stranger on the network.
	ErrProtocolViolation = errors.New("paxos: protocol violation")
)

// maxFollowerReads bounds the reads a follower holds while it waits for
// its leader's read index; beyond it, ReadIndex returns ErrBusy, so that
// the newest reads fail fast and the ones waiting still complete.
const maxFollowerReads = 4096

// IDBits is how many low bits of a request id count requests within one
// life; the incarnation takes the bits above (see Config.Incarnation). The
// engine names its snapshot transfers the same way.
const IDBits = 40

const idBits = IDBits

// ErrIDsExhausted is returned by ReadIndex when this life of the replica
// has drawn every request id it has (2^40: a follower draws one per round
// trip to its leader, not one per read). Restart the replica: its next
// life draws from a fresh range.
var ErrIDsExhausted = errors.New("paxos: request ids of this incarnation exhausted; restart the replica")

// role is what a replica is doing besides being an acceptor, which every
// replica always is.
type role uint8

const (
	follower     role = iota // follows the leader it knows, if any
	preCandidate             // polls for an election (MsgPrePrepare)
	candidate                // runs phase 1 with its own ballot
	leader                   // runs phase 2
)

func (r role) String() string {
	return [...]string{"follower", "pre-candidate", "candidate", "leader"}[r]
}

// RawNode is one replica's protocol state: acceptor, and follower,
// candidate or leader. It is deterministic and single-threaded: it does no
// I/O, reads no clock and starts no goroutine. The caller feeds it input
// (Step, Tick, Propose, ReadIndex) and acts on its output (Ready) in the
// order Ready documents, then calls Advance. Do not call anything else
// between Ready and Advance.
type RawNode struct {
	cfg Config
	id  NodeID
	rng *rand.Rand

	// confs is the configuration state derived from the committed log: it
	// governs the slots after the commit index (see ConfigState). Empty
	// while the replica is joining (it knows no configuration yet).
	confs ConfigState

	// promised is the highest ballot this acceptor promised. It never
	// decreases, and is durable (with the log) before any Promise,
	// Accepted or heartbeat reply is sent.
	promised Ballot
	log      slotLog
	// acceptedUpTo is the top of the run of slots that hold the values of
	// the leader of promised.
	// Invariant: every slot in (log.commit, acceptedUpTo] holds the value
	// the leader of ballot promised has for it: accepted under promised,
	// or known to that leader as chosen.
	// Invariant: log.commit <= acceptedUpTo <= log.last().
	acceptedUpTo uint64
	// maxRound is the highest ballot round this replica has seen; a new
	// ballot goes above it.
	maxRound uint64

	role role
	// lead is the leader this replica follows (itself when leading), or
	// None.
	lead NodeID
	// electionElapsed counts ticks since this replica last heard from its
	// leader (or, for a leader, since it last checked its quorum).
	electionElapsed int
	// electionTimeout is the current randomised election timeout.
	electionTimeout int

	// Phase state: exactly the one matching role is set.
	poll *poll       // preCandidate
	camp *campaign   // candidate
	ldr  *leadership // leader

	// Output waiting for the next Ready. msgs may be sent at once;
	// msgsAfterPersist only once the state they report is durable.
	msgs             []Message
	msgsAfterPersist []Message
	readStates       []ReadState
	snapshotsToSend  []NodeID
	// prevHard is the hard state last handed out in a Ready.
	prevHard HardState

	// lastID is the last request id drawn (nextID): Incarnation<<idBits
	// plus a count, so ids never repeat across the lives of this replica.
	lastID uint64
	// freads are this follower's reads waiting for the leader's read index.
	freads followerReads
	// violations counts messages refused as protocol violations.
	violations uint64
	// elections counts the campaigns this replica started; leaderCommit is
	// the highest commit index a leader told it (for monitoring: see
	// Status).
	elections, leaderCommit uint64
	// syncCommit says the commit index passed the last slot a
	// configuration governed since the last Ready: the next HardState must
	// be synced, since the replies that follow report the commit index and
	// a leader counts on them to let the replicas that configuration
	// removed go (see retiring).
	syncCommit bool
	// capCommit, if not zero, is the commit index this replica persists
	// and applies at most, and capUntil the slot whose commit, told by a
	// leader, lifts it: a leader that removed itself lost its leadership
	// before the new configuration durably knew its commit index (see
	// retiring).
	capCommit, capUntil uint64
	// stash holds the proposals a leader had not put in slots when it lost
	// its leadership (a leadership transfer, usually): they go to the next
	// leader this replica learns of, so that they wait rather than fail.
	stash      [][]byte
	stashBytes int
	// told says a replica told this one it was removed (MsgRemoved).
	told bool
}

// NewRawNode returns a replica in the state cfg describes.
func NewRawNode(cfg Config) (*RawNode, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &RawNode{
		cfg:      cfg,
		id:       cfg.ID,
		confs:    cfg.ConfigState,
		rng:      cfg.Rand,
		promised: cfg.HardState.Promised,
		log:      newSlotLog(cfg.Compacted, cfg.Entries, cfg.HardState.Commit, cfg.Applied),
		lead:     None,
		prevHard: cfg.HardState,
	}
	n.maxRound = n.promised.Round
	n.lastID = cfg.Incarnation << idBits
	for _, e := range cfg.Entries {
		n.maxRound = max(n.maxRound, e.Ballot.Round)
	}
	n.resetAcceptedUpTo()
	if len(n.confs) > 0 {
		// ConfigState is the state after the applied slot (a snapshot's);
		// the committed slots after it may choose more.
		n.noteCommitted(max(n.log.applied, n.log.compacted.Slot))
	}
	n.becomeFollower(None)
	return n, nil
}

// resetAcceptedUpTo recomputes the run of slots accepted under promised,
// after a restart or a change of promise.
func (n *RawNode) resetAcceptedUpTo() {
	n.acceptedUpTo = n.log.commit
	for {
		e, ok := n.log.entry(n.acceptedUpTo + 1)
		if !ok || e.Ballot != n.promised {
			return
		}
		n.acceptedUpTo++
	}
}

// nextID draws a request id, unique across the lives of this replica. It
// reports false once this life's ids are used up: a count that carried
// into the incarnation bits would repeat the next life's ids.
func (n *RawNode) nextID() (uint64, bool) {
	if n.lastID&(1<<idBits-1) == 1<<idBits-1 {
		return 0, false
	}
	n.lastID++
	return n.lastID, true
}

// send queues m to go out at once.
func (n *RawNode) send(m Message) {
	m.From = n.id
	n.msgs = append(n.msgs, m)
}

// sendAfterPersist queues m to go out once the hard state and entries of
// the Ready it is handed out in are durable. Promise, Accepted and
// heartbeat replies go this way: each tells its receiver something about
// this acceptor's state (a promise, an acceptance) that the receiver will
// count on. If the reply left before the state was durable and this replica
// then crashed, it would come back without the promise or the entries,
// free to promise a lower ballot or accept another value for a slot a
// leader already counted as chosen with its help.
func (n *RawNode) sendAfterPersist(m Message) {
	m.From = n.id
	if n.cfg.Knobs.ReplyBeforePersist && m.To != n.id {
		n.msgs = append(n.msgs, m)
		return
	}
	n.msgsAfterPersist = append(n.msgsAfterPersist, m)
}

func (n *RawNode) becomeFollower(lead NodeID) {
	if lead != n.lead {
		// Answers to reads sent to the old leader will be refused (they
		// must come from the leader followed); forget them. Their callers
		// retry, as after a lost message.
		n.freads = followerReads{}
	}
	if n.ldr != nil && n.ldr.stepDown && !n.ldr.handsOver(n) {
		// A leader that removed itself loses its leadership before the new
		// configuration durably knows its commit index: it goes on
		// persisting and applying no more than they know, until a leader
		// tells it its last slot committed (see retiring).
		n.capCommit = max(n.prevHard.Commit, n.ldr.durableCommit(n), 1)
		n.capUntil = n.ldr.lastSlot
	}
	if n.ldr != nil && len(n.ldr.pending) > 0 {
		// Proposals this leader had not yet put in slots: keep them for the
		// next leader, so that they wait instead of failing.
		n.stash = append(n.stash, n.ldr.pending...)
		n.stashBytes += n.ldr.pendingBytes
	}
	n.role = follower
	n.lead = lead
	n.poll, n.camp, n.ldr = nil, nil, nil
	n.resetElectionTimer()
	if lead != None && lead != n.id && len(n.stash) > 0 {
		for _, v := range n.stash {
			n.send(Message{Type: MsgPropose, To: lead, Value: v})
		}
		n.stash, n.stashBytes = nil, 0
	}
}

func (n *RawNode) resetElectionTimer() {
	n.electionElapsed = 0
	n.electionTimeout = n.cfg.ElectionTicks + n.rng.IntN(n.cfg.ElectionTicks)
}

// promise raises the promised ballot to b (a no-op if it is already b).
// A promise never goes backwards: callers compare first, so a lower b is a
// bug in the core, and it stops here rather than break agreement.
func (n *RawNode) promise(b Ballot) {
	if b == n.promised {
		return
	}
	if b.Less(n.promised) {
		panic(fmt.Sprintf("paxos: replica %s would lower its promise from %s to %s", n.id, n.promised, b))
	}
	n.promised = b
	n.maxRound = max(n.maxRound, b.Round)
	n.resetAcceptedUpTo()
}

// Tick advances the replica's logical clock by one tick.
func (n *RawNode) Tick() {
	if n.role == leader {
		n.tickLeader()
		return
	}
	n.electionElapsed++
	n.freads.tick(n)
	if !n.canCampaign() {
		return
	}
	// A replica alone in its cluster has nobody to wait for (but a
	// candidate waits for its own promise to be durable).
	if n.electionElapsed >= n.electionTimeout || n.role == follower && n.alone() {
		n.startPoll()
	}
}

// heardFromLeader reports whether this replica heard from a live leader
// within the election timeout. While it has, it refuses to help any other
// replica become leader: that, with the poll before each election, keeps a
// replica that was cut off from disrupting a working leader when it comes
// back.
func (n *RawNode) heardFromLeader() bool {
	return n.role == leader || (n.lead != None && n.electionElapsed < n.cfg.ElectionTicks)
}

// Step feeds the replica a message from another replica (or from itself:
// the messages it sends itself in MessagesAfterPersist). Messages from
// replicas outside the cluster, and malformed ones, are dropped with an
// error.
func (n *RawNode) Step(m Message) error {
	if m.From == None {
		return errors.New("paxos: message from None")
	}
	if n.retired(m.From) && m.Type != MsgAccepted && m.Type != MsgHeartbeatResp && m.Type != MsgTimeoutNow {
		// (A leader still tells a replica it removed that its last slot is
		// committed, and takes its answers: see retiring. And a leader that
		// removed itself hands its leadership over once it is retired
		// everywhere that matters: handleTimeoutNow checks it is the
		// leader followed, under its ballot.)
		if n.mayDismiss(m.From) && m.Type != MsgRemoved {
			n.send(Message{Type: MsgRemoved, To: m.From})
		}
		return fmt.Errorf("paxos: %s from %s, which was removed from the cluster", m.Type, m.From)
	}
	if m.To != n.id {
		return fmt.Errorf("paxos: message for %s delivered to %s", m.To, n.id)
	}
	if err := checkEntries(m); err != nil {
		if errors.Is(err, ErrProtocolViolation) {
			n.violations++
		}
		return err
	}
	if !m.Ballot.canFollow() {
		n.violations++
		return fmt.Errorf("%w: %s from %s: ballot round %d cannot be incremented", ErrProtocolViolation, m.Type, m.From, m.Ballot.Round)
	}
	if !(n.cfg.Knobs.ReuseBallot && (m.Type == MsgPrePromise || m.Type == MsgPromise)) {
		n.maxRound = max(n.maxRound, m.Ballot.Round)
	}
	switch m.Type {
	case MsgPrePrepare:
		n.handlePrePrepare(m)
	case MsgPrepare:
		n.handlePrepare(m)
	case MsgAccept:
		return n.handleAccept(m)
	case MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgPrePromise:
		if n.role == preCandidate {
			n.handlePrePromise(m)
		}
	case MsgPromise:
		if n.role == candidate && m.Ballot == n.camp.ballot {
			return n.handlePromise(m)
		}
	case MsgAccepted:
		if n.role == leader && m.Ballot == n.promised {
			n.handleAccepted(m)
		}
	case MsgHeartbeatResp:
		if n.role == leader && m.Ballot == n.promised {
			n.handleHeartbeatResp(m)
		}
	case MsgNack:
		n.handleNack(m)
	case MsgPropose:
		if err := CheckValue(m.Value); err != nil {
			return err
		}
		if !isCommands(m.Value) {
			// Only a leader's own ProposeChange makes a configuration
			// slot (validated, one at a time), and only a leader opens
			// no-ops: a forwarded one is refused.
			n.violations++
			return fmt.Errorf("%w: Propose from %s carries a value that is not a batch of commands", ErrProtocolViolation, m.From)
		}
		if n.role == leader {
			return n.ldr.propose(n, m.Value)
		}
		// Not the leader (any more): drop it. Forwarding it on could loop
		// between two replicas with stale ideas of the leader; the client
		// retries instead.
	case MsgReadIndex:
		if n.role == leader {
			n.ldr.reads.request(n, m.From, m.Context)
		}
	case MsgReadIndexResp:
		n.handleReadIndexResp(m)
	case MsgTimeoutNow:
		n.handleTimeoutNow(m)
	case MsgRemoved:
		if len(n.confs) > 0 && !n.told {
			n.told = true
			n.becomeFollower(None)
		}
	default:
		return fmt.Errorf("paxos: unknown message type %s", m.Type)
	}
	return nil
}

// checkEntries checks the entries of an Accept or Promise: consecutive
// slots (after m.Slot, for an Accept) with well-formed values. A message
// that fails is dropped whole. Entries in any other message are a
// protocol violation.
//
// Nothing here or after allocates in proportion to the slot numbers a
// message names, only to its entries, which the decoder bounded by the
// frame's bytes: an Accept whose first slot is beyond the log's end is
// refused with a hint (a new leader starts every follower at its own
// commit index, which may be any distance ahead of a lagging follower:
// that is not a violation), and a Promise must report from the prepared
// slot on (handlePromise), so the campaign's merge grows only with the
// entries it holds.
func checkEntries(m Message) error {
	if len(m.Entries) > 0 && m.Type != MsgAccept && m.Type != MsgPromise {
		return fmt.Errorf("%w: %s from %s carries %d entries", ErrProtocolViolation, m.Type, m.From, len(m.Entries))
	}
	for i, e := range m.Entries {
		if m.Type == MsgAccept && e.Slot != m.Slot+1+uint64(i) {
			return fmt.Errorf("paxos: %s from %s: entry %d is for slot %d, want %d", m.Type, m.From, i, e.Slot, m.Slot+1+uint64(i))
		}
		if i > 0 && e.Slot != m.Entries[i-1].Slot+1 {
			return fmt.Errorf("paxos: %s from %s: entries for slots %d and %d are not consecutive", m.Type, m.From, m.Entries[i-1].Slot, e.Slot)
		}
		if err := CheckValue(e.Value); err != nil {
			return fmt.Errorf("paxos: %s from %s: slot %d: %w", m.Type, m.From, e.Slot, err)
		}
		if !e.Ballot.canFollow() {
			return fmt.Errorf("%w: %s from %s: slot %d: ballot round %d cannot be incremented", ErrProtocolViolation, m.Type, m.From, e.Slot, e.Ballot.Round)
		}
	}
	return nil
}

// handleNack learns that an acceptor promised a ballot above the one this
// replica is proposing with, and stops proposing.
func (n *RawNode) handleNack(m Message) {
	proposing := (n.role == candidate || n.role == leader) && n.promised.Less(m.Ballot)
	if proposing {
		n.becomeFollower(None)
	}
}

// Propose hands the replica an encoded batch of commands (see
// AppendCommand). A leader queues it for the next slot it opens; a follower
// forwards it to its leader. It returns ErrNoLeader when there is no leader
// to forward to, ErrBusy when the leader holds too much uncommitted work,
// and an error wrapping ErrBadValue for a malformed batch. A nil error does
// not mean the batch will commit: a leader may lose its leadership, and a
// forwarded batch its way. The client retries with the same (ClientID, Seq).
func (n *RawNode) Propose(value []byte) error {
	if err := CheckValue(value); err != nil {
		return err
	}
	if !isCommands(value) {
		return fmt.Errorf("%w: only batches of commands can be proposed (a no-op or a configuration was)", ErrBadValue)
	}
	switch {
	case n.role == leader:
		return n.ldr.propose(n, value)
	case n.lead != None:
		n.send(Message{Type: MsgPropose, To: n.lead, Value: value})
		return nil
	}
	return ErrNoLeader
}

// ReadIndex asks for a read index for a linearizable read: once the
// leader confirms it is still the leader, a ReadState with this context
// comes out in a Ready, and the read may be served once the state machine
// has applied its Index. It returns ErrNoLeader when there is no leader to
// ask. A request can be lost (the leader can change); the caller retries
// after a timeout.
func (n *RawNode) ReadIndex(context uint64) error {
	switch {
	case n.role == leader:
		n.ldr.reads.request(n, n.id, context)
		return nil
	case n.lead != None:
		return n.freads.add(n, context)
	}
	return ErrNoLeader
}

// Ready is what the replica asks its caller to do, in this order:
//
//  1. Send Messages. They depend on nothing being durable, so they may go
//     out while step 2 is under way (a leader's Accepts travel while it
//     writes its own log).
//  2. Persist HardState (if not nil) and Entries, in one atomic write,
//     synced if MustSync. Entries[0].Slot may be at or below the last slot
//     persisted: the entries from that slot on are replaced.
//  3. Only then send MessagesAfterPersist: replies that promise durable
//     state. Those addressed to this replica itself go back into Step.
//  4. Apply Committed, in order, and serve ReadStates once the state
//     machine has applied their Index.
//  5. Start sending the latest snapshot to each of SendSnapshots (see
//     ReportSnapshot), which need slots this leader compacted.
//  6. Call Advance.
type Ready struct {
	HardState            *HardState
	Entries              []Entry
	MustSync             bool
	Messages             []Message
	MessagesAfterPersist []Message
	Committed            []Entry
	ReadStates           []ReadState
	SendSnapshots        []NodeID
}

// IsEmpty reports whether the Ready asks for nothing.
func (rd Ready) IsEmpty() bool {
	return rd.HardState == nil && len(rd.Entries) == 0 && len(rd.Messages) == 0 &&
		len(rd.MessagesAfterPersist) == 0 && len(rd.Committed) == 0 && len(rd.ReadStates) == 0 &&
		len(rd.SendSnapshots) == 0
}

// HasReady reports whether Ready would ask for anything.
func (n *RawNode) HasReady() bool {
	hs := n.hardState()
	return len(n.msgs) > 0 || len(n.msgsAfterPersist) > 0 || len(n.readStates) > 0 || len(n.snapshotsToSend) > 0 ||
		hs != n.prevHard || n.log.unstable <= n.log.last() ||
		n.log.applying < hs.Commit || (n.role == leader && n.ldr.hasWork(n))
}

func (n *RawNode) hardState() HardState {
	hs := HardState{Promised: n.promised, Commit: n.log.commit}
	if n.capCommit > 0 {
		hs.Commit = min(hs.Commit, n.capCommit)
	}
	if n.role == leader && n.ldr.stepDown {
		// A leader whose removal governs every slot after its commit index
		// would restart saying it was removed, and be stopped, while the
		// new configuration may not know its last slot committed yet: it
		// keeps a commit index no higher than the one they durably know
		// (the commit index persisted is a hint that may lag; see
		// retiring), and hands out no more to apply (a snapshot of what it
		// applied would tell its next life the same).
		hs.Commit = min(hs.Commit, max(n.ldr.durableCommit(n), n.prevHard.Commit))
	}
	return hs
}

// Ready returns what the caller must do next (see Ready) and hands it out:
// the next Ready holds only what happens after this one.
func (n *RawNode) Ready() Ready {
	if n.role == leader && n.ldr.stepDown {
		n.stepDownIfRemoved()
	}
	if n.role == leader {
		n.ldr.flush(n)
	}
	var rd Ready
	hs := n.hardState()
	if hs.Promised.Less(n.prevHard.Promised) {
		panic(fmt.Sprintf("paxos: replica %s would persist promise %s below %s", n.id, hs.Promised, n.prevHard.Promised))
	}
	commitMoved := false
	if hs != n.prevHard {
		rd.HardState = &hs
		rd.MustSync = hs.Promised != n.prevHard.Promised || n.syncCommit
		commitMoved = hs.Commit != n.prevHard.Commit
		n.prevHard = hs
		n.syncCommit = false
	}
	rd.Entries = n.log.takeUnstable()
	if len(rd.Entries) > 0 {
		rd.MustSync = true
	}
	if n.role == leader && (len(rd.Entries) > 0 || commitMoved && n.ldr.countsCommits()) {
		// The leader counts its own acceptance only once it is durable,
		// through the same path as everyone else's; and its own commit
		// index too, when it counts those (see retiring).
		own := Message{Type: MsgAccepted, From: n.id, To: n.id, Ballot: n.promised, Slot: n.log.last(), Commit: hs.Commit}
		if n.cfg.Knobs.CountOwnAcceptEarly {
			n.handleAccepted(own) // the bug: count it now
		} else {
			n.msgsAfterPersist = append(n.msgsAfterPersist, own)
		}
	}
	rd.Messages, n.msgs = n.msgs, nil
	rd.MessagesAfterPersist, n.msgsAfterPersist = n.msgsAfterPersist, nil
	rd.Committed = n.log.takeCommittedTo(hs.Commit)
	rd.ReadStates, n.readStates = n.readStates, nil
	rd.SendSnapshots, n.snapshotsToSend = n.snapshotsToSend, nil
	return rd
}

// Advance tells the replica that the caller did what rd asked.
func (n *RawNode) Advance(rd Ready) {
	if k := len(rd.Committed); k > 0 {
		n.log.applied = max(n.log.applied, rd.Committed[k-1].Slot)
	}
}

// Status is a snapshot of a replica's state, for tests and monitoring.
type Status struct {
	ID           NodeID
	Role         string
	Lead         NodeID
	Promised     Ballot
	Commit       uint64
	Applied      uint64
	LastSlot     uint64
	AcceptedUpTo uint64
	// ProtocolViolations counts the messages refused because they break
	// the protocol (see ErrProtocolViolation).
	ProtocolViolations uint64
	// Elections counts the campaigns (phase 1 under a new ballot of its
	// own) this replica started since it was created. LeaderCommit is the
	// highest commit index a leader told it, or its own commit index if
	// higher: how far the cluster has committed, as far as it knows, where
	// Commit is what it holds of that. Both for monitoring.
	Elections, LeaderCommit uint64
	// Config is the newest configuration the committed log chose (empty
	// while Joining). Removed says this replica was removed from it and
	// has no part left: it knows the last slot it governed committed (a
	// leader tells a replica it removed only once the configuration after
	// it durably knows that too, and a leader that removed itself says so
	// once it has handed over), so that it may be stopped for good.
	// Joining says it knows no configuration yet: it waits for a leader's
	// snapshot.
	Config  Configuration
	Removed bool
	Joining bool
	// ChangeInProgress says the leader has a configuration change or a
	// leadership transfer under way (a new one would be refused).
	ChangeInProgress bool
}

// Status returns the replica's current state.
func (n *RawNode) Status() Status {
	st := Status{
		ID: n.id, Role: n.role.String(), Lead: n.lead, Promised: n.promised,
		Commit: n.log.commit, Applied: n.log.applied, LastSlot: n.log.last(), AcceptedUpTo: n.acceptedUpTo,
		ProtocolViolations: n.violations,
		Elections:          n.elections,
		LeaderCommit:       max(n.leaderCommit, n.log.commit),
		Removed:            n.removed() && n.role != leader && n.capCommit == 0,
		Joining:            len(n.confs) == 0,
	}
	if !st.Joining {
		st.Config = n.confs.Latest()
	}
	if n.role == leader {
		st.ChangeInProgress = n.ldr.changeInProgress(n)
	}
	return st
}

// IsLeader reports whether the replica is the leader.
func (n *RawNode) IsLeader() bool { return n.role == leader }

// Leader returns the leader the replica follows, or None.
func (n *RawNode) Leader() NodeID { return n.lead }
