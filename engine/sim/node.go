package sim

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
)

// node is a simulated replica: the real core, a fake disk that keeps only
// what a completed persist wrote, the chat state machine with its session
// table, and the bookkeeping a runtime does for clients.
type node struct {
	s  *Sim
	id paxos.NodeID
	// peers are the replicas the cluster started with, this one among
	// them; nil for a replica added at run time, which starts joining.
	peers []paxos.NodeID
	rn    *paxos.RawNode
	// confs is the configuration state after the applied slot, kept with
	// snapshots as the engine keeps it (see nextConfigs).
	confs paxos.ConfigState

	// stopped says the replica was removed from the cluster and then
	// stopped for good (see stop). saidRemoved says this life reported
	// Status().Removed, and stopping that its stop is scheduled.
	// wantChange asks its loop, as leader, for a membership change (see
	// reconfigure).
	stopped, saidRemoved, stopping, wantChange bool

	up, paused bool
	// busy is set between Ready and Advance, while a persist is under way;
	// input waits in inbox, ticks and requests meanwhile.
	busy bool
	// writes are the persists under way, oldest first: one at most, or,
	// with Options.Pipelined, as many as the replica queued.
	writes []*write
	// incarnation increases at every crash; events scheduled for an earlier
	// incarnation (ticks, persists, wake-ups) are ignored.
	incarnation int
	inbox       []paxos.Message
	// held are stale messages that came due while the replica was down,
	// for its next life (see network.deliverAfter).
	held []staleMessage
	// noticed[p] is when peer p noticed that its connection to this
	// replica broke, since its last crash (see network.deliverAfter).
	noticed     map[paxos.NodeID]Time
	ticks       int
	requests    []*request
	wakePending bool
	leading     bool // as of the last Ready, for counting elections
	skew        float64
	// leadSince is when the replica last became leader, and leadJudged
	// says the Rebirth profile already decided whether this leadership
	// ends at its first Accepts (see rebirthVictim).
	leadSince  Time
	leadJudged bool
	leadLast   uint64 // its last slot when it became leader
	// mute drops everything it sends to others, until it crashes or the
	// faults heal.
	mute bool
	// lastBeat is when, leading, it last sent its followers anything: the
	// moment their election timers last restarted.
	lastBeat Time
	// limbo holds the Accepts of this replica's last life that the network
	// still holds (Profile.Rebirth): they reach their destinations just
	// after its next life campaigns (see rebirth).
	limbo []paxos.Message

	// The fake disk: what completed persists wrote, the compaction point
	// and the latest snapshot. entries[i] is slot compacted.Slot+1+i.
	hard      paxos.HardState
	entries   []paxos.Entry
	compacted paxos.Compacted
	snap      *snapshot
	// appliedBallot is the ballot of the last applied slot's entry.
	appliedBallot paxos.Ballot
	// offered is the latest snapshot a leader sent, waiting for the loop.
	offered *snapshot

	// The state machine and the session table, rebuilt from the log at
	// every restart.
	chat     *chat
	sessions *session.Table

	// Requests proposed here, by (client, seq), and reads by context,
	// waiting for their slot to be applied.
	waiting   map[[2]uint64]*request
	reads     map[uint64]*request
	readIndex []readWait

	// promisedSent is the highest ballot this replica ever reported as
	// promised in a message, across incarnations.
	promisedSent paxos.Ballot
}

type readWait struct {
	index uint64
	req   *request
}

// snapshot is a replica's state machine and session table after a slot.
type snapshot struct {
	slot     uint64
	ballot   paxos.Ballot
	log      []string
	sessions []byte
	// confs is the configuration state after slot.
	confs paxos.ConfigState
}

func newNode(s *Sim, id paxos.NodeID, peers []paxos.NodeID) *node {
	n := &node{s: s, id: id, peers: peers}
	if sk := s.opts.Profile.Skew; sk > 0 {
		n.skew = (s.rng.Float64()*2 - 1) * sk
	}
	return n
}

