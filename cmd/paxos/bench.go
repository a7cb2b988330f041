package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/paxos-go/paxos/bench"
)

// benchCmd measures write throughput and latency.
type benchCmd struct {
	Nodes     int           `default:"3" help:"Replicas in the in-process cluster."`
	Clients   int           `default:"16" help:"Closed-loop clients: each writes, waits for the commit, and writes again."`
	Payload   int           `default:"64" help:"Bytes per command."`
	Duration  time.Duration `default:"10s" help:"How long to measure."`
	Warmup    time.Duration `default:"2s" help:"How long to run first, unmeasured."`
	Fsync     bool          `default:"true" negatable:"" help:"Fsync the WALs (--no-fsync: nothing is durable; measures the rest of the system)."`
	JSON      bool          `name:"json" help:"Print one JSON object on stdout instead of a table (with --sweep: {\"runs\": [...]})."`
	Sweep     []int         `sep:"," placeholder:"C,C,..." help:"Run once per client count, e.g. 1,16,64,256 (overrides --clients)."`
	Plot      string        `placeholder:"FILE" help:"Draw ops/s and p99 latency against clients into FILE (.png or .svg); needs --sweep."`
	Target    []string      `sep:"," placeholder:"HOST:PORT,..." help:"Client addresses of a running chat room cluster to write to instead of starting one."`
	ClusterID string        `name:"cluster-id" default:"chatroom" help:"The --target cluster's name."`
}

// maxPayload bounds --payload: a command travels in one frame.
const maxPayload = 1 << 20

// Validate refuses a bad command line before anything runs (kong calls
// it while parsing, so the error comes with the usage).
func (c *benchCmd) Validate() error {
	switch {
	case c.Nodes < 1 || c.Nodes > 99:
		return fmt.Errorf("--nodes %d: between 1 and 99", c.Nodes)
	case c.Clients < 1 || c.Clients > 100_000:
		return fmt.Errorf("--clients %d: between 1 and 100000", c.Clients)
	case c.Payload < 1 || c.Payload > maxPayload:
		return fmt.Errorf("--payload %d: between 1 and %d bytes", c.Payload, maxPayload)
	case c.Duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", c.Warmup)
	case c.Plot != "" && len(c.Sweep) == 0:
		return fmt.Errorf("--plot needs --sweep: one point per client count")
	}
	for _, n := range c.Sweep {
		if n < 1 || n > 100_000 {
			return fmt.Errorf("--sweep %d: client counts between 1 and 100000", n)
		}
	}
	if c.Plot != "" {
		if err := bench.CheckPlotFile(c.Plot); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if len(c.Target) > 0 && !c.Fsync {
		return fmt.Errorf("--no-fsync applies to the in-process cluster, not to --target")
	}
	return nil
}

// Run runs the workload once per client count, shows progress on stderr,
// and prints the results.
func (c *benchCmd) Run(g *globals) error {
	sweep := c.Sweep
	if len(sweep) == 0 {
		sweep = []int{c.Clients}
	}
	warmup := c.Warmup
	if warmup == 0 {
		warmup = -1 // bench.Config's zero means its default
	}
	var results []bench.Result
	for _, clients := range sweep {
		cfg := bench.Config{
			Nodes: c.Nodes, Clients: clients, PayloadBytes: c.Payload,
			Warmup: warmup, Duration: c.Duration, NoFsync: !c.Fsync,
			Target: c.Target, ClusterID: c.ClusterID, Logger: g.log,
		}
		progress := newProgressLine(g.errOut, clients)
		cfg.Progress = progress.show
		res, err := bench.Run(g.ctx, cfg)
		progress.done()
		if err != nil {
			return fmt.Errorf("clients=%d: %w", clients, err)
		}
		results = append(results, res)
	}
	if c.Plot != "" {
		title := fmt.Sprintf("paxos-go, %d replicas, %d B commands", results[0].Nodes, c.Payload)
		if err := bench.Plot(c.Plot, title, []bench.Series{{Name: "paxos-go", Results: results}}); err != nil {
			return err
		}
		fmt.Fprintf(g.errOut, "plot written to %s\n", c.Plot)
	}
	if c.JSON {
		enc := json.NewEncoder(g.out)
		if len(c.Sweep) == 0 {
			return enc.Encode(results[0])
		}
		return enc.Encode(struct {
			Runs []bench.Result `json:"runs"`
		}{results})
	}
	return bench.WriteTable(g.out, results)
}

// progressLine shows a run's progress on one line of a terminal, redrawn
// in place; elsewhere (a log file, a CI job) it prints a line per phase.
type progressLine struct {
	w        io.Writer
	clients  int
	terminal bool
	phase    string
	last     string
}

func newProgressLine(w io.Writer, clients int) *progressLine {
	p := &progressLine{w: w, clients: clients}
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
	line := fmt.Sprintf("clients=%d %s: %5.1fs elapsed", p.clients, phase, pr.Elapsed.Seconds())
	if !pr.Warmup {
		line += fmt.Sprintf(", %d ops, %.0f ops/s", pr.Ops, pr.OpsPerSec)
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%-*s", len(p.last), line)
	} else if phase != p.phase {
		fmt.Fprintln(p.w, line)
	}
	p.phase, p.last = phase, line
}

// done ends the line so the next output starts on a fresh one.
func (p *progressLine) done() {
	if p.terminal && p.last != "" {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.last)))
	}
}
