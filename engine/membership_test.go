package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/memnet"
)

// changeUnderWay reports whether the node has a change or transfer
// under way (asked of it and not finished).
func (n *Node) changeUnderWay() bool { return n.changing.Load() }

// replicaAddrs are the addresses of a replica added at run time.
type replicaAddrs struct{ peer, client string }

// newReplica picks the addresses of replica id, to be added.
func (c *testCluster) newReplica(id uint64) replicaAddrs {
	a := replicaAddrs{freeAddr(c.t), freeAddr(c.t)}
	c.mu.Lock()
	if c.added == nil {
		c.added = map[uint64]replicaAddrs{}
	}
	c.added[id] = a
	c.mu.Unlock()
	return a
}

// startJoining starts replica id (see newReplica) with Join and an empty
// data directory; mod, if set, changes its configuration last.
func (c *testCluster) startJoining(id uint64, mod func(*Config)) *Node {
	c.t.Helper()
	c.mu.Lock()
	a := c.added[id]
	c.mu.Unlock()
	return c.startWith(id, func(cfg *Config) {
		cfg.Join = true
		cfg.Peers = map[uint64]string{id: a.peer}
		cfg.ClientAddrs = nil
		if mod != nil {
			mod(cfg)
		}
	})
}

// onLeader runs a change on the leader, again on the next leader if the
// leadership moves meanwhile.
func (c *testCluster) onLeader(ctx context.Context, change func(*Node) error) error {
	c.t.Helper()
	for {
		n := c.node(c.leader())
		err := change(n)
		if !errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addLearner starts replica id to join, and adds it as a learner.
func (c *testCluster) addLearner(ctx context.Context, id uint64, mod func(*Config)) *Node {
	c.t.Helper()
	a := c.newReplica(id)
	n := c.startJoining(id, mod)
	if st := n.Status(); !st.Joining {
		c.t.Fatalf("replica %d started with Join does not say it is joining: %+v", id, st)
	}
	if err := c.onLeader(ctx, func(l *Node) error { return l.AddLearner(ctx, id, a.peer, a.client) }); err != nil {
		c.t.Fatalf("adding replica %d: %v", id, err)
	}
	return n
}

// waitStopped waits until n stops by itself, with an error matching want.
func waitStopped(t testing.TB, n *Node, want error) {
	t.Helper()
	select {
	case <-n.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %d did not stop (want %v)", n.Status().ID, want)
	}
	if err := n.Err(); !errors.Is(err, want) {
		t.Fatalf("replica %d stopped with %v, want %v", n.Status().ID, err, want)
	}
	if _, err := n.Submit(context.Background(), 1, 1, []byte("x")); !errors.Is(err, want) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit on a stopped replica: %v, want %v and ErrClosed", err, want)
	}
}

// configString is a configuration as voters, learners and removed IDs.
func configString(c paxos.Configuration) string {
	return fmt.Sprintf("voters %v learners %v removed %v", c.Voters(), c.Learners(), c.Removed)
}

// expect returns the configString of a configuration with these members.
func expect(voters, learners, removed []paxos.NodeID) string {
	return fmt.Sprintf("voters %v learners %v removed %v", voters, learners, removed)
}

// waitConfig waits until every running replica's committed configuration
// is want.
func (c *testCluster) waitConfig(want string) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, "the configuration "+want, func() bool {
		for _, n := range c.running() {
			if configString(n.Configuration()) != want {
				return false
			}
		}
		return true
	})
}

// backgroundWriters runs writers until they are done; wait returns what
// they saw acknowledged, failing the test on an error.
func (c *testCluster) backgroundWriters(k, count int, clientBase uint64) (wait func() []string) {
	type result struct {
		acked []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		acked, err := c.writersErr(k, count, clientBase)
		done <- result{acked, err}
	}()
	return func() []string {
		c.t.Helper()
		r := <-done
		if r.err != nil {
			c.t.Fatal(r.err)
		}
		return r.acked
	}
}