// boot makes a RawNode from what the disk holds, with the state machine
// of the latest snapshot (or an empty one) that re-applies the committed
// log after it. As the engine does, a snapshot beyond the whole log (the
// crash came between writing it and compacting) compacts the log first.
func (n *node) boot() {
	n.chat = newChat()
	n.sessions = session.New(0)
	var applied uint64
	if sn := n.snap; sn != nil {
		n.restore(sn)
		applied = sn.slot
		if sn.slot > n.compacted.Slot+uint64(len(n.entries)) {
			n.compactDisk(paxos.Compacted{Slot: sn.slot, Ballot: sn.ballot})
		}
	}
	hard := n.hard
	if n.s.opts.ForgetPromise {
		hard.Promised = paxos.Ballot{}
	}
	var confs paxos.ConfigState
	if n.snap != nil {
		confs = n.snap.confs
	}
	n.confs = confs
	if len(n.confs) == 0 && len(n.peers) > 0 {
		n.confs = paxos.Bootstrap(n.peers, nil, nil)
	}
	rn, err := paxos.NewRawNode(paxos.Config{
		ID:          n.id,
		Peers:       n.peers,
		ConfigState: confs,
		Rand:        rand.New(rand.NewPCG(n.s.opts.Seed, uint64(n.id)<<32|uint64(n.incarnation))),
		// The simulated disk's life counter: incremented at every crash,
		// so durable before the next life starts.
		Incarnation: uint64(n.incarnation) + 1,
		HardState:   hard,
		Compacted:   n.compacted,
		Entries:     slices.Clone(n.entries),
		Applied:     applied,
		Knobs:       n.s.opts.Knobs,
	})
	if err != nil {
		n.s.fail(Other, "replica %s cannot restart: %v", n.id, err)
		return
	}
	n.rn = rn
	n.up, n.busy, n.paused, n.leading, n.mute, n.saidRemoved = true, false, false, false, false, false
	n.writes = nil
	n.inbox, n.ticks, n.requests, n.offered = nil, 0, nil, nil
	n.waiting = map[[2]uint64]*request{}
	n.reads = map[uint64]*request{}
	n.readIndex = nil
	n.checkPromise()
}

// checkPromise checks, at a restart, that the replica did not forget a
// promise it reported in a message in an earlier life: its promise must
// be at least the highest ballot it ever reported. (Within one life the
// core never lowers its promise, and asserts so itself.)
func (n *node) checkPromise() {
	if n.s.opts.SkipPromiseCheck {
		return
	}
	if p := n.rn.Status().Promised; p.Less(n.promisedSent) {
		n.s.fail(Safety, "replica %s restarted with promise %s, below the %s it had promised in a message: a promise went backwards",
			n.id, p, n.promisedSent)
	}
}

func (n *node) start() {
	n.boot()
	n.scheduleTick()
}

func (n *node) scheduleTick() {
	inc := n.incarnation
	interval := Time(float64(tickInterval) * (1 + n.skew))
	n.s.after(interval, func() {
		if !n.up || n.incarnation != inc {
			return
		}
		n.ticks++
		n.wake()
		n.scheduleTick()
	})
}

// crash loses everything but the disk: memory, the messages and requests
// waiting, and the writes under way that had not reached the disk.
func (n *node) crash() { n.crashLosing(false) }

// crashLosing crashes the replica; with stalled set, the writes from the
// first stalled one on are lost (see settleWrites).
func (n *node) crashLosing(stalled bool) {
	n.s.tracef("crash %s", n.id)
	n.s.stats.Crashes++
	n.settleWrites(stalled)
	n.up = false
	n.incarnation++
	n.noticed = map[paxos.NodeID]Time{}
}

func (n *node) restart() {
	if n.stopped {
		return
	}
	n.s.tracef("restart %s (promised %s, %d entries, commit %d)", n.id, n.hard.Promised, len(n.entries), n.hard.Commit)
	n.boot()
	n.scheduleTick()
	n.wake()
	n.s.net.releaseHeld(n)
	if d := n.s.deposed; d != nil {
		if link := [2]paxos.NodeID{d.leader, n.id}; n.s.net.stuck[link] {
			n.s.net.unstick(link) // it reconnects to the new life
		}
	}
}

func (n *node) pause() {
	n.s.tracef("pause %s", n.id)
	n.paused = true
}

func (n *node) resume() {
	n.s.tracef("resume %s", n.id)
	n.paused = false
	n.wake()
}

// life numbers the replica's lives and the gaps between them:
// 2*incarnation while it runs, 2*incarnation+1 while it is down. A message
// stamped with its destination's number at send time and delivered to a
// running replica whose number differs reached a later life than the one
// it was sent to (or, sent to a replica that was down, the next life).
func (n *node) life() int {
	if n.up {
		return 2 * n.incarnation
	}
	return 2*n.incarnation + 1
}

// receive takes a message off the network.
func (n *node) receive(m paxos.Message) {
	if !n.up {
		return
	}
	n.inbox = append(n.inbox, m)
	n.wake()
}

// submit takes a client request.
func (n *node) submit(r *request) {
	if !n.up {
		return // lost with the process; the client times out
	}
	n.requests = append(n.requests, r)
	n.wake()
}

// wake schedules the replica to run its loop now, once.
func (n *node) wake() {
	if n.wakePending {
		return
	}
	n.wakePending = true
	inc := n.incarnation
	n.s.after(0, func() {
		n.wakePending = false
		if n.incarnation == inc {
			n.loop()
		}
	})
}

