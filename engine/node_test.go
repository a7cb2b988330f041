package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/memnet"
	"github.com/paxos-go/paxos/net/certs"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(engineKillHelperEnv); dir != "" {
		os.Exit(engineKillHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

// trivialMachine is the state machine of the benchmarks: it only counts.
type trivialMachine struct{ n uint64 }

func (m *trivialMachine) Apply(slot uint64, cmd []byte) []byte { m.n++; return nil }
func (m *trivialMachine) Snapshot(w io.Writer) error           { return nil }
func (m *trivialMachine) Restore(r io.Reader) error            { return nil }

// logMachine is the test state machine: an append-only log of payloads.
// Every payload the tests submit is unique, so a payload applied twice is
// a command executed twice.
type logMachine struct {
	mu  sync.Mutex
	log []string
}

func (m *logMachine) Apply(slot uint64, cmd []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, string(cmd))
	return []byte(fmt.Sprintf("%d:%s", len(m.log), cmd))
}

func (m *logMachine) Snapshot(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.log {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	return nil
}

func (m *logMachine) Restore(r io.Reader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = nil
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m.log = append(m.log, sc.Text())
	}
	return sc.Err()
}

func (m *logMachine) Query(q []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []byte(strings.Join(m.log, ","))
}

func (m *logMachine) entries() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

// testCluster is a cluster of Nodes in this process, on loopback TCP with
// real write-ahead logs in temporary directories.
type testCluster struct {
	t      testing.TB
	dir    string
	peers  map[uint64]string
	client map[uint64]string
	mod    func(*Config)
	tlsDir string // the cluster's certificates

	mu    sync.Mutex // guards nodes, sms and added, which crashes and restarts change
	nodes map[uint64]*Node
	sms   map[uint64]*logMachine
	// added are the addresses of the replicas added at run time.
	added map[uint64]replicaAddrs
	// trivial makes start give replicas a trivialMachine (benchmarks).
	trivial bool
}

// useTrivialMachines restarts every replica with a trivialMachine.
func (c *testCluster) useTrivialMachines() {
	c.trivial = true
	for id := range c.running() {
		c.crash(id)
		c.start(id)
	}
}

// running returns the running replicas, by id.
func (c *testCluster) running() map[uint64]*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[uint64]*Node, len(c.nodes))
	for id, n := range c.nodes {
		m[id] = n
	}
	return m
}

func (c *testCluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) sm(id uint64) *logMachine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

