package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/engine/paxos"
)

// Time is simulated time in microseconds.
type Time = int64

// Simulated durations.
const (
	Millisecond Time = 1000
	Second      Time = 1000 * Millisecond

	// tickInterval is a replica's tick: with ElectionTicks 10, the election
	// timeout is 100 to 200 ms.
	tickInterval = 10 * Millisecond
	// electionTimeout is the longest election timeout.
	electionTimeout = 2 * paxos.DefaultElectionTicks * tickInterval
)

// Profile is a family of faults.
type Profile struct {
	Name string
	// Drop and Dup are the chances that a message is lost or delivered
	// twice; delays are uniform in [MinDelay, MaxDelay], and with chance
	// Late up to 20 times MaxDelay, which reorders messages.
	Drop, Dup, Late    float64
	MinDelay, MaxDelay Time
	// Partitions splits the replicas in two groups; OneWay cuts single
	// directed links; Flap turns a partition on and off quickly;
	// IsolateLeader cuts off whichever replica leads.
	Partitions, OneWay, Flap, IsolateLeader bool
	// Crashes kills replicas and restarts them later; of the writes a
	// replica had under way, a random prefix survives, the rest is lost.
	// CrashEvery, if not zero, also crashes a random replica about that
	// often. FsyncErrors is the chance that a write fails, which stops the
	// replica as a crash does. SlowDisk is the chance that a write takes
	// 5 to 50 ms instead of at most 1 ms (an fsync latency spike): in the
	// pipelined runtime, a replica goes on meanwhile, and whatever it
	// sends that does not wait for the write may be all that survives it.
	Crashes     bool
	CrashEvery  Time
	FsyncErrors float64
	SlowDisk    float64
	// Stale is the chance that a message is held back and delivered up to
	// StaleMax late: after its sender or its receiver may have crashed and
	// restarted, so that it reaches a later life of its destination, which
	// must not mistake it for an answer to something it asked itself.
	Stale    float64
	StaleMax Time
	// Skew is the largest relative error of a replica's clock rate, and
	// Pauses stops replicas for a while (a GC pause, a stalled VM).
	Skew   float64
	Pauses bool
	// Rebirth aims faults at the moments a replica's next life can be
	// confused with its last (see node.rebirthVictim):
	//   - The write of a candidate's ballot stalls (an fsync latency
	//     spike), and a few candidates die during the stall.
	//   - A new leader that sends Accepts of new proposals soon after its
	//     election dies right after sending them, with the writes from the
	//     first stalled one on lost; the network holds those Accepts. It
	//     comes back when the others stop refusing polls, with a clock
	//     that jumps ahead, so that its next life campaigns before anyone
	//     else, and the held Accepts reach the acceptors just after it
	//     does (see node.rebirth).
	//   - A leader that has just committed loses its messages from then
	//     on and dies after answering its clients; the clients then read
	//     by read index for a while. The next leader's first write, of what
	//     its phase 1 recovered, stalls, and so do the same writes of some
	//     of its followers: it confirms reads long before it commits.
	// Connections are modelled closely: a message sent to a life that has
	// died is lost with its connection, and so is what a peer sends a
	// replica that is down until it learns the connection broke; what it
	// sends after that waits in its transport's queue for the replica's
	// next life, delivered after a reconnection backoff (see
	// network.deliverAfter).
	Rebirth bool
	// Deposed cuts the leader off in a way it cannot notice, now and then:
	// what it sends is queued by its transport, nothing reaches it, and it
	// goes on proposing while the others elect a new leader. The acceptors
	// that promise the new leader die right after promising, and the
	// deposed leader's queue drains into their next lives, before the new
	// leader's heartbeats (see Sim.deposeLeader).
	Deposed bool
}

