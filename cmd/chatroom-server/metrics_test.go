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
	"github.com/paxos-go/paxos/cmd/internal/opsserver/opstest"
	"github.com/paxos-go/paxos/net/certs"
)

// TestMetricsAddr: a server with --metrics-addr serves its metrics
// (replica label 0), liveness, and readiness once it leads its cluster of
// one; the metrics follow a message put through it. A taken address stops
// the server with a clear error.
func TestMetricsAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port, metricsPort := freePort(t), freePort(t)
	tlsDir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(tlsDir, "metrics-test", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	var out opstest.SyncBuffer
	go func() {
		done <- run(ctx, []string{"-i", "0", "-p", fmt.Sprint(port), "-c", "1", "--data-dir", t.TempDir(), "--cluster-id", "metrics-test",
			"--peers", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--tls-dir", tlsDir, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort)}, &out)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	opstest.WaitFor(t, 20*time.Second, "/readyz to answer 200", func() bool {
		select {
		case code := <-done:
			t.Fatalf("the server stopped (exit %d):\n%s", code, out.String())
		default:
		}
		c, err := stdnet.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", metricsPort))
		if err != nil {
			return false // not listening yet
		}
		c.Close()
		code, body := opstest.Get(t, base+"/readyz")
		if code != 200 && !strings.HasPrefix(body, "not ready\nreplica 0: ") {
			t.Fatalf("/readyz: %d %q: want 200, or 503 saying why replica 0 is not ready", code, body)
		}
		return code == 200
	})
	if code, body := opstest.Get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	fams := opstest.Scrape(t, base)
	for _, name := range opstest.Names {
		if name == "paxos_peer_connected" || name == "paxos_peer_send_queue_bytes" {
			continue // a cluster of one has no peer
		}
		if _, ok := opstest.Value(fams, name, "replica", "0"); !ok {
			t.Errorf("%s: no sample for replica 0", name)
		}
	}
	if v, _ := opstest.Value(fams, "paxos_is_leader", "replica", "0"); v != 1 {
		t.Errorf("paxos_is_leader of the only replica: %v", v)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	before, _ := opstest.Value(fams, "paxos_applied_index", "replica", "0")
	fsyncs, _ := opstest.Value(fams, "paxos_wal_fsync_seconds", "replica", "0")

	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", port)}, chatroom.Options{ClusterID: "metrics-test", TLSDir: tlsDir})
	defer c.Close()
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if _, err := c.Put(pctx, "hello"); err != nil {
		t.Fatal(err)
	}
	opstest.WaitFor(t, 10*time.Second, "the metrics to show the message", func() bool {
		fams := opstest.Scrape(t, base)
		applied, _ := opstest.Value(fams, "paxos_applied_index", "replica", "0")
		latencies, _ := opstest.Value(fams, "paxos_commit_latency_seconds", "replica", "0")
		batches, _ := opstest.Value(fams, "paxos_batch_commands", "replica", "0")
		syncs, _ := opstest.Value(fams, "paxos_wal_fsync_seconds", "replica", "0")
		conns, _ := opstest.Value(fams, "paxos_client_connections", "replica", "0")
		return applied > before && latencies == 1 && batches >= 1 && syncs > fsyncs && conns == 1
	})

	// Another server on the same metrics address refuses to run.
	code, errOut := runServer(t, context.Background(), "-i", "0", "-p", fmt.Sprint(freePort(t)), "-c", "1", "--data-dir", t.TempDir(),
		"--peers", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--insecure", "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	if code != 1 || !strings.Contains(errOut, "--metrics-addr") || !strings.Contains(errOut, "address already in use") {
		t.Errorf("a metrics address in use: exit %d, %q", code, errOut)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}