// loop is one turn of the runtime: feed the core everything that arrived,
// then act on its Ready.
func (n *node) loop() {
	if !n.up || n.paused || n.busy || n.s.err != nil {
		return
	}
	inbox, ticks, requests := n.inbox, n.ticks, n.requests
	n.inbox, n.ticks, n.requests = nil, 0, nil
	if sn := n.offered; sn != nil {
		n.offered = nil
		if n.installSnapshot(sn) {
			return // crashed
		}
	}
	for _, m := range inbox {
		if err := n.rn.Step(m); err != nil {
			if n.s.opts.Reconfig && n.rn.Status().Config.IsRemoved(m.From) {
				// A removed replica that does not know it yet: refused,
				// as it must be.
				n.s.stats.FromRemoved++
				if n.s.opts.Trace {
					n.s.tracef("%s refuses %s: its sender was removed", n.id, paxos.DescribeMessage(m))
				}
				continue
			}
			// The run goes on: a refusal is the core defending itself, and
			// the safety checks judge whether the defence held. A run with
			// a refusal and no other violation still fails, as Refused.
			n.s.refused(fmt.Sprintf("replica %s refused %s: %v", n.id, paxos.DescribeMessage(m), err))
		}
	}
	for i := 0; i < ticks; i++ {
		n.rn.Tick()
	}
	for _, r := range requests {
		n.propose(r)
	}
	if n.wantChange {
		n.wantChange = false
		n.reconfigure()
	}
	if !n.rn.HasReady() {
		return
	}
	rd := n.rn.Ready()
	newLeader := n.noteLeadership()
	if n.s.opts.Reconfig && n.noteRemoved(rd) {
		return // the run failed
	}
	if n.s.opts.Trace {
		n.s.tracef("%s ready: %s", n.id, describeReadyShort(rd))
	}
	crashAt := n.crashPoint(rd, newLeader)
	if n.diesAfterPromising(rd) {
		crashAt = crashAfterReplies
	}
	reborn := n.rebirthVictim(rd, newLeader)
	if reborn != rebirthNone {
		crashAt = noCrash
	}
	if crashAt == crashBeforeSend {
		n.crashAndRestart()
		return
	}
	switch {
	case n.losesCommitAnnouncement(rd):
		n.s.tracef("%s loses the messages announcing commit %d, and will die", n.id, rd.HardState.Commit)
		n.mute = true
		n.s.readsUntil = n.s.now + 400*Millisecond
		n.s.after(n.s.between(2*Millisecond, 10*Millisecond), func() {
			if n.up && !n.s.healed {
				n.crashAndRestart()
			}
		})
	case reborn == rebirthLeader:
		// Its Accepts leave; the network holds them until its next life
		// campaigns. Its other messages (heartbeats) go as usual.
		for _, m := range rd.Messages {
			if m.Type == paxos.MsgAccept && len(m.Entries) > 0 && m.To != n.id {
				n.s.stats.Messages++
				n.limbo = append(n.limbo, m)
				continue
			}
			n.send(m)
		}
	default:
		for _, m := range rd.Messages {
			n.send(m)
		}
	}
	var stall Time
	switch reborn {
	case rebirthStall, rebirthCandidate:
		stall = n.s.between(5*Millisecond, 50*Millisecond)
	case rebirthRecoveryStall:
		stall = n.s.between(20*Millisecond, 150*Millisecond)
	default:
		stall = n.sharedStall(rd)
	}
	w := n.queueWrite(rd, crashAt, stall)
	if reborn == rebirthRecoveryStall {
		st := n.rn.Status()
		voters := len(st.Config.Voters())
		n.s.recoveryStall = recoveryStall{ballot: st.Promised, until: w.done, followers: max(voters-1-(voters/2+1), 0)}
	}
	switch {
	case reborn == rebirthLeader:
		n.s.tracef("%s dies right after sending its first Accepts as leader with %s (%d held by the network; durable promise %s)", n.id, n.rn.Status().Promised, len(n.limbo), n.hard.Promised)
		n.rebirth()
		return
	case reborn == rebirthCandidate:
		n.crashBefore(w.done, true)
	case crashAt == crashDuringPersist:
		n.crashBefore(w.done, false)
	}
	if !n.s.opts.Pipelined {
		// The persist takes the disk's time; until it completes, the
		// replica takes no input.
		n.busy = true
		return
	}
	// The engine's runtime: the write is queued, in order, and the replica
	// goes on; committed entries are applied at once; the replies that
	// wait for the write go out when it completes.
	n.applyReady(rd)
	n.rn.Advance(rd)
	n.sendSnapshots(rd)
	if n.maybeSnapshot() {
		return // crashed
	}
	n.wake()
}

// noteLeadership counts elections, and reports whether the replica has
// just become leader.
func (n *node) noteLeadership() bool {
	leading := n.rn.IsLeader()
	if leading == n.leading {
		return false
	}
	n.leading = leading
	if leading {
		n.s.stats.Elections++
		n.s.tracef("%s leads with ballot %s", n.id, n.rn.Status().Promised)
		if n.s.transferTo == n.id {
			n.s.stats.Transfers++
			n.s.transferTo = paxos.None
		}
	}
	return leading
}

