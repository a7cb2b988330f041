package main

import (
	"context"
	"fmt"
	stdnet "net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/cmd/internal/opsserver/opstest"
	"github.com/paxos-go/paxos/net/certs"
)

func freePorts(t *testing.T, n int) int {
	// n consecutive free ports from a random base.
	for attempt := 0; attempt < 50; attempt++ {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*stdnet.TCPAddr).Port
		ln.Close()
		ok := true
		for i := 0; i < n && ok; i++ {
			ok = portFree(base+i) == nil
		}
		if ok && base+n < 65535 {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// TestUp starts the local cluster, waits for a leader, puts a message
// through a client, and stops it as Ctrl-C would.
func TestUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out opstest.SyncBuffer
	clientPort, peerPort := freePorts(t, 3), freePorts(t, 3)
	dir := t.TempDir()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"up", "--data-dir", dir, "--client-port", fmt.Sprint(clientPort), "--peer-port", fmt.Sprint(peerPort), "--timeout", "300ms"}, &out, &out)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "leader: replica") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no leader shown:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", clientPort)}, chatroom.Options{ClusterID: "chatroom", TLSDir: filepath.Join(dir, "tls")})
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := c.Put(pctx, "hi"); err != nil {
		t.Fatal(err)
	}
	pcancel()
	c.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	// Secure by default: the certificates were made under the data dir,
	// and the client command printed names them.
	tlsDir := filepath.Join(dir, "tls")
	for _, want := range []string{"3 replicas on 127.0.0.1", "mutual TLS, with certificates made now in " + tlsDir, "configuration: {0 1 2}",
		"go run ./cmd/chatroom-client --tls-dir " + tlsDir, fmt.Sprintf("connect %d", clientPort), "stopping"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for id := uint64(0); id < 3; id++ {
		if _, err := certs.LoadReplica(tlsDir, "chatroom", id); err != nil {
			t.Errorf("replica %d's certificate: %v", id, err)
		}
	}
}