func newTestCluster(t testing.TB, size int, mod func(*Config)) *testCluster {
	c := &testCluster{t: t, dir: t.TempDir(), peers: map[uint64]string{}, client: map[uint64]string{},
		nodes: map[uint64]*Node{}, sms: map[uint64]*logMachine{}, mod: mod}
	var ids []uint64
	for id := uint64(1); id <= uint64(size); id++ {
		c.peers[id], c.client[id] = freeAddr(t), freeAddr(t)
		ids = append(ids, id)
	}
	// The replicas talk mutual TLS, as in production; the certificates
	// cover a few replicas more, for tests that add some.
	c.tlsDir = filepath.Join(c.dir, "certs")
	for id := uint64(size) + 1; id <= uint64(size)+spareReplicas; id++ {
		ids = append(ids, id)
	}
	if _, err := certs.CreateDir(c.tlsDir, "test", ids); err != nil {
		t.Fatal(err)
	}
	for id := range c.peers {
		c.start(id)
	}
	t.Cleanup(c.closeAll)
	return c
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// spareReplicas is how many replica IDs past a test cluster's size have
// certificates, for tests that add replicas.
const spareReplicas = 4

// start starts replica id from its data directory, with a fresh state
// machine that the node restores from its snapshot and log.
func (c *testCluster) start(id uint64) *Node {
	c.t.Helper()
	return c.startWith(id, nil)
}

// startWith is start with mod applied to the configuration last.
func (c *testCluster) startWith(id uint64, mod func(*Config)) *Node {
	c.t.Helper()
	n, err := c.tryStart(id, mod)
	if err != nil {
		c.t.Fatalf("starting replica %d: %v", id, err)
	}
	return n
}

// tryStart is startWith, returning the error of Start.
func (c *testCluster) tryStart(id uint64, mod func(*Config)) (*Node, error) {
	c.t.Helper()
	sm := &logMachine{}
	var machine StateMachine = sm
	if c.trivial {
		machine = &trivialMachine{}
	}
	cfg := Config{
		ID: id, Peers: c.peers, ClusterID: "test", TLSDir: c.tlsDir,
		DataDir:         filepath.Join(c.dir, fmt.Sprint(id)),
		ClientAddr:      c.client[id],
		ClientAddrs:     c.client,
		ElectionTimeout: 300 * time.Millisecond,
	}
	c.mu.Lock()
	if a, ok := c.added[id]; ok {
		// A replica added at run time: the flags are the first
		// configuration's, which does not have it.
		cfg.ClientAddr = a.client
	}
	c.mu.Unlock()
	cfg.WAL.SegmentBytes = 1 << 20
	if c.mod != nil {
		c.mod(&cfg)
	}
	if mod != nil {
		mod(&cfg)
	}
	var n *Node
	var err error
	// The address may still be held by the previous incarnation for a
	// moment after it closed.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err = Start(cfg, machine)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
	return n, nil
}

// crash stops replica id the way a killed process stops: Close writes
// nothing, so what is on disk is what the replica had acknowledged.
func (c *testCluster) crash(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

func (c *testCluster) closeAll() {
	for id := range c.running() {
		c.crash(id)
	}
}

// leader waits for a replica that leads and all others follow it.
func (c *testCluster) leader() uint64 {
	c.t.Helper()
	var id uint64
	waitFor(c.t, 20*time.Second, "a leader", func() bool {
		nodes := c.running()
		for i, n := range nodes {
			if n.Status().Role != "leader" {
				continue
			}
			for _, o := range nodes {
				select {
				case <-o.Done():
					continue // stopped (removed, refused)
				default:
				}
				if st := o.Status(); !st.Joining && (!st.HasLead || st.Leader != i) {
					return false
				}
			}
			id = i
			return true
		}
		return false
	})
	return id
}

// converged waits until every running replica applied the same log.
func (c *testCluster) converged() []string {
	c.t.Helper()
	var ref []string
	waitFor(c.t, 30*time.Second, "the replicas to converge", func() bool {
		ref = nil
		first := true
		for id := range c.running() {
			got := c.sm(id).entries()
			if first {
				ref, first = got, false
			} else if !slices.Equal(got, ref) {
				return false
			}
		}
		return true
	})
	return ref
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// submitRetrying submits (client, seq) to the given replicas in turn until
// one answers, as a client library would.
func (c *testCluster) submitRetrying(ctx context.Context, client, seq uint64, payload string) ([]byte, error) {
	for i := 0; ; i++ {
		nodes := c.running()
		ids := make([]uint64, 0, len(nodes))
		for id := range nodes {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) == 0 {
			return nil, errors.New("no replica running")
		}
		n := nodes[ids[i%len(ids)]]
		actx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := n.Submit(actx, client, seq, []byte(payload))
		cancel()
		if err == nil || errors.Is(err, ErrStale) || errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrBadSequence) {
			return resp, err
		}
		if ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writers runs k clients, each submitting count commands; it returns
// what they saw acknowledged.
func (c *testCluster) writers(k, count int, clientBase uint64) []string {
	c.t.Helper()
	acked, err := c.writersErr(k, count, clientBase)
	if err != nil {
		c.t.Fatal(err)
	}
	return acked
}

// writersErr is writers for any goroutine: it returns the first failure.
func (c *testCluster) writersErr(k, count int, clientBase uint64) ([]string, error) {
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	errs := make(chan error, k)
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := clientBase + uint64(w)
			for seq := uint64(1); seq <= uint64(count); seq++ {
				payload := fmt.Sprintf("c%d-%d", client, seq)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				resp, err := c.submitRetrying(ctx, client, seq, payload)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("client %d command %d: %w", client, seq, err)
					return
				}
				if !strings.HasSuffix(string(resp), ":"+payload) {
					errs <- fmt.Errorf("client %d command %d answered %q", client, seq, resp)
					return
				}
				mu.Lock()
				acked = append(acked, payload)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return acked, err
	}
	return acked, nil
}

// checkExactlyOnce checks that log holds every acknowledged payload
// exactly once, and nothing twice.
func checkExactlyOnce(t testing.TB, log, acked []string) {
	t.Helper()
	count := map[string]int{}
	for _, s := range log {
		if count[s]++; count[s] > 1 {
			t.Fatalf("%q applied twice", s)
		}
	}
	for _, s := range acked {
		if count[s] != 1 {
			t.Fatalf("acknowledged %q is not in the log", s)
		}
	}
}

func TestThreeNodesManyWriters(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	acked := c.writers(8, 40, 100)
	log := c.converged()
	checkExactlyOnce(t, log, acked)
	if len(log) != len(acked) {
		t.Fatalf("log holds %d commands, %d were acknowledged", len(log), len(acked))
	}
}

func TestFiveNodesManyWriters(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	c.leader()
	acked := c.writers(8, 25, 200)
	checkExactlyOnce(t, c.converged(), acked)
}

// TestCrashAndRestart crashes a follower, then the leader, while clients
// write, restarts both, and checks that every replica ends with the same
// log holding every acknowledged command once.
func TestCrashAndRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	var acked []string
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		a := c.writers(4, 60, 300)
		mu.Lock()
		acked = a
		mu.Unlock()
	}()
	follower := leader%3 + 1
	waitFor(t, 20*time.Second, "progress", func() bool { return len(c.sm(leader).entries()) > 20 })
	c.crash(follower)
	waitFor(t, 20*time.Second, "progress without the follower", func() bool { return len(c.sm(leader).entries()) > 60 })
	c.start(follower)
	c.crash(leader)
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		for id, n := range c.running() {
			if id != leader && n.Status().Role == "leader" {
				return true
			}
		}
		return false
	})
	c.start(leader)
	<-done
	log := c.converged()
	mu.Lock()
	defer mu.Unlock()
	checkExactlyOnce(t, log, acked)
}

