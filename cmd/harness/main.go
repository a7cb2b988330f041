// Command harness runs chat room fault scenarios against real server
// processes and judges them:
//
//	harness --file tests/scenarios            every scenario in a folder
//	harness --file 'tests/scenarios/c*.json'  a glob
//	harness --file basic.json --server ./chatroom-server -vv
//	harness --file tests/scenarios --insecure     plaintext peer ports
//
// Each run makes the certificates of its own cluster in its run directory
// and starts its servers with --tls-dir; --tls-dir DIR uses a directory
// that paxos certs made for every run instead (its cluster is the one its
// CA names), and --insecure runs the peer ports in plaintext.
//
// It prints a table (scenario, verdict, ops, faults, time) and exits 1 if
// any scenario fails, saying why.
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
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
	TLSDir     string        `name:"tls-dir" placeholder:"DIR" help:"Certificates made by paxos certs for every server of the scenarios, used by every run (default: each run makes its own)."`
	Insecure   bool          `help:"Start the servers with --insecure: plaintext peer ports."`
}

// Validate refuses a bad command line (kong calls it while parsing).
func (c *cli) Validate() error {
	if err := cmdflags.Positive("--get-timeout", c.GetTimeout); err != nil {
		return err
	}
	if err := cmdflags.Positive("--timeout", c.Timeout); err != nil {
		return err
	}
	return cmdflags.TLS{Dir: c.TLSDir, Insecure: c.Insecure}.Check()
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
	opts := harness.Options{Verbose: c.Verbose, WorkDir: c.WorkDir, Keep: c.Keep, GetTimeout: c.GetTimeout, Insecure: c.Insecure}
	if c.TLSDir != "" {
		if opts.ClusterID, err = cmdflags.ClusterOf(c.TLSDir); err != nil {
			fmt.Fprintf(stderr, "harness: --tls-dir %s: %v\n", c.TLSDir, err)
			return 1
		}
		ids := map[uint64]bool{}
		for _, sc := range scenarios {
			for _, id := range sc.ServerIDs() {
				ids[id] = true
			}
		}
		mine := slices.Sorted(maps.Keys(ids))
		t := cmdflags.TLS{Dir: c.TLSDir}
		if _, _, err := t.ReplicaDir("", opts.ClusterID, len(mine), mine); err != nil {
			fmt.Fprintf(stderr, "harness: %v\n", err)
			return 1
		}
		opts.TLSDir = c.TLSDir
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
	opts.Server = c.Server
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
