package sim

import (
	"cmp"
	"maps"
	"slices"

	"github.com/paxos-go/paxos/engine/paxos"
)

// network carries messages between replicas with the profile's delays,
// losses, duplicates and cuts.
type network struct {
	s *Sim
	// cut[from][to] drops every message on that directed link.
	cut map[[2]paxos.NodeID]bool
	// reliable is set once the faults heal.
	reliable bool
	// isolated, if set, is cut off from everyone until the faults heal
	// (Options.Isolate).
	isolated paxos.NodeID
	// stuck[{from, to}] says the sender's transport cannot reach the peer
	// but does not know it: queued[{from, to}] holds what it sends, for
	// when the link comes back (see deposeLeader).
	stuck  map[[2]paxos.NodeID]bool
	queued map[[2]paxos.NodeID][]paxos.Message
}

func newNetwork(s *Sim) network {
	return network{s: s, cut: map[[2]paxos.NodeID]bool{}, stuck: map[[2]paxos.NodeID]bool{}, queued: map[[2]paxos.NodeID][]paxos.Message{}}
}

func (nw *network) heal() {
	nw.cut = map[[2]paxos.NodeID]bool{}
	links := slices.SortedFunc(maps.Keys(nw.stuck), func(a, b [2]paxos.NodeID) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	for _, link := range links { // in order: unstick draws random delays
		nw.unstick(link)
	}
	nw.isolated = 0
	nw.reliable = true
}

// send puts m on the wire.
func (nw *network) send(m paxos.Message) {
	s := nw.s
	s.stats.Messages++
	p := s.opts.Profile
	copies := 1
	if link := [2]paxos.NodeID{m.From, m.To}; nw.stuck[link] {
		nw.queued[link] = append(nw.queued[link], m)
		return
	}
	if !nw.reliable {
		if nw.cutOff(m.From, m.To) || s.rng.Float64() < p.Drop {
			s.stats.Dropped++
			if s.opts.Trace {
				s.tracef("drop %s", paxos.DescribeMessage(m))
			}
			return
		}
		if s.rng.Float64() < p.Dup {
			copies = 2
		}
	}
	for i := 0; i < copies; i++ {
		d := s.between(p.MinDelay, p.MaxDelay)
		if !nw.reliable && s.rng.Float64() < p.Late {
			d = s.between(p.MaxDelay, 20*p.MaxDelay)
		}
		stale := !nw.reliable && p.Stale > 0 && s.rng.Float64() < p.Stale
		if stale {
			d = s.between(p.MaxDelay, p.StaleMax)
		}
		nw.deliverAfter(d, m, stale)
	}
}

// deliverAfter delivers m to its destination after d; a message for a
// replica that is down then is lost. A stale message for a replica that
// is down is held instead, until the replica restarts: a transport keeps
// a peer's queue while it cannot connect and drains it on reconnecting, so
// what a replica's earlier life was sent reaches the next one.
//
// The Rebirth profile models the connections more closely: a message sent
// to a life of a replica that has died before it arrives is lost with the
// connection it was written to, stale or not, and so is what a peer sends
// a replica after its death until the reset that answers the first such
// message reaches it (that is how the peer learns the connection broke);
// from then on, until the replica is back, the peer's queue keeps what it
// sends, and delivers it to the next life on reconnecting.
func (nw *network) deliverAfter(d Time, m paxos.Message, stale bool) {
	s := nw.s
	to := s.nodes[m.To-1]
	sm := staleMessage{m: m, sentTo: to.life(), sentAt: s.now}
	s.after(d, func() {
		if to.stopped {
			return // a removed replica, stopped for good
		}
		if s.opts.Profile.Rebirth && !nw.reliable {
			switch {
			case sm.sentTo%2 == 0 && to.life() != sm.sentTo:
				s.stats.Dropped++ // its connection died with the life it was sent to
				return
			case !to.up && (to.noticed[m.From] == 0 || sm.sentAt < to.noticed[m.From]):
				if to.noticed[m.From] == 0 {
					// The reset reaches the sender a moment later.
					to.noticed[m.From] = s.now + s.between(s.opts.Profile.MinDelay, s.opts.Profile.MaxDelay)
				}
				s.stats.Dropped++ // written to the dead connection
				return
			case !to.up:
				to.held = append(to.held, sm)
				return
			}
		}
		switch {
		case !stale:
			to.receive(m)
		case to.up:
			nw.deliverStale(sm)
		default:
			to.held = append(to.held, sm)
		}
	})
}

// staleMessage is a message held back on purpose, with its destination's
// life and the time when it was sent.
type staleMessage struct {
	m      paxos.Message
	sentTo int
	sentAt Time
}

// deliverStale delivers a stale message to its running destination,
// counting whether it reached a later life than the one it was sent to.
func (nw *network) deliverStale(sm staleMessage) {
	s := nw.s
	to := s.nodes[sm.m.To-1]
	s.stats.Stale++
	later := to.life() != sm.sentTo
	if later {
		s.stats.StaleAcrossRestart++
	}
	if s.opts.Trace {
		s.tracef("stale %s, sent %.3fms ago (to a later life: %v)", paxos.DescribeMessage(sm.m), float64(s.now-sm.sentAt)/1000, later)
	}
	to.receive(sm.m)
}

// releaseHeld delivers the stale messages held for replica n while it was
// down, 0 to 20 ms after it restarted (the senders reconnect), in the
// order they were held. Those that find it down again are lost.
//
// In the Rebirth profile, the senders reconnect after the backoff of the
// engine's transport (its first wait is 10 to 30 ms), and deliver then.
func (nw *network) releaseHeld(n *node) {
	held := n.held
	n.held = nil
	at := nw.s.now
	if nw.s.opts.Profile.Rebirth {
		at += nw.s.between(10*Millisecond, 30*Millisecond)
	}
	for _, sm := range held {
		at += nw.s.between(0, 2*tickInterval/Time(len(held)))
		nw.s.at(at, func() {
			if n.up {
				nw.deliverStale(sm)
			}
		})
	}
}

// cutOff reports whether the link from one replica to another is cut.
func (nw *network) cutOff(from, to paxos.NodeID) bool {
	return nw.cut[[2]paxos.NodeID{from, to}] || (nw.isolated != 0 && (from == nw.isolated || to == nw.isolated))
}

// sendSnapshot carries a snapshot from one replica to another, as one
// message with the link's cuts, losses and delays. It reports whether the
// snapshot will arrive (if the receiver is up then).
func (nw *network) sendSnapshot(from, to paxos.NodeID, sn *snapshot) bool {
	s := nw.s
	p := s.opts.Profile
	if !nw.reliable && (nw.cutOff(from, to) || s.rng.Float64() < p.Drop) {
		return false
	}
	dst := s.nodes[to-1]
	s.after(s.between(p.MinDelay, 10*p.MaxDelay), func() { dst.receiveSnapshot(sn) })
	return true
}

// scheduleFaults plans the profile's faults over the fault time: every
// 50 to 400 ms, one fault action, until the faults heal.
func (s *Sim) scheduleFaults() {
	p := s.opts.Profile
	var actions []func()
	if p.Partitions {
		actions = append(actions, s.partition, s.net.healLinks)
	}
	if p.OneWay {
		actions = append(actions, s.cutOneWay)
	}
	if p.Flap {
		actions = append(actions, s.flap)
	}
	if p.IsolateLeader || p.Crashes {
		actions = append(actions, s.isolateLeader)
	}
	if p.Crashes {
		actions = append(actions, s.crashOne, s.crashLeader)
	}
	if p.Pauses {
		actions = append(actions, s.pauseOne)
	}
	if p.Deposed {
		actions = append(actions, s.deposeLeader)
	}
	if p.CrashEvery > 0 {
		s.crashOften(p.CrashEvery)
	}
	if len(actions) == 0 {
		return
	}
	var next func()
	next = func() {
		if s.healed {
			return
		}
		actions[s.rng.IntN(len(actions))]()
		s.after(s.between(50*Millisecond, 400*Millisecond), next)
	}
	s.after(s.between(50*Millisecond, 400*Millisecond), next)
}

func (nw *network) healLinks() {
	nw.s.tracef("network heals")
	nw.cut = map[[2]paxos.NodeID]bool{}
}

func (nw *network) cutBoth(a, b paxos.NodeID) {
	nw.cut[[2]paxos.NodeID{a, b}] = true
	nw.cut[[2]paxos.NodeID{b, a}] = true
}

// partition splits the replicas into two random non-empty groups.
func (s *Sim) partition() {
	s.net.cut = map[[2]paxos.NodeID]bool{}
	side := make([]bool, len(s.running))
	for {
		left := 0
		for i := range side {
			side[i] = s.rng.IntN(2) == 0
			if side[i] {
				left++
			}
		}
		if left > 0 && left < len(side) {
			break
		}
	}
	for i, a := range s.running {
		for j, b := range s.running {
			if side[i] != side[j] {
				s.net.cut[[2]paxos.NodeID{a.id, b.id}] = true
			}
		}
	}
	s.tracef("partition %v", side)
}

// cutOneWay cuts one random directed link.
func (s *Sim) cutOneWay() {
	a, b := s.running[s.rng.IntN(len(s.running))], s.running[s.rng.IntN(len(s.running))]
	if a != b {
		s.net.cut[[2]paxos.NodeID{a.id, b.id}] = true
		s.tracef("cut %s->%s", a.id, b.id)
	}
}

// flap isolates a random replica, then restores it, several times, a few
// tens of milliseconds apart.
func (s *Sim) flap() {
	n := s.running[s.rng.IntN(len(s.running))]
	on := false
	for i, t := 0, Time(0); i < 6; i++ {
		t += s.between(10*Millisecond, 60*Millisecond)
		on = !on
		isolate := on
		s.after(t, func() {
			if s.healed {
				return
			}
			for _, o := range s.running {
				if o != n {
					if isolate {
						s.net.cutBoth(n.id, o.id)
					} else {
						delete(s.net.cut, [2]paxos.NodeID{n.id, o.id})
						delete(s.net.cut, [2]paxos.NodeID{o.id, n.id})
					}
				}
			}
			s.tracef("flap %s isolated=%v", n.id, isolate)
		})
	}
}

// isolateLeader cuts off the leader until the others have elected a new
// one (or 400 ms have passed), then reconnects it at once: the old leader
// usually still believes it leads, so for a while two replicas act as
// leaders, the moment that tests the ballot rules hardest.
func (s *Sim) isolateLeader() {
	l := s.leader()
	if l == nil {
		return
	}
	for _, o := range s.running {
		if o != l {
			s.net.cutBoth(l.id, o.id)
		}
	}
	s.tracef("isolate leader %s", l.id)
	deadline := s.now + 400*Millisecond
	var watch func()
	watch = func() {
		if s.healed {
			return
		}
		if other := s.leader(); (other == nil || other == l) && s.now < deadline {
			s.after(5*Millisecond, watch)
			return
		}
		for _, o := range s.running {
			delete(s.net.cut, [2]paxos.NodeID{l.id, o.id})
			delete(s.net.cut, [2]paxos.NodeID{o.id, l.id})
		}
		s.tracef("reconnect %s (still leading: %v)", l.id, l.up && l.rn.IsLeader())
		other := s.leader()
		if other != nil && other != l && s.opts.Profile.Crashes && s.rng.IntN(2) == 0 {
			// Crash the new leader a moment after it took over: some of
			// its slots are chosen but nobody knows it yet, and the old
			// leader comes back with other values for the same slots. The
			// next leader must find the chosen ones in phase 1.
			s.after(s.between(2*Millisecond, 40*Millisecond), func() {
				if other.up {
					other.crash()
					s.after(s.between(50*Millisecond, 400*Millisecond), func() {
						if !other.up {
							other.restart()
						}
					})
				}
			})
			return
		}
		if other != nil && other != l && s.rng.IntN(2) == 0 {
			// Half the time, the old leader still does not hear the new
			// one for a while: only the acceptors' refusals can tell it.
			link := [2]paxos.NodeID{other.id, l.id}
			s.net.cut[link] = true
			s.tracef("cut %s->%s", other.id, l.id)
			s.after(s.between(50*Millisecond, 300*Millisecond), func() { delete(s.net.cut, link) })
		}
	}
	s.after(5*Millisecond, watch)
}

// crashOne crashes a random running replica and restarts it 20 to 600 ms
// later.
func (s *Sim) crashOne() {
	n := s.running[s.rng.IntN(len(s.running))]
	if !n.up {
		return
	}
	n.crash()
	s.after(s.between(20*Millisecond, 600*Millisecond), func() {
		if !n.up {
			n.restart()
		}
	})
}

// crashLeader crashes the leader, if there is one, at a random moment of
// its work: often between a majority's acceptance and the commit reaching
// anyone, which leaves the next leader to find the chosen value in phase 1.
func (s *Sim) crashLeader() {
	l := s.leader()
	if l == nil {
		return
	}
	s.after(s.between(0, 5*Millisecond), func() {
		if l.up {
			l.crash()
			s.after(s.between(20*Millisecond, 600*Millisecond), func() {
				if !l.up {
					l.restart()
				}
			})
		}
	})
}

// crashOften crashes a random replica about every interval until the
// faults heal, besides the other fault actions.
func (s *Sim) crashOften(interval Time) {
	var next func()
	next = func() {
		if s.healed {
			return
		}
		s.crashOne()
		s.after(s.between(interval/2, 3*interval/2), next)
	}
	s.after(s.between(interval/2, 3*interval/2), next)
}

// pauseOne stops a random replica for 20 to 500 ms.
func (s *Sim) pauseOne() {
	n := s.running[s.rng.IntN(len(s.running))]
	if n.paused || !n.up {
		return
	}
	n.pause()
	s.after(s.between(20*Millisecond, 500*Millisecond), func() {
		if n.paused {
			n.resume()
		}
	})
}

// unstick brings a stuck link back: the sender's transport reconnects and
// drains its queue, in order, within a millisecond or two; what finds its
// destination down waits for its next life.
func (nw *network) unstick(link [2]paxos.NodeID) {
	s := nw.s
	q := nw.queued[link]
	delete(nw.stuck, link)
	delete(nw.queued, link)
	if len(q) > 0 {
		s.tracef("link %s->%s back: %d queued messages go", link[0], link[1], len(q))
	}
	d := Time(0)
	for _, m := range q {
		d += s.between(10, 200)
		nw.deliverAfter(d, m, true)
	}
}

// deposed is the scenario of Profile.Deposed under way.
type deposed struct {
	leader paxos.NodeID
	ballot paxos.Ballot
	// crashes is how many acceptors may still die right after promising
	// a higher ballot than the deposed leader's.
	crashes int
}

// deposeLeader cuts the leader off, so that the others elect another, in
// a way it cannot notice: nothing reaches it, and what it sends is queued
// by its transport, which cannot connect. It goes on leading for up to
// an election timeout, and proposes what its clients send it under a
// ballot that is being superseded. Each acceptor that promises a higher
// ballot meanwhile (up to one short of a majority) dies right after its
// Promise goes out, and is restarted 20 to 400 ms later; as it restarts,
// the deposed leader's transport reaches it and drains its queue into its
// next life, usually before the new leader's next heartbeat. An acceptor
// that forgot its promise would accept those Accepts, and with the
// deposed leader's own acceptance they may be chosen while the new leader
// chooses other values in the same slots. 600 ms later the deposed
// leader's links come back.
func (s *Sim) deposeLeader() {
	l := s.leader()
	if l == nil || s.deposed != nil {
		return
	}
	s.tracef("depose leader %s: nothing reaches it, what it sends is queued", l.id)
	st := l.rn.Status()
	s.deposed = &deposed{leader: l.id, ballot: st.Promised, crashes: len(st.Config.Voters()) / 2}
	for _, o := range s.running {
		if o != l {
			s.net.stuck[[2]paxos.NodeID{l.id, o.id}] = true
			s.net.cut[[2]paxos.NodeID{o.id, l.id}] = true
		}
	}
	s.after(600*Millisecond, func() {
		s.deposed = nil
		if s.healed {
			return
		}
		s.tracef("the deposed leader %s reconnects", l.id)
		for _, o := range s.running {
			if o != l {
				delete(s.net.cut, [2]paxos.NodeID{o.id, l.id})
				if link := [2]paxos.NodeID{l.id, o.id}; s.net.stuck[link] {
					s.net.unstick(link)
				}
			}
		}
	})
}

// diesAfterPromising decides whether, in a Profile.Deposed scenario, an
// acceptor whose Ready sends a Promise of a ballot above the deposed
// leader's dies right after sending it (see deposeLeader).
func (n *node) diesAfterPromising(rd paxos.Ready) bool {
	d := n.s.deposed
	if d == nil || d.crashes == 0 || n.id == d.leader || n.s.healed {
		return false
	}
	for _, m := range rd.MessagesAfterPersist {
		if m.Type == paxos.MsgPromise && m.To != n.id && d.ballot.Less(m.Ballot) {
			d.crashes--
			n.s.tracef("%s will die right after promising %s", n.id, m.Ballot)
			return true
		}
	}
	return false
}