// TestExactlyOnceAcrossLeaderChange retries a command whose leader died
// before answering on another replica, and checks it is applied once.
func TestExactlyOnceAcrossLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx := context.Background()
	if _, err := c.node(leader).Submit(ctx, 42, 1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// Submit, and kill the leader at once: the command may or may not
	// have been chosen.
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	c.node(leader).Submit(sctx, 42, 2, []byte("second"))
	cancel()
	c.crash(leader)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.submitRetrying(rctx, 42, 2, "second")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.submitRetrying(rctx, 42, 2, "second")
	if err != nil || string(again) != string(resp) {
		t.Fatalf("a retry of an applied command answered %q, %v; the first answer was %q", again, err, resp)
	}
	if _, err := c.submitRetrying(rctx, 42, 1, "first"); !errors.Is(err, ErrStale) {
		t.Fatalf("an old command: %v, want ErrStale", err)
	}
	c.start(leader)
	log := c.converged()
	checkExactlyOnce(t, log, []string{"first", "second"})
	if len(log) != 2 {
		t.Fatalf("log %v", log)
	}
}

// TestRestartFromSnapshot restarts a replica whose state machine is
// restored from a snapshot, then from the log after it.
func TestRestartFromSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	acked := c.writers(2, 20, 500)
	follower := leader%3 + 1
	waitFor(t, 10*time.Second, "the follower to apply everything", func() bool { return len(c.sm(follower).entries()) == len(acked) })
	m, err := c.node(follower).Snapshot(context.Background())
	if err != nil || m.Slot == 0 {
		t.Fatalf("Snapshot: %+v, %v", m, err)
	}
	more := c.writers(2, 10, 600)
	c.crash(follower)
	n := c.start(follower)
	if st := n.Status(); st.Applied < m.Slot {
		t.Fatalf("restarted at applied slot %d, below the snapshot's %d", st.Applied, m.Slot)
	}
	checkExactlyOnce(t, c.converged(), append(acked, more...))
}

