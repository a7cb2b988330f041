package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/internal/chatmodel"
)

var (
	flagSeeds = flag.Int("sim.seeds", 1000, "number of seeds TestSimulation runs (from -sim.start on)")
	flagStart = flag.Uint64("sim.start", 0, "first seed TestSimulation runs: a soak away from the CI seeds runs new ones")
	flagSeed  = flag.String("sim.seed", "", "run only this seed, with a trace")
)

// optionsFor maps a seed to a run: the profiles and cluster sizes cycle, so
// every few consecutive seeds cover them all.
func optionsFor(seed uint64) Options {
	return Options{
		Seed:    seed,
		Profile: Profiles[seed%uint64(len(Profiles))],
		Nodes:   []int{3, 5, 7}[(seed/uint64(len(Profiles)))%3],
		Clients: 8,
		// Every other run of 18 seeds runs the engine's pipelined runtime,
		// the others the simpler one that waits for each write.
		Pipelined: (seed/uint64(3*len(Profiles)))%2 == 1,
		// Every run snapshots and compacts, often, with a trailing window
		// of 0 to 12 slots: followers a little behind catch up from the
		// log, the others by snapshot.
		SnapshotEvery: 8 + int(seed%17),
		SnapshotKeep:  3 * int(seed%5),
		// Every other run of 54 seeds (all the profiles, sizes and
		// runtimes) changes the membership as it goes.
		Reconfig: (seed/uint64(6*len(Profiles)))%2 == 1,
	}
}

// replayCommand is the command that replays a seed of TestSimulation with
// its whole trace.
func replayCommand(seed uint64) string {
	return fmt.Sprintf("go test ./engine/sim -run 'TestSimulation$' -sim.seed=%d -v", seed)
}

// rerunCommand is the command that reruns a test whose runs are not those
// of TestSimulation's seeds.
func rerunCommand(test string) string {
	return fmt.Sprintf("go test ./engine/sim -run '%s$' -v", test)
}

// report fails t with the violation of a run, its kind, the command that
// replays it and the tail of its trace (from a second, traced run of the
// same seed: runs are deterministic).
func report(t *testing.T, opts Options, got Result, replay string) {
	t.Helper()
	opts.Trace = true
	res := Run(opts)
	if res.Err == nil || res.Err.Error() != got.Err.Error() {
		t.Errorf("seed %d did not replay the same way (got %v): the simulation is not deterministic", opts.Seed, res.Err)
	}
	t.Errorf("seed %d (%s, %d replicas): %s violation: %v\nreplay: %s\nlast %d lines of the trace:\n%s",
		opts.Seed, opts.Profile.Name, opts.Nodes, got.Kind, got.Err, replay, len(res.Trace), strings.Join(res.Trace, "\n"))
}

