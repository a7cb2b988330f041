package harness

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintTable prints one line per report (scenario, verdict, ops, faults,
// time), then the reasons of every failure.
func PrintTable(w io.Writer, reports []*Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVERDICT\tOPS\tFAULTS\tPUTS (ACKED)\tGETS\tTIME")
	for _, r := range reports {
		verdict := "PASS"
		if !r.Pass() {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d (%d)\t%d\t%s\n", r.Scenario, verdict, r.Ops, r.Faults, r.Puts, r.Acked, r.Gets, r.Duration.Round(10*time.Millisecond))
	}
	tw.Flush()
	for _, r := range reports {
		if r.Pass() {
			continue
		}
		fmt.Fprintf(w, "\n%s FAILED:\n", r.Scenario)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  - %s\n", f)
		}
		if r.Dir != "" {
			fmt.Fprintf(w, "  server logs and data: %s\n", r.Dir)
		}
	}
}

// Summary is a one-line description of a report.
func (r *Report) Summary() string {
	if r.Pass() {
		return fmt.Sprintf("%s: PASS (%d ops, %d faults, %s)", r.Scenario, r.Ops, r.Faults, r.Duration.Round(10*time.Millisecond))
	}
	return fmt.Sprintf("%s: FAIL: %s", r.Scenario, strings.Join(r.Failures, "; "))
}
