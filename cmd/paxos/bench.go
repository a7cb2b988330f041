package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/paxos-go/paxos/bench"
	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/net/certs"
)

// benchCmd measures write throughput and latency.
type benchCmd struct {
	Nodes      int           `default:"3" help:"Replicas in the in-process cluster (1 to 99)."`
	Clients    int           `default:"16" help:"Closed-loop clients: each writes, waits for the commit, and writes again (1 to 100000)."`
	Payload    int           `default:"64" help:"Bytes per command (1 B to 1 MiB; to 64 KiB with --target, a chat message's limit)."`
	Duration   time.Duration `default:"10s" help:"How long to measure (at least 10ms)."`
	Warmup     time.Duration `default:"2s" help:"How long to run first, unmeasured (0 for none)."`
	Fsync      bool          `default:"true" negatable:"" help:"Fsync the WALs (--no-fsync: nothing is durable; measures the rest of the system)."`
	TLS        bool          `name:"tls" help:"Run the in-process cluster's peer ports over mutual TLS, as deployed replicas run them. The default: the flag only says so."`
	Insecure   bool          `help:"Run the in-process cluster's peer ports in plaintext; with --target, use no certificates."`
	CompareTLS bool          `name:"compare-tls" help:"Run each client count both ways, peer ports in plaintext and over mutual TLS, and print what TLS costs (from the medians, with --rounds)."`
	Rounds     int           `default:"1" help:"Run each client count (each way, with --compare-tls) this many times, 1 to 100: on a busy machine, --compare-tls --rounds 5 compares medians, in alternating order."`
	JSON       bool          `name:"json" help:"Print one JSON object on stdout instead of a table (with --sweep or --compare-tls: {\"runs\": [...]})."`
	Sweep      []int         `sep:"," placeholder:"C,C,..." help:"Run once per client count, e.g. 1,16,64,256 (overrides --clients)."`
	Plot       string        `placeholder:"FILE" help:"Draw ops/s and p99 latency against clients into FILE (.png or .svg); needs --sweep."`
	Target     []string      `sep:"," placeholder:"HOST:PORT,..." help:"Client addresses of a running chat room cluster to write to instead of starting one."`
	TLSDir     string        `name:"tls-dir" placeholder:"DIR" help:"With --target: the cluster's certificates, as paxos certs writes them (default data/tls, as paxos up makes it)."`
	ClusterID  string        `name:"cluster-id" default:"chatroom" help:"The --target cluster's name."`

	Metrics        bool `help:"Export the in-process replicas' Prometheus metrics, gathered every second while they run, as engine.Config.Metrics does for a deployed replica."`
	CompareMetrics bool `name:"compare-metrics" help:"Run each client count both ways, metrics off and on (as --metrics), and print what metrics cost (from the medians, with --rounds)."`

	// targetTLS is the --target clients' TLS, from checkTargetCerts.
	targetTLS *tls.Config `kong:"-"`
}

// maxPayload bounds --payload: a command travels in one frame.
const maxPayload = 1 << 20

// minDuration is the shortest measurement: below it a run may end before
// its first write commits.
const minDuration = 10 * time.Millisecond

