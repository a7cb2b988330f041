// Package bench measures paxos-go the way its users judge consensus
// libraries: closed-loop clients writing fixed-size commands as fast as
// the cluster commits them, on a cluster of replicas in this process
// (loopback TCP, real WALs with fsync, in temporary directories) or on a
// running chat room cluster. It reports ops/s, MB/s and the p50, p99 and
// p99.9 latency of a write. go test -bench ./bench, paxos bench and the
// comparison with hashicorp/raft (bench/compare) all run this workload.
package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/net/certs"
)

// Config describes a run. Zero fields take the defaults in their comments.
type Config struct {
	// Nodes is the size of the in-process cluster (default 3).
	Nodes int
	// Clients is the number of closed-loop clients: each writes one
	// command, waits for it to commit, and writes the next (default 16).
	Clients int
	// PayloadBytes is the size of a command (default 64).
	PayloadBytes int
	// Warmup is run first and not measured (default 2 s; negative: none);
	// Duration is measured (default 10 s).
	Warmup, Duration time.Duration
	// NoFsync turns fsync off in the in-process cluster: nothing is then
	// durable, so the figures say how fast the rest of the system is.
	NoFsync bool
	// TLS runs the in-process cluster's peer ports over mutual TLS, as
	// deployed replicas run them, with certificates made for the run in
	// Dir/tls. Off by default here, so that go test -bench and
	// bench/compare (against hashicorp/raft's plaintext transport) measure
	// the protocol; paxos bench turns it on unless told --insecure.
	TLS bool
	// Target, if set, lists the client addresses of a running chat room
	// cluster to write to (as chat messages) instead of starting one;
	// ClusterID is its name (default "chatroom").
	Target    []string
	ClusterID string
	// TargetTLS secures the connections to Target's client ports (nil:
	// plaintext, for a cluster started insecure).
	TargetTLS *tls.Config
	// Dir holds the in-process replicas' data (default: a temporary
	// directory, removed after the run).
	Dir string
	// Progress, if set, is called every ProgressEvery (default 1 s) while
	// the run lasts, from the goroutine that called Run or Measure.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Logger receives the replicas' logs (default: none).
	Logger hclog.Logger
	// Metrics turns the in-process replicas' Prometheus metrics on
	// (engine.Config.Metrics), on a registry of the cluster's that is
	// gathered every ScrapeEvery (default 1 s) while the cluster runs, as
	// a Prometheus server would scrape it (every 15 s by default: this is
	// the harsher case), so that a run measures what metrics cost.
	Metrics     bool
	ScrapeEvery time.Duration
}

// Progress is the state of a run so far.
type Progress struct {
	Warmup    bool
	Elapsed   time.Duration
	Ops       uint64
	OpsPerSec float64
}

