package main

import (
	"bytes"
	"fmt"
	stdnet "net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
)

// testCluster is an in-process chat room cluster on 127.0.0.1 ports chosen
// free at run time, in plaintext, under a cluster ID of its own; its
// replicas can be stopped and started again on the same ports and data.
type testCluster struct {
	t     *testing.T
	cfgs  []chatroom.ServerConfig
	nodes []*engine.Node // nil: stopped
}

func startCluster(t *testing.T, n int, clusterID string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, nodes: make([]*engine.Node, n)}
	peers := map[uint64]string{}
	for i := range n {
		peers[uint64(i)] = freeAddr(t)
	}
	dir := t.TempDir()
	for i := range n {
		c.cfgs = append(c.cfgs, chatroom.ServerConfig{
			ID: i, Count: n, Peers: peers, ClientAddr: freeAddr(t), ClusterID: clusterID,
			DataDir: filepath.Join(dir, fmt.Sprint("node-", i)), ElectionTimeout: 200 * time.Millisecond, Insecure: true,
		})
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for i := range n {
		c.start(i)
	}
	return c
}

// freeAddr returns an address on 127.0.0.1 whose port was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	n, err := chatroom.StartServer(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("starting replica %d: %v", i, err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

func (c *testCluster) addrs() []string {
	var a []string
	for _, cfg := range c.cfgs {
		a = append(a, cfg.ClientAddr)
	}
	return a
}

func (c *testCluster) port(i int) string {
	_, p, _ := stdnet.SplitHostPort(c.cfgs[i].ClientAddr)
	return p
}

// leader waits, with a deadline, for a running replica to lead.
func (c *testCluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.Status().Role == "leader" {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, under a deadline
	}
	c.t.Fatal("no leader within 20 s")
	return -1
}

// step runs one REPL command and returns what it printed.
func step(r *repl, out *bytes.Buffer, line string) string {
	out.Reset()
	r.do(line)
	return strings.TrimSuffix(out.String(), "\n")
}

// TestServersFailover: given the cluster, the client needs no connect,
// and when the server it talks to dies, the next command goes to another;
// connect names the server to try first.
func TestServersFailover(t *testing.T) {
	c := startCluster(t, 3, "client-failover")
	var out, errOut bytes.Buffer
	r := newREPL(cli{Host: "127.0.0.1", ClusterID: "client-failover", Timeout: 20 * time.Second, Insecure: true, Servers: c.addrs()}, &out, &errOut)
	defer r.drop()
	for _, s := range []struct{ line, want string }{
		{"p before", "[RESPONSE]: message committed (log length 1)"},
		{"g", `[RESPONSE]: ["before"]`},
	} {
		if got := step(r, &out, s.line); got != s.want {
			t.Fatalf("%q without connect: %q, want %q", s.line, got, s.want)
		}
	}
	// Talk to the leader, then kill it under the client.
	l := c.leader()
	if got, want := step(r, &out, "c "+c.port(l)), "[RESPONSE]: connected to server at port "+c.port(l); got != want {
		t.Fatalf("connect: %q, want %q", got, want)
	}
	c.stop(l)
	for _, s := range []struct{ line, want string }{
		{"p after", "[RESPONSE]: message committed (log length 2)"},
		{"g", `[RESPONSE]: ["before", "after"]`},
	} {
		if got := step(r, &out, s.line); got != s.want {
			t.Fatalf("%q after the server died: %q, want %q", s.line, got, s.want)
		}
	}
	// connect checks that a server answers at the port; the client it had
	// stays.
	if got, want := step(r, &out, "c "+c.port(l)), "[ERROR]: failed to connect to server at port "+c.port(l)+": "; !strings.HasPrefix(got, want) {
		t.Errorf("connect to the dead server: %q, want it to start %q", got, want)
	}
	if got, want := step(r, &out, "p still"), "[RESPONSE]: message committed (log length 3)"; got != want {
		t.Errorf("put after a failed connect: %q, want %q", got, want)
	}
	// disconnect means it, as in the original, --servers or not.
	step(r, &out, "d")
	if got, want := step(r, &out, "g"), "[ERROR]: not connected to a server"; got != want {
		t.Errorf("get after disconnect: %q, want %q", got, want)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q: want nothing", errOut.String())
	}
}

// TestTimedOutPutIsUnknownAndRetriedOnce: a put that times out says its
// outcome is unknown, never that it was not committed; putting the same
// message again is the same command (same client ID and sequence number),
// which the cluster stores once, wherever it goes.
func TestTimedOutPutIsUnknownAndRetriedOnce(t *testing.T) {
	c := startCluster(t, 3, "client-timeout")
	var out, errOut bytes.Buffer
	r := newREPL(cli{Host: "127.0.0.1", ClusterID: "client-timeout", Timeout: 20 * time.Second, Insecure: true}, &out, &errOut)
	defer r.drop()
	l := c.leader()
	step(r, &out, "c "+c.port(l))
	if got, want := step(r, &out, "p a"), "[RESPONSE]: message committed (log length 1)"; got != want {
		t.Fatalf("put: %q, want %q", got, want)
	}
	// No majority: the leader can take the put but not commit it.
	for i := range c.nodes {
		if i != l {
			c.stop(i)
		}
	}
	r.Timeout = time.Second
	got := step(r, &out, "p b")
	if !strings.HasPrefix(got, "[ERROR]: outcome unknown: no answer within 1s, so the message may or may not be committed") ||
		!strings.Contains(got, "put the same message again to retry it, and it is stored once either way") ||
		strings.Contains(got, "not committed:") {
		t.Fatalf("put without a majority: %q, want the outcome said to be unknown", got)
	}
	if !strings.Contains(errOut.String(), "--servers") {
		t.Errorf("stderr %q: want a note that --servers gives the client the cluster", errOut.String())
	}
	seq := r.seq
	for i := range c.nodes {
		if i != l {
			c.start(i)
		}
	}
	r.Timeout = 20 * time.Second
	// The retry: stored once, whether or not the first try was.
	if got, want := step(r, &out, "p b"), "[RESPONSE]: message committed (log length 2)"; got != want {
		t.Fatalf("retried put: %q, want %q", got, want)
	}
	if r.seq != seq {
		t.Errorf("the retry used sequence number %d, want %d, the put that timed out", r.seq, seq)
	}
	if got, want := step(r, &out, "g"), `[RESPONSE]: ["a", "b"]`; got != want {
		t.Errorf("get: %q, want %q", got, want)
	}
	// A different message after it is a new command.
	if got, want := step(r, &out, "p c"), "[RESPONSE]: message committed (log length 3)"; got != want || r.seq != seq+1 {
		t.Errorf("next put: %q with sequence number %d, want %q with %d", got, r.seq, want, seq+1)
	}
}
