// Command compare runs the paxos-go write benchmark and the identical
// workload on hashicorp/raft v1.8 with raft-wal, on this machine, in one
// run, and prints both rows and their ratio for each client count.
//
// It is a module of its own so that paxos-go does not depend on
// hashicorp/raft. From the repository root:
//
//	cd bench/compare && go run . --sweep 1,16,64,256,1024 --plot ../results/compare-3-nodes.svg
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/bench"
)

// cli is the command line; its flags mean what paxos bench's do.
type cli struct {
	Nodes    int           `default:"3" help:"Replicas in each cluster."`
	Sweep    []int         `default:"1,16,64,256" sep:"," placeholder:"C,C,..." help:"Client counts to run."`
	Payload  int           `default:"64" help:"Bytes per command."`
	Duration time.Duration `default:"10s" help:"How long to measure each run."`
	Warmup   time.Duration `default:"2s" help:"How long to run first, unmeasured."`
	JSON     bool          `name:"json" help:"Print one JSON object, {\"runs\": [...]}, instead of the table."`
	Plot     string        `placeholder:"FILE" help:"Draw ops/s and p99 latency of both against clients into FILE (.png or .svg)."`
}

// Validate refuses a bad command line before anything runs.
func (c *cli) Validate() error {
	switch {
	case c.Nodes < 1 || c.Nodes > 99:
		return fmt.Errorf("--nodes %d: between 1 and 99", c.Nodes)
	case c.Payload < 1 || c.Payload > 1<<20:
		return fmt.Errorf("--payload %d: between 1 and %d bytes", c.Payload, 1<<20)
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("--duration must be positive and --warmup not negative")
	case len(c.Sweep) == 0:
		return fmt.Errorf("--sweep: at least one client count")
	}
	for _, n := range c.Sweep {
		if n < 1 || n > 100_000 {
			return fmt.Errorf("--sweep %d: client counts between 1 and 100000", n)
		}
	}
	if c.Plot != "" {
		return bench.CheckPlotFile(c.Plot)
	}
	return nil
}

// run is one system at one client count.
type run struct {
	System string `json:"system"`
	bench.Result
}

// systems are what is compared, in the order they run.
var systems = []struct {
	name  string
	start func(bench.Config, hclog.Logger) (bench.Writer, error)
}{
	{"paxos-go", func(cfg bench.Config, _ hclog.Logger) (bench.Writer, error) { return bench.StartCluster(cfg) }},
	{"hashicorp/raft", func(cfg bench.Config, log hclog.Logger) (bench.Writer, error) { return startRaft(cfg, log) }},
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("compare"), kong.UsageOnError(),
		kong.Description("Run the paxos-go write benchmark and the same workload on hashicorp/raft with raft-wal."))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %s\n", err)
		os.Exit(1)
	}
}

func (c *cli) run(ctx context.Context, out, errOut io.Writer) error {
	log := hclog.New(&hclog.LoggerOptions{Name: "compare", Level: hclog.Error, Output: errOut})
	warmup := c.Warmup
	if warmup == 0 {
		warmup = -1 // bench.Config's zero means its default
	}
	var runs []run
	series := make([]bench.Series, len(systems))
	for _, clients := range c.Sweep {
		for i, sys := range systems {
			cfg := bench.Config{Nodes: c.Nodes, Clients: clients, PayloadBytes: c.Payload, Warmup: warmup, Duration: c.Duration, Logger: log}
			fmt.Fprintf(errOut, "%s, %d clients...\n", sys.name, clients)
			w, err := sys.start(cfg, log)
			if err != nil {
				return fmt.Errorf("%s: %w", sys.name, err)
			}
			res, err := bench.Measure(ctx, cfg, w)
			if cerr := w.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s, %d clients: %w", sys.name, clients, err)
			}
			runs = append(runs, run{sys.name, res})
			series[i].Name = sys.name
			series[i].Results = append(series[i].Results, res)
		}
	}
	if c.Plot != "" {
		title := fmt.Sprintf("%d replicas, %d B commands, fsync on", c.Nodes, c.Payload)
		if err := bench.Plot(c.Plot, title, series); err != nil {
			return err
		}
		fmt.Fprintf(errOut, "plot written to %s\n", c.Plot)
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(struct {
			Runs []run `json:"runs"`
		}{runs})
	}
	return writeTable(out, runs)
}

// writeTable prints a row per system and a ratio row per client count.
func writeTable(w io.Writer, runs []run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tclients\tops/s\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
	for i := 0; i+len(systems) <= len(runs); i += len(systems) {
		for _, r := range runs[i : i+len(systems)] {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%d\t\n",
				r.System, r.Clients, r.OpsPerSec, r.MBPerSec, r.P50ms, r.P99ms, r.P999ms, r.Errors)
		}
		a, b := runs[i].Result, runs[i+1].Result
		fmt.Fprintf(tw, "ratio\t%d\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t\t\n",
			a.Clients, a.OpsPerSec/b.OpsPerSec, a.MBPerSec/b.MBPerSec, a.P50ms/b.P50ms, a.P99ms/b.P99ms, a.P999ms/b.P999ms)
	}
	return tw.Flush()
}
