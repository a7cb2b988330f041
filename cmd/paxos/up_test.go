package main

import (
	"bytes"
	"context"
	"fmt"
	stdnet "net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
)

// syncBuffer is a bytes.Buffer safe to read while a goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
	var out syncBuffer
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
	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", clientPort)}, chatroom.Options{ClusterID: "chatroom"})
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
	for _, want := range []string{"3 replicas on 127.0.0.1", fmt.Sprintf("connect %d", clientPort), "stopping"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
