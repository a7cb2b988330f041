package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/engine/paxos"
)

// metricNames are the names issue 14 fixes, each exported with a replica
// label. TestMetricNamesAreDocumented checks the engine registers exactly
// these, and that the README and the dashboard's page list exactly these
// (the dashboard's test checks its queries against its page).
var metricNames = []string{
	"paxos_commit_latency_seconds", "paxos_wal_fsync_seconds", "paxos_batch_commands",
	"paxos_inflight_slots", "paxos_commit_index", "paxos_applied_index", "paxos_is_leader",
	"paxos_leader_changes_total", "paxos_elections_total", "paxos_snapshot_seconds",
	"paxos_snapshot_bytes", "paxos_snapshot_installs_total", "paxos_peer_connected",
	"paxos_peer_send_queue_bytes", "paxos_client_connections", "paxos_protocol_violations_total",
}

// sample is one metric of a gathered family: its labels, and its value (a
// histogram's: its count, with its sum).
type sample struct {
	labels     map[string]string
	value, sum float64
}

// gather returns the samples of every family in reg, by name.
func gather(t testing.TB, reg prometheus.Gatherer) map[string][]sample {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	out := map[string][]sample{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value, s.sum = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
			}
			out[f.GetName()] = append(out[f.GetName()], s)
		}
	}
	return out
}

// metricValue returns the value of name for replica id (and peer, if not
// 0), and whether there is one.
func metricValue(fams map[string][]sample, name string, id, peer uint64) (float64, bool) {
	for _, s := range fams[name] {
		if s.labels["replica"] == fmt.Sprint(id) && (peer == 0 || s.labels["peer"] == fmt.Sprint(peer)) {
			return s.value, true
		}
	}
	return 0, false
}