// TestSimulation runs the real core under every fault profile, with 3, 5
// and 7 replicas, and checks after every step that no slot has two chosen
// values, that replicas apply only chosen values, that promises reported
// in a message survive restarts, that no command runs twice, and, once the
// faults heal, that every request completes and no acknowledged put is
// lost. Half the runs change the membership as they go (Options.Reconfig);
// "chosen" is then judged against the configuration the chosen log makes
// the slot's. The clients' history of every run that passes is then
// checked for linearizability with porcupine, in the worker that ran it.
func TestSimulation(t *testing.T) {
	if *flagSeed != "" {
		seed, err := strconv.ParseUint(*flagSeed, 10, 64)
		if err != nil {
			t.Fatalf("-sim.seed: %v", err)
		}
		opts := optionsFor(seed)
		opts.Trace, opts.TraceLines = true, 1<<30
		res := Run(opts)
		for _, line := range res.Trace {
			t.Log(line)
		}
		t.Logf("stats: %+v", res.Stats)
		if res.Err != nil {
			t.Fatalf("seed %d (%s, %d replicas): %s violation: %v", opts.Seed, opts.Profile.Name, opts.Nodes, res.Kind, res.Err)
		}
		if checkLinearizable(t, opts, res, guidedModel(res)) == porcupine.Illegal {
			t.Fatalf("seed %d: not linearizable", opts.Seed)
		}
		return
	}
	type outcome struct {
		opts Options
		res  Result
		// checked says whether the history was checked for
		// linearizability (only runs that passed are), and verdict is
		// porcupine's.
		checked bool
		verdict porcupine.CheckResult
	}
	seeds := make(chan uint64)
	results := make(chan outcome)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				o := outcome{opts: optionsFor(seed)}
				o.res = Run(o.opts)
				if o.res.Err == nil {
					o.checked = true
					o.verdict = porcupine.CheckOperationsTimeout(guidedModel(o.res), o.res.History, linearizabilityTimeout)
				}
				results <- o
			}
		}()
	}
	go func() {
		for i := 0; i < *flagSeeds; i++ {
			seeds <- *flagStart + uint64(i)
		}
		close(seeds)
		wg.Wait()
		close(results)
	}()
	var total Stats
	byProfile := map[string]int{}
	failures, checks, reconfigRuns := 0, 0, 0
	for o := range results {
		byProfile[o.opts.Profile.Name]++
		if o.opts.Reconfig {
			reconfigRuns++
		}
		total.Add(o.res.Stats)
		if o.checked {
			checks++
		}
		switch {
		case o.res.Err != nil:
			if failures++; failures <= 3 {
				report(t, o.opts, o.res, replayCommand(o.opts.Seed))
			}
		case o.checked && o.verdict != porcupine.Ok:
			if failures++; failures <= 3 {
				reportLinearizability(t, o.opts, o.res)
			}
		}
	}
	t.Logf("%d seeds from %d %v: %d events, %d slots committed, %d client operations, %d elections, %d crashes, %d messages dropped, "+
		"%d stale deliveries (%d to a later life), %d writes survived a crash unfinished, %d lost, %d fsync errors, %d snapshots, %d installed from a leader, "+
		"%d histories checked for linearizability; %d seeds failed",
		*flagSeeds, *flagStart, byProfile, total.Events, total.Commits, total.Ops, total.Elections, total.Crashes, total.Dropped,
		total.Stale, total.StaleAcrossRestart, total.TornWrites, total.LostWrites, total.FsyncErrors, total.Snapshots, total.Installs,
		checks, failures)
	t.Logf("membership changes in %d runs: %d replicas added, %d promoted, %d removed (%d leaders removing themselves), %d leadership transfers; "+
		"%d removed replicas stopped once they said so, %d never learned they were removed, %d of their messages refused, %d promotions refused until caught up",
		reconfigRuns, total.Adds, total.Promotions, total.Removals, total.LeaderRemovals, total.Transfers,
		total.Stopped, total.NeverLearned, total.FromRemoved, total.NotCaughtUp)
	if total.Snapshots == 0 || total.Installs == 0 {
		t.Errorf("the runs took %d snapshots and installed %d: snapshots and catch-up went untested", total.Snapshots, total.Installs)
	}
	if reconfigRuns > 0 && (total.Adds == 0 || total.Promotions == 0 || total.Removals == 0 || total.LeaderRemovals == 0 || total.Transfers == 0) {
		t.Errorf("%d runs changed the membership but made %d additions, %d promotions, %d removals (%d of the leader), %d transfers: some change went untested",
			reconfigRuns, total.Adds, total.Promotions, total.Removals, total.LeaderRemovals, total.Transfers)
	}
}

// TestSimulationIsolatedReplicaCatchesUp cuts one replica off for the
// whole fault time, under every profile, while the others snapshot and
// compact many times over; once the faults heal it must catch up, which
// it can only do from a snapshot, and hold what the others hold.
func TestSimulationIsolatedReplicaCatchesUp(t *testing.T) {
	installs := 0
	for seed := uint64(0); seed < 60; seed++ {
		opts := optionsFor(seed)
		opts.Isolate = true
		opts.SnapshotEvery, opts.SnapshotKeep = 10, 5
		// The stale profile crashes a replica about every 250 ms, and the
		// rebirth profile kills new leaders and stalls their disks on
		// purpose; with one replica cut off as well, the others seldom
		// have a majority up long enough to commit and snapshot. Their
		// other faults stay.
		opts.Profile.CrashEvery, opts.Profile.Rebirth = 0, false
		res := Run(opts)
		if res.Err != nil {
			report(t, opts, res, rerunCommand(t.Name()))
			continue
		}
		installs += res.Stats.Installs
		if res.Stats.Snapshots < 3*opts.Nodes/2 {
			t.Errorf("seed %d: only %d snapshots: too few compactions to test catching up", seed, res.Stats.Snapshots)
		}
	}
	if installs < 60 {
		t.Errorf("%d snapshots installed over 60 runs; every isolated replica should have needed one", installs)
	}
}

// linearizabilityOptions are the runs TestLinearizability checks against
// the unguided specification: shorter, with fewer clients, since that
// check is exponential in the worst case.
func linearizabilityOptions(seed uint64) Options {
	opts := optionsFor(seed)
	opts.Clients, opts.FaultTime = 3, Second
	return opts
}

// linearizabilityTimeout bounds one porcupine check; a check that runs out
// of time is a failure, not a pass.
const linearizabilityTimeout = 10 * time.Second

// guidedModel is the model TestSimulation checks a run's history against:
// the chat room's specification guided by the log the replicas converged
// on (chatmodel.Guided). Messages are unique, so that log fixes the order
// of the puts and porcupine follows it instead of trying every
// interleaving of concurrent puts; the unguided model timed out on the
// main runs' histories (up to 2,500 operations by 8 clients) even with a
// cheap state. It checks the same property, plus the final state.
func guidedModel(res Result) porcupine.Model { return chatmodel.Guided(res.Final) }