// Profiles are the fault families the tests run, in order of nastiness.
var Profiles = []Profile{
	{Name: "calm", MinDelay: 100, MaxDelay: 2 * Millisecond},
	{Name: "lossy", Drop: 0.1, Dup: 0.05, Late: 0.05, MinDelay: 100, MaxDelay: 5 * Millisecond},
	{Name: "partitions", Drop: 0.01, Late: 0.02, MinDelay: 100, MaxDelay: 2 * Millisecond, Partitions: true, OneWay: true, Flap: true, IsolateLeader: true},
	{Name: "crashes", Drop: 0.02, Dup: 0.02, MinDelay: 100, MaxDelay: 2 * Millisecond, Crashes: true, FsyncErrors: 0.001, SlowDisk: 0.02},
	{Name: "clocks", MinDelay: 100, MaxDelay: 2 * Millisecond, Skew: 0.3, Pauses: true},
	{Name: "chaos", Drop: 0.05, Dup: 0.03, Late: 0.03, MinDelay: 100, MaxDelay: 5 * Millisecond,
		Partitions: true, OneWay: true, Flap: true, IsolateLeader: true, Crashes: true, FsyncErrors: 0.001, SlowDisk: 0.02, Skew: 0.2, Pauses: true,
		Stale: 0.01, StaleMax: 10 * electionTimeout},
	// Messages from a previous life: a tenth of the messages arrive up to
	// ten election timeouts late, while replicas crash and restart all the
	// time, so that answers and requests of a replica's earlier life reach
	// its next one.
	{Name: "stale", Drop: 0.02, Dup: 0.02, MinDelay: 100, MaxDelay: 2 * Millisecond,
		Crashes: true, CrashEvery: 250 * Millisecond, FsyncErrors: 0.001, SlowDisk: 0.05, Stale: 0.10, StaleMax: 10 * electionTimeout},
	// Lives that overlap: see Profile.Rebirth.
	{Name: "rebirth", Drop: 0.02, Dup: 0.02, MinDelay: 100, MaxDelay: 2 * Millisecond,
		Crashes: true, SlowDisk: 0.02, Stale: 0.05, StaleMax: 10 * electionTimeout, Rebirth: true},
	// Leaders deposed behind their backs: see Profile.Deposed.
	{Name: "deposed", Drop: 0.01, Dup: 0.01, MinDelay: 100, MaxDelay: 2 * Millisecond,
		SlowDisk: 0.02, Stale: 0.02, StaleMax: 10 * electionTimeout, Deposed: true},
}

// Options configure one simulation run.
type Options struct {
	Seed    uint64
	Nodes   int
	Profile Profile
	// Clients issue commands, one at a time each, until FaultTime is over.
	Clients int
	// FaultTime is how long faults are injected; then the network heals,
	// every replica comes back, and every outstanding request must
	// complete within LivenessTime.
	FaultTime, LivenessTime Time
	// Knobs break the protocol on purpose (see paxos.TestingKnobs).
	Knobs paxos.TestingKnobs
	// ForgetPromise restarts replicas with their promise forgotten,
	// SkipSessionCheck applies commands without the session table, and
	// StaleReads serves reads from a replica's state at once, without a
	// read index: more deliberate bugs the checkers must catch.
	ForgetPromise, SkipSessionCheck, StaleReads bool
	// SkipPromiseCheck turns off the check that a restarted replica still
	// holds the highest promise it reported in a message, so that a test
	// can show that forgetting a promise is also caught where it does harm
	// (two values chosen, a value applied that was not chosen).
	SkipPromiseCheck bool
	// Pipelined runs replicas as the engine's runtime does: a replica keeps
	// stepping while its writes are queued, applies committed entries at
	// once, and sends the replies that wait for a write when it completes.
	// Otherwise a replica takes no input until its write completes, then
	// applies.
	Pipelined bool
	// SnapshotEvery, if not zero, has each replica snapshot its state
	// every that many applied slots and then compact its log up to
	// SnapshotKeep slots behind the snapshot; a follower that needs what
	// the leader compacted gets the leader's snapshot.
	SnapshotEvery, SnapshotKeep int
	// Isolate cuts the last replica off from the others for the whole of
	// FaultTime, so that it misses many compactions.
	Isolate bool
	// Reconfig changes the cluster's membership at random while the faults
	// last (see reconfig.go): it adds replicas, which join with an empty
	// disk and catch up as learners, promotes them once caught up, removes
	// learners and voters (the leader too), and transfers the leadership,
	// one change at a time, keeping between 1 and 7 voters.
	Reconfig bool
	// Trace keeps the last TraceLines lines of a trace of every event.
	Trace      bool
	TraceLines int
}

// Kind says what sort of check a violation failed. A test that breaks the
// protocol on purpose counts the breakage as caught only by a Safety
// violation: a liveness timeout or a refused message may come from a
// broken simulator or a slow run as well as from a broken protocol.
type Kind int