// TestMetrics runs a cluster whose replicas share one registry, and
// checks each metric exists per replica and follows what the cluster
// does: commands, fsyncs, a snapshot, a replica that restarts and catches
// up by snapshot (its metrics registered again), a client connection.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Metrics = reg
		cfg.SnapshotEverySlots, cfg.SnapshotTrailingSlots = 10, 2
	})
	leader := c.leader()
	lagger := leader%3 + 1
	ids := []uint64{1, 2, 3}

	fams := gather(t, reg)
	for _, name := range metricNames {
		for _, id := range ids {
			if _, ok := metricValue(fams, name, id, 0); !ok {
				t.Errorf("%s: no sample for replica %d", name, id)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// The transport connects to every peer in the background.
	waitFor(t, 10*time.Second, "every replica connected to both of its peers", func() bool {
		fams := gather(t, reg)
		for _, id := range ids {
			for _, p := range ids {
				if v, ok := metricValue(fams, "paxos_peer_connected", id, p); p != id && (!ok || v != 1) {
					return false
				}
			}
			if _, ok := metricValue(fams, "paxos_peer_connected", id, id); ok {
				return false // a replica is not its own peer
			}
		}
		return true
	})

	c.crash(lagger)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const commands = 30
	for seq := uint64(1); seq <= commands; seq++ {
		if _, err := c.node(leader).Submit(ctx, 7, seq, []byte(fmt.Sprint("m", seq))); err != nil {
			t.Fatalf("Submit %d: %v", seq, err)
		}
	}
	// The gauges are set at the end of the turn that answered the last
	// command: maybe a moment after Submit returned.
	waitFor(t, 10*time.Second, "the leader's applied index to pass the commands", func() bool {
		v, _ := metricValue(gather(t, reg), "paxos_applied_index", leader, 0)
		return v >= commands
	})
	fams = gather(t, reg)
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("after %d commands: %s", commands, what)
		}
	}
	v, _ := metricValue(fams, "paxos_commit_latency_seconds", leader, 0)
	check(fmt.Sprintf("the leader observed %v commit latencies, want %d", v, commands), v == commands)
	v, _ = metricValue(fams, "paxos_batch_commands", leader, 0)
	check(fmt.Sprintf("the leader observed %v batches, want %d (one command each)", v, commands), v == commands)
	v, _ = metricValue(fams, "paxos_wal_fsync_seconds", leader, 0)
	check(fmt.Sprintf("the leader observed %v fsyncs, want at least %d", v, commands), v >= commands)
	v, _ = metricValue(fams, "paxos_is_leader", leader, 0)
	check(fmt.Sprintf("paxos_is_leader of the leader is %v", v), v == 1)
	v, _ = metricValue(fams, "paxos_snapshot_seconds", leader, 0)
	check(fmt.Sprintf("the leader took %v snapshots, want some (every 10 slots)", v), v >= 2)
	v, _ = metricValue(fams, "paxos_snapshot_bytes", leader, 0)
	check(fmt.Sprintf("the leader's latest snapshot has %v bytes", v), v > 0)
	var elections float64
	for _, id := range ids {
		if id == leader {
			continue
		}
		if id != lagger {
			v, _ = metricValue(fams, "paxos_is_leader", id, 0)
			check(fmt.Sprintf("paxos_is_leader of follower %d is %v", id, v), v == 0)
			v, _ = metricValue(fams, "paxos_leader_changes_total", id, 0)
			check(fmt.Sprintf("follower %d saw %v leader changes", id, v), v >= 1)
			v, _ = metricValue(fams, "paxos_commit_latency_seconds", id, 0)
			check(fmt.Sprintf("follower %d observed %v commit latencies: nothing was submitted there", id, v), v == 0)
		}
	}
	for _, id := range ids {
		v, _ := metricValue(fams, "paxos_elections_total", id, 0)
		elections += v
	}
	check(fmt.Sprintf("%v elections in all", elections), elections >= 1)
	waitFor(t, 10*time.Second, "the leader to show the crashed replica disconnected", func() bool {
		v, ok := metricValue(gather(t, reg), "paxos_peer_connected", leader, lagger)
		return ok && v == 0 // once a heartbeat's write fails
	})

	// The lagger restarts: its metrics are registered again (Close
	// unregistered them), and it catches up by snapshot.
	c.start(lagger)
	waitFor(t, 20*time.Second, "the restarted replica to install a snapshot and apply everything", func() bool {
		fams := gather(t, reg)
		installs, _ := metricValue(fams, "paxos_snapshot_installs_total", lagger, 0)
		applied, _ := metricValue(fams, "paxos_applied_index", lagger, 0)
		commit, _ := metricValue(fams, "paxos_commit_index", lagger, 0)
		return installs >= 1 && applied >= commands && commit >= applied
	})
	if v, _ := metricValue(gather(t, reg), "paxos_snapshot_bytes", lagger, 0); v <= 0 {
		t.Errorf("the restarted replica's snapshot size is %v", v)
	}

	// A client connection shows on the replica it connects to.
	cl := client.New([]string{c.client[leader]}, client.Options{ClusterID: "test", TLSDir: c.tlsDir})
	defer cl.Close()
	if _, err := cl.Status(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the leader to count the client's connection", func() bool {
		v, _ := metricValue(gather(t, reg), "paxos_client_connections", leader, 0)
		return v == 1
	})
	cl.Close()
	waitFor(t, 10*time.Second, "the leader to see the client go", func() bool {
		v, _ := metricValue(gather(t, reg), "paxos_client_connections", leader, 0)
		return v == 0
	})

	// Closed, a replica's metrics leave the registry.
	c.crash(lagger)
	if _, ok := metricValue(gather(t, reg), "paxos_commit_index", lagger, 0); ok {
		t.Errorf("replica %d closed, its metrics are still registered", lagger)
	}
}

// One registry takes each replica ID once: a second replica 1 is refused
// with a clear error, and registers nothing; once the first unregisters,
// it may.
func TestMetricsRegisterOncePerReplica(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := &Node{cfg: Config{ID: 1}}
	first, second := newNodeMetrics(reg, 1), newNodeMetrics(reg, 1)
	if err := first.register(n); err != nil {
		t.Fatal(err)
	}
	err := second.register(n)
	if err == nil || !strings.Contains(err.Error(), "already holds the metrics of a replica 1") {
		t.Fatalf("a second replica 1 on one registry: %v", err)
	}
	var dup prometheus.AlreadyRegisteredError
	if !errors.As(err, &dup) {
		t.Errorf("%v does not wrap prometheus.AlreadyRegisteredError", err)
	}
	if len(second.registered) != 0 {
		t.Errorf("the refused replica left %d collectors registered", len(second.registered))
	}
	first.unregister()
	if fams := gather(t, reg); len(fams) != 0 {
		t.Errorf("after unregister, the registry still gathers %d families", len(fams))
	}
	if err := second.register(n); err != nil {
		t.Fatalf("registering once the first is gone: %v", err)
	}
	// Another replica shares the registry.
	if err := newNodeMetrics(reg, 2).register(&Node{cfg: Config{ID: 2}}); err != nil {
		t.Fatalf("replica 2 beside replica 1: %v", err)
	}
	// Without a registry, nothing happens, and the hooks do nothing.
	var none *nodeMetrics = newNodeMetrics(nil, 3)
	if none != nil || none.register(n) != nil {
		t.Fatal("a nil registry made metrics")
	}
	none.observeCommitted()
	none.snapshotTaken(time.Second, 1)
	none.unregister()
}