// checkLinearizable checks a run's client history with porcupine against
// model and, on a violation, writes porcupine's picture of it. A check
// that times out fails t. It returns the verdict.
func checkLinearizable(t *testing.T, opts Options, res Result, model porcupine.Model) porcupine.CheckResult {
	t.Helper()
	result, info := porcupine.CheckOperationsVerbose(model, res.History, linearizabilityTimeout)
	switch result {
	case porcupine.Unknown:
		t.Errorf("seed %d (%s, %d replicas): the linearizability check of %d operations timed out", opts.Seed, opts.Profile.Name, opts.Nodes, len(res.History))
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("paxos-sim-seed-%d.html", opts.Seed))
		if f, err := os.Create(path); err == nil {
			porcupine.Visualize(model, info, f)
			f.Close()
		}
		t.Logf("seed %d (%s): the clients' history is not linearizable; picture in %s", opts.Seed, opts.Profile.Name, path)
	}
	return result
}

// reportLinearizability fails t for a run of TestSimulation whose history
// porcupine found not linearizable (a safety violation), or could not
// decide in time.
func reportLinearizability(t *testing.T, opts Options, res Result) {
	t.Helper()
	if checkLinearizable(t, opts, res, guidedModel(res)) == porcupine.Illegal {
		t.Errorf("seed %d (%s, %d replicas): safety violation: the clients' history is not linearizable", opts.Seed, opts.Profile.Name, opts.Nodes)
	}
	t.Logf("replay: %s", replayCommand(opts.Seed))
}

// TestLinearizability checks the client histories of 30 shorter runs, five
// per profile, with porcupine: puts, gets through the log and reads by
// read index must all fit one sequential order consistent with real time.
func TestLinearizability(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		opts := linearizabilityOptions(seed)
		res := Run(opts)
		if res.Err != nil {
			report(t, opts, res, rerunCommand(t.Name()))
			continue
		}
		if checkLinearizable(t, opts, res, chatmodel.Model) == porcupine.Illegal {
			t.Errorf("seed %d: not linearizable\nrerun: %s", seed, rerunCommand(t.Name()))
		}
	}
}

// TestLinearizabilityCatchesStaleReads shows the linearizability check has
// teeth: replicas that answer reads from their own state, without a read
// index, must be caught returning stale data.
func TestLinearizabilityCatchesStaleReads(t *testing.T) {
	for seed := uint64(0); seed < 60; seed++ {
		opts := linearizabilityOptions(seed)
		opts.StaleReads = true
		res := Run(opts)
		if res.Err == nil && checkLinearizable(t, opts, res, chatmodel.Model) == porcupine.Illegal {
			t.Logf("caught at seed %d (%s, %d replicas)", seed, opts.Profile.Name, opts.Nodes)
			return
		}
	}
	t.Fatal("stale reads went unnoticed for 60 seeds")
}

// mutants are deliberate protocol bugs, each a way real Paxos
// implementations have gone wrong, that the simulator must catch. A mutant
// with a profile runs only that profile's seeds: the one built to reach it.
var mutants = []struct {
	name    string
	break_  func(*Options)
	profile string
}{
	{"reply before persisting", func(o *Options) { o.Knobs.ReplyBeforePersist = true }, ""},
	{"accept a lower ballot", func(o *Options) { o.Knobs.AcceptLowerBallot = true }, ""},
	{"forget the promise on restart", func(o *Options) { o.ForgetPromise = true }, ""},
	{"commit on a minority", func(o *Options) { o.Knobs.CommitOnMinority = true }, ""},
	{"skip the session check", func(o *Options) { o.SkipSessionCheck = true }, ""},
	{"adopt the lowest ballot in phase 1", func(o *Options) { o.Knobs.AdoptLowestBallot = true }, ""},
	// A leader cut off from the others confirms reads alone while another
	// is elected: the partitions reach it.
	{"confirm a read index without a quorum", func(o *Options) { o.Knobs.ReadWithoutQuorum = true }, "partitions"},
	{"count the leader's acceptance before it persists", func(o *Options) { o.Knobs.CountOwnAcceptEarly = true }, ""},
	{"commit past what the leader sent", func(o *Options) { o.Knobs.CommitBeyondLeader = true }, ""},
	// Without the check that a restarted replica still holds the promises
	// it reported, forgetting one must be caught where it does harm: a
	// deposed leader's Accept reaching the forgetful acceptor's next life.
	{"forget the promise, without the promise check", func(o *Options) { o.ForgetPromise, o.SkipPromiseCheck = true, true }, "deposed"},
	// A reborn leader campaigns with the ballot of its last life, whose
	// Accepts reach the acceptors after its new Prepares.
	{"reuse the ballot after a restart", func(o *Options) { o.Knobs.ReuseBallot = true }, "rebirth"},
	// Another value under one ballot only reaches an acceptor from a
	// proposer that used the ballot twice.
	{"acknowledge another value under a reused ballot", func(o *Options) { o.Knobs.ReuseBallot, o.Knobs.AckConflictingValue = true, true }, "rebirth"},
	// A read reaches a new leader while its disk stalls on what its phase 1
	// recovered, after its predecessor told a client of a commit and died
	// before telling anyone else.
	{"serve reads before recovery commits", func(o *Options) { o.Knobs.ReadBeforeRecovery = true }, "rebirth"},
	// A configuration governs from the slot after the one that chose it,
	// not ConfigWindow later, and the leader proposes past the slots whose
	// configuration it knows: under membership changes, every profile.
	{"configurations govern at once", func(o *Options) { o.Knobs.ImmediateConfig, o.Reconfig = true, true }, ""},
}