// crashBefore crashes the replica at a random moment before t, when the
// write it has just queued completes: its messages are out, the write is
// under way. Nothing happens if it crashed meanwhile or the faults healed.
// A rebirth victim comes back at once (see rebirth).
func (n *node) crashBefore(t Time, reborn bool) {
	inc := n.incarnation
	n.s.at(n.s.between(n.s.now, t-1), func() {
		if n.incarnation == inc && n.up && !n.s.healed {
			if reborn {
				n.rebirth()
			} else {
				n.crashAndRestart()
			}
		}
	})
}

// What the Rebirth profile does to a candidate or a new leader.
const (
	rebirthNone = iota
	// rebirthStall: the write of the candidate's ballot stalls (an fsync
	// latency spike); nothing crashes.
	rebirthStall
	// rebirthRecoveryStall: the first write of a new leader, of what its
	// phase 1 recovered, stalls 20 to 150 ms; it goes on leading
	// meanwhile (in the pipelined runtime), and its commit index lags.
	rebirthRecoveryStall
	// rebirthCandidate: the candidate dies during that stalled write, with
	// its Prepares (if they leave before the write completes) on the wire.
	rebirthCandidate
	// rebirthLeader: a new leader dies right after sending Accepts of its
	// first new proposals, with the writes it had under way from the first
	// stalled one on lost; the network holds those Accepts until its next
	// life campaigns.
	rebirthLeader
)

// rebirthVictim decides, in the Rebirth profile, what becomes of a replica
// that has just raised its promise to its own ballot (a candidate), or is
// a new leader.
//
// The write of a candidate's ballot stalls most of the time: a correct
// candidate sends no Prepare until it completes, so it only campaigns
// slower, but in the pipelined runtime one that does not wait may lead
// and propose before its ballot is durable. A tenth of the candidates die
// during that stall. A new leader's first write of what its phase 1
// recovered stalls most of the time, and so do the same writes of enough
// of its followers that it has a majority for heartbeats but not for
// commits (see recoveryStall): it leads meanwhile, with a commit index
// that may lag what its predecessor told clients. A new leader that sends
// Accepts of new proposals within 50 ms of its election dies right after
// sending them, nearly always if the write of its ballot is still stalled,
// a fifth of the time otherwise: its next life may campaign with that
// ballot again, and the network holds those Accepts until then (see
// rebirth).
func (n *node) rebirthVictim(rd paxos.Ready, newLeader bool) int {
	if !n.s.opts.Profile.Rebirth || n.s.healed {
		return rebirthNone
	}
	if newLeader {
		n.leadSince, n.leadJudged, n.leadLast = n.s.now, false, n.rn.Status().LastSlot
	}
	if !n.rn.IsLeader() {
		if rd.HardState != nil && rd.HardState.Promised.Node == n.id && rd.MustSync {
			n.releaseLimbo() // see rebirth
			switch r := n.s.rng.Float64(); {
			case r < 0.1:
				return rebirthCandidate
			case r < 0.8:
				return rebirthStall
			}
		}
		return rebirthNone
	}
	if newLeader && len(rd.Entries) > 0 && n.s.rng.Float64() < 0.8 {
		return rebirthRecoveryStall
	}
	if n.leadJudged || n.s.now-n.leadSince > 50*Millisecond || !n.proposesNew(rd) {
		return rebirthNone
	}
	n.leadJudged = true
	chance := 0.2
	if n.hard.Promised != n.rn.Status().Promised {
		chance = 0.9 // the write of its ballot is still stalled
	}
	if n.s.rng.Float64() < chance {
		return rebirthLeader
	}
	return rebirthNone
}

// recoveryStall is a stall of the disks a new leader and some of its
// followers share (see rebirthVictim): the followers' first writes of its
// entries end when the leader's does, until enough of them stalled that
// the leader, with the others, has a majority for its heartbeats but not
// for its commits.
type recoveryStall struct {
	ballot    paxos.Ballot
	until     Time
	followers int
}

// sharedStall returns how long this Ready's write stalls if it is a
// follower's write of entries a stalled new leader sent (see
// recoveryStall), or 0.
func (n *node) sharedStall(rd paxos.Ready) Time {
	rs := &n.s.recoveryStall
	if rs.followers == 0 || n.s.now >= rs.until || n.s.healed || len(rd.Entries) == 0 || rd.Entries[len(rd.Entries)-1].Ballot != rs.ballot {
		return 0
	}
	rs.followers--
	return rs.until - n.s.now
}

// proposesNew reports whether a Ready sends Accepts with entries beyond
// what the replica held when it became leader: new proposals, not the
// values its phase 1 recovered.
func (n *node) proposesNew(rd paxos.Ready) bool {
	for _, m := range rd.Messages {
		if m.Type == paxos.MsgAccept && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Slot > n.leadLast {
			return true
		}
	}
	return false
}

