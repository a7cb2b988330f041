package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/cmd/internal/opsserver/opstest"
)

// TestUpMetrics: paxos up --metrics-addr serves the metrics of its three
// replicas (each by its replica label), liveness, and readiness once a
// leader is known; the metrics follow a message put through the cluster.
func TestUpMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out opstest.SyncBuffer
	clientPort, peerPort, metricsPort := freePorts(t, 3), freePorts(t, 3), freePorts(t, 1)
	dir := t.TempDir()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"up", "--data-dir", dir, "--client-port", fmt.Sprint(clientPort), "--peer-port", fmt.Sprint(peerPort),
			"--timeout", "300ms", "--cluster-id", "up-metrics", "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort)}, &out, &out)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	opstest.WaitFor(t, 20*time.Second, "/readyz to answer 200", func() bool {
		select {
		case code := <-done:
			t.Fatalf("paxos up stopped (exit %d):\n%s", code, out.String())
		default:
		}
		if !strings.Contains(out.String(), "Metrics: http://") {
			return false // not listening yet, or replicas starting
		}
		code, _ := opstest.Get(t, base+"/readyz")
		return code == 200
	})
	if code, body := opstest.Get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	fams := opstest.Scrape(t, base)
	leader := ""
	for _, name := range opstest.Names {
		for id := 0; id < 3; id++ {
			if _, ok := opstest.Value(fams, name, "replica", fmt.Sprint(id)); !ok {
				t.Errorf("%s: no sample for replica %d", name, id)
			}
		}
	}
	for id := 0; id < 3; id++ {
		if v, _ := opstest.Value(fams, "paxos_is_leader", "replica", fmt.Sprint(id)); v == 1 {
			leader = fmt.Sprint(id)
		}
	}
	if leader == "" {
		t.Fatal("ready, and no replica's paxos_is_leader is 1")
	}
	before, _ := opstest.Value(fams, "paxos_commit_index", "replica", leader)

	c := chatroom.NewClient([]string{fmt.Sprintf("127.0.0.1:%d", clientPort)}, chatroom.Options{ClusterID: "up-metrics", TLSDir: filepath.Join(dir, "tls")})
	defer c.Close()
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if _, err := c.Put(pctx, "hi"); err != nil {
		t.Fatal(err)
	}
	opstest.WaitFor(t, 10*time.Second, "the leader's commit index and commit latencies to move", func() bool {
		fams := opstest.Scrape(t, base)
		commit, _ := opstest.Value(fams, "paxos_commit_index", "replica", leader)
		latencies, _ := opstest.Value(fams, "paxos_commit_latency_seconds", "replica", leader)
		return commit > before && latencies >= 1
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}
