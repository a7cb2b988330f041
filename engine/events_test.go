package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/memfs"
	"github.com/paxos-go/paxos/net/certs"
)

// newIdleCluster is newTestCluster without starting any replica.
func newIdleCluster(t *testing.T, size int) *testCluster {
	c := &testCluster{t: t, dir: t.TempDir(), peers: map[uint64]string{}, client: map[uint64]string{},
		nodes: map[uint64]*Node{}, sms: map[uint64]*logMachine{}}
	var ids []uint64
	for id := uint64(1); id <= uint64(size); id++ {
		c.peers[id], c.client[id] = freeAddr(t), freeAddr(t)
		ids = append(ids, id)
	}
	c.tlsDir = filepath.Join(c.dir, "certs")
	if _, err := certs.CreateDir(c.tlsDir, "test", ids); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.closeAll)
	return c
}

// eventLog collects a node's events on a goroutine of the test's.
type eventLog struct {
	mu   sync.Mutex
	seen []Event // every event, in order
	done chan struct{}
}

func collectEvents(n *Node) *eventLog {
	l := &eventLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for e := range n.Events() {
			l.mu.Lock()
			l.seen = append(l.seen, e)
			l.mu.Unlock()
		}
	}()
	return l
}

// wait waits until an event that match accepts has come, and returns the
// first such event.
func (l *eventLog) wait(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	var found Event
	waitFor(t, 20*time.Second, what+" event", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.seen {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// TestWaitingForALeader: a replica of three, alone, knows no leader.
// Submit, Read and WaitLeader wait for one until their context ends (and
// say why), rather than fail at once; started before the others, they
// succeed once the others start. Meanwhile the events tell the story:
// peers connecting, roles, the leader, a snapshot, a peer lost, the stop.
func TestWaitingForALeader(t *testing.T) {
	c := newIdleCluster(t, 3)
	n1 := c.start(1)
	events := collectEvents(n1)
	ctx0, cancel0 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel0()

	short, cancel := context.WithTimeout(context.Background(), 3*c.electionTimeout())
	defer cancel()
	// ErrTimeout, wrapping the last *NotLeaderError when an attempt was
	// answered so before the context ended (on a loaded machine the
	// command may still have been waiting in the loop instead).
	if _, err := n1.Submit(short, 1, 1, []byte("early")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Submit with no leader: %v, want ErrTimeout", err)
	}
	if short.Err() == nil {
		t.Fatal("Submit with no leader returned before its context ended")
	}
	short2, cancel2 := context.WithTimeout(context.Background(), c.electionTimeout())
	defer cancel2()
	if _, err := n1.WaitLeader(short2); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitLeader with no leader: %v, want ErrTimeout", err)
	}
	if st := n1.Status(); st.HasLead || (st.Role != RoleFollower && st.Role != RolePreCandidate) {
		t.Fatalf("a lone replica's status: %+v", st)
	}
	// The Go client too: "no leader known" is retried until ctx ends.
	cl := client.New([]string{c.client[1], c.client[2], c.client[3]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl.Close()
	short3, cancel4 := context.WithTimeout(context.Background(), c.electionTimeout())
	defer cancel4()
	// (Another client than the one below: a session whose first command
	// timed out cannot go on at seq 2; see engine/session.)
	early := client.New([]string{c.client[1], c.client[2], c.client[3]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer early.Close()
	if _, err := early.Submit(short3, []byte("early")); !errors.Is(err, ErrTimeout) || short3.Err() == nil {
		t.Fatalf("client Submit with no leader: %v, want ErrTimeout when its context ended", err)
	}
	cl1 := client.New([]string{c.client[1]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl1.Close()
	if cst, err := cl1.Status(ctx0); err != nil || cst.ID != 1 || cst.HasLead || cst.Role == RoleLeader {
		t.Fatalf("client Status of the lone replica: %+v, %v", cst, err)
	}

	ctx, cancel3 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel3()
	type outcome struct {
		what string
		err  error
	}
	results := make(chan outcome, 4)
	go func() {
		_, err := cl.Submit(ctx, []byte("client-waited"))
		results <- outcome{"client Submit", err}
	}()
	go func() {
		resp, err := n1.Submit(ctx, 1, 1, []byte("waited"))
		if err == nil && !strings.HasSuffix(string(resp), ":waited") {
			err = fmt.Errorf("response %q", resp)
		}
		results <- outcome{"Submit", err}
	}()
	go func() {
		_, err := n1.Query(ctx, []byte("anything"))
		results <- outcome{"Query", err}
	}()
	go func() {
		_, err := n1.WaitLeader(ctx)
		results <- outcome{"WaitLeader", err}
	}()
	c.start(2)
	c.start(3)
	for range 4 {
		if r := <-results; r.err != nil {
			t.Fatalf("%s, started with no leader: %v", r.what, r.err)
		}
	}
	leader := c.leader()
	st := n1.Status()
	if !st.HasLead || st.Leader != leader || st.LeaderAddr != c.client[leader] || st.Promised.Node == 0 {
		t.Fatalf("status after the election: %+v (leader %d at %s)", st, leader, c.client[leader])
	}
	if want := map[bool]Role{true: RoleLeader, false: RoleFollower}[leader == 1]; st.Role != want {
		t.Fatalf("replica 1's role is %q, want %q", st.Role, want)
	}

	for _, peer := range []uint64{2, 3} {
		events.wait(t, fmt.Sprint("PeerConnected ", peer), func(e Event) bool { return e == PeerConnected{Peer: peer} })
	}
	lc := events.wait(t, "LeaderChanged", func(e Event) bool { _, ok := e.(LeaderChanged); return ok }).(LeaderChanged)
	if lc.Leader != leader || !lc.HasLeader || lc.LeaderAddr != c.client[leader] || lc.Ballot.Node == 0 {
		t.Fatalf("LeaderChanged %+v, want leader %d at %s", lc, leader, c.client[leader])
	}

	m, err := n1.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events.wait(t, "SnapshotTaken", func(e Event) bool { return e == SnapshotTaken{Slot: m.Slot, Bytes: m.Size} })

	other := uint64(2)
	if leader == 2 {
		other = 3
	}
	c.crash(other)
	events.wait(t, "PeerDisconnected", func(e Event) bool { return e == PeerDisconnected{Peer: other} })

	c.crash(1)
	select {
	case <-events.done: // Close closed the channel
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not close the events channel")
	}
	all := events.all()
	if all[len(all)-1] != (Stopped{}) {
		t.Fatalf("the last event after Close: %#v, want Stopped{}", all[len(all)-1])
	}
	// The roles went from follower, through an election, to the one the
	// status reports, each change announced once.
	role := RoleFollower
	for _, e := range all {
		if rc, ok := e.(RoleChanged); ok {
			if rc.From != role || rc.To == role {
				t.Fatalf("RoleChanged %+v after role %q; events %#v", rc, role, all)
			}
			role = rc.To
		}
	}
	if role != st.Role {
		t.Fatalf("the role changes end at %q, the status says %q", role, st.Role)
	}
	if n1.EventsDropped() != 0 {
		t.Fatalf("%d events dropped with a consumer keeping up", n1.EventsDropped())
	}
}

func (c *testCluster) electionTimeout() time.Duration { return 300 * time.Millisecond }

// TestEventsNeverBlock: nobody reads the events of a replica whose
// buffer holds two; the replica goes on electing itself and serving, the
// events beyond two are dropped and counted, and Stopped still arrives.
func TestEventsNeverBlock(t *testing.T) {
	fs := memfs.New()
	cfg := Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(t.TempDir(), "1"),
		ElectionTimeout: 100 * time.Millisecond, Insecure: true, EventBuffer: 2}
	cfg.WAL.FS = fs
	n, err := Start(cfg, &logMachine{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seq := uint64(1); seq <= 5; seq++ {
		if _, err := n.Submit(ctx, 1, seq, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n.EventsDropped() == 0 {
		t.Fatal("no event was dropped: the test exercised nothing")
	}
	n.Close()
	var got []Event
	for e := range n.Events() {
		got = append(got, e)
	}
	if len(got) != 3 || got[2] != (Stopped{}) {
		t.Fatalf("events of a consumer that read none until the end: %#v, want two then Stopped", got)
	}
}

// TestStorageFailureIsVisibleAtOnce: when fsync fails, the replica stops
// by itself: Done closes and Err says why, with nobody calling the node,
// and the Stopped event carries the same cause.
func TestStorageFailureIsVisibleAtOnce(t *testing.T) {
	fs := memfs.New()
	cfg := Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(t.TempDir(), "1"),
		ElectionTimeout: 100 * time.Millisecond, Insecure: true}
	cfg.WAL.FS, cfg.WAL.SegmentBytes = fs, 1<<20
	n, err := Start(cfg, &logMachine{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Err() != nil {
		t.Fatalf("Err of a healthy node: %v", n.Err())
	}
	eio := errors.New("EIO")
	fs.SetFault(func(op memfs.FaultOp, name string) error {
		if op == memfs.OpSync {
			return eio
		}
		return nil
	})
	// A command in flight makes the write; nobody waits for its answer.
	go n.Submit(ctx, 1, 1, []byte("doomed"))
	select {
	case <-n.Done():
	case <-ctx.Done():
		t.Fatal("Done did not close after fsync failed")
	}
	if err := n.Err(); !errors.Is(err, eio) {
		t.Fatalf("Err after fsync failed: %v, want the fsync error", err)
	}
	var stopped Stopped
	for e := range n.Events() {
		if s, ok := e.(Stopped); ok {
			stopped = s
			break
		}
	}
	if !errors.Is(stopped.Err, eio) {
		t.Fatalf("Stopped event: %v, want the fsync error", stopped.Err)
	}
	if _, err := n.WaitLeader(ctx); !errors.Is(err, ErrClosed) || !errors.Is(err, eio) {
		t.Fatalf("WaitLeader on a stopped node: %v", err)
	}
}