// TestUpBadFlags: every count, port and duration is checked before
// anything starts, with the flag's name; none panics or is replaced.
func TestUpBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "5ns"}, "--timeout 5ns: an election timeout is between 10ms and 1m0s"},
		{[]string{"--timeout=-1s"}, "--timeout -1s"},
		{[]string{"--timeout", "0s"}, "--timeout 0s"},
		{[]string{"--timeout", "2m"}, "--timeout 2m0s"},
		{[]string{"--timeout", "soon"}, "--timeout"},
		{[]string{"--nodes", "0"}, "--nodes 0: a cluster has between 1 and 99"},
		{[]string{"--nodes", "1000"}, "--nodes 1000"},
		{[]string{"--nodes=-3"}, "--nodes -3"},
		{[]string{"--client-port", "0"}, "--client-port 0: not a TCP port"},
		{[]string{"--client-port", "70000"}, "--client-port 70000"},
		{[]string{"--client-port", "65534"}, "need ports 65534 to 65536"},
		{[]string{"--peer-port=-1"}, "--peer-port -1"},
		{[]string{"--client-port", "20001"}, "which overlap"},
		{[]string{"--peer-port", "9998"}, "which overlap"},
		{[]string{"--cluster-id", "no spaces"}, `--cluster-id "no spaces"`},
		{[]string{"--data-dir", ""}, "--data-dir: empty"},
		{[]string{"--tls-dir", "x", "--insecure"}, "choose one"},
		{[]string{"--replicas", "0,3"}, "--replicas: 3: the replicas of --nodes 3 are 0 to 2"},
		{[]string{"--replicas=-1"}, "--replicas: -1"},
		{[]string{"--replicas", "1,1"}, "--replicas: 1 given twice"},
		{[]string{"--replicas", "x"}, "--replicas"},
		{[]string{"--metrics-addr", "9090"}, `--metrics-addr: "9090" is not host:port`},
		{[]string{"--metrics-addr", "127.0.0.1:0"}, "--metrics-addr"},
	} {
		code, _, errOut := runCLI(append([]string{"up"}, tc.args...)...)
		if code != 80 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "panic") {
			t.Errorf("up %q: exit %d, stderr %q; want exit 80 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestUpTLSDir: a --tls-dir that lacks the replicas' certificates, or
// holds another cluster's, stops paxos up before any replica starts.
func TestUpTLSDir(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if _, err := certs.CreateDir(other, "other", []uint64{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "tls") // the default of --data-dir dir
	if _, err := certs.CreateDir(small, "chatroom", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	clientPort, peerPort := freePorts(t, 3), freePorts(t, 3)
	ports := []string{"--client-port", fmt.Sprint(clientPort), "--peer-port", fmt.Sprint(peerPort), "--data-dir", dir}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-dir", filepath.Join(dir, "none")}, "paxos certs --dir " + filepath.Join(dir, "none") + " --cluster-id chatroom"},
		{[]string{"--tls-dir", other}, `is not the CA of cluster "chatroom"`},
		{[]string{"--tls-dir", small}, "node-1.pem"},
		// The default dir, made for one replica before: not remade.
		{nil, "the certificates in " + small + " (made on first use"},
		{[]string{"--cluster-id", "other", "--nodes", "1"}, `holds the certificates of cluster "chatroom", not "other"`},
	} {
		code, out, errOut := runCLI(append(append([]string{"up"}, ports...), tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(out, "replica 0") {
			t.Errorf("up %q: exit %d, stdout %q, stderr %q; want exit 1 before starting, and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestUpSomeReplicas: with --replicas, paxos up runs only those, and the
// cluster works with the others started elsewhere as chatroom.StartServer
// (chatroom-server) starts them.
func TestUpSomeReplicas(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out opstest.SyncBuffer
	clientPort, peerPort := freePorts(t, 3), freePorts(t, 3)
	dir := t.TempDir()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"up", "--replicas", "2,0", "--data-dir", dir, "--client-port", fmt.Sprint(clientPort),
			"--peer-port", fmt.Sprint(peerPort), "--timeout", "300ms"}, &out, &out)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Stop it with Ctrl-C") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("paxos up did not start:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(out.String(), "replica 1  clients") || !strings.Contains(out.String(), "replicas 0,2 of 3") {
		t.Fatalf("paxos up --replicas 2,0 says:\n%s", out.String())
	}
	// Replica 1 as paxos up would start it: the same first configuration.
	peers, clients := map[uint64]string{}, map[uint64]string{}
	for id := 0; id < 3; id++ {
		peers[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", peerPort+id)
		clients[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", clientPort+id)
	}
	n, err := chatroom.StartServer(chatroom.ServerConfig{ID: 1, Count: 3, Peers: peers, ClientAddrs: clients, ClientAddr: fmt.Sprintf("127.0.0.1:%d", clientPort+1),
		DataDir: filepath.Join(dir, "node-1"), ClusterID: "chatroom", ElectionTimeout: 300 * time.Millisecond, TLSDir: filepath.Join(dir, "tls")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", clientPort+1)}, chatroom.Options{ClusterID: "chatroom", TLSDir: filepath.Join(dir, "tls")})
	defer c.Close()
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if _, err := c.Put(pctx, "hi"); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "applied: 0:") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line labelled by replica:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A replica of paxos up that the cluster removes stops, and paxos up
	// says so, and goes on with the other.
	var all []string
	for id := 0; id < 3; id++ {
		all = append(all, fmt.Sprintf("127.0.0.1:%d", clientPort+id))
	}
	admin := client.New(all, client.Options{ClusterID: "chatroom", TLSDir: filepath.Join(dir, "tls")})
	defer admin.Close()
	if err := admin.RemoveReplica(pctx, 2); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "replica 2 stopped: paxos: this replica was removed from the cluster") {
		if time.Now().After(deadline) {
			t.Fatalf("paxos up did not say that replica 2 stopped:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Put(pctx, "after"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}
