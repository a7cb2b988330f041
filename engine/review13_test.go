package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/engine/paxos"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/net/certs"
)

// Tests from the review of the membership changes (issue 13).

// TestJoiningVoterIsRefusedAfterTheOthersRestarted: a replica that says it
// is joining (Join, an empty data directory) but that the configuration has
// as a voter lost its data, whoever heard it before: a learner is promoted
// only once it holds the log up to its own addition (a snapshot first), so
// no voter ever joins. The cluster refused it only if the replica it
// dialed had heard it with state in this life: after the others restarted
// (a rolling upgrade), a promoted learner whose disk died, started again
// with the command line it joined with ("the same command line restarts
// it"), was taken back as a voter with an empty state.
func TestJoiningVoterIsRefusedAfterTheOthersRestarted(t *testing.T) {
	n := &Node{stateful: map[uint64]bool{}} // heard nobody: just restarted
	for _, m := range []paxos.Member{
		{ID: 4, Voter: true, Since: 40},
		{ID: 0, Voter: true, Since: 0},
	} {
		for _, fresh := range []bool{true, false} {
			h := paxosnet.Hello{NodeID: uint64(m.ID), Joining: true, Fresh: fresh}
			if why := n.dataLost(h, m, true); why == "" {
				t.Errorf("a joining replica (fresh %v) that the configuration has as voter %+v was taken", fresh, m)
			}
		}
	}
	// A joining learner is taken: it may not have its snapshot yet, and it
	// votes in nothing.
	if why := n.dataLost(paxosnet.Hello{NodeID: 4, Joining: true, Fresh: true}, paxos.Member{ID: 4, Since: 40}, true); why != "" {
		t.Errorf("a joining learner was refused: %s", why)
	}
}

// TestWipedReplicaIsRefusedAfterAWholeClusterRestart: a power cut stops
// every replica, and one of them comes back with a new, empty disk under
// its old ID (the same command line). It had state: the others heard it
// say so. But they had just restarted too, and a replica remembered only
// in memory whom it had heard with state, so it took the wiped replica
// back as a voter with none of its promises and acceptances. The replicas
// remember it in their data directories.
func TestWipedReplicaIsRefusedAfterAWholeClusterRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	acked := c.writers(2, 5, 100)
	victim := leader%3 + 1
	// The others have heard the victim with state (it wrote a promise and
	// entries, and connected again saying so).
	waitFor(t, 10*time.Second, "the others hearing the victim with state", func() bool {
		for id, n := range c.running() {
			if id == victim {
				continue
			}
			n.statefulMu.Lock()
			heard := n.stateful[victim]
			n.statefulMu.Unlock()
			if !heard {
				return false
			}
		}
		return true
	})
	for id := range c.running() {
		c.crash(id)
	}
	if err := os.RemoveAll(filepath.Join(c.dir, fmt.Sprint(victim))); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		if id != victim {
			c.start(id)
		}
	}
	n := c.start(victim)
	waitStopped(t, n, ErrDataLost)
	c.crash(victim)
	acked = append(acked, c.writers(2, 5, 200)...)
	checkExactlyOnce(t, c.converged(), acked)
}

// TestAnonymousClientCannotChangeTheConfiguration: with
// ClientTLSServerOnly, "anyone who reaches the port may use it" to submit
// commands; but the same anonymous client could also add replicas,
// remove voters (for good: an ID is never used again) and move the
// leadership. A change of the configuration should need a client
// certificate of the cluster; one that presents it (paxos cluster does)
// may.
func TestAnonymousClientCannotChangeTheConfiguration(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	const cluster = "c"
	if _, err := certs.CreateDir(dir, cluster, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	n, _ := startClientPort(t, &logMachine{}, func(c *Config) {
		c.ClusterID, c.TLSDir, c.Insecure, c.ClientTLSServerOnly = cluster, dir, false, true
	})
	b, err := certs.LoadTrust(dir, cluster)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: cluster, TLS: certs.ClientConfig(b)}) // presents no certificate
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.AddLearner(ctx, 7, "127.0.0.1:1", ""); err == nil || !strings.Contains(err.Error(), "needs a client certificate") {
		t.Fatalf("a client without a certificate asked to add a learner: %v; configuration %v", err, n.Configuration())
	}
	checkServes(t, n, client.Options{ClusterID: cluster, TLS: certs.ClientConfig(b)}) // its commands are served
	admin := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: cluster, TLSDir: dir})
	defer admin.Close()
	if err := admin.AddLearner(ctx, 7, "127.0.0.1:1", ""); err != nil {
		t.Fatalf("a client with the cluster's certificate: %v", err)
	}
}