// rebirth crashes the replica, losing every write under way from the
// first stalled one on (a stalled fsync that never completed), and brings
// it back when the others stop refusing polls for the leader they heard
// last (an election timeout after its last heartbeats, if it led), at
// least 20 ms later, with a clock that jumps ahead at once: its next life
// polls before the others' own, slower timers fire. That next life is the
// one that must not mistake anything for its last life's. The Accepts its
// last life sent that the network held (limbo) arrive 1 to 8 ms after its
// next life campaigns (or 30 ms after the restart): around the Promises,
// usually before its first Accepts.
func (n *node) rebirth() {
	n.s.stats.Rebirths++
	refusalEnds := n.s.now + paxos.DefaultElectionTicks*tickInterval
	if n.rn.IsLeader() {
		refusalEnds = n.lastBeat + paxos.DefaultElectionTicks*tickInterval + n.s.opts.Profile.MaxDelay
	}
	n.crashLosing(true)
	limbo := n.limbo
	n.limbo = nil
	back := max(refusalEnds+n.s.between(0, Millisecond), n.s.now+20*Millisecond)
	n.s.at(back, func() {
		if !n.up {
			n.restart()
			if !n.s.healed {
				n.s.tracef("%s: clock jumps", n.id)
				n.ticks += 2 * paxos.DefaultElectionTicks
				n.wake()
			}
		}
		n.limbo = limbo
		n.s.after(30*Millisecond, n.releaseLimbo)
	})
}

// releaseLimbo delivers the Accepts of its last life that the network
// held, 1 to 8 ms from now.
func (n *node) releaseLimbo() {
	for _, m := range n.limbo {
		n.s.after(n.s.between(Millisecond, 8*Millisecond), func() {
			if n.s.opts.Trace {
				n.s.tracef("the network releases %s of %s's last life", paxos.DescribeMessage(m), n.id)
			}
			n.s.net.deliverAfter(0, m, false)
		})
	}
	n.limbo = nil
}

// losesCommitAnnouncement decides, in the Rebirth profile, whether a
// leader that has just advanced its commit index loses this Ready's
// messages (which carry it), and every later one, and dies a few
// milliseconds later, after answering its clients: the next leader's
// commit index lags what clients were told, until it commits what its
// phase 1 found. The clients then read by read index for a while (they
// check what they were told), so that some of their reads reach the next
// leader, or a follower that forwards them, while it lags.
func (n *node) losesCommitAnnouncement(rd paxos.Ready) bool {
	p := n.s.opts.Profile
	return p.Rebirth && !n.s.healed && n.rn.IsLeader() && rd.HardState != nil &&
		rd.HardState.Commit > n.hard.Commit && len(rd.Messages) > 0 && n.s.rng.Float64() < 0.05
}

// applyReady applies a Ready's committed entries and takes its read
// states.
func (n *node) applyReady(rd paxos.Ready) {
	for _, e := range rd.Committed {
		n.apply(e)
	}
	for _, r := range rd.ReadStates {
		if req, ok := n.reads[r.Context]; ok {
			delete(n.reads, r.Context)
			n.readIndex = append(n.readIndex, readWait{index: r.Index, req: req})
		}
	}
	n.serveReads()
}

// Points of the runtime loop where a crash can be planted.
const (
	noCrash = iota
	crashBeforeSend
	crashDuringPersist // the messages are out, the write under way
	crashAfterPersist  // the write is durable, no reply has gone out
	crashAfterReplies  // the replies are out, nothing applied
)

// crashPoint decides whether this Ready ends in a crash, and where. In the
// profiles with crashes, three moments are favourite victims. A leader
// that has just learned slots are chosen dies before anyone else learns
// it, and the next leader must find those slots in phase 1. A replica that
// has just raised its promise to its own ballot (a candidate starting
// phase 1), or has just become leader, dies with its Prepares or Accepts
// on the wire and its promise or its first entries maybe not yet durable:
// its next life must not reuse the ballot its previous life proposed
// with, and late answers to that life must not count.
func (n *node) crashPoint(rd paxos.Ready, newLeader bool) int {
	if !n.s.opts.Profile.Crashes || n.s.healed {
		return noCrash
	}
	chance := 0.002
	switch hs := rd.HardState; {
	case n.rn.IsLeader() && hs != nil && hs.Commit > n.hard.Commit:
		chance = 0.03
	case newLeader:
		chance = 0.05
	case !n.rn.IsLeader() && hs != nil && hs.Promised.Node == n.id && rd.MustSync:
		chance = 0.05
	}
	if n.s.rng.Float64() >= chance {
		return noCrash
	}
	return crashBeforeSend + n.s.rng.IntN(4)
}

// crashAndRestart crashes the replica and has it restarted later. A
// planted crash schedules the restart when it happens, not when it is
// planted: the write it waits for may take longer than the restart delay.
func (n *node) crashAndRestart() {
	n.crash()
	n.restartLater()
}

