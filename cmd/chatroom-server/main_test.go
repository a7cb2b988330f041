package main

import (
	"bytes"
	"context"
	"fmt"
	stdnet "net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/cmd/internal/opsserver/opstest"
	"github.com/paxos-go/paxos/net/certs"
)

func runServer(t *testing.T, ctx context.Context, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(ctx, args, &out)
	return code, out.String()
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "1", "-c", "1"}, "missing flags"},
		{[]string{"-i", "3", "-p", "10000", "-c", "3"}, "ids run from 0 to count-1"},
		{[]string{"-i", "0", "-p", "70000", "-c", "1"}, "not a TCP port"},
		{[]string{"-i", "0", "-p", "10000", "-c", "0"}, "--count"},
		{[]string{"-i", "0", "-p", "x", "-c", "1"}, "--port"},
		{[]string{"-i", "0", "-p", "10000", "-c", "2", "--peers", "127.0.0.1:1", "--data-dir", dir}, "lists 1 servers"},
		{[]string{"-i", "0", "-p", "10000", "-c", "100"}, "--count 100: a cluster has at most 99"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1000000000"}, "--count 1000000000"},
		{[]string{"--id=-1", "-p", "10000", "-c", "3"}, "--id -1"},
		{[]string{"-i", "0", "-p", "0", "-c", "1"}, "--port 0: not a TCP port"},
		{[]string{"-i", "0", "--port=-80", "-c", "1"}, "--port -80"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "-t", "5"}, "--timeout 5: between 10 and 60000 ms"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--timeout=-1"}, "--timeout -1"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "-t", "9223372036854775807"}, "--timeout 9223372036854775807"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--wal-segment-mb", "0"}, "--wal-segment-mb 0"},
		{[]string{"-i", "0", "-p", "20000", "-c", "1"}, "--port 20000: it is server 0's peer port"},
		{[]string{"-i", "0", "-p", "20002", "-c", "3"}, "it is server 2's peer port"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--peers", "127.0.0.1:10000"}, "it is server 0's peer port"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--peers", "127.0.0.1:70000"}, `"70000" is not a TCP port`},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--peers", "nohost"}, `"nohost" is not host:port`},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--cluster-id", "a b"}, `--cluster-id "a b"`},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--tls-dir", dir, "--insecure"}, "choose one"},
		{[]string{"-i", "0", "-p", "10000"}, "missing flags: --count=INT (or --join"},
		{[]string{"-i", "0", "-p", "10000", "-c", "1", "--metrics-addr", "localhost"}, `--metrics-addr: "localhost" is not host:port`},
		{[]string{"--join", "-i", "3", "-p", "10000", "-c", "3"}, "--count 3 and --join"},
		{[]string{"--join", "--id=-1", "-p", "10000"}, "--id -1: a replica ID is between 0 and 999999"},
		{[]string{"--join", "-i", "1000000", "-p", "10000"}, "--id 1000000"},
		{[]string{"--join", "-i", "50000", "-p", "10000"}, "--id 50000: its default peer port, 20000+id, is past 65535; give its address with --peers 50000=HOST:PORT"},
		{[]string{"--join", "-i", "3", "-p", "10000", "--peers", "0=127.0.0.1:20000"}, "--peers has no address for id 3, this server (with --join, give it as 3=HOST:PORT)"},
		{[]string{"--join", "-i", "3", "-p", "10000", "--peers", "3=127.0.0.1:20003,3=127.0.0.1:20004"}, "--peers: id 3 given twice"},
		{[]string{"--join", "-i", "3", "-p", "10000", "--peers", "9999999=127.0.0.1:1"}, "--peers: id 9999999"},
		{[]string{"--join", "-i", "3", "-p", "20003"}, "--port 20003: it is server 3's peer port"},
		{[]string{"--join", "-i", "3", "-p", "10000", "--peers", "3=nohost"}, `"nohost" is not host:port`},
	} {
		code, out := runServer(t, context.Background(), tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) || strings.Contains(strings.TrimSpace(out), "\n") {
			t.Errorf("%v: exit %d, output %q; want a one-line error containing %q", tc.args, code, out, tc.want)
		}
	}
}

func freePort(t *testing.T) int {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*stdnet.TCPAddr).Port
}

func TestPortInUseAndForeignDataDir(t *testing.T) {
	busy, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*stdnet.TCPAddr).Port
	dir := filepath.Join(t.TempDir(), "node")
	peer := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	code, out := runServer(t, context.Background(), "-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", dir, "--peers", peer, "--insecure")
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Fatalf("client port in use: exit %d, %q", code, out)
	}
	// The data dir now belongs to cluster "chatroom", server 0 of 1.
	code, out = runServer(t, context.Background(), "-i", "0", "-p", fmt.Sprint(freePort(t)), "-c", "1", "--data-dir", dir, "--peers", peer, "--cluster-id", "other", "--insecure")
	if code != 1 || !strings.Contains(out, "belongs to another server") {
		t.Fatalf("foreign data dir: exit %d, %q", code, out)
	}
}

