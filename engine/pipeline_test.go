package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
)

// TestPipelinedExactlyOnce: one client keeps up to Window commands
// outstanding (SubmitAsync), retries some of them on another replica while
// they are in flight, and loses the leader midway, retrying everything
// outstanding elsewhere. Every command is applied exactly once, every
// answer (first or retry) is the first execution's, and an old command is
// refused as stale afterwards.
func TestPipelinedExactlyOnce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	const client, total = 500, 400
	payload := func(seq uint64) []byte { return []byte(fmt.Sprint("p", seq)) }
	answers := map[uint64]map[string]bool{} // seq -> the answers it got
	futures := map[uint64][]*Future{}
	next, oldest := uint64(1), uint64(1)
	turn := 0
	pick := func() *Node { // a running replica, in turn
		nodes := c.running()
		ids := make([]uint64, 0, len(nodes))
		for id := range nodes {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		turn++
		return nodes[ids[turn%len(ids)]]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	crashed, resent := false, uint64(0)
	for oldest <= total {
		for next <= total && next < oldest+Window {
			n := c.node(leader)
			if n == nil {
				n = pick()
			}
			futures[next] = append(futures[next], n.SubmitAsync(client, next, oldest, payload(next)))
			if next%10 == 0 {
				// A retry in flight, elsewhere, with a later oldest.
				futures[next] = append(futures[next], pick().SubmitAsync(client, next, oldest, payload(next)))
			}
			next++
		}
		if oldest == 150 && !crashed {
			c.crash(leader)
			crashed = true
		}
		// Wait for the oldest; on failure, send everything outstanding
		// again, elsewhere.
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		var failed error
		for _, f := range futures[oldest] {
			resp, err := f.Wait(wctx)
			if err != nil {
				failed = err
				continue
			}
			if answers[oldest] == nil {
				answers[oldest] = map[string]bool{}
			}
			answers[oldest][string(resp)] = true
		}
		wcancel()
		if answers[oldest] != nil {
			delete(futures, oldest)
			oldest++
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("command %d: %v", oldest, failed)
		}
		if !errors.Is(failed, ErrTimeout) && !errors.Is(failed, ErrClosed) && !errors.Is(failed, ErrNotLeader) {
			t.Fatalf("command %d: %v", oldest, failed)
		}
		for seq := oldest; seq < next; seq++ {
			futures[seq] = []*Future{pick().SubmitAsync(client, seq, oldest, payload(seq))}
		}
		resent += next - oldest
	}
	if !crashed || resent == 0 {
		t.Fatalf("the leader crashed: %v; commands sent again: %d", crashed, resent)
	}
	t.Logf("%d commands sent again after failures", resent)
	c.start(leader)
	log := c.converged()
	var acked []string
	for seq := uint64(1); seq <= total; seq++ {
		acked = append(acked, string(payload(seq)))
		if len(answers[seq]) != 1 {
			t.Fatalf("command %d got different answers: %v", seq, answers[seq])
		}
		for a := range answers[seq] {
			idx, p, ok := strings.Cut(a, ":")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 1 || i > len(log) || log[i-1] != p || p != string(payload(seq)) {
				t.Fatalf("command %d answered %q, which is not its execution (log %d entries)", seq, a, len(log))
			}
		}
	}
	checkExactlyOnce(t, log, acked)
	if len(log) != total {
		t.Fatalf("%d entries in the log, want %d", len(log), total)
	}
	if _, err := c.submitRetrying(ctx, client, 5, string(payload(5))); !errors.Is(err, ErrStale) {
		t.Fatalf("command 5 again, one at a time, after all were answered: %v, want ErrStale", err)
	}
	// The rule is enforced at the door.
	if _, err := c.node(leader).SubmitAsync(client, 1000, 900, []byte("x")).Wait(ctx); err == nil || !strings.Contains(err.Error(), "Window") {
		t.Fatalf("a command beyond the window: %v", err)
	}
}

// TestClientSubmitAsync: a Go client keeps 64 commands outstanding over
// the client port, through the loss of the leader; every command is
// applied exactly once and answered with its own execution; a Submit
// after them goes on from the next sequence number.
func TestClientSubmitAsync(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	addrs := []string{c.client[1], c.client[2], c.client[3]}
	cl := client.New(addrs, client.Options{ClusterID: "test", TLSDir: c.tlsDir, AttemptTimeout: time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const total = 600
	var futures []*client.Future
	for i := 1; i <= total; i++ {
		futures = append(futures, cl.SubmitAsync(ctx, []byte(fmt.Sprint("a", i))))
		if i == 200 {
			c.crash(leader)
		}
	}
	for i, f := range futures {
		resp, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("command %d: %v", i+1, err)
		}
		if want := fmt.Sprint("a", i+1); !strings.HasSuffix(string(resp), ":"+want) || f.Seq() != uint64(i+1) {
			t.Fatalf("command %d (seq %d) answered %q", i+1, f.Seq(), resp)
		}
	}
	if resp, err := cl.Submit(ctx, []byte("after")); err != nil || !strings.HasSuffix(string(resp), ":after") || cl.Seq() != total+1 {
		t.Fatalf("Submit after the pipeline: %q, %v, seq %d", resp, err, cl.Seq())
	}
	c.start(leader)
	log := c.converged()
	var acked []string
	for i := 1; i <= total; i++ {
		acked = append(acked, fmt.Sprint("a", i))
	}
	checkExactlyOnce(t, log, append(acked, "after"))
	if len(log) != total+1 {
		t.Fatalf("%d entries in the log, want %d", len(log), total+1)
	}
	cl.Close()
	if _, err := cl.SubmitAsync(ctx, []byte("closed")).Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubmitAsync after Close: %v", err)
	}
}