// restartLater restarts the replica, if it is down by then, after 20 to
// 400 ms: the time a supervisor takes to notice and restart a process.
func (n *node) restartLater() {
	n.s.after(n.s.between(20*Millisecond, 400*Millisecond), func() {
		if !n.up {
			n.restart()
		}
	})
}

func (n *node) send(m paxos.Message) {
	switch m.Type {
	case paxos.MsgPromise, paxos.MsgAccepted, paxos.MsgHeartbeatResp:
		if n.promisedSent.Less(m.Ballot) {
			n.promisedSent = m.Ballot
		}
	}
	if m.To == n.id {
		n.inbox = append(n.inbox, m)
		return
	}
	if n.mute && !n.s.healed {
		n.s.stats.Messages++
		n.s.stats.Dropped++
		return
	}
	if m.Type == paxos.MsgHeartbeat || m.Type == paxos.MsgAccept {
		n.lastBeat = n.s.now
	}
	n.s.net.send(m)
}

// write is a Ready's persist under way: its HardState and Entries, which
// the WAL writes as one batch.
type write struct {
	rd      paxos.Ready
	crashAt int  // where the Ready's planted crash comes, if any
	done    Time // when the write completes, unless the replica crashes first
	stalled bool // it takes 5 ms or more: an fsync that stalls
}

// queueWrite starts rd's write. It completes 50 to 1000 us later, and
// after the writes queued before it: the WAL writes batches in order.
func (n *node) queueWrite(rd paxos.Ready, crashAt int, stall Time) *write {
	d := n.s.between(50, 1000)
	if p := n.s.opts.Profile.SlowDisk; stall > 0 || p > 0 && !n.s.healed && n.s.rng.Float64() < p {
		d = cmp.Or(stall, n.s.between(5*Millisecond, 50*Millisecond))
	}
	done := n.s.now + d
	if k := len(n.writes); k > 0 {
		done = max(done, n.writes[k-1].done+1)
	}
	w := &write{rd: rd, crashAt: crashAt, done: done, stalled: d >= 5*Millisecond}
	n.writes = append(n.writes, w)
	inc := n.incarnation
	n.s.at(done, func() {
		if n.incarnation == inc && n.up {
			n.writeDone(w)
		}
	})
	return w
}

// writeDone completes the oldest write under way, w. In the profiles with
// fsync errors, the write may fail instead: the replica stops at once, as
// the engine does, since it cannot know what reached the disk. No reply
// that waits for this write or a later one goes out, nothing more is
// applied, and a supervisor restarts it later with whatever the disk holds
// (see settleWrites).
func (n *node) writeDone(w *write) {
	if p := n.s.opts.Profile.FsyncErrors; p > 0 && !n.s.healed && n.s.rng.Float64() < p {
		n.s.stats.FsyncErrors++
		n.s.tracef("%s: fsync error", n.id)
		n.crashAndRestart()
		return
	}
	n.writes = n.writes[1:]
	n.persisted(w.rd, w.crashAt)
}

// settleWrites decides, at a crash, what became of the writes under way.
// The WAL writes each Ready as one batch ending in a commit record, and at
// replay drops a torn batch whole, so a write is never half there: it
// survives whole or is lost whole. The disk takes them in order, so the
// survivors are a prefix: the first few may have reached the platter
// although the process never learned it (no reply that waits for them
// went out), the rest are lost. Surviving entries are durable acceptances
// like any other, for the checker.
//
// With stalled set (a directed crash during a stalled fsync), a stalled
// write never completed, nor did any write queued after it: the survivors
// are a prefix of the writes before the first stalled one.
func (n *node) settleWrites(stalled bool) {
	limit := len(n.writes)
	if stalled {
		for i, w := range n.writes {
			if w.stalled {
				limit = i
				break
			}
		}
	}
	k := 0
	if limit > 0 {
		k = n.s.rng.IntN(limit + 1)
	}
	for _, w := range n.writes[:k] {
		n.writeDisk(w.rd)
	}
	n.s.stats.TornWrites += k
	n.s.stats.LostWrites += len(n.writes) - k
	if k > 0 || len(n.writes) > 0 {
		n.s.tracef("%s: %d of %d writes under way survive the crash", n.id, k, len(n.writes))
	}
	n.writes = nil
}

// writeDisk puts a Ready's HardState and Entries on the fake disk. It
// reports false (after failing the run) if the entries would leave a hole.
func (n *node) writeDisk(rd paxos.Ready) bool {
	if rd.HardState != nil {
		n.hard = *rd.HardState
	}
	// Entries the log was compacted past since this write was queued are
	// dropped, as the WAL does with a write queued before a compaction.
	ents := rd.Entries
	for len(ents) > 0 && ents[0].Slot <= n.compacted.Slot {
		ents = ents[1:]
	}
	if len(ents) > 0 {
		first, base := ents[0].Slot, n.compacted.Slot
		if first > base+uint64(len(n.entries))+1 {
			n.s.fail(Other, "replica %s persisted slot %d after slot %d: a hole", n.id, first, base+uint64(len(n.entries)))
			return false
		}
		n.entries = append(n.entries[:first-base-1], ents...)
		n.s.check.persisted(n.id, ents)
	}
	return true
}