func TestClientLibrary(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	// Start at a follower: the client is redirected to the leader.
	follower := leader%3 + 1
	cl := client.New([]string{c.client[follower]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 5; i++ {
		resp, err := cl.Submit(ctx, []byte(fmt.Sprint("m", i)))
		if err != nil || string(resp) != fmt.Sprintf("%d:m%d", i, i) {
			t.Fatalf("Submit %d: %q, %v", i, resp, err)
		}
	}
	if st, err := cl.Status(ctx); err != nil || st.ID != leader {
		t.Fatalf("the client talks to replica %d (%v), not the leader at %s", st.ID, err, c.client[leader])
	}
	got, err := cl.Query(ctx, nil)
	if err != nil || string(got) != "m1,m2,m3,m4,m5" {
		t.Fatalf("Query: %q, %v", got, err)
	}
	if st, err := cl.Status(ctx); err != nil || st.Role != "leader" || st.Applied < 5 {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	// A client of another cluster is refused with a clear error (that
	// does not say which cluster this is). It gets that far only with a
	// certificate of this cluster's CA.
	b, err := certs.LoadClient(c.tlsDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	wrong := client.New([]string{c.client[leader]}, client.Options{ClusterID: "other", TLS: certs.ClientConfig(b)})
	defer wrong.Close()
	// The refusal is permanent: the call fails at once, not when its
	// context ends.
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if _, err := wrong.Submit(wctx, []byte("x")); !errors.Is(err, client.ErrRefused) || !client.IsPermanent(err) || wctx.Err() != nil ||
		!strings.Contains(err.Error(), "wrong cluster") || strings.Contains(err.Error(), `"test"`) {
		t.Fatalf("a client of another cluster: %v (context: %v), want ErrRefused at once", err, wctx.Err())
	}
	// So is a certificate refused, by either side: the client's CA is
	// another cluster's, or the client has no certificate.
	otherDir := filepath.Join(t.TempDir(), "other")
	if _, err := certs.CreateDir(otherDir, "other", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	noCert := certs.ClientConfig(b).Clone()
	noCert.Certificates, noCert.GetClientCertificate = nil, nil
	for name, opts := range map[string]client.Options{
		"another CA":     {ClusterID: "other", TLSDir: otherDir},
		"no certificate": {ClusterID: "test", TLS: noCert},
	} {
		cl := client.New([]string{c.client[leader]}, opts)
		_, err := cl.Submit(wctx, []byte("x"))
		cl.Close()
		if !errors.Is(err, client.ErrCertificate) || wctx.Err() != nil {
			t.Fatalf("%s: %v (context: %v), want ErrCertificate at once", name, err, wctx.Err())
		}
	}
}

// TestMemTransport runs a cluster over the in-memory transport, and cuts
// the leader off: a new leader takes over, and the old one rejoins.
func TestMemTransport(t *testing.T) {
	mem := memnet.NewMemNetwork()
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Transport = mem.Transport(cfg.ID)
		cfg.TLSDir = "" // the in-memory transport has no TLS
		cfg.ClientAddr = ""
	})
	leader := c.leader()
	acked := c.writers(2, 10, 700)
	mem.Isolate(leader)
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		for id, n := range c.running() {
			if id != leader && n.Status().Role == "leader" {
				return true
			}
		}
		return false
	})
	mem.Heal()
	acked = append(acked, c.writers(2, 10, 800)...)
	checkExactlyOnce(t, c.converged(), acked)
}