// leaderWithRemoved returns a single-voter core that leads a
// configuration that removed k replicas (IDs 100 on).
func leaderWithRemoved(t testing.TB, k int) (*paxos.RawNode, paxos.ConfigState) {
	cs := paxos.Bootstrap([]paxos.NodeID{1}, nil, nil)
	for i := 0; i < k; i++ {
		cs[0].Config.Removed = append(cs[0].Config.Removed, paxos.NodeID(100+i))
	}
	rn, err := paxos.NewRawNode(paxos.Config{ID: 1, ConfigState: cs, Rand: newRand(), Incarnation: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && !rn.IsLeader(); i++ {
		rn.Tick()
		for rn.HasReady() {
			rd := rn.Ready()
			for _, m := range append(rd.Messages, rd.MessagesAfterPersist...) {
				if m.To == 1 {
					rn.Step(m)
				}
			}
			rn.Advance(rd)
		}
	}
	if !rn.IsLeader() {
		t.Fatal("the single voter did not lead")
	}
	return rn, cs
}

// TestPublishViewDoesNotScanTheRemoved: the loop publishes the membership
// view after every turn; it asked the core, for every ID ever removed
// (up to paxos.MaxRemoved, 4096), whether it may tell it so, and built a
// map of them: on a leader, about half a millisecond and thousands of
// allocations per turn of the loop, for a list that only grows as
// machines are replaced. Only the removed replicas that knock on the peer
// port need asking.
func TestPublishViewDoesNotScanTheRemoved(t *testing.T) {
	rn, cs := leaderWithRemoved(t, paxos.MaxRemoved)
	n := &Node{rn: rn, confs: cs}
	st := rn.Status()
	n.publishView(st)
	if allocs := testing.AllocsPerRun(20, func() { n.publishView(st) }); allocs > 2 {
		t.Fatalf("publishing an unchanged view with %d removed replicas costs %.0f allocations", paxos.MaxRemoved, allocs)
	}
}

// TestRemovedReplicaKnocksThenIsDismissed: a removed replica that tries
// to connect is refused plainly; once the loop has asked the core about
// it, its next attempt is refused with the code that stops it.
func TestRemovedReplicaKnocksThenIsDismissed(t *testing.T) {
	rn, cs := leaderWithRemoved(t, 5)
	n := &Node{rn: rn, confs: cs, log: hclog.NewNullLogger()}
	st := rn.Status()
	n.publishView(st)
	h := paxosnet.Hello{NodeID: 102}
	var refusal *paxosnet.PeerRefusal
	if err := n.admit(h, false); err == nil || errors.As(err, &refusal) {
		t.Fatalf("the first attempt of a removed replica: %v, want a plain refusal", err)
	}
	n.publishView(st)
	if err := n.admit(h, false); !errors.As(err, &refusal) || refusal.Code != paxosnet.RefusalRemoved {
		t.Fatalf("the next attempt: %v, want a refusal with RefusalRemoved", err)
	}
	if err := n.admit(paxosnet.Hello{NodeID: 103}, false); errors.As(err, &refusal) {
		t.Fatalf("another removed replica, which never tried before, was dismissed: %v", err)
	}
}

// TestPeersWithStateAreKept: a member heard with state is written to the
// data directory, and read back at the next start; a stranger is not
// written (each new ID costs a synced write, and with Insecure anyone may
// claim any ID).
func TestPeersWithStateAreKept(t *testing.T) {
	dir := t.TempDir()
	n := &Node{cfg: Config{DataDir: dir, NoSync: true}, stateful: map[uint64]bool{}, log: hclog.NewNullLogger()}
	conf := paxos.Configuration{Members: []paxos.Member{{ID: 1, Voter: true}, {ID: 2, Voter: true}}}
	n.view.Store(&memberView{conf: conf, members: map[uint64]bool{1: true, 2: true}})
	if err := n.admit(paxosnet.Hello{NodeID: 2}, true); err != nil {
		t.Fatal(err)
	}
	if err := n.admit(paxosnet.Hello{NodeID: 9}, false); err == nil {
		t.Fatal("a stranger was admitted")
	}
	got, err := readStatefulPeers(dir)
	if err != nil || !got[2] || got[9] || len(got) != 1 {
		t.Fatalf("kept %v (%v), want replica 2 only", got, err)
	}
	// After a restart, replica 2 with a wiped directory is refused.
	n2 := &Node{cfg: Config{DataDir: dir, NoSync: true}, stateful: got, log: hclog.NewNullLogger()}
	n2.view.Store(&memberView{conf: conf, members: map[uint64]bool{1: true, 2: true}})
	var refusal *paxosnet.PeerRefusal
	if err := n2.admit(paxosnet.Hello{NodeID: 2, Fresh: true}, true); !errors.As(err, &refusal) || refusal.Code != paxosnet.RefusalDataLost {
		t.Fatalf("replica 2, wiped, after a restart: %v", err)
	}
}

// A new replica given the address of a member already there is refused:
// a typo that would leave it never catching up, or clients redirected to
// the wrong replica.
func TestAddLearnerRefusesAnAddressInUse(t *testing.T) {
	c := paxos.Configuration{Members: []paxos.Member{{ID: 1, Voter: true, PeerAddr: "h:1", ClientAddr: "h:2"}}}
	for _, cc := range []paxos.ConfChange{
		{Type: paxos.AddLearner, ID: 2, PeerAddr: "h:1", ClientAddr: "h:3"},
		{Type: paxos.AddLearner, ID: 2, PeerAddr: "h:4", ClientAddr: "h:2"},
	} {
		if err := checkChange(changeRequest{kind: changeAddLearner, cc: cc}, c); !errors.Is(err, ErrBadChange) {
			t.Errorf("%+v: %v, want ErrBadChange", cc, err)
		}
	}
	ok := paxos.ConfChange{Type: paxos.AddLearner, ID: 2, PeerAddr: "h:4", ClientAddr: "h:5"}
	if err := checkChange(changeRequest{kind: changeAddLearner, cc: ok}, c); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
}