// persisted finishes a Ready once its write is durable: the rest of the
// Ready in the order the core asks for.
func (n *node) persisted(rd paxos.Ready, crashAt int) {
	if !n.writeDisk(rd) {
		return
	}
	if crashAt == crashAfterPersist {
		n.crashAndRestart()
		return
	}
	for _, m := range rd.MessagesAfterPersist {
		n.send(m)
	}
	if crashAt == crashAfterReplies {
		n.crashAndRestart()
		return
	}
	if n.s.opts.Pipelined {
		n.wake() // for the messages it sent itself
		return
	}
	n.applyReady(rd)
	n.rn.Advance(rd)
	n.busy = false
	n.sendSnapshots(rd)
	if n.maybeSnapshot() {
		return // crashed
	}
	n.wake()
}

// propose hands a client request to the core.
func (n *node) propose(r *request) {
	if r.read && n.s.opts.StaleReads {
		r.client.reply(r, reply{resp: []byte(n.chat.get())})
		return
	}
	if r.read {
		n.s.nextCtx++
		ctx := n.s.nextCtx
		if err := n.rn.ReadIndex(ctx); err != nil {
			r.client.reply(r, reply{err: err})
			return
		}
		n.reads[ctx] = r
		return
	}
	if err := n.rn.Propose(paxos.AppendCommand(nil, r.cmd)); err != nil {
		if !errors.Is(err, paxos.ErrNoLeader) && !errors.Is(err, paxos.ErrBusy) {
			n.s.fail(Other, "replica %s: Propose: %v", n.id, err)
		}
		r.client.reply(r, reply{err: err})
		return
	}
	n.waiting[[2]uint64{r.cmd.ClientID, r.cmd.Seq}] = r
}

// apply applies a committed slot through the session table, and answers
// the clients waiting here.
func (n *node) apply(e paxos.Entry) {
	if e.Slot <= n.chat.applied {
		return // covered by the snapshot it restarted from
	}
	n.s.check.applied(n.id, e)
	if n.s.err != nil {
		return
	}
	defer func() { n.chat.applied, n.appliedBallot = e.Slot, e.Ballot }()
	n.confs = n.s.nextConfigs(n.confs, e.Slot, e.Value)
	if n.s.opts.SkipSessionCheck {
		_ = paxos.ForEachCommand(e.Value, func(c paxos.Command) bool {
			n.answer(c, reply{resp: n.chat.execute(n, c.Payload)})
			return true
		})
		return
	}
	err := n.sessions.Apply(e.Slot, e.Value, func(_ uint64, payload []byte) []byte {
		return n.chat.execute(n, payload)
	}, func(r session.Result) {
		switch r.Outcome {
		case session.Execute, session.Duplicate:
			n.answer(r.Command, reply{resp: r.Response})
		default:
			n.answer(r.Command, reply{err: errors.New(r.Outcome.String())})
		}
	})
	if err != nil {
		n.s.fail(Other, "replica %s cannot apply slot %d: %v", n.id, e.Slot, err)
	}
}

func (n *node) answer(c paxos.Command, rep reply) {
	key := [2]uint64{c.ClientID, c.Seq}
	if r, ok := n.waiting[key]; ok {
		delete(n.waiting, key)
		r.client.reply(r, rep)
	}
}

// serveReads answers the reads whose index the state machine reached.
func (n *node) serveReads() {
	applied := n.rn.Status().Applied
	kept := n.readIndex[:0]
	for _, w := range n.readIndex {
		// Advance has not run yet for the Ready being finished, so count
		// what the state machine holds.
		if w.index <= max(applied, n.chat.applied) {
			w.req.client.reply(w.req, reply{resp: []byte(n.chat.get())})
		} else {
			kept = append(kept, w)
		}
	}
	n.readIndex = kept
}

// maybeSnapshot runs the snapshot policy after an Advance: every
// SnapshotEvery applied slots, snapshot the state machine, make it
// durable, then compact the log up to SnapshotKeep slots behind it, in
// the core and on disk. In the crash profiles, a crash may come at any
// step of that: before the snapshot is durable, between the snapshot and
// the compaction, and after it. It reports whether the replica crashed.
func (n *node) maybeSnapshot() bool {
	every := uint64(n.s.opts.SnapshotEvery)
	if every == 0 || n.chat.applied < n.lastSnapSlot()+every {
		return false
	}
	if n.crashSnapshotStep() {
		return true // the snapshot was never made durable
	}
	n.takeSnapshot()
	if n.crashSnapshotStep() {
		return true // durable, not compacted
	}
	keep := uint64(n.s.opts.SnapshotKeep)
	applied := n.rn.Status().Applied
	if n.snap.slot <= keep || min(n.snap.slot-keep, applied) <= n.rn.Compacted().Slot {
		return false
	}
	c, err := n.rn.Compact(min(n.snap.slot-keep, applied))
	if err != nil {
		n.s.fail(Other, "replica %s: %v", n.id, err)
		return true
	}
	n.compactDisk(c)
	n.s.tracef("%s compacted to %d", n.id, c.Slot)
	return n.crashSnapshotStep() // compacted
}