// TestAddPromoteRemoveRestart grows a 3-replica cluster by a learner while
// clients write, promotes it, removes an old voter, and restarts every
// replica with the first configuration's flags: the configuration comes
// back from the data directories, not the flags.
func TestAddPromoteRemoveRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := c.backgroundWriters(4, 60, 100)

	c.addLearner(ctx, 4, nil)
	c.waitConfig(expect([]paxos.NodeID{1, 2, 3}, []paxos.NodeID{4}, nil))
	if err := c.onLeader(ctx, func(l *Node) error { return l.Promote(ctx, 4) }); err != nil {
		t.Fatalf("promoting replica 4: %v", err)
	}
	var victim uint64
	for id := uint64(1); id <= 3; id++ {
		if id != c.leader() {
			victim = id
			break
		}
	}
	if err := c.onLeader(ctx, func(l *Node) error { return l.RemoveReplica(ctx, victim) }); err != nil {
		t.Fatalf("removing replica %d: %v", victim, err)
	}
	waitStopped(t, c.node(victim), ErrRemoved)
	if st := c.node(victim).Status(); !st.Removed {
		t.Fatalf("the removed replica's status does not say so: %+v", st)
	}
	c.crash(victim)
	acked := wait()
	checkExactlyOnce(t, c.converged(), acked)
	var voters []paxos.NodeID
	for id := paxos.NodeID(1); id <= 4; id++ {
		if uint64(id) != victim {
			voters = append(voters, id)
		}
	}
	want := expect(voters, nil, []paxos.NodeID{paxos.NodeID(victim)})
	c.waitConfig(want)

	// Restart everything. The flags give replicas 1, 2 and 3 (start uses
	// them); each replica must come back with the configuration it had.
	logs := map[uint64]*syncBuffer{}
	for id := range c.running() {
		c.crash(id)
	}
	for _, id := range voters {
		logs[uint64(id)] = &syncBuffer{}
		n := c.startWith(uint64(id), func(cfg *Config) {
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs[uint64(id)], Level: hclog.Info})
		})
		if got := configString(n.Configuration()); got != want {
			t.Fatalf("replica %d restarted with configuration %s, want %s", id, got, want)
		}
	}
	for _, id := range voters {
		if id != 4 && !strings.Contains(logs[uint64(id)].String(), "differs from the configuration recovered from the data directory") {
			t.Errorf("replica %d did not say that the flags differ from its recorded configuration:\n%s", id, logs[uint64(id)])
		}
	}
	c.leader()
	more := c.writers(2, 10, 900)
	checkExactlyOnce(t, c.converged(), append(acked, more...))

	// The removed replica, started again, stops at once.
	n, err := c.tryStart(victim, nil)
	if err == nil {
		waitStopped(t, n, ErrRemoved)
		c.crash(victim)
	} else if !errors.Is(err, ErrRemoved) {
		t.Fatalf("restarting the removed replica: %v, want ErrRemoved", err)
	}
	// Its ID is never used again.
	if err := c.onLeader(ctx, func(l *Node) error { return l.AddLearner(ctx, victim, "127.0.0.1:1", "") }); !errors.Is(err, ErrBadChange) {
		t.Fatalf("adding back a removed ID: %v, want ErrBadChange", err)
	}
}

// TestRemoveLeader removes the leader while clients write: it hands over,
// stops with ErrRemoved, and no acknowledged command is lost.
func TestRemoveLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := c.backgroundWriters(4, 40, 100)
	if err := c.node(leader).RemoveReplica(ctx, leader); err != nil {
		t.Fatalf("the leader removing itself: %v", err)
	}
	waitStopped(t, c.node(leader), ErrRemoved)
	c.crash(leader)
	if next := c.leader(); next == leader {
		t.Fatal("the removed leader still leads")
	}
	acked := wait()
	checkExactlyOnce(t, c.converged(), acked)
	var voters []paxos.NodeID
	for id := paxos.NodeID(1); id <= 3; id++ {
		if uint64(id) != leader {
			voters = append(voters, id)
		}
	}
	c.waitConfig(expect(voters, nil, []paxos.NodeID{paxos.NodeID(leader)}))
}