// The kinds of violation.
const (
	// NoViolation is the Kind of a run that passed.
	NoViolation Kind = iota
	// Safety: two values chosen for a slot, a replica applied a value not
	// chosen (so replicas applied different histories), a command executed
	// twice, an acknowledged put lost or duplicated, a promise reported in
	// a message and then forgotten, or replicas that hold different states
	// once caught up.
	Safety
	// Liveness: requests still outstanding, or replicas not caught up, a
	// bounded time after the faults healed.
	Liveness
	// Refused: the core returned an error for a message it was given.
	Refused
	// Other: anything else that should not happen (the core refused a
	// restart state, a snapshot or a compaction; a session table error; a
	// client answered with something it did not ask for).
	Other
)

func (k Kind) String() string {
	return [...]string{"none", "safety", "liveness", "refused", "other"}[k]
}

// Result is what a run found.
type Result struct {
	// Err is the first violation of an invariant, or nil, and Kind what
	// sort of check it failed.
	Err  error
	Kind Kind
	// Trace is the tail of the trace, if Options.Trace was set.
	Trace []string
	// History is the clients' history, for a linearizability check, and
	// Final the log the replicas converged on (nil if the run failed).
	History []porcupine.Operation
	Final   []string
	Stats   Stats
}

// Stats count what happened in a run.
type Stats struct {
	Events, Messages, Dropped, Commits, Ops, Retries, Crashes, Elections int
	// Snapshots counts snapshots taken, Installs those installed from a
	// leader.
	Snapshots, Installs int
	// Stale counts messages delivered late on purpose (Profile.Stale) to a
	// running replica, and StaleAcrossRestart those of them that reached a
	// later life of their destination than the one they were sent to.
	Stale, StaleAcrossRestart int
	// Rebirths counts replicas crashed and brought back at once by the
	// Rebirth profile; Refusals, messages the core refused.
	Rebirths, Refusals int
	// TornWrites counts writes that survived a crash without completing
	// (the process never learned they did), LostWrites those lost, and
	// FsyncErrors the writes that failed.
	TornWrites, LostWrites, FsyncErrors int
	// The membership changes of Options.Reconfig, counted when the chosen
	// log makes them: replicas added (as learners), learners promoted,
	// members removed (LeaderRemovals of them by the leader that got their
	// removal chosen, itself), and leadership transfers completed (the
	// target became leader). Stopped counts removed replicas stopped after
	// they said they were removed, and NeverLearned those still running
	// at the end of the run that never did (they missed the leader that
	// would have told them: see "Retiring" in paxos's reconfig.go);
	// FromRemoved the messages of removed replicas that others refused, as
	// they must; NotCaughtUp the promotions refused because the learner
	// was behind.
	Adds, Promotions, Removals, LeaderRemovals, Transfers int
	Stopped, NeverLearned, FromRemoved, NotCaughtUp       int
	SimTime                                               Time
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.Events += o.Events
	s.Messages += o.Messages
	s.Dropped += o.Dropped
	s.Commits += o.Commits
	s.Ops += o.Ops
	s.Retries += o.Retries
	s.Crashes += o.Crashes
	s.Elections += o.Elections
	s.Snapshots += o.Snapshots
	s.Installs += o.Installs
	s.Stale += o.Stale
	s.Rebirths += o.Rebirths
	s.Refusals += o.Refusals
	s.StaleAcrossRestart += o.StaleAcrossRestart
	s.TornWrites += o.TornWrites
	s.LostWrites += o.LostWrites
	s.FsyncErrors += o.FsyncErrors
	s.Adds += o.Adds
	s.Promotions += o.Promotions
	s.Removals += o.Removals
	s.LeaderRemovals += o.LeaderRemovals
	s.Transfers += o.Transfers
	s.Stopped += o.Stopped
	s.NeverLearned += o.NeverLearned
	s.FromRemoved += o.FromRemoved
	s.NotCaughtUp += o.NotCaughtUp
	s.SimTime += o.SimTime
}

