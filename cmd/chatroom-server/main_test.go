package main

import (
	"bytes"
	"context"
	"fmt"
	stdnet "net"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	code, out := runServer(t, context.Background(), "-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", dir, "--peers", peer)
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Fatalf("client port in use: exit %d, %q", code, out)
	}
	// The data dir now belongs to cluster "chatroom", server 0 of 1.
	code, out = runServer(t, context.Background(), "-i", "0", "-p", fmt.Sprint(freePort(t)), "-c", "1", "--data-dir", dir, "--peers", peer, "--cluster-id", "other")
	if code != 1 || !strings.Contains(out, "belongs to another server") {
		t.Fatalf("foreign data dir: exit %d, %q", code, out)
	}
}

func TestCleanShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	port := freePort(t)
	go func() {
		code, _ := runServer(t, ctx, "-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", t.TempDir(),
			"--peers", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
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