// TestTransferLeadershipUnderLoad hands the leadership around three times
// while clients write through the client port (which retries with the
// same sequence number) and one writes straight to the first leader's
// Node, without retrying: no command fails, none is applied twice.
func TestTransferLeadershipUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var addrs []string
	for id := uint64(1); id <= 3; id++ {
		addrs = append(addrs, c.client[id])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []string
	var failures []error
	record := func(payload string, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", payload, err))
			return false
		}
		acked = append(acked, payload)
		return true
	}
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := client.New(addrs, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
			defer cl.Close()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf("cl%d-%d", k, i)
				sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := cl.Submit(sctx, []byte(payload))
				scancel()
				if !record(payload, err) {
					return
				}
			}
		}()
	}
	first := c.node(leader)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(1); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			payload := fmt.Sprintf("direct-%d", seq)
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := first.Submit(sctx, 777, seq, []byte(payload))
			scancel()
			if !record(payload, err) {
				return
			}
		}
	}()
	var took []time.Duration
	cur := leader
	for i := 0; i < 3; i++ {
		target := cur%3 + 1
		start := time.Now()
		if err := c.node(cur).TransferLeadership(ctx, target); err != nil {
			t.Fatalf("transfer %d, from %d to %d: %v", i, cur, target, err)
		}
		if _, err := c.node(target).Submit(ctx, 5000+uint64(i), 1, []byte(fmt.Sprint("after-transfer-", i))); err != nil {
			t.Fatalf("a write to the new leader %d: %v", target, err)
		}
		took = append(took, time.Since(start))
		if st := c.node(target).Status(); st.Role != "leader" {
			t.Fatalf("replica %d served the write as %s", target, st.Role)
		}
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		// Let the clients make progress under the new leader before the
		// next transfer.
		waitFor(t, 20*time.Second, "writes under the new leader", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= n+20 || len(failures) > 0
		})
		cur = target
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("client-visible failures during the transfers: %v", failures)
	}
	log := c.converged()
	for i := 0; i < 3; i++ {
		acked = append(acked, fmt.Sprint("after-transfer-", i))
	}
	checkExactlyOnce(t, log, acked)
	slices.Sort(took)
	t.Logf("under load (%d commands): from TransferLeadership to the new leader serving a write: median %v, all %v", len(acked), took[len(took)/2], took)
}

// TestTransferLeadershipLatency measures, on an idle cluster, the time
// from TransferLeadership to the new leader having served a write.
func TestTransferLeadershipLatency(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	cur := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.writers(1, 5, 100)
	var took []time.Duration
	for i := 0; i < 7; i++ {
		target := cur%3 + 1
		start := time.Now()
		if err := c.node(cur).TransferLeadership(ctx, target); err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
		if _, err := c.node(target).Submit(ctx, 5000+uint64(i), 1, []byte(fmt.Sprint("w", i))); err != nil {
			t.Fatalf("a write to the new leader: %v", err)
		}
		took = append(took, time.Since(start))
		cur = target
	}
	slices.Sort(took)
	t.Logf("idle: from TransferLeadership to the new leader serving a write: median %v, all %v (election timeout 300ms)", took[len(took)/2], took)
}

// TestStartRefusals: an empty data directory with neither Peers nor Join
// is refused; Join is refused on a directory that holds state; a
// directory that joined, or bootstrapped, restarts without flags.
func TestStartRefusals(t *testing.T) {
	mem := memnet.NewMemNetwork()
	cfg := func(dir string, mod func(*Config)) Config {
		c := Config{ID: 1, ClusterID: "c", DataDir: dir, NoSync: true, Transport: mem.Transport(1), ElectionTimeout: 50 * time.Millisecond}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	dir := t.TempDir()
	if _, err := Start(cfg(dir, nil), &logMachine{}); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("an empty data directory without Peers or Join: %v, want ErrNoPeers", err)
	}
	if _, err := Start(cfg(dir, func(c *Config) { c.Peers = map[uint64]string{2: ""} }), &logMachine{}); err == nil || !strings.Contains(err.Error(), "not in Config.Peers") {
		t.Fatalf("bootstrapping a cluster without this replica: %v", err)
	}
	n, err := Start(cfg(dir, func(c *Config) { c.Peers = map[uint64]string{1: ""} }), &logMachine{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, 10*time.Second, "a leader", func() bool { return n.Status().Role == "leader" })
	if _, err := n.Submit(ctx, 1, 1, []byte("a")); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := Start(cfg(dir, func(c *Config) { c.Join = true; c.Peers = map[uint64]string{1: ""} }), &logMachine{}); !errors.Is(err, ErrJoinNotEmpty) {
		t.Fatalf("Join on a directory that holds state: %v, want ErrJoinNotEmpty", err)
	}
	sm := &logMachine{}
	n, err = Start(cfg(dir, nil), sm)
	if err != nil {
		t.Fatalf("restarting without Peers: %v", err)
	}
	if got := configString(n.Configuration()); got != expect([]paxos.NodeID{1}, nil, nil) {
		t.Fatalf("restarted with configuration %s", got)
	}
	waitFor(t, 10*time.Second, "the log replayed", func() bool { return slices.Equal(sm.entries(), []string{"a"}) })
	n.Close()

	// A joining replica that was not added yet restarts joining, with
	// Join or without.
	dir = t.TempDir()
	for _, join := range []bool{true, true, false} {
		n, err := Start(cfg(dir, func(c *Config) { c.Join = join }), &logMachine{})
		if err != nil {
			t.Fatalf("Join %v: %v", join, err)
		}
		if st := n.Status(); !st.Joining || len(n.Configuration().Members) != 0 {
			t.Fatalf("Join %v: not joining: %+v, %v", join, st, n.Configuration())
		}
		if err := n.AddLearner(ctx, 9, "127.0.0.1:1", ""); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("a change asked of a joining replica: %v, want ErrNotLeader", err)
		}
		n.Close()
	}
}