// Sim is one simulation run: replicas of the real core, a fake network, a
// fake clock and fake disks, all driven by one seeded random source from
// one goroutine, so that a seed replays exactly.
type Sim struct {
	opts   Options
	rng    *rand.Rand
	now    Time
	events eventQueue
	seq    uint64
	// nodes are all the replicas of the run, those added included: the
	// replica with ID i is nodes[i-1] (IDs are never reused). running are
	// those not stopped for good (see node.stop), in ID order.
	nodes   []*node
	running []*node
	clients []*client
	net     network
	check   checker
	stats   Stats
	err     error
	kind    Kind
	// refusal is the first message the core refused, if any.
	refusal string
	healed  bool
	trace   []string
	nextCtx uint64
	// readsUntil: until then, clients read by read index (see
	// node.losesCommitAnnouncement).
	readsUntil Time
	// recoveryStall is the stall a new leader shares with followers.
	recoveryStall recoveryStall
	// deposed is the Profile.Deposed scenario under way, if any.
	deposed *deposed
	// transferTo is the target of the last leadership transfer a leader
	// took on (Options.Reconfig), until it becomes leader.
	transferTo paxos.NodeID
	// final is the replica whose state the final check took as the
	// reference.
	final *node
}

// Run runs one simulation and reports what its checkers found.
func Run(opts Options) Result {
	s := newSim(opts)
	s.run()
	if s.err == nil {
		s.finalCheck()
	}
	if s.err == nil && s.refusal != "" {
		s.fail(Refused, "%s", s.refusal)
	}
	s.stats.SimTime = s.now
	for id := range s.check.removedFrom {
		if n := s.nodes[id-1]; !n.stopped && !n.stopping {
			s.stats.NeverLearned++
		}
	}
	res := Result{Err: s.err, Kind: s.kind, Stats: s.stats, Trace: s.trace}
	if s.err == nil {
		res.Final = slices.Clone(s.final.chat.log)
	}

	for _, c := range s.clients {
		res.History = append(res.History, c.history...)
	}
	return res
}

func newSim(opts Options) *Sim {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Clients == 0 {
		opts.Clients = 4
	}
	if opts.FaultTime == 0 {
		opts.FaultTime = 3 * Second
	}
	if opts.LivenessTime == 0 {
		opts.LivenessTime = 10 * Second
	}
	if opts.TraceLines == 0 {
		opts.TraceLines = 200
	}
	s := &Sim{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x5eed))}
	s.net = newNetwork(s)
	if opts.Isolate {
		s.net.isolated = paxos.NodeID(opts.Nodes)
	}
	s.check = newChecker(s)
	peers := make([]paxos.NodeID, opts.Nodes)
	for i := range peers {
		peers[i] = paxos.NodeID(i + 1)
	}
	for _, id := range peers {
		s.nodes = append(s.nodes, newNode(s, id, peers))
	}
	s.running = slices.Clone(s.nodes)
	s.transferTo = paxos.None
	for i := 0; i < opts.Clients; i++ {
		s.clients = append(s.clients, newClient(s, i))
	}
	return s
}

// at schedules fn at time t.
func (s *Sim) at(t Time, fn func()) {
	s.seq++
	heap.Push(&s.events, &event{at: t, seq: s.seq, fn: fn})
}

func (s *Sim) after(d Time, fn func()) { s.at(s.now+d, fn) }

// tracef records a line of trace, when tracing. Arguments that are costly
// to build (descriptions of messages, Readies, requests) are built only
// under "if s.opts.Trace": the untraced runs are the many, and describing
// every Ready for nothing took a fifth of their time.
func (s *Sim) tracef(format string, args ...any) {
	if !s.opts.Trace {
		return
	}
	line := fmt.Sprintf("%9.3fms ", float64(s.now)/1000) + fmt.Sprintf(format, args...)
	s.trace = append(s.trace, line)
	if len(s.trace) > 2*s.opts.TraceLines {
		s.trace = append(s.trace[:0], s.trace[len(s.trace)-s.opts.TraceLines:]...)
	}
}

// fail records the first violation, of the given kind; the run stops at
// once.
// refused notes a message the core refused. The run goes on (see
// node.loop); the first refusal fails it at the end if nothing else did.
func (s *Sim) refused(why string) {
	s.stats.Refusals++
	s.tracef("REFUSED: %s", why)
	if s.refusal == "" {
		s.refusal = fmt.Sprintf("at %.3fms: %s", float64(s.now)/1000, why)
	}
}

func (s *Sim) fail(kind Kind, format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("at %.3fms: %s", float64(s.now)/1000, fmt.Sprintf(format, args...))
		s.kind = kind
		s.tracef("VIOLATION (%s): %v", kind, s.err)
	}
}