// mutantBudget is how many seeds a mutant may survive: far below what CI
// runs on the real protocol.
const mutantBudget = 300

var flagRates = flag.Bool("sim.rates", false, "TestCheckersCatchBugs: run all of each mutant's seeds and log how many catch it")

// TestCheckersCatchBugs shows that the checkers have teeth: each mutant
// must be caught within mutantBudget seeds, by a safety check or by
// porcupine, never by a liveness timeout (a broken protocol that merely
// stalls could as well be a slow one). Each caught mutant logs the seed and
// the check; the table is in the README. With -sim.rates, it runs all of
// each mutant's mutantBudget seeds and logs how many catch it.
func TestCheckersCatchBugs(t *testing.T) {
	for _, bug := range mutants {
		t.Run(bug.name, func(t *testing.T) {
			t.Parallel()
			seedAt := func(i int) uint64 { return uint64(i) }
			if bug.profile != "" {
				p := slices.IndexFunc(Profiles, func(p Profile) bool { return p.Name == bug.profile })
				seedAt = func(i int) uint64 { return uint64(i*len(Profiles) + p) }
			}
			caught := 0
			for i := 0; i < mutantBudget; i++ {
				opts := optionsFor(seedAt(i))
				bug.break_(&opts)
				if why := caughtBySafety(Run(opts)); why != "" {
					if caught++; caught == 1 {
						t.Logf("caught at seed %d (%s, %d replicas): %s", opts.Seed, opts.Profile.Name, opts.Nodes, why)
					}
					if !*flagRates {
						return
					}
				}
			}
			if caught == 0 {
				t.Fatalf("no safety or linearizability check noticed within %d seeds", mutantBudget)
			}
			t.Logf("caught in %d of %d seeds", caught, mutantBudget)
		})
	}
}

// caughtBySafety says why a run counts as having caught a deliberate bug:
// a safety violation, or a history that porcupine finds not linearizable.
// It returns "" if neither: a liveness failure or a refused message does
// not count.
func caughtBySafety(res Result) string {
	switch {
	case res.Kind == Safety:
		return res.Err.Error()
	case res.Err == nil && porcupine.CheckOperationsTimeout(guidedModel(res), res.History, linearizabilityTimeout) == porcupine.Illegal:
		return "the clients' history is not linearizable"
	}
	return ""
}

// TestDeterministic runs seeds twice and compares everything observable:
// one of the chaos profile, and one of each profile whose faults keep
// state of their own (rebirth, deposed), without and with membership
// changes.
func TestDeterministic(t *testing.T) {
	for _, reconfig := range []bool{false, true} {
		for _, name := range []string{"chaos", "rebirth", "deposed"} {
			seed := uint64(slices.IndexFunc(Profiles, func(p Profile) bool { return p.Name == name }))
			opts := optionsFor(seed)
			opts.Reconfig = reconfig
			deterministic(t, opts, name)
		}
	}
}

func deterministic(t *testing.T, opts Options, name string) {
	t.Helper()
	opts.Trace, opts.TraceLines = true, 1<<30
	a, b := Run(opts), Run(opts)
	if fmt.Sprint(a.Stats) != fmt.Sprint(b.Stats) || strings.Join(a.Trace, "\n") != strings.Join(b.Trace, "\n") {
		t.Fatalf("two runs of seed %d (%s, membership changes %v) differ: %+v vs %+v", opts.Seed, name, opts.Reconfig, a.Stats, b.Stats)
	}
	if a.Stats.Commits == 0 || a.Stats.Ops == 0 {
		t.Fatalf("seed %d (%s, membership changes %v) did nothing: %+v", opts.Seed, name, opts.Reconfig, a.Stats)
	}
}
