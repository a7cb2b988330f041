package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/net/certs"
)

// TestClusterBadCommandLines: every malformed cluster command is refused
// with the flag's name and exit 80 before anything is dialled.
func TestClusterBadCommandLines(t *testing.T) {
	dialed := false
	defer swapDial(func([]string, string, *tls.Config) membership { dialed = true; return &fakeCluster{} })()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster"}, "expected one of"},
		{[]string{"cluster", "grow"}, "unexpected argument grow"},
		{[]string{"cluster", "status", "--target="}, "--target: no address"},
		{[]string{"cluster", "status", "--target", "127.0.0.1:1,nohost"}, `--target: "nohost" is not host:port`},
		{[]string{"cluster", "status", "--target", "127.0.0.1:0"}, `"0" is not a TCP port`},
		{[]string{"cluster", "status", "--target", strings.Repeat("h:1,", 65) + "h:1"}, "--target: 66 addresses; a cluster has at most 64 members"},
		{[]string{"cluster", "status", "--timeout", "0s", "--insecure"}, "--timeout 0s: must be positive"},
		{[]string{"cluster", "status", "--timeout=-5s", "--insecure"}, "--timeout -5s"},
		{[]string{"cluster", "status", "--cluster-id", "a b", "--insecure"}, `--cluster-id "a b"`},
		{[]string{"cluster", "status", "--tls-dir", "d", "--insecure"}, "choose one"},
		{[]string{"cluster", "add", "3", "--insecure"}, "missing flags: --peer-addr=HOST:PORT, --client-addr=HOST:PORT"},
		{[]string{"cluster", "add", "3", "--peer-addr", "127.0.0.1:20003", "--insecure"}, "missing flags: --client-addr=HOST:PORT"},
		{[]string{"cluster", "add", "3", "--peer-addr", "x", "--client-addr", "127.0.0.1:1", "--insecure"}, `--peer-addr: "x" is not host:port`},
		{[]string{"cluster", "add", "3", "--peer-addr", "h:1", "--client-addr", "h:70000", "--insecure"}, `--client-addr: "h:70000"`},
		{[]string{"cluster", "add", "3", "--peer-addr", "h:1", "--client-addr", "h:1", "--insecure"}, "are both h:1"},
		{[]string{"cluster", "add", "--peer-addr", "h:1", "--client-addr", "h:2", "--insecure"}, `expected "<id>"`},
		{[]string{"cluster", "add", "1000000", "--peer-addr", "h:1", "--client-addr", "h:2", "--insecure"}, "<id> 1000000: a replica ID is between 0 and 999999"},
		{[]string{"cluster", "promote", "--insecure"}, `expected "<id>"`},
		{[]string{"cluster", "promote", "x", "--insecure"}, `<id>: expected a valid 64 bit uint but got "x"`},
		{[]string{"cluster", "remove", "--insecure", "--", "-1"}, `<id>: expected a valid 64 bit uint but got "-1"`},
		{[]string{"cluster", "remove", "99999999999999999999", "--insecure"}, "<id>: expected a valid 64 bit uint"},
		{[]string{"cluster", "transfer", "18446744073709551615", "--insecure"}, "<id> 18446744073709551615: a replica ID is between 0 and 999999"},
		{[]string{"cluster", "transfer", "1", "2", "--insecure"}, "unexpected argument 2"},
	} {
		code, out, errOut := runCLI(tc.args...)
		if code != 80 || !strings.Contains(errOut, tc.want) || out != "" && !strings.Contains(out, "Usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 80 and an error containing %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if dialed {
		t.Error("a bad command line reached the cluster")
	}
}

// TestClusterMissingCertificates: without --insecure the commands need a
// client certificate, and say where they looked.
func TestClusterMissingCertificates(t *testing.T) {
	defer swapDial(func([]string, string, *tls.Config) membership { return &fakeCluster{} })()
	dir := t.TempDir()
	code, _, errOut := runCLI("cluster", "status", "--tls-dir", dir)
	if code != 1 || !strings.Contains(errOut, "--tls-dir "+dir) || !strings.Contains(errOut, "ca.pem") {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming the directory and ca.pem", code, errOut)
	}
}