// Result is what a run measured. Its JSON form is what paxos bench --json
// prints.
type Result struct {
	Nodes        int     `json:"nodes"`
	Clients      int     `json:"clients"`
	PayloadBytes int     `json:"payload_bytes"`
	DurationS    float64 `json:"duration_s"`
	Ops          uint64  `json:"ops"`
	OpsPerSec    float64 `json:"ops_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	P999ms       float64 `json:"p999_ms"`
	Errors       uint64  `json:"errors"`
	// WarmupS is how long the clients ran, unmeasured, before DurationS.
	WarmupS float64 `json:"warmup_s"`
	// Fsync says whether the in-process cluster's WALs fsynced
	// (!Config.NoFsync); absent for a Target cluster, as PeerTLS.
	Fsync *bool `json:"fsync,omitempty"`
	// PeerTLS says whether the in-process cluster's peer ports ran mutual
	// TLS (Config.TLS); absent for a Target cluster, whose replicas this
	// process does not configure.
	PeerTLS *bool `json:"peer_tls,omitempty"`
	// Metrics says whether the in-process replicas exported Prometheus
	// metrics (Config.Metrics); absent for a Target cluster.
	Metrics *bool `json:"metrics,omitempty"`
	// CPUusPerOp is the CPU time (user and system) this process used
	// while measuring, per measured write, in microseconds: the replicas'
	// and the clients' work for an in-process cluster, the clients' for a
	// Target. On a machine shared with other work, where ops/s swings with
	// the CPU this process gets, it is the steadier measure of a cost.
	// Absent where the process's CPU time is not known.
	CPUusPerOp float64 `json:"cpu_us_per_op,omitempty"`
}

// check refuses what no default stands for: a zero field takes its
// default, a negative one (but Warmup) is an error.
func (c Config) check() error {
	switch {
	case c.Nodes < 0:
		return fmt.Errorf("bench: Config.Nodes %d is negative", c.Nodes)
	case c.Clients < 0:
		return fmt.Errorf("bench: Config.Clients %d is negative", c.Clients)
	case c.PayloadBytes < 0:
		return fmt.Errorf("bench: Config.PayloadBytes %d is negative", c.PayloadBytes)
	case c.Duration < 0:
		return fmt.Errorf("bench: Config.Duration %v is negative", c.Duration)
	case c.ProgressEvery < 0:
		return fmt.Errorf("bench: Config.ProgressEvery %v is negative", c.ProgressEvery)
	case c.TLS && len(c.Target) > 0:
		return errors.New("bench: Config.TLS configures the in-process cluster, not a Target")
	case c.Metrics && len(c.Target) > 0:
		return errors.New("bench: Config.Metrics configures the in-process cluster, not a Target")
	case c.ScrapeEvery < 0:
		return fmt.Errorf("bench: Config.ScrapeEvery %v is negative", c.ScrapeEvery)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Nodes <= 0 {
		c.Nodes = 3
	}
	if c.Clients <= 0 {
		c.Clients = 16
	}
	if c.PayloadBytes <= 0 {
		c.PayloadBytes = 64
	}
	// A negative Warmup stays negative (none), so that applying the
	// defaults twice, as Run and then Measure do, cannot turn "none" into
	// the default. (It did: --warmup 0s warmed up for 2 s.)
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.ScrapeEvery <= 0 {
		c.ScrapeEvery = time.Second
	}
	if c.ClusterID == "" {
		c.ClusterID = "chatroom"
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Writer writes one command of a client and returns once it is
// committed. It is the part of a run that differs between systems.
type Writer interface {
	Write(ctx context.Context, client int, payload []byte) error
	Close() error
}

// Run runs the workload on an in-process cluster (or on Target) and
// reports what it measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	var w Writer
	var err error
	if len(cfg.Target) > 0 {
		w = newTargetWriter(cfg)
	} else if w, err = StartCluster(cfg); err != nil {
		return Result{}, err
	}
	defer w.Close()
	return Measure(ctx, cfg, w)
}

// Measure runs cfg's closed-loop clients against w: Warmup first, then
// Duration measured.
func Measure(ctx context.Context, cfg Config, w Writer) (Result, error) {
	cfg = cfg.withDefaults()
	l := startLoop(ctx, cfg, w, nil, false)
	defer l.stop()
	warmup := max(cfg.Warmup, 0)
	warmStart := time.Now()
	if !l.wait(ctx, cfg, warmup, true, warmStart) {
		return Result{}, ctx.Err()
	}
	l.errs.Store(0)
	start := time.Now()
	cpu0, cpuKnown := processCPU()
	l.measuring.Store(true)
	ok := l.wait(ctx, cfg, cfg.Duration, false, start)
	l.measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	l.stop()
	if !ok {
		return Result{}, ctx.Err()
	}
	res, err := l.result(cfg, warmup, elapsed)
	if cpuKnown && res.Ops > 0 {
		res.CPUusPerOp = (cpu1 - cpu0).Seconds() * 1e6 / float64(res.Ops)
	}
	return res, err
}

// MeasureN runs cfg's closed-loop clients against w until n writes have
// committed, measuring all of them (no warmup): the form go test -bench
// wants, where b.N sets the work.
func MeasureN(ctx context.Context, cfg Config, w Writer, n int) (Result, error) {
	cfg = cfg.withDefaults()
	var budget atomic.Int64
	budget.Store(int64(n))
	start := time.Now()
	l := startLoop(ctx, cfg, w, &budget, true)
	l.wg.Wait()
	elapsed := time.Since(start)
	l.stop()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return l.result(cfg, 0, elapsed)
}

// loop is a running set of closed-loop clients.
type loop struct {
	workers   []*worker
	measuring atomic.Bool
	errs      atomic.Uint64
	firstErr  atomic.Value
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// worker is one client: its latencies are its own, so that recording one
// takes no lock.
type worker struct {
	lat histogram
	ops atomic.Uint64
}

// startLoop starts cfg.Clients clients writing to w, recording latencies
// from the start if measuring. With a budget, each write first takes one
// from it, and a client stops when none is left; a failed write gives its
// unit back.
func startLoop(ctx context.Context, cfg Config, w Writer, budget *atomic.Int64, measuring bool) *loop {
	payload := make([]byte, cfg.PayloadBytes)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	l := &loop{workers: make([]*worker, cfg.Clients)}
	l.measuring.Store(measuring)
	runCtx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	for i := range l.workers {
		wk := &worker{}
		l.workers[i] = wk
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for runCtx.Err() == nil {
				if budget != nil && budget.Add(-1) < 0 {
					return
				}
				t0 := time.Now()
				err := w.Write(runCtx, i, payload)
				d := time.Since(t0)
				if err != nil {
					if budget != nil {
						budget.Add(1)
					}
					if runCtx.Err() != nil {
						return
					}
					l.errs.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
					// A write fails while a leader changes: do not spin.
					time.Sleep(time.Millisecond)
					continue
				}
				if l.measuring.Load() {
					wk.lat.record(d)
					wk.ops.Add(1)
				}
			}
		}()
	}
	return l
}

// stop ends the clients and waits for them.
func (l *loop) stop() {
	l.cancel()
	l.wg.Wait()
}

// wait lets the clients run for d, reporting progress, and says whether
// d passed (rather than ctx ending).
func (l *loop) wait(ctx context.Context, cfg Config, d time.Duration, warmup bool, since time.Time) bool {
	tick := time.NewTicker(cfg.ProgressEvery)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-end.C:
			return true
		case <-tick.C:
			if cfg.Progress != nil {
				var n uint64
				for _, wk := range l.workers {
					n += wk.ops.Load()
				}
				el := time.Since(since)
				cfg.Progress(Progress{Warmup: warmup, Elapsed: el, Ops: n, OpsPerSec: float64(n) / el.Seconds()})
			}
		}
	}
}

// result summarises the measured writes of stopped clients, which ran
// unmeasured for warmup first.
func (l *loop) result(cfg Config, warmup, elapsed time.Duration) (Result, error) {
	var all histogram
	for _, wk := range l.workers {
		all.merge(&wk.lat)
	}
	res := Result{
		Nodes: cfg.Nodes, Clients: cfg.Clients, PayloadBytes: cfg.PayloadBytes,
		DurationS: elapsed.Seconds(), WarmupS: warmup.Seconds(), Ops: all.n, Errors: l.errs.Load(),
	}
	if len(cfg.Target) > 0 {
		res.Nodes = len(cfg.Target)
	} else {
		fsync := !cfg.NoFsync
		res.PeerTLS, res.Fsync, res.Metrics = &cfg.TLS, &fsync, &cfg.Metrics
	}
	res.OpsPerSec = float64(res.Ops) / res.DurationS
	res.MBPerSec = res.OpsPerSec * float64(cfg.PayloadBytes) / 1e6
	pct := func(q float64) float64 { return float64(all.quantile(q)) / 1e6 }
	res.P50ms, res.P99ms, res.P999ms = pct(0.50), pct(0.99), pct(0.999)
	if res.Ops == 0 {
		if err, _ := l.firstErr.Load().(error); err != nil {
			return res, fmt.Errorf("bench: no write succeeded: %w", err)
		}
		return res, errors.New("bench: no write succeeded")
	}
	return res, nil
}

// counter is the trivial state machine of the in-process cluster.
type counter struct{ n uint64 }

func (c *counter) Apply(slot uint64, cmd []byte) []byte { c.n++; return nil }
func (c *counter) Snapshot(w io.Writer) error           { _, err := fmt.Fprint(w, c.n); return err }
func (c *counter) Restore(r io.Reader) error            { _, err := fmt.Fscan(r, &c.n); return err }

// Cluster is an in-process cluster of paxos-go replicas.
type Cluster struct {
	nodes   []*engine.Node
	dir     string
	cleanup bool
	seqs    []uint64 // per client: the last sequence number used
	mu      sync.Mutex
	leader  *engine.Node
	// With Config.Metrics: the replicas' registry, and its scraper, which
	// Close stops.
	metrics    *prometheus.Registry
	stopScrape chan struct{}
	scraper    sync.WaitGroup
}

// StartCluster starts cfg.Nodes replicas on loopback TCP with WALs in
// cfg.Dir, and waits for a leader.
func StartCluster(cfg Config) (*Cluster, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cluster{dir: cfg.Dir, seqs: make([]uint64, cfg.Clients)}
	var metrics prometheus.Registerer // nil without Config.Metrics
	if cfg.Metrics {
		c.metrics = prometheus.NewRegistry()
		metrics = c.metrics
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "paxos-bench-")
		if err != nil {
			return nil, err
		}
		c.dir, c.cleanup = dir, true
	}
	peers := map[uint64]string{}
	lns := map[uint64]stdnet.Listener{} // those no transport owns yet
	ok := false
	defer func() {
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			c.Close()
		}
	}()
	for id := uint64(0); id < uint64(cfg.Nodes); id++ {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns[id], peers[id] = ln, ln.Addr().String()
	}
	var tlsDir string
	if cfg.TLS {
		tlsDir = filepath.Join(c.dir, "tls")
		ids := make([]uint64, cfg.Nodes)
		for i := range ids {
			ids[i] = uint64(i)
		}
		if _, err := certs.CreateDir(tlsDir, benchCluster, ids); err != nil {
			return nil, err
		}
	}
	for id := uint64(0); id < uint64(cfg.Nodes); id++ {
		opts := paxosnet.Options{ClusterID: benchCluster, ID: id, Peers: peers, Listener: lns[id], Logger: cfg.Logger}
		if cfg.TLS {
			b, err := certs.LoadReplica(tlsDir, benchCluster, id)
			if err != nil {
				return nil, err
			}
			opts.TLS = certs.PeerConfig(b)
		} else {
			opts.Insecure = true
		}
		tr, err := paxosnet.Listen(opts)
		if err != nil {
			return nil, err
		}
		delete(lns, id) // the transport owns it now
		n, err := engine.Start(engine.Config{
			ID: id, Peers: peers, ClusterID: benchCluster,
			DataDir:   filepath.Join(c.dir, fmt.Sprint("node-", id)),
			Transport: tr, NoSync: cfg.NoFsync, Logger: cfg.Logger, Metrics: metrics,
		}, &counter{})
		if err != nil {
			tr.Close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.findLeader() == nil {
		if time.Now().After(deadline) {
			return nil, errors.New("bench: no leader elected within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c.metrics != nil {
		c.stopScrape = make(chan struct{})
		c.scraper.Add(1)
		go c.scrape(cfg.ScrapeEvery, cfg.Logger)
	}
	ok = true
	return c, nil
}

// scrape gathers the replicas' metrics every period, as a Prometheus
// server would, until Close. A failure (metrics that contradict each
// other: a bug) is logged, and ends the scraping.
func (c *Cluster) scrape(period time.Duration, log hclog.Logger) {
	defer c.scraper.Done()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-c.stopScrape:
			return
		case <-tick.C:
			if _, err := c.metrics.Gather(); err != nil {
				log.Error("gathering the replicas' metrics failed; no more scrapes", "error", err)
				return
			}
		}
	}
}

// Metrics returns the registry of the replicas' metrics (Config.Metrics),
// or nil.
func (c *Cluster) Metrics() *prometheus.Registry { return c.metrics }

// benchCluster is the in-process cluster's ID.
const benchCluster = "bench"

func (c *Cluster) findLeader() *engine.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.Status().Role == "leader" {
			c.leader = n
			return n
		}
	}
	return nil
}

// Write submits a command as client to the leader, finding the leader
// again if it changed.
func (c *Cluster) Write(ctx context.Context, client int, payload []byte) error {
	c.mu.Lock()
	leader := c.leader
	c.mu.Unlock()
	c.seqs[client]++
	_, err := leader.Submit(ctx, uint64(client)+1, c.seqs[client], payload)
	if errors.Is(err, engine.ErrNotLeader) {
		c.findLeader()
	}
	return err
}

// Close stops the replicas and removes their data if it made the
// directory.
func (c *Cluster) Close() error {
	if c.stopScrape != nil {
		close(c.stopScrape)
		c.scraper.Wait()
		c.stopScrape = nil
	}
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	if c.cleanup {
		os.RemoveAll(c.dir)
	}
	return errors.Join(errs...)
}

// targetWriter writes chat messages to a running chat room cluster, one
// client (and connection) per closed-loop client.
type targetWriter struct {
	clients []*chatroom.Client
}

func newTargetWriter(cfg Config) *targetWriter {
	w := &targetWriter{}
	for i := 0; i < cfg.Clients; i++ {
		w.clients = append(w.clients, chatroom.NewClient(cfg.Target, chatroom.Options{ClusterID: cfg.ClusterID, TLS: cfg.TargetTLS}))
	}
	return w
}

func (w *targetWriter) Write(ctx context.Context, client int, payload []byte) error {
	_, err := w.clients[client].Put(ctx, string(payload))
	return err
}

func (w *targetWriter) Close() error {
	for _, c := range w.clients {
		c.Close()
	}
	return nil
}