// takeSnapshot makes a snapshot of the state machine, the session table
// and the configuration state at the applied slot, durable at once.
func (n *node) takeSnapshot() {
	n.snap = &snapshot{slot: n.chat.applied, ballot: n.appliedBallot, log: slices.Clone(n.chat.log), sessions: n.sessionBytes(), confs: n.confs}
	n.s.stats.Snapshots++
	n.s.tracef("%s snapshot at %d", n.id, n.snap.slot)
}

func (n *node) lastSnapSlot() uint64 {
	if n.snap == nil {
		return 0
	}
	return n.snap.slot
}

func (n *node) sessionBytes() []byte {
	var b bytes.Buffer
	n.sessions.WriteTo(&b)
	return b.Bytes()
}

// crashSnapshotStep crashes the replica, in the crash profiles, with a
// chance high enough that every step of snapshot-then-compact is hit.
func (n *node) crashSnapshotStep() bool {
	if !n.s.opts.Profile.Crashes || n.s.healed || n.s.rng.Float64() >= 0.05 {
		return false
	}
	n.crashAndRestart()
	return true
}

// compactDisk records compaction point c on the fake disk and drops the
// entries it covers, as the WAL does.
func (n *node) compactDisk(c paxos.Compacted) {
	if c.Slot <= n.compacted.Slot {
		return
	}
	if drop := c.Slot - n.compacted.Slot; drop < uint64(len(n.entries)) {
		n.entries = slices.Clone(n.entries[drop:])
	} else {
		n.entries = nil
	}
	n.compacted = c
	n.hard.Commit = max(n.hard.Commit, c.Slot)
}

// restore replaces the state machine and the session table with sn's.
func (n *node) restore(sn *snapshot) {
	table, err := session.Read(sn.sessions)
	if err != nil {
		n.s.fail(Other, "replica %s: restoring the sessions of snapshot %d: %v", n.id, sn.slot, err)
		return
	}
	n.sessions = table
	n.chat = newChat()
	for _, text := range sn.log {
		n.chat.log = append(n.chat.log, text)
		n.chat.seen[text] = true
	}
	n.chat.applied, n.appliedBallot = sn.slot, sn.ballot
	n.confs = sn.confs
}

// sendSnapshots sends the leader's latest snapshot to the followers the
// core asks for. The transfer is one message on the faulty network; the
// core hears how it went (ReportSnapshot) a while later, as the engine's
// sender reports a finished or failed stream. A replica that is joining
// needs a snapshot even if the leader never compacted: a leader that has
// none takes one first, as the engine does (once it has applied a slot;
// until then the transfer fails and the core asks again).
func (n *node) sendSnapshots(rd paxos.Ready) {
	for _, to := range rd.SendSnapshots {
		if n.snap == nil && n.chat.applied > 0 {
			n.takeSnapshot()
		}
		sn := n.snap
		inc := n.incarnation
		delivered := sn != nil && n.s.net.sendSnapshot(n.id, to, sn)
		n.s.tracef("%s sends snapshot to %s (delivered %v)", n.id, to, delivered)
		n.s.after(n.s.between(50*Millisecond, 200*Millisecond), func() {
			if n.up && n.incarnation == inc {
				n.rn.ReportSnapshot(to, delivered)
				n.wake()
			}
		})
	}
}

// receiveSnapshot takes a snapshot off the network, for the loop.
func (n *node) receiveSnapshot(sn *snapshot) {
	if !n.up {
		return
	}
	if n.offered == nil || n.offered.slot < sn.slot {
		n.offered = sn
	}
	n.wake()
}

// installSnapshot installs a leader's snapshot as the engine does: make it
// durable, record the compaction point, then restore the state machine
// and tell the core. A crash may come between the steps. It reports
// whether the replica crashed.
func (n *node) installSnapshot(sn *snapshot) bool {
	if !n.rn.WantsSnapshot(sn.slot) {
		return false
	}
	if n.crashSnapshotStep() {
		return true
	}
	n.snap = sn
	if n.crashSnapshotStep() {
		return true
	}
	c := paxos.Compacted{Slot: sn.slot, Ballot: sn.ballot}
	n.compactDisk(c)
	n.restore(sn)
	if !n.rn.InstallSnapshot(c, sn.confs) {
		n.s.fail(Other, "replica %s: the core refused a snapshot it wanted", n.id)
		return true
	}
	n.s.stats.Installs++
	n.s.tracef("%s installed snapshot %d", n.id, sn.slot)
	return false
}