// Validate refuses a bad command line before anything runs (kong calls
// it while parsing, so the error comes with the usage).
func (c *benchCmd) Validate() error {
	target := len(c.Target) > 0
	if err := cmdflags.Replicas("--nodes", c.Nodes); err != nil {
		return err
	}
	switch {
	case c.Clients < 1 || c.Clients > 100_000:
		return fmt.Errorf("--clients %d: between 1 and 100000", c.Clients)
	case c.Payload < 1 || c.Payload > maxPayload:
		return fmt.Errorf("--payload %d: between 1 and %d bytes", c.Payload, maxPayload)
	case target && c.Payload > chatroom.MaxMessageBytes:
		return fmt.Errorf("--payload %d: a chat message (--target) holds at most %d bytes", c.Payload, chatroom.MaxMessageBytes)
	case c.Duration < minDuration:
		return fmt.Errorf("--duration %v: at least %v", c.Duration, minDuration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", c.Warmup)
	case c.Plot != "" && len(c.Sweep) == 0:
		return fmt.Errorf("--plot needs --sweep: one point per client count")
	case c.TLS && c.Insecure:
		return fmt.Errorf("--tls and --insecure: choose one")
	case c.Rounds < 1 || c.Rounds > 100:
		return fmt.Errorf("--rounds %d: between 1 and 100", c.Rounds)
	case c.Plot != "" && c.Rounds > 1:
		return fmt.Errorf("--plot draws one point per client count: drop --rounds")
	case c.CompareTLS && (c.TLS || c.Insecure):
		return fmt.Errorf("--compare-tls runs both ways: drop --tls and --insecure")
	case c.CompareTLS && c.CompareMetrics:
		return fmt.Errorf("--compare-tls and --compare-metrics: compare one thing at a time")
	case c.CompareMetrics && c.Metrics:
		return fmt.Errorf("--compare-metrics runs both ways: drop --metrics")
	case target && (c.Metrics || c.CompareMetrics):
		return fmt.Errorf("--metrics and --compare-metrics configure the in-process cluster, not --target (its replicas export their own: --metrics-addr)")
	case target && (c.TLS || c.CompareTLS):
		return fmt.Errorf("--tls and --compare-tls configure the in-process cluster, not --target (its replicas have their own configuration)")
	case !target && c.TLSDir != "":
		return fmt.Errorf("--tls-dir is for --target: the in-process cluster makes its own certificates")
	case target && c.TLSDir != "" && c.Insecure:
		return fmt.Errorf("--tls-dir and --insecure: choose one")
	case target && !c.Fsync:
		return fmt.Errorf("--no-fsync applies to the in-process cluster, not to --target")
	}
	for _, n := range c.Sweep {
		if n < 1 || n > 100_000 {
			return fmt.Errorf("--sweep %d: client counts between 1 and 100000", n)
		}
	}
	for _, addr := range c.Target {
		if err := cmdflags.HostPort("--target", addr); err != nil {
			return err
		}
	}
	if err := cmdflags.ClusterID("--cluster-id", c.ClusterID); err != nil {
		return err
	}
	if c.Plot != "" {
		if err := bench.CheckPlotFile(c.Plot); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	return nil
}

// Run runs the workload once per client count (twice with --compare-tls),
// shows progress on stderr, and prints the results.
func (c *benchCmd) Run(g *globals) error {
	sweep := c.Sweep
	if len(sweep) == 0 {
		sweep = []int{c.Clients}
	}
	warmup := c.Warmup
	if warmup == 0 {
		warmup = -1 // bench.Config's zero means its default
	}
	if len(c.Target) > 0 {
		if err := c.checkTargetCerts(g); err != nil {
			return err
		}
	}
	var results []bench.Result
	for _, clients := range sweep {
		for round := range c.Rounds {
			// The runs of this round, each with its peer TLS and metrics.
			modes := []runMode{{tls: !c.Insecure, metrics: c.Metrics}}
			switch {
			case c.CompareTLS:
				modes = []runMode{{tls: false}, {tls: true}}
			case c.CompareMetrics:
				modes = []runMode{{tls: !c.Insecure}, {tls: !c.Insecure, metrics: true}}
			}
			if round%2 == 1 {
				// Alternate the order, so that a machine that gets
				// busier or quieter during the rounds favours neither.
				slices.Reverse(modes)
			}
			if err := c.runRound(g, clients, modes, warmup, &results); err != nil {
				return err
			}
		}
	}
	if c.Plot != "" {
		title := fmt.Sprintf("paxos-go, %d replicas, %d B commands", results[0].Nodes, c.Payload)
		series := []bench.Series{{Name: "paxos-go", Results: results}}
		if c.CompareTLS {
			series = []bench.Series{{Name: "paxos-go, plaintext peers"}, {Name: "paxos-go, mutual TLS"}}
			for _, r := range results {
				if *r.PeerTLS {
					series[1].Results = append(series[1].Results, r)
				} else {
					series[0].Results = append(series[0].Results, r)
				}
			}
		}
		if c.CompareMetrics {
			series = []bench.Series{{Name: "paxos-go, no metrics"}, {Name: "paxos-go, metrics"}}
			for _, r := range results {
				if *r.Metrics {
					series[1].Results = append(series[1].Results, r)
				} else {
					series[0].Results = append(series[0].Results, r)
				}
			}
		}
		if err := bench.Plot(c.Plot, title, series); err != nil {
			return err
		}
		fmt.Fprintf(g.errOut, "plot written to %s\n", c.Plot)
	}
	if c.JSON {
		enc := json.NewEncoder(g.out)
		if len(c.Sweep) == 0 && !c.CompareTLS && !c.CompareMetrics && c.Rounds == 1 {
			return enc.Encode(results[0])
		}
		return enc.Encode(struct {
			Runs []bench.Result `json:"runs"`
		}{results})
	}
	if err := bench.WriteTable(g.out, results); err != nil {
		return err
	}
	if c.CompareTLS || c.CompareMetrics {
		fmt.Fprintln(g.out)
		seen := map[int]bool{}
		for _, clients := range sweep {
			if seen[clients] {
				continue
			}
			seen[clients] = true
			if c.CompareTLS {
				fmt.Fprintln(g.out, tlsCost(clients, results))
			} else {
				fmt.Fprintln(g.out, metricsCost(clients, results))
			}
		}
	}
	return nil
}

// runMode is how one run configures the in-process cluster.
type runMode struct{ tls, metrics bool }

// runRound runs clients once per mode and appends the results.
func (c *benchCmd) runRound(g *globals, clients int, modes []runMode, warmup time.Duration, results *[]bench.Result) error {
	for _, m := range modes {
		cfg := bench.Config{
			Nodes: c.Nodes, Clients: clients, PayloadBytes: c.Payload,
			Warmup: warmup, Duration: c.Duration, NoFsync: !c.Fsync,
			TLS:     m.tls && len(c.Target) == 0,
			Metrics: m.metrics,
			Target:  c.Target, ClusterID: c.ClusterID, TargetTLS: c.targetTLS, Logger: g.log,
		}
		name := peerName(c, m.tls)
		switch {
		case m.metrics:
			name += " metrics"
		case c.CompareMetrics:
			name += " no-metrics"
		}
		progress := newProgressLine(g.errOut, clients, name)
		cfg.Progress = progress.show
		res, err := bench.Run(g.ctx, cfg)
		progress.done()
		if err != nil {
			return fmt.Errorf("clients=%d: %w", clients, err)
		}
		*results = append(*results, res)
	}
	return nil
}

// tlsCost says what mutual TLS on the peer ports cost at a client count,
// from the medians of its plaintext and TLS runs.
func tlsCost(clients int, results []bench.Result) string {
	return cost(clients, results, "mutual TLS", func(r bench.Result) *bool { return r.PeerTLS })
}

// metricsCost says what the replicas' Prometheus metrics cost at a
// client count, from the medians of its runs without and with them.
func metricsCost(clients int, results []bench.Result) string {
	return cost(clients, results, "metrics", func(r bench.Result) *bool { return r.Metrics })
}

// cost says what a setting (what) cost at a client count, from the
// medians of the runs at that count with it off and on, as setting says.
func cost(clients int, results []bench.Result, what string, setting func(bench.Result) *bool) string {
	var off, on []bench.Result
	for _, r := range results {
		switch set := setting(r); {
		case r.Clients != clients || set == nil:
		case *set:
			on = append(on, r)
		default:
			off = append(off, r)
		}
	}
	ops := func(r bench.Result) float64 { return r.OpsPerSec }
	p50 := func(r bench.Result) float64 { return r.P50ms }
	p99 := func(r bench.Result) float64 { return r.P99ms }
	po, to := median(off, ops), median(on, ops)
	pct := 0.0
	if po > 0 {
		pct = 100 * (1 - to/po)
	}
	of := ""
	if len(off) > 1 {
		of = fmt.Sprintf(" (medians of %d runs each)", len(off))
	}
	line := fmt.Sprintf("clients=%d: %s costs %.1f%% of throughput (%.0f -> %.0f ops/s); p50 %+.3f ms (%.3f -> %.3f), p99 %+.3f ms",
		clients, what, pct, po, to, median(on, p50)-median(off, p50), median(off, p50), median(on, p50), median(on, p99)-median(off, p99))
	cpu := func(r bench.Result) float64 { return r.CPUusPerOp }
	if co, cn := median(off, cpu), median(on, cpu); co > 0 && cn > 0 {
		// Steadier than ops/s where the process shares the machine.
		line += fmt.Sprintf("; CPU per op %+.1f%% (%.1f -> %.1f µs)", 100*(cn/co-1), co, cn)
	}
	return line + of
}

// median is the median of f over rs (the mean of the middle two of an
// even count); 0 for none.
func median(rs []bench.Result, f func(bench.Result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

func peerName(c *benchCmd, tls bool) string {
	switch {
	case len(c.Target) > 0:
		return ""
	case tls:
		return " mTLS"
	}
	return " plain"
}

// checkTargetCerts reads the --target cluster's client certificates,
// unless --insecure, for the clients' TLS connections.
func (c *benchCmd) checkTargetCerts(g *globals) error {
	t := cmdflags.TLS{Dir: c.TLSDir, Insecure: c.Insecure}
	b, err := t.ClientBundle(cmdflags.DefaultTLSDir, c.ClusterID)
	if err != nil || b == nil {
		return err
	}
	c.targetTLS = certs.ClientConfig(b)
	return nil
}

// progressLine shows a run's progress: on a terminal, on one line redrawn
// in place; elsewhere (a log file, a CI job), as one line per report, so
// that a log shows the run going on, second by second (bench.Config's
// ProgressEvery).
type progressLine struct {
	w        io.Writer
	clients  int
	peer     string // " mTLS", " plain" or ""
	terminal bool
	last     string
}

func newProgressLine(w io.Writer, clients int, peer string) *progressLine {
	p := &progressLine{w: w, clients: clients, peer: peer}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressLine) show(pr bench.Progress) {
	phase := "measuring"
	if pr.Warmup {
		phase = "warming up"
	}
	line := fmt.Sprintf("clients=%d%s %s: %5.1fs elapsed", p.clients, p.peer, phase, pr.Elapsed.Seconds())
	if !pr.Warmup {
		line += fmt.Sprintf(", %d ops, %.0f ops/s", pr.Ops, pr.OpsPerSec)
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%-*s", len(p.last), line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.last = line
}

// done ends the line so the next output starts on a fresh one.
func (p *progressLine) done() {
	if p.terminal && p.last != "" {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.last)))
	}
}
