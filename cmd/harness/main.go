// Command harness runs chat room fault scenarios against real server
// processes and judges them:
//
//	harness --file tests/scenarios            every scenario in a folder
//	harness --file 'tests/scenarios/c*.json'  a glob
//	harness --file basic.json --server ./chatroom-server -vv
//
// It prints a table (scenario, verdict, ops, faults, time) and exits 1 if
// any scenario fails, saying why.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/paxos-go/paxos/harness"
)

type cli struct {
	File       string        `short:"f" required:"" help:"A scenario file, a folder of them, or a glob."`
	Server     string        `short:"s" help:"The chatroom-server binary (default: build ./cmd/chatroom-server into a temporary directory)."`
	Verbose    int           `short:"v" type:"counter" help:"Passed to the servers; also prints each operation as it runs."`
	WorkDir    string        `name:"work-dir" help:"Where run directories go (default: a temporary directory). Failed runs keep theirs."`
	Keep       bool          `help:"Keep the run directories of passing runs too."`
	GetTimeout time.Duration `name:"get-timeout" default:"10s" help:"The deadline of every Get."`
	Timeout    time.Duration `default:"3m" help:"The deadline of each scenario."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("harness"), kong.Description("Runs and judges chat room fault scenarios."))
	os.Exit(c.run(ctx, os.Stdout, os.Stderr))
}

func (c *cli) run(ctx context.Context, stdout, stderr io.Writer) int {
	scenarios, err := harness.LoadAll(c.File)
	if err != nil {
		fmt.Fprintf(stderr, "harness: %v\n", err)
		return 1
	}
	if c.Server == "" {
		dir, err := os.MkdirTemp("", "harness-bin-")
		if err != nil {
			fmt.Fprintf(stderr, "harness: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if c.Server, err = harness.BuildServer(dir); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
	}
	opts := harness.Options{Server: c.Server, Verbose: c.Verbose, WorkDir: c.WorkDir, Keep: c.Keep, GetTimeout: c.GetTimeout}
	if c.Verbose > 0 {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	var reports []*harness.Report
	failed := false
	for _, sc := range scenarios {
		sctx, cancel := context.WithTimeout(ctx, c.Timeout)
		r := harness.Run(sctx, sc, opts)
		cancel()
		fmt.Fprintln(stderr, r.Summary())
		reports = append(reports, r)
		failed = failed || !r.Pass()
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(stdout)
	harness.PrintTable(stdout, reports)
	if failed {
		return 1
	}
	return 0
}