func (s *Sim) run() {
	for _, n := range s.nodes {
		n.start()
	}
	for _, c := range s.clients {
		c.start()
	}
	s.scheduleFaults()
	if s.opts.Reconfig {
		s.scheduleReconfig()
	}
	s.at(s.opts.FaultTime, s.heal)
	deadline := s.opts.FaultTime + s.opts.LivenessTime
	for s.events.Len() > 0 && s.err == nil {
		ev := heap.Pop(&s.events).(*event)
		if ev.at > deadline {
			break
		}
		s.now = ev.at
		s.stats.Events++
		ev.fn()
		if s.healed && s.quiescent() {
			return
		}
	}
	if s.err == nil {
		var waiting []string
		for _, c := range s.clients {
			if c.req != nil {
				waiting = append(waiting, fmt.Sprintf("client %d command %d (%d tries)", c.id, c.req.cmd.Seq, c.req.attempt))
			}
		}
		if len(waiting) > 0 {
			s.fail(Liveness, "liveness: %.0fms after the faults healed, requests are still outstanding: %s; replicas: %s",
				float64(s.opts.LivenessTime)/1000, strings.Join(waiting, ", "), s.describeReplicas())
		} else if !s.caughtUp() {
			s.fail(Liveness, "liveness: %.0fms after the faults healed, the replicas have not caught up: %s",
				float64(s.opts.LivenessTime)/1000, s.describeReplicas())
		}
	}
}

// quiescent reports whether, after healing, every client is done and
// the replicas have caught up.
func (s *Sim) quiescent() bool {
	for _, c := range s.clients {
		if c.req != nil {
			return false
		}
	}
	return s.caughtUp()
}

// caughtUp reports whether a leader exists, has no configuration change
// or transfer under way, and every member of its configuration (the
// newest its committed log chose), learners included, runs and has
// applied the leader's commit index. Replicas outside it (removed, or
// started to join but never added) are not waited for.
func (s *Sim) caughtUp() bool {
	l := s.leader()
	if l == nil {
		return false
	}
	st := l.rn.Status()
	if st.ChangeInProgress {
		return false
	}
	for _, m := range st.Config.Members {
		n := s.nodes[m.ID-1]
		if !n.up || n.busy || len(n.writes) > 0 {
			return false
		}
		if ns := n.rn.Status(); ns.Applied != ns.Commit || ns.Commit != st.Commit {
			return false
		}
	}
	return st.Commit > 0 || len(s.clients) == 0
}

// finalMembers returns the replicas of the leader's configuration, nil
// without a leader.
func (s *Sim) finalMembers() []*node {
	l := s.leader()
	if l == nil {
		return nil
	}
	var out []*node
	for _, m := range l.rn.Status().Config.Members {
		out = append(out, s.nodes[m.ID-1])
	}
	return out
}

func (s *Sim) describeReplicas() string {
	var parts []string
	for _, n := range s.nodes {
		if n.stopped {
			parts = append(parts, fmt.Sprintf("%s(stopped)", n.id))
			continue
		}
		st := n.rn.Status()
		extra := ""
		switch {
		case st.Joining:
			extra = " joining"
		case st.Removed:
			extra = " removed"
		case s.opts.Reconfig:
			extra = " config=" + st.Config.String()
		}
		parts = append(parts, fmt.Sprintf("%s(%s up=%v promised=%s commit=%d applied=%d last=%d%s)",
			n.id, st.Role, n.up, st.Promised, st.Commit, st.Applied, st.LastSlot, extra))
	}
	return strings.Join(parts, " ")
}

// leader returns a live replica that believes it leads, if any.
func (s *Sim) leader() *node {
	for _, n := range s.running {
		if n.up && n.rn.IsLeader() {
			return n
		}
	}
	return nil
}

// heal ends the faults: the network becomes reliable and whole, and every
// replica runs.
func (s *Sim) heal() {
	s.tracef("faults heal")
	s.healed = true
	s.net.heal()
	for _, n := range s.running {
		if !n.up {
			n.restart()
		}
		if n.paused {
			n.resume()
		}
	}
}

type event struct {
	at  Time
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || (q[i].at == q[j].at && q[i].seq < q[j].seq)
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// between returns a uniform random time in [lo, hi].
func (s *Sim) between(lo, hi Time) Time {
	if hi <= lo {
		return lo
	}
	return lo + s.rng.Int64N(hi-lo+1)
}