// TestTLSDir: a --tls-dir must hold this server's certificate of this
// cluster; it is not made, unlike the default.
func TestTLSDir(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if _, err := certs.CreateDir(tlsDir, "chatroom", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	peers := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", freePort(t), freePort(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", "1", "--tls-dir", tlsDir}, "node-1.pem"},
		{[]string{"-i", "0", "--tls-dir", tlsDir, "--cluster-id", "other"}, `is not the CA of cluster "other"`},
		{[]string{"-i", "0", "--tls-dir", filepath.Join(dir, "none")}, "paxos certs --dir " + filepath.Join(dir, "none")},
	} {
		args := append([]string{"-p", fmt.Sprint(freePort(t)), "-c", "2", "--peers", peers, "--data-dir", filepath.Join(dir, "data")}, tc.args...)
		code, out := runServer(t, context.Background(), args...)
		if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(strings.TrimSpace(out), "\n") {
			t.Errorf("%v: exit %d, output %q; want a one-line error containing %q", tc.args, code, out, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Error("a --tls-dir that did not exist was made")
	}
}

// TestOriginalCommandLines starts a cluster of three with the original
// project's flags only (and --peers, to stay off ports others may use),
// all at once, in a directory of their own: they make data/tls between
// them, one CA for all, and elect a leader over mutual TLS.
func TestOriginalCommandLines(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	peers := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", freePort(t), freePort(t), freePort(t))
	ports := []int{freePort(t), freePort(t), freePort(t)}
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 3)
	for id := range 3 {
		go func() {
			code, out := runServer(t, ctx, "-i", fmt.Sprint(id), "-p", fmt.Sprint(ports[id]), "-c", "3", "-t", "300", "--peers", peers)
			done <- result{code, out}
		}()
	}
	// The servers make the certificates the client needs.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat("data/tls/client-key.pem"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])},
		chatroom.Options{ClusterID: "chatroom", TLSDir: "data/tls"})
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := c.Put(pctx, "hello")
	pcancel()
	c.Close()
	cancel()
	made := 0
	for range 3 {
		r := <-done
		if r.code != 0 {
			t.Errorf("a server exited %d: %s", r.code, r.out)
		}
		made += strings.Count(r.out, "made the certificates of cluster chatroom, replicas 0 to 2, in data/tls")
	}
	if err != nil {
		t.Fatalf("no put committed: %v", err)
	}
	if made != 1 {
		t.Errorf("%d servers say they made data/tls, want one", made)
	}
	for id := uint64(0); id < 3; id++ {
		if _, err := certs.LoadReplica("data/tls", "chatroom", id); err != nil {
			t.Error(err)
		}
	}
}

func TestCleanShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	port := freePort(t)
	tlsDir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(tlsDir, "chatroom", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	go func() {
		code, _ := runServer(t, ctx, "-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", t.TempDir(),
			"--peers", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--tls-dir", tlsDir)
		done <- code
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := stdnet.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // as SIGTERM would
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after a clean stop", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
}

// TestJoin: a server started with --join waits to be added, says how to
// add it, catches up once added and promoted, restarts from its data with
// the same command line, and stops by itself, saying so, once removed.
func TestJoin(t *testing.T) {
	dir := t.TempDir()
	peerPorts := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	peers := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", peerPorts[0], peerPorts[1], peerPorts[2])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 3)
	for id := range 3 {
		go func() {
			code, out := runServer(t, ctx, "-i", fmt.Sprint(id), "-p", fmt.Sprint(ports[id]), "-c", "3", "-t", "300", "--peers", peers,
				"--data-dir", filepath.Join(dir, fmt.Sprint(id)), "--insecure")
			done <- result{code, out}
		}()
	}
	defer func() {
		cancel()
		for range 3 {
			if r := <-done; r.code != 0 {
				t.Errorf("a server exited %d: %s", r.code, r.out)
			}
		}
	}()
	joinArgs := []string{"--join", "-i", "3", "-p", fmt.Sprint(ports[3]), "-t", "300", "--peers", fmt.Sprintf("3=127.0.0.1:%d", peerPorts[3]),
		"--data-dir", filepath.Join(dir, "3"), "--insecure", "-v"}
	type joiner struct {
		cancel context.CancelFunc
		out    *opstest.SyncBuffer
		done   chan int
	}
	startJoiner := func() joiner {
		jctx, jcancel := context.WithCancel(ctx)
		j := joiner{cancel: jcancel, out: &opstest.SyncBuffer{}, done: make(chan int, 1)}
		go func() { j.done <- run(jctx, joinArgs, j.out) }()
		return j
	}
	waitFor := func(j joiner, want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(j.out.String(), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the joining server never said %q:\n%s", want, j.out.String())
			}
		}
	}
	j := startJoiner()
	waitFor(j, fmt.Sprintf("paxos cluster add 3 --peer-addr 127.0.0.1:%d --client-addr 127.0.0.1:%d", peerPorts[3], ports[3]))

	addrs := []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])}
	admin := client.New(addrs, client.Options{ClusterID: "chatroom"})
	defer admin.Close()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	if err := admin.AddLearner(cctx, 3, fmt.Sprintf("127.0.0.1:%d", peerPorts[3]), fmt.Sprintf("127.0.0.1:%d", ports[3])); err != nil {
		t.Fatal(err)
	}
	if err := admin.Promote(cctx, 3); err != nil {
		t.Fatal(err)
	}
	c := chatroom.NewClient(addrs, chatroom.Options{ClusterID: "chatroom"})
	defer c.Close()
	if _, err := c.Put(cctx, "hello"); err != nil {
		t.Fatal(err)
	}
	read3 := func() []string {
		c3 := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", ports[3])}, chatroom.Options{ClusterID: "chatroom"})
		defer c3.Close()
		got, _ := c3.Get(cctx)
		return got
	}
	for !slices.Contains(read3(), "hello") {
		if cctx.Err() != nil {
			t.Fatal("the new server never served the message")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The same command line restarts it from its data.
	j.cancel()
	if code := <-j.done; code != 0 {
		t.Fatalf("the joined server exited %d on SIGTERM: %s", code, j.out.String())
	}
	j = startJoiner()
	waitFor(j, "serving")
	if strings.Contains(j.out.String(), "waits to join") {
		t.Errorf("the restarted server waits to join again:\n%s", j.out.String())
	}
	for !slices.Contains(read3(), "hello") {
		if cctx.Err() != nil {
			t.Fatal("the restarted server does not serve the message")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Removed, it stops by itself and says so.
	if err := admin.RemoveReplica(cctx, 3); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-j.done:
		if code != 0 || !strings.Contains(j.out.String(), "replica 3 was removed from the cluster") {
			t.Fatalf("the removed server exited %d:\n%s", code, j.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the removed server did not stop:\n%s", j.out.String())
	}

	// A server that lost its data cannot come back under its ID: started
	// with --join and an empty data dir as replica 1, it is refused by
	// the cluster, and stops with the documented way out.
	var out opstest.SyncBuffer
	code := run(cctx, []string{"--join", "-i", "1", "-p", fmt.Sprint(freePort(t)), "--insecure",
		"--peers", fmt.Sprintf("1=127.0.0.1:%d,0=127.0.0.1:%d", freePort(t), peerPorts[0]), "--data-dir", filepath.Join(dir, "1-new")}, &out)
	if code != 1 || !strings.Contains(out.String(), "lost its data") {
		t.Fatalf("a replica without its data came back under its ID: exit %d:\n%s", code, out.String())
	}
}

// TestDefaultLogs: by default the server says, at info, that it started
// (cluster, ID, addresses, data dir) and who leads; a client's connect
// (which probes with a status request) and a port probe that hangs up warn
// about nothing; -q keeps only warnings.
func TestDefaultLogs(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		port := freePort(t)
		dir := t.TempDir()
		args := []string{"-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", dir, "--cluster-id", "logs-test",
			"--peers", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--insecure"}
		if quiet {
			args = append(args, "-q")
		}
		out := &opstest.SyncBuffer{}
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, out) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c := client.New([]string{addr}, client.Options{ClusterID: "logs-test"})
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		for {
			st, err := c.Status(sctx)
			if err == nil && st.HasLead {
				break
			}
			if sctx.Err() != nil {
				t.Fatalf("the server never led: %v\n%s", err, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		scancel()
		c.Close()
		if raw, err := stdnet.Dial("tcp", addr); err == nil {
			raw.Close() // a port probe
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d:\n%s", code, out.String())
		}
		logs := out.String()
		if strings.Contains(logs, "[WARN]") || strings.Contains(logs, "[ERROR]") {
			t.Errorf("quiet=%v: warnings:\n%s", quiet, logs)
		}
		wants := []string{"serving: cluster=logs-test id=0 clients=" + addr, "data=" + dir, "this replica leads"}
		for _, want := range wants {
			if got := strings.Contains(logs, want); got == quiet {
				t.Errorf("quiet=%v: the logs say %q: %v\n%s", quiet, want, got, logs)
			}
		}
	}
}