// TestWipedReplicaIsRefused: a replica whose data directory was wiped,
// started again under its old ID (as a member of the first
// configuration, or with Join), is refused by the cluster and stops with
// ErrDataLost, which its directory remembers. Removing it and adding a
// new replica under a new ID works.
func TestWipedReplicaIsRefused(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := c.writers(2, 10, 100)
	victim := leader%3 + 1
	dir := filepath.Join(c.dir, fmt.Sprint(victim))
	c.crash(victim)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	n := c.start(victim)
	waitStopped(t, n, ErrDataLost)
	c.crash(victim)
	if _, err := c.tryStart(victim, nil); !errors.Is(err, ErrDataLost) {
		t.Fatalf("starting the refused directory again: %v, want ErrDataLost", err)
	}

	// With Join, under the old ID: refused as well (it is a voter).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	n = c.startWith(victim, func(cfg *Config) {
		cfg.Join = true
		cfg.Peers = map[uint64]string{victim: c.peers[victim]}
	})
	waitStopped(t, n, ErrDataLost)
	c.crash(victim)

	// The cluster carried on; the documented way back.
	acked = append(acked, c.writers(2, 10, 200)...)
	if err := c.onLeader(ctx, func(l *Node) error { return l.RemoveReplica(ctx, victim) }); err != nil {
		t.Fatalf("removing the lost replica: %v", err)
	}
	c.addLearner(ctx, 4, nil)
	if err := c.onLeader(ctx, func(l *Node) error { return l.Promote(ctx, 4) }); err != nil {
		t.Fatalf("promoting its replacement: %v", err)
	}
	acked = append(acked, c.writers(2, 10, 300)...)
	checkExactlyOnce(t, c.converged(), acked)

	// A promoted learner that loses its data is refused even when it
	// starts as a member of a new cluster (its ID was added by a change).
	c.crash(4)
	if err := os.RemoveAll(filepath.Join(c.dir, "4")); err != nil {
		t.Fatal(err)
	}
	n = c.startWith(4, func(cfg *Config) {
		cfg.Peers = map[uint64]string{1: c.peers[1], 2: c.peers[2], 3: c.peers[3], 4: c.added[4].peer}
	})
	waitStopped(t, n, ErrDataLost)
	c.crash(4)
}

// TestLearnerCatchesUpBySnapshot: a learner added after the log was
// compacted gets the configuration with the leader's snapshot, catches
// up, and restarts (without Join) from what it received.
func TestLearnerCatchesUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotEverySlots = 20
		cfg.SnapshotTrailingSlots = 5
	})
	c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := c.writers(2, 60, 100)
	var logs syncBuffer
	n4 := c.addLearner(ctx, 4, func(cfg *Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	})
	acked = append(acked, c.writers(2, 10, 200)...)
	checkExactlyOnce(t, c.converged(), acked)
	if !strings.Contains(logs.String(), "joined the cluster") || !strings.Contains(logs.String(), "installed a snapshot from the leader") {
		t.Fatalf("the learner did not join by snapshot:\n%s", logs.String())
	}
	want := expect([]paxos.NodeID{1, 2, 3}, []paxos.NodeID{4}, nil)
	if got := configString(n4.Configuration()); got != want {
		t.Fatalf("the learner's configuration: %s, want %s", got, want)
	}
	if st := n4.Status(); st.Joining || st.Role != RoleLearner {
		t.Fatalf("the learner's status: %+v", st)
	}
	c.crash(4)
	n4 = c.start(4)
	if got := configString(n4.Configuration()); got != want {
		t.Fatalf("the learner restarted with configuration %s, want %s", got, want)
	}
	acked = append(acked, c.writers(2, 10, 300)...)
	checkExactlyOnce(t, c.converged(), acked)

	// A learner removed learns it, although it never campaigns and the
	// leader stops sending to it once its removal governs.
	if err := c.onLeader(ctx, func(l *Node) error { return l.RemoveReplica(ctx, 4) }); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, n4, ErrRemoved)
}

