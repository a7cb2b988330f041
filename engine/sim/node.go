package sim

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
)

// node is a simulated replica: the real core, a fake disk that keeps only
// what a completed persist wrote, the chat state machine with its session
// table, and the bookkeeping a runtime does for clients.
type node struct {
	s     *Sim
	id    paxos.NodeID
	peers []paxos.NodeID
	rn    *paxos.RawNode

	up, paused bool
	// busy is set between Ready and Advance, while a persist is under way;
	// input waits in inbox, ticks and requests meanwhile.
	busy bool
	// With Options.Pipelined, persists queue instead: pendingPersists
	// counts them and lastPersist is when the last one completes.
	pendingPersists int
	lastPersist     Time
	incarnation     int // increases at every crash; stale persists are ignored
	inbox           []paxos.Message
	ticks           int
	requests        []*request
	wakePending     bool
	leading         bool // as of the last Ready, for counting elections
	skew            float64

	// The fake disk: what completed persists wrote.
	hard    paxos.HardState
	entries []paxos.Entry // entries[i] is slot i+1

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
	promisedNow  paxos.Ballot // this incarnation's, to check it only grows
}

type readWait struct {
	index uint64
	req   *request
}

func newNode(s *Sim, id paxos.NodeID, peers []paxos.NodeID) *node {
	n := &node{s: s, id: id, peers: peers}
	if sk := s.opts.Profile.Skew; sk > 0 {
		n.skew = (s.rng.Float64()*2 - 1) * sk
	}
	return n
}

