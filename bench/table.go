package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints results as an aligned table, one row per run. Its
// peer column says how the in-process cluster's replicas talked: mTLS or
// plain ("-" for a Target cluster, which this process does not configure).
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tclients\tpayload B\tpeer\tops/s\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%d\t\n",
			r.Nodes, r.Clients, r.PayloadBytes, r.peer(), r.OpsPerSec, r.MBPerSec, r.P50ms, r.P99ms, r.P999ms, r.Errors)
	}
	return tw.Flush()
}

func (r Result) peer() string {
	switch {
	case r.PeerTLS == nil:
		return "-"
	case *r.PeerTLS:
		return "mTLS"
	}
	return "plain"
}
