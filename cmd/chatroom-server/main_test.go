package main

import (
	"bytes"
	"context"
	"fmt"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
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
		{[]string{"-i", "0", "-p", "10000", "-c", "0"}, "at least one server"},
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