// TestChangesThroughAFollowersClientPort drives every change through a
// client that knows only a follower's client address: it is redirected
// to the leader. It also checks the typed errors: ErrBadChange for a
// removed ID, ErrChangeInProgress for a second change while one waits,
// ErrNotCaughtUp for a learner that never caught up, *NotLeaderError from
// a follower's Node.
func TestChangesThroughAFollowersClientPort(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		if os.Getenv("DEBUGLOG") != "" {
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprint(cfg.ID), Level: hclog.Debug})
		}
	})
	leader := c.leader()
	follower := leader%3 + 1
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var nl *NotLeaderError
	err := c.node(follower).AddLearner(ctx, 4, "127.0.0.1:1", "")
	if !errors.As(err, &nl) || !nl.LeaderKnown || nl.LeaderID != leader || nl.LeaderAddr != c.client[leader] {
		t.Fatalf("a change asked of a follower: %v, want a *NotLeaderError naming replica %d at %s", err, leader, c.client[leader])
	}

	cl := client.New([]string{c.client[follower]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl.Close()
	a := c.newReplica(4)
	c.startJoining(4, nil)
	if err := cl.AddLearner(ctx, 4, a.peer, a.client); err != nil {
		t.Fatalf("AddLearner through the client: %v", err)
	}
	// Asked again, it is done already.
	if err := cl.AddLearner(ctx, 4, a.peer, a.client); err != nil {
		t.Fatalf("AddLearner asked again: %v", err)
	}
	conf, err := cl.Configuration(ctx)
	if err != nil || configString(conf) != expect([]paxos.NodeID{1, 2, 3}, []paxos.NodeID{4}, nil) {
		t.Fatalf("Configuration through the client: %v, %v", conf, err)
	}
	if m, _ := conf.Member(4); m.PeerAddr != a.peer || m.ClientAddr != a.client || m.Since == 0 {
		t.Fatalf("the learner's entry: %+v", m)
	}
	if err := cl.Promote(ctx, 4); err != nil {
		t.Fatalf("Promote through the client: %v", err)
	}
	if err := cl.TransferLeadership(ctx, 4); err != nil {
		t.Fatalf("TransferLeadership through the client: %v", err)
	}
	if st := c.node(4).Status(); st.Role != "leader" {
		waitFor(t, 10*time.Second, "replica 4 to lead", func() bool { return c.node(4).Status().Role == "leader" })
	}
	// The new leader's client address came with the configuration: the
	// follower redirects there.
	if _, err := cl.Submit(ctx, []byte("through the new leader")); err != nil {
		t.Fatal(err)
	}
	if st, err := cl.Status(ctx); err != nil || st.ID != 4 {
		t.Fatalf("the client talks to replica %d (%v), not the new leader at %s", st.ID, err, a.client)
	}
	if err := cl.RemoveReplica(ctx, leader); err != nil {
		t.Fatalf("RemoveReplica through the client: %v", err)
	}
	waitStopped(t, c.node(leader), ErrRemoved)
	c.crash(leader)
	if err := cl.AddLearner(ctx, leader, "127.0.0.1:1", ""); !errors.Is(err, ErrBadChange) || !strings.Contains(err.Error(), "never used again") {
		t.Fatalf("adding a removed ID through the client: %v, want ErrBadChange", err)
	}

	// A learner that never starts: promoting it waits, and a second
	// change meanwhile is refused.
	if err := cl.AddLearner(ctx, 5, "127.0.0.1:1", ""); err != nil {
		t.Fatal(err)
	}
	promoted := make(chan error, 1)
	go func() {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		promoted <- cl.Promote(pctx, 5)
	}()
	waitFor(t, 10*time.Second, "the promotion to be under way", func() bool { return c.node(4).changeUnderWay() })
	cl2 := client.New([]string{c.client[follower]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl2.Close()
	if err := cl2.AddLearner(ctx, 6, "127.0.0.1:2", ""); !errors.Is(err, ErrChangeInProgress) {
		t.Fatalf("a second change while one waits: %v, want ErrChangeInProgress", err)
	}
	// It times out: with the server's last word (ErrNotCaughtUp), or, on
	// a loaded machine, with the client's own deadline reached first
	// while it waited for that word.
	if err := <-promoted; !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotCaughtUp) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("promoting a learner that never caught up: %v, want ErrTimeout (and ErrNotCaughtUp, or the deadline)", err)
	}
	if err := cl.RemoveReplica(ctx, 5); err != nil {
		t.Fatal(err)
	}
	c.waitConfig(expect(slices.DeleteFunc([]paxos.NodeID{1, 2, 3, 4}, func(id paxos.NodeID) bool { return uint64(id) == leader }),
		nil, slices.Sorted(slices.Values([]paxos.NodeID{paxos.NodeID(leader), 5}))))
}