// BenchmarkCommitHooks measures what the metrics add per command on the
// loop goroutine, in a batch of 256 commands (a loaded leader's): the
// commit latency observed, the batch observed and published once per
// slot, and the gauges set once per turn. The figure is ns per command, to
// set beside the CPU a command costs in all (paxos bench reports it as CPU
// per op, in µs).
func BenchmarkCommitHooks(b *testing.B) {
	m := newNodeMetrics(prometheus.NewRegistry(), 1)
	const batch = 256
	submitted := time.Now()
	st := paxos.Status{Lead: 1, Commit: 1, LastSlot: 2}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now := submitted.Add(time.Duration(i%batch) * 10 * time.Microsecond)
		m.commitLatency.observe(now.Sub(submitted))
		if i%batch == batch-1 {
			m.batchCommands.Observe(batch)
			m.observeCommitted()
			st.Commit++
			m.turn(st, true, st.Commit)
		}
	}
}

// The commit latency histogram files each latency in the first bucket
// whose upper bound is at least it, as Prometheus's le means, and exports
// cumulative counts, their total and sum, whole batches at a time.
func TestLatencyHistogram(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {latencyBase, 0}, {latencyBase + 1, 1}, {2 * latencyBase, 1}, {2*latencyBase + 1, 2},
		{4 * latencyBase, 2}, {latencyBase << 15, 15}, {latencyBase<<15 + 1, latencyBuckets}, {time.Hour, latencyBuckets},
	} {
		if got := latencyBucket(tc.d); got != tc.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}

	reg := prometheus.NewRegistry()
	h := newLatencyHistogram()
	reg.MustRegister(h)
	for _, d := range []time.Duration{50 * time.Microsecond, 150 * time.Microsecond, 150 * time.Microsecond, 10 * time.Millisecond, time.Hour} {
		h.observe(d)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := fams[0].GetMetric()[0].GetHistogram().GetSampleCount(); n != 0 {
		t.Fatalf("%d latencies exported before the batch was flushed", n)
	}
	h.flush()
	if fams, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	hist := fams[0].GetMetric()[0].GetHistogram()
	wantSum := (50*time.Microsecond + 300*time.Microsecond + 10*time.Millisecond + time.Hour).Seconds()
	if hist.GetSampleCount() != 5 || hist.GetSampleSum() != wantSum || len(hist.GetBucket()) != latencyBuckets {
		t.Fatalf("count %d, sum %v, %d buckets; want 5, %v, %d", hist.GetSampleCount(), hist.GetSampleSum(), len(hist.GetBucket()), wantSum, latencyBuckets)
	}
	want := map[float64]uint64{0.0001: 1, 0.0002: 3, 0.0064: 3, 0.0128: 4, 3.2768: 4}
	for _, b := range hist.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
		delete(want, b.GetUpperBound())
	}
	if len(want) != 0 {
		t.Errorf("buckets missing: %v", want)
	}
}

// The metrics the engine registers are exactly metricNames, and exactly
// those the README's Metrics section and the Grafana dashboard's page
// (docs/grafana, whose test holds the dashboard to it) name: a metric
// renamed, added or dropped on one side fails here.
func TestMetricNamesAreDocumented(t *testing.T) {
	m := newNodeMetrics(prometheus.NewRegistry(), 1)
	if err := m.register(&Node{cfg: Config{ID: 1}}); err != nil {
		t.Fatal(err)
	}
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	registered := map[string]bool{}
	for _, c := range m.registered {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			registered[fqName.FindStringSubmatch(d.String())[1]] = true
		}
	}
	want := map[string]bool{}
	for _, name := range metricNames {
		want[name] = true
	}
	if !maps.Equal(registered, want) {
		t.Errorf("the engine registers %v, want %v", slices.Sorted(maps.Keys(registered)), metricNames)
	}
	name := regexp.MustCompile(`paxos_[a-z_]+`)
	for _, doc := range []string{"../README.md", "../docs/grafana/README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, n := range name.FindAllString(string(b), -1) {
			named[n] = true
		}
		if !maps.Equal(named, want) {
			t.Errorf("%s names %v, want %v", doc, slices.Sorted(maps.Keys(named)), metricNames)
		}
	}
}
