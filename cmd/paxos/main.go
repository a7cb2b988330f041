// Command paxos is the main tool of paxos-go:
//
//	paxos up                 a local chat room cluster of 3 replicas, no setup (mutual TLS, certificates in data/tls)
//	paxos certs              a cluster's CA and certificates, for --tls-dir
//	paxos bench              write throughput and latency, as a table, JSON or plot
//	paxos cluster status     a running cluster's configuration (add, promote, remove, transfer change it)
//	paxos wal dump <dir>     segments, record counts, slot ranges, hard state
//	paxos wal verify <dir>   exit 0 on a sound log, 1 naming file and offset
//	paxos snapshot ls <dir>  snapshots with slot, size and checksum status (--copy beside a running replica)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"
)

// cli is the command line: one field per subcommand.
type cli struct {
	Verbose  int         `short:"v" type:"counter" help:"Log more (repeat for more detail)."`
	Up       upCmd       `cmd:"" help:"Run a local chat room cluster (3 replicas on 127.0.0.1, data in ./data, certificates in ./data/tls) until Ctrl-C."`
	Certs    certsCmd    `cmd:"" help:"Write a cluster's CA and certificates into a directory, for the --tls-dir of its replicas and clients."`
	Bench    benchCmd    `cmd:"" help:"Measure write throughput and latency of an in-process cluster (or of a running one, with --target)."`
	Cluster  clusterCmd  `cmd:"" help:"Show and change a running cluster's membership: status, add, promote, remove, transfer."`
	WAL      walCmd      `cmd:"" name:"wal" help:"Inspect and verify write-ahead logs."`
	Snapshot snapshotCmd `cmd:"" help:"Inspect snapshot stores."`
}

// globals is what every subcommand's Run receives.
type globals struct {
	ctx    context.Context // ends on Ctrl-C (SIGINT) or SIGTERM
	log    hclog.Logger
	out    io.Writer // results
	errOut io.Writer // progress and other messages for a person
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// exitRequest carries kong's request to exit (after --help, say) out of
// the parser, so that run, not kong, ends the program.
type exitRequest struct{ code int }

// run runs the command line args and returns the exit status: 0 on
// success, 1 when the command fails, 80 for a bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("paxos"),
		kong.Description("Tools for paxos-go, an embeddable Multi-Paxos replicated state machine."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest{code}) }),
	)
	if err != nil {
		panic(err) // the cli struct is malformed: a bug
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			parser.Errorf("%s", err)
			if pe.Context != nil {
				_ = pe.Context.PrintUsage(true)
			}
			return pe.ExitCode()
		}
		parser.Errorf("%s", err)
		return 1
	}
	g := &globals{ctx: ctx, log: newLogger(c.Verbose, stderr), out: stdout, errOut: stderr}
	if err := kctx.Run(g); err != nil {
		fmt.Fprintf(stderr, "paxos: %s\n", err)
		return 1
	}
	return 0
}

// newLogger logs to w: warnings by default, more with each -v.
func newLogger(verbose int, w io.Writer) hclog.Logger {
	level := hclog.Warn
	switch {
	case verbose >= 2:
		level = hclog.Trace
	case verbose == 1:
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: "paxos", Level: level, Output: w})
}
