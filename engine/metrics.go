package engine

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/engine/paxos"
	paxosnet "github.com/paxos-go/paxos/net"
)

// Metrics: what a replica exports to Prometheus when Config.Metrics is
// set. The names are fixed (dashboards rely on them: docs/grafana), and
// every metric carries a replica label, the replica's ID, so that one
// process may run several replicas on one registry.
//
// The cost is kept off the hot path:
//
//   - Gauges of state the loop already has (commit and applied index,
//     leadership, slots in flight) and the counters the core keeps
//     (elections, protocol violations) are set once per turn of the loop
//     (afterTurn), not per command: a handful of atomic stores.
//   - Peer links and client connections are read at scrape time by a
//     collector (nodeCollector), from state the transport and the client
//     port keep anyway: nothing on the send path.
//   - Commit latency is observed for every command, on the replica the
//     command was submitted to, but not through a prometheus.Histogram
//     (whose Observe, a few atomic adds, was 1% of a loaded cluster's CPU
//     at 256 clients): Submit already reads the clock for each command
//     (for re-proposal), apply reads it once per batch, and each command
//     costs a subtraction and an increment of a bucket the loop owns
//     (latencyHistogram); the batch's counts are added to the exported
//     ones under a mutex, once per batch. The batch size is observed once
//     per applied slot, on the leader.
//   - The WAL's fdatasync time is observed by the WAL's flushing goroutine
//     (wal.Options.OnSync), once per fdatasync, which it timed already.
//
// With Config.Metrics nil, n.metrics is nil and every hook is a nil check.
type nodeMetrics struct {
	reg        prometheus.Registerer // the caller's, with the replica label
	registered []prometheus.Collector

	commitLatency   *latencyHistogram
	walFsync        prometheus.Histogram
	batchCommands   prometheus.Histogram
	snapshotSeconds prometheus.Histogram
	snapshotBytes   prometheus.Gauge
	inflightSlots   prometheus.Gauge
	commitIndex     prometheus.Gauge
	appliedIndex    prometheus.Gauge
	isLeader        prometheus.Gauge
	leaderChanges   prometheus.Counter
	elections       prometheus.Counter
	installs        prometheus.Counter
	violations      prometheus.Counter

	// Owned by the loop goroutine: what the last turn saw, to count the
	// changes since.
	lastLead                      paxos.NodeID
	lastElections, lastViolations uint64
}

// The metrics' names, as dashboards know them.
const (
	metricCommitLatency   = "paxos_commit_latency_seconds"
	metricWALFsync        = "paxos_wal_fsync_seconds"
	metricBatchCommands   = "paxos_batch_commands"
	metricInflightSlots   = "paxos_inflight_slots"
	metricCommitIndex     = "paxos_commit_index"
	metricAppliedIndex    = "paxos_applied_index"
	metricIsLeader        = "paxos_is_leader"
	metricLeaderChanges   = "paxos_leader_changes_total"
	metricElections       = "paxos_elections_total"
	metricSnapshotSeconds = "paxos_snapshot_seconds"
	metricSnapshotBytes   = "paxos_snapshot_bytes"
	metricInstalls        = "paxos_snapshot_installs_total"
	metricPeerConnected   = "paxos_peer_connected"
	metricPeerQueueBytes  = "paxos_peer_send_queue_bytes"
	metricClientConns     = "paxos_client_connections"
	metricViolations      = "paxos_protocol_violations_total"
)