// TestClusterCommands runs each subcommand against a fake cluster: it
// asks for the right change, says what happened, and prints the
// configuration table.
func TestClusterCommands(t *testing.T) {
	f := &fakeCluster{view: clusterView{
		Config: paxos.Configuration{Members: []paxos.Member{
			{ID: 0, Voter: true, PeerAddr: "127.0.0.1:20000", ClientAddr: "127.0.0.1:10000"},
			{ID: 1, Voter: true, PeerAddr: "127.0.0.1:20001", ClientAddr: "127.0.0.1:10001"},
			{ID: 2, Voter: true, PeerAddr: "127.0.0.1:20002", ClientAddr: "127.0.0.1:10002"},
		}},
		Leader: 1, HasLeader: true,
	}}
	var gotAddrs []string
	var gotCluster string
	var gotTLS *tls.Config
	defer swapDial(func(addrs []string, cluster string, c *tls.Config) membership {
		gotAddrs, gotCluster, gotTLS = addrs, cluster, c
		return f
	})()

	code, out, errOut := runCLI("cluster", "status", "--insecure", "--target", "127.0.0.1:10001,127.0.0.1:10002", "--cluster-id", "orders")
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	if !slices.Equal(gotAddrs, []string{"127.0.0.1:10001", "127.0.0.1:10002"}) || gotCluster != "orders" || gotTLS != nil {
		t.Errorf("dialled %v of cluster %q with TLS %v", gotAddrs, gotCluster, gotTLS)
	}
	want := "ID  ROLE   PEER ADDRESS     CLIENT ADDRESS   LEADER\n" +
		"0   voter  127.0.0.1:20000  127.0.0.1:10000  \n" +
		"1   voter  127.0.0.1:20001  127.0.0.1:10001  *\n" +
		"2   voter  127.0.0.1:20002  127.0.0.1:10002  \n"
	if out != want {
		t.Errorf("status printed\n%s\nwant\n%s", out, want)
	}
	if !f.closed {
		t.Error("the client was not closed")
	}

	code, out, errOut = runCLI("cluster", "add", "3", "--insecure", "--peer-addr", "127.0.0.1:20003", "--client-addr", "127.0.0.1:10003")
	if code != 0 || !strings.Contains(errOut, "replica 3 added as a learner") || !strings.Contains(out, "3   learner  127.0.0.1:20003  127.0.0.1:10003") {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !slices.Equal(gotAddrs, []string{"127.0.0.1:10000", "127.0.0.1:10001", "127.0.0.1:10002"}) {
		t.Errorf("default --target is %v, want paxos up's client ports", gotAddrs)
	}
	code, out, errOut = runCLI("cluster", "promote", "3", "--insecure")
	if code != 0 || !strings.Contains(errOut, "replica 3 promoted to voter") || !strings.Contains(out, "3   voter  127.0.0.1:20003") {
		t.Fatalf("promote: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCLI("cluster", "remove", "2", "--insecure")
	if code != 0 || strings.Contains(out, "127.0.0.1:20002") || !strings.Contains(out, "removed (IDs never reused): 2\n") {
		t.Fatalf("remove: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCLI("cluster", "transfer", "3", "--insecure")
	if code != 0 || !strings.Contains(errOut, "replica 3 leads") || !strings.Contains(out, "127.0.0.1:10003  *") {
		t.Fatalf("transfer: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	want = "add-learner 3 127.0.0.1:20003 127.0.0.1:10003|promote 3|remove 2|transfer 3"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}

	// A refusal is a one-line error and exit 1, and the configuration is
	// not printed.
	f.err = errors.New("the cluster said no")
	code, out, errOut = runCLI("cluster", "remove", "0", "--insecure")
	if code != 1 || out != "" || errOut != "paxos: the cluster said no\n" {
		t.Fatalf("refused remove: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestPrintConfigurationWithoutLeader(t *testing.T) {
	var b strings.Builder
	printConfiguration(&b, clusterView{Config: paxos.Configuration{
		Members: []paxos.Member{{ID: 4, PeerAddr: "h:1"}},
		Removed: []paxos.NodeID{0, 2},
	}})
	want := "ID  ROLE     PEER ADDRESS  CLIENT ADDRESS  LEADER\n" +
		"4   learner  h:1           -               \n" +
		"removed (IDs never reused): 0 2\n" +
		"no leader known at the moment\n"
	if b.String() != want {
		t.Errorf("printed\n%q\nwant\n%q", b.String(), want)
	}
}

func swapDial(f func([]string, string, *tls.Config) membership) (restore func()) {
	old := dialCluster
	dialCluster = f
	return func() { dialCluster = old }
}

// fakeCluster applies the changes to its configuration, as a cluster
// would, and records them.
type fakeCluster struct {
	view   clusterView
	calls  []string
	err    error
	closed bool
}

func (f *fakeCluster) Configuration(context.Context) (clusterView, error) { return f.view, f.err }

func (f *fakeCluster) change(call string, cc paxos.ConfChange) error {
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, call)
	c, err := f.view.Config.Apply(cc, 1)
	if err != nil {
		return err
	}
	f.view.Config = c
	return nil
}

func (f *fakeCluster) AddLearner(_ context.Context, id uint64, peer, client string) error {
	return f.change(fmt.Sprintf("add-learner %d %s %s", id, peer, client), paxos.ConfChange{Type: paxos.AddLearner, ID: paxos.NodeID(id), PeerAddr: peer, ClientAddr: client})
}

func (f *fakeCluster) Promote(_ context.Context, id uint64) error {
	return f.change(fmt.Sprintf("promote %d", id), paxos.ConfChange{Type: paxos.Promote, ID: paxos.NodeID(id)})
}

func (f *fakeCluster) RemoveReplica(_ context.Context, id uint64) error {
	return f.change(fmt.Sprintf("remove %d", id), paxos.ConfChange{Type: paxos.Remove, ID: paxos.NodeID(id)})
}

func (f *fakeCluster) TransferLeadership(_ context.Context, id uint64) error {
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, fmt.Sprintf("transfer %d", id))
	f.view.Leader, f.view.HasLeader = id, true
	return nil
}

func (f *fakeCluster) Close() error { f.closed = true; return nil }

// TestClusterAgainstARealCluster runs the commands against three chat
// room replicas and a fourth that joins: add, promote, transfer, remove,
// status, and the errors of changes the cluster refuses.
func TestClusterAgainstARealCluster(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if _, err := certs.CreateDir(tlsDir, "chatroom", []uint64{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("certs", "--dir", tlsDir, "--cluster-id", "chatroom", "--add", "3"); code != 0 {
		t.Fatalf("certs --add 3: %s", errOut)
	}
	clientPort, peerPort := freePorts(t, 4), freePorts(t, 4)
	peers := map[uint64]string{}
	for id := 0; id < 3; id++ {
		peers[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", peerPort+id)
	}
	clients := map[uint64]string{}
	for id := 0; id < 3; id++ {
		clients[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", clientPort+id)
	}
	start := func(id int, join bool) *engine.Node {
		cfg := chatroom.ServerConfig{ID: id, Count: 3, Peers: peers, ClientAddrs: clients, ClientAddr: fmt.Sprintf("127.0.0.1:%d", clientPort+id),
			DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", id)), ClusterID: "chatroom", ElectionTimeout: 300 * time.Millisecond, TLSDir: tlsDir}
		if join {
			cfg.Count, cfg.Join, cfg.ClientAddrs = 0, true, nil
			cfg.Peers = map[uint64]string{uint64(id): fmt.Sprintf("127.0.0.1:%d", peerPort+id)}
		}
		n, err := chatroom.StartServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	for id := 0; id < 3; id++ {
		start(id, false)
	}
	joiner := start(3, true)
	target := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", clientPort, clientPort+1, clientPort+2)
	cli := func(args ...string) (int, string, string) {
		return runCLI(append(append([]string{"cluster"}, args...), "--target", target, "--tls-dir", tlsDir)...)
	}
	// The replicas elect a leader.
	var code int
	var out, errOut string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, out, errOut = cli("status")
		if strings.Contains(out, "*") || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 || !strings.Contains(out, fmt.Sprintf("0   voter  127.0.0.1:%d  127.0.0.1:%d", peerPort, clientPort)) || strings.Count(out, "voter") != 3 || strings.Count(out, "*") != 1 {
		t.Fatalf("status: exit %d, stdout\n%s\nstderr %q", code, out, errOut)
	}
	code, out, errOut = cli("add", "3", "--peer-addr", fmt.Sprintf("127.0.0.1:%d", peerPort+3), "--client-addr", fmt.Sprintf("127.0.0.1:%d", clientPort+3))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("3   learner  127.0.0.1:%d", peerPort+3)) {
		t.Fatalf("add: exit %d, stdout\n%s\nstderr %q", code, out, errOut)
	}
	code, out, errOut = cli("promote", "3")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("3   voter  127.0.0.1:%d", peerPort+3)) {
		t.Fatalf("promote: exit %d, stdout\n%s\nstderr %q", code, out, errOut)
	}
	code, out, errOut = cli("transfer", "3")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d  *", clientPort+3)) {
		t.Fatalf("transfer: exit %d, stdout\n%s\nstderr %q (replica 3: %+v, %v)", code, out, errOut, joiner.Status(), joiner.Err())
	}
	if st := joiner.Status(); st.Role != "leader" {
		t.Errorf("replica 3 is %s after the transfer", st.Role)
	}
	code, out, errOut = cli("remove", "0")
	if code != 0 || strings.Contains(out, fmt.Sprintf("127.0.0.1:%d ", peerPort)) || !strings.Contains(out, "removed (IDs never reused): 0") {
		t.Fatalf("remove: exit %d, stdout\n%s\nstderr %q", code, out, errOut)
	}
	// Changes the cluster refuses: a removed ID, a replica that is not a
	// member. One-line errors, exit 1.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "0", "--peer-addr", "127.0.0.1:1", "--client-addr", "127.0.0.1:2"}, "invalid configuration change"},
		{[]string{"promote", "7"}, "invalid configuration change"},
		{[]string{"transfer", "7"}, "invalid configuration change"},
	} {
		code, out, errOut := cli(tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and a line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
