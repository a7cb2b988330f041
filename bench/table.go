package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints results as an aligned table, one row per run. Each row
// states what was run, so that a table pasted alone still says what it
// measured: the nodes, clients and payload, how long it was measured
// after how long a warm-up, whether the WALs fsynced (on or off; "-" for a
// Target cluster, which this process does not configure), and how the
// in-process cluster's replicas talked (mTLS or plain; "-" likewise).
// When some run exported Prometheus metrics, a metrics column (on or off)
// follows the peer column.
func WriteTable(w io.Writer, results []Result) error {
	withMetrics := false
	for _, r := range results {
		withMetrics = withMetrics || r.Metrics != nil && *r.Metrics
	}
	metricsHead := ""
	if withMetrics {
		metricsHead = "metrics\t"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tclients\tpayload B\tduration s\twarm-up s\tfsync\tpeer\t"+metricsHead+"ops/s\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
	for _, r := range results {
		metrics := ""
		if withMetrics {
			metrics = onOff(r.Metrics, "on", "off") + "\t"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.2f\t%.2f\t%s\t%s\t%s%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%d\t\n",
			r.Nodes, r.Clients, r.PayloadBytes, r.DurationS, r.WarmupS, onOff(r.Fsync, "on", "off"), onOff(r.PeerTLS, "mTLS", "plain"),
			metrics, r.OpsPerSec, r.MBPerSec, r.P50ms, r.P99ms, r.P999ms, r.Errors)
	}
	return tw.Flush()
}

// onOff names a setting of the in-process cluster: "-" when it is not
// known (a Target cluster).
func onOff(b *bool, on, off string) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return on
	}
	return off
}