// newNodeMetrics makes the metrics of replica id for reg, or returns nil for
// a nil reg. Nothing is registered until register.
func newNodeMetrics(reg prometheus.Registerer, id uint64) *nodeMetrics {
	if reg == nil {
		return nil
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &nodeMetrics{
		reg:           prometheus.WrapRegistererWith(prometheus.Labels{"replica": strconv.FormatUint(id, 10)}, reg),
		commitLatency: newLatencyHistogram(),
		// 20 µs (NVMe, or a disk cache) to 0.65 s.
		walFsync: hist(metricWALFsync, "Seconds each fdatasync of the write-ahead log took.",
			prometheus.ExponentialBuckets(20e-6, 2, 16)),
		batchCommands: hist(metricBatchCommands, "Commands per committed slot, observed on the leader.",
			prometheus.ExponentialBuckets(1, 2, 12)),
		snapshotSeconds: hist(metricSnapshotSeconds, "Seconds taking a snapshot (state machine and session table, written and committed) took.",
			prometheus.ExponentialBuckets(1e-3, 2, 16)),
		snapshotBytes: gauge(metricSnapshotBytes, "Size in bytes of the latest snapshot this replica took, installed or restored."),
		inflightSlots: gauge(metricInflightSlots, "Slots the leader proposed and has not seen committed yet (0 on other replicas)."),
		commitIndex:   gauge(metricCommitIndex, "The highest slot this replica knows committed."),
		appliedIndex:  gauge(metricAppliedIndex, "The highest slot this replica applied."),
		isLeader:      gauge(metricIsLeader, "1 while this replica is the leader, else 0."),
		leaderChanges: counter(metricLeaderChanges, "Times this replica learned of a leader other than the last one it knew (the first after start included)."),
		elections:     counter(metricElections, "Campaigns (phase 1 under a new ballot) this replica started."),
		installs:      counter(metricInstalls, "Snapshots received from the leader and installed."),
		violations:    counter(metricViolations, "Messages refused because they break the protocol (see paxos.ErrProtocolViolation)."),
	}
}

// register registers the metrics and n's collector of peer links and
// client connections. On failure (another replica with the same ID on the
// same registry, above all) it registers nothing.
func (m *nodeMetrics) register(n *Node) error {
	if m == nil {
		return nil
	}
	cs := []prometheus.Collector{
		m.commitLatency, m.walFsync, m.batchCommands, m.snapshotSeconds, m.snapshotBytes,
		m.inflightSlots, m.commitIndex, m.appliedIndex, m.isLeader,
		m.leaderChanges, m.elections, m.installs, m.violations,
		newNodeCollector(n),
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			m.unregister()
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return fmt.Errorf("engine: Config.Metrics already holds the metrics of a replica %d (one registry takes each replica once): %w", n.cfg.ID, err)
			}
			return fmt.Errorf("engine: registering the metrics: %w", err)
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

// unregister removes what register registered, so that a replica
// restarted in the same process can register again.
func (m *nodeMetrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

// turn records the state at the end of a turn of the loop.
func (m *nodeMetrics) turn(st paxos.Status, leader bool, applied uint64) {
	if m == nil {
		return
	}
	m.commitIndex.Set(float64(st.Commit))
	m.appliedIndex.Set(float64(applied))
	if leader {
		m.isLeader.Set(1)
		m.inflightSlots.Set(float64(st.LastSlot - min(st.Commit, st.LastSlot)))
	} else {
		m.isLeader.Set(0)
		m.inflightSlots.Set(0)
	}
	if st.Lead != paxos.None && st.Lead != m.lastLead {
		m.lastLead = st.Lead
		m.leaderChanges.Inc()
	}
	if st.Elections > m.lastElections {
		m.elections.Add(float64(st.Elections - m.lastElections))
		m.lastElections = st.Elections
	}
	if st.ProtocolViolations > m.lastViolations {
		m.violations.Add(float64(st.ProtocolViolations - m.lastViolations))
		m.lastViolations = st.ProtocolViolations
	}
}

// observeCommitted publishes the commit latencies apply observed.
func (m *nodeMetrics) observeCommitted() {
	if m == nil {
		return
	}
	m.commitLatency.flush()
}

// observeFsync is the WAL's OnSync.
func (m *nodeMetrics) observeFsync(d time.Duration) { m.walFsync.Observe(d.Seconds()) }

// snapshotTaken records a snapshot this replica wrote.
func (m *nodeMetrics) snapshotTaken(took time.Duration, size int64) {
	if m == nil {
		return
	}
	m.snapshotSeconds.Observe(took.Seconds())
	m.snapshotBytes.Set(float64(size))
}

// snapshotInstalled records a snapshot received from the leader.
func (m *nodeMetrics) snapshotInstalled(size int64) {
	if m == nil {
		return
	}
	m.installs.Inc()
	m.snapshotBytes.Set(float64(size))
}

// snapshotRestored records the snapshot a start restored.
func (m *nodeMetrics) snapshotRestored(size int64) {
	if m == nil {
		return
	}
	m.snapshotBytes.Set(float64(size))
}

// nodeCollector reads, at scrape time, what the transport and the client
// port keep anyway: the link to each peer and the open client
// connections.
type nodeCollector struct {
	n                        *Node
	peerConnected, peerQueue *prometheus.Desc
	clientConns              *prometheus.Desc
}

func newNodeCollector(n *Node) *nodeCollector {
	return &nodeCollector{
		n: n,
		peerConnected: prometheus.NewDesc(metricPeerConnected,
			"1 while the transport holds an established connection to the peer, on which it sends; else 0.", []string{"peer"}, nil),
		peerQueue: prometheus.NewDesc(metricPeerQueueBytes,
			"Bytes of messages queued for the peer, not yet written to its connection.", []string{"peer"}, nil),
		clientConns: prometheus.NewDesc(metricClientConns,
			"Established connections on the client port.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.peerConnected
	ch <- c.peerQueue
	ch <- c.clientConns
}

// peerStatser is implemented by the default transport (paxosnet.Transport);
// another Transport exports no peer metrics.
type peerStatser interface {
	PeerStats() []paxosnet.PeerStats
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	if ps, ok := c.n.tr.(peerStatser); ok {
		for _, p := range ps.PeerStats() {
			peer := strconv.FormatUint(p.ID, 10)
			connected := 0.0
			if p.Connected {
				connected = 1
			}
			ch <- prometheus.MustNewConstMetric(c.peerConnected, prometheus.GaugeValue, connected, peer)
			ch <- prometheus.MustNewConstMetric(c.peerQueue, prometheus.GaugeValue, float64(p.QueueBytes), peer)
		}
	}
	conns := 0
	if s := c.n.cs; s != nil {
		s.mu.Lock()
		conns = len(s.conns)
		s.mu.Unlock()
	}
	ch <- prometheus.MustNewConstMetric(c.clientConns, prometheus.GaugeValue, float64(conns))
}

// Commit latency buckets: latencyBuckets upper bounds from 100 µs,
// doubling (to 3.3 s: a commit on a LAN with fsync takes a few ms), and
// +Inf.
const (
	latencyBase    = 100 * time.Microsecond
	latencyBuckets = 16
)

// latencyHistogram is paxos_commit_latency_seconds: the loop goroutine
// observes into counts of its own, with no atomic operation, and adds
// them to the exported counts once per batch (flush); a scrape reads
// those under the same mutex, so that it sees whole batches.
type latencyHistogram struct {
	desc *prometheus.Desc
	// Owned by the loop goroutine.
	local      [latencyBuckets + 1]uint64
	localSum   time.Duration
	localCount int
	// Exported: what flush added, guarded by mu.
	mu     sync.Mutex
	counts [latencyBuckets + 1]uint64
	sum    time.Duration
}

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{desc: prometheus.NewDesc(metricCommitLatency,
		"Seconds from a command's submission to its commit (when it is applied and answered), on the replica it was submitted to.", nil, nil)}
}

// latencyBucket returns the bucket of d: the first whose upper bound,
// latencyBase<<i, is at least d; latencyBuckets (+Inf) past the last.
func latencyBucket(d time.Duration) int {
	if d <= latencyBase {
		return 0
	}
	// d in (base<<(i-1), base<<i] makes (d-1)/base lie in [2^(i-1), 2^i).
	return min(bits.Len64(uint64(d-1)/uint64(latencyBase)), latencyBuckets)
}

// observe counts one latency; loop goroutine only.
func (h *latencyHistogram) observe(d time.Duration) {
	h.local[latencyBucket(d)]++
	h.localSum += d
	h.localCount++
}

// flush adds what observe counted to the exported counts; loop goroutine
// only.
func (h *latencyHistogram) flush() {
	if h.localCount == 0 {
		return
	}
	h.mu.Lock()
	for i, c := range h.local {
		h.counts[i] += c
	}
	h.sum += h.localSum
	h.mu.Unlock()
	h.local, h.localSum, h.localCount = [latencyBuckets + 1]uint64{}, 0, 0
}

// Describe implements prometheus.Collector.
func (h *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	counts, sum := h.counts, h.sum
	h.mu.Unlock()
	buckets := make(map[float64]uint64, latencyBuckets)
	var cumulative uint64
	for i := range latencyBuckets {
		cumulative += counts[i]
		buckets[(latencyBase << i).Seconds()] = cumulative
	}
	ch <- prometheus.MustNewConstHistogram(h.desc, cumulative+counts[latencyBuckets], sum.Seconds(), buckets)
}