// boot makes a RawNode from what the disk holds, with an empty state
// machine that re-applies the committed log.
func (n *node) boot() {
	hard := n.hard
	if n.s.opts.ForgetPromise {
		hard.Promised = paxos.Ballot{}
	}
	rn, err := paxos.NewRawNode(paxos.Config{
		ID:        n.id,
		Peers:     n.peers,
		Rand:      rand.New(rand.NewPCG(n.s.opts.Seed, uint64(n.id)<<32|uint64(n.incarnation))),
		HardState: hard,
		Entries:   slices.Clone(n.entries),
		Knobs:     n.s.opts.Knobs,
	})
	if err != nil {
		n.s.fail("replica %s cannot restart: %v", n.id, err)
		return
	}
	n.rn = rn
	n.up, n.busy, n.paused, n.leading = true, false, false, false
	n.pendingPersists, n.lastPersist = 0, 0
	n.inbox, n.ticks, n.requests = nil, 0, nil
	n.chat = newChat()
	n.sessions = session.New(0)
	n.waiting = map[[2]uint64]*request{}
	n.reads = map[uint64]*request{}
	n.readIndex = nil
	n.promisedNow = rn.Status().Promised
	if n.promisedNow.Less(n.promisedSent) {
		n.s.fail("replica %s restarted with promise %s, below the %s it had promised in a message: a promise went backwards",
			n.id, n.promisedNow, n.promisedSent)
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

// crash loses everything but the disk: memory, the persist under way,
// the messages and requests waiting.
func (n *node) crash() {
	n.s.tracef("crash %s", n.id)
	n.s.stats.Crashes++
	n.up = false
	n.incarnation++
}

func (n *node) restart() {
	n.s.tracef("restart %s (promised %s, %d entries, commit %d)", n.id, n.hard.Promised, len(n.entries), n.hard.Commit)
	n.boot()
	n.scheduleTick()
	n.wake()
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
	for _, m := range inbox {
		if err := n.rn.Step(m); err != nil {
			n.s.fail("replica %s refused %s: %v", n.id, paxos.DescribeMessage(m), err)
		}
	}
	for i := 0; i < ticks; i++ {
		n.rn.Tick()
	}
	for _, r := range requests {
		n.propose(r)
	}
	if !n.rn.HasReady() {
		return
	}
	rd := n.rn.Ready()
	if leading := n.rn.IsLeader(); leading != n.leading {
		n.leading = leading
		if leading {
			n.s.stats.Elections++
			n.s.tracef("%s leads with ballot %s", n.id, n.rn.Status().Promised)
		}
	}
	n.checkPromise()
	n.s.tracef("%s ready: %s", n.id, describeReadyShort(rd))
	crashAt := n.crashPoint(rd)
	if crashAt == crashBeforeSend {
		n.crash()
		return
	}
	for _, m := range rd.Messages {
		n.send(m)
	}
	inc := n.incarnation
	if !n.s.opts.Pipelined {
		// The persist takes the disk's time; until it completes, the
		// replica takes no input. If it crashes meanwhile, the write is
		// lost.
		n.busy = true
		n.s.after(n.s.between(50, 1000), func() {
			if n.incarnation == inc && n.up {
				n.persisted(rd, crashAt)
			}
		})
		return
	}
	// The engine's runtime: the write is queued, in order, and the replica
	// goes on; committed entries are applied at once; the replies that
	// wait for the write go out when it completes.
	done := max(n.s.now+n.s.between(50, 1000), n.lastPersist+1)
	n.lastPersist = done
	n.pendingPersists++
	n.s.at(done, func() {
		if n.incarnation == inc && n.up {
			n.pendingPersists--
			n.persisted(rd, crashAt)
		}
	})
	n.applyReady(rd)
	n.rn.Advance(rd)
	n.wake()
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
	crashAfterPersist // the write is durable, no reply has gone out
	crashAfterReplies // the replies are out, nothing applied
)

// crashPoint decides whether this Ready ends in a crash, and where. In the
// profiles with crashes, a leader that has just learned slots are chosen
// is the favourite victim: it dies before anyone else learns it, and the
// next leader must find those slots in phase 1.
func (n *node) crashPoint(rd paxos.Ready) int {
	if !n.s.opts.Profile.Crashes || n.s.healed {
		return noCrash
	}
	chance := 0.002
	if n.rn.IsLeader() && rd.HardState != nil && rd.HardState.Commit > n.hard.Commit {
		chance = 0.03
	}
	if n.s.rng.Float64() >= chance {
		return noCrash
	}
	at := crashBeforeSend + n.s.rng.IntN(3)
	n.s.after(n.s.between(20*Millisecond, 400*Millisecond), func() {
		if !n.up {
			n.restart()
		}
	})
	return at
}

func (n *node) checkPromise() {
	p := n.rn.Status().Promised
	if p.Less(n.promisedNow) {
		n.s.fail("replica %s promise went from %s back to %s", n.id, n.promisedNow, p)
	}
	n.promisedNow = p
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
	n.s.net.send(m)
}

// persisted finishes a Ready once its write is durable: the rest of the
// Ready in the order the core asks for.
func (n *node) persisted(rd paxos.Ready, crashAt int) {
	if rd.HardState != nil {
		n.hard = *rd.HardState
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Slot
		if first > uint64(len(n.entries))+1 {
			n.s.fail("replica %s persisted slot %d after %d entries: a hole", n.id, first, len(n.entries))
			return
		}
		n.entries = append(n.entries[:first-1], rd.Entries...)
		n.s.check.persisted(n, rd.Entries)
	}
	if crashAt == crashAfterPersist {
		n.crash()
		return
	}
	for _, m := range rd.MessagesAfterPersist {
		n.send(m)
	}
	if crashAt == crashAfterReplies {
		n.crash()
		return
	}
	if n.s.opts.Pipelined {
		n.wake() // for the messages it sent itself
		return
	}
	n.applyReady(rd)
	n.rn.Advance(rd)
	n.busy = false
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
			n.s.fail("replica %s: Propose: %v", n.id, err)
		}
		r.client.reply(r, reply{err: err})
		return
	}
	n.waiting[[2]uint64{r.cmd.ClientID, r.cmd.Seq}] = r
}

// apply applies a committed slot through the session table, and answers
// the clients waiting here.
func (n *node) apply(e paxos.Entry) {
	n.s.check.applied(n, e)
	if n.s.err != nil {
		return
	}
	defer func() { n.chat.applied = e.Slot }()
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
		n.s.fail("replica %s cannot apply slot %d: %v", n.id, e.Slot, err)
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
