package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestCompareSmoke runs both systems briefly and checks the table: a row
// for each and their ratio, with work done and no errors.
func TestCompareSmoke(t *testing.T) {
	c := &cli{Nodes: 3, Sweep: []int{4}, Payload: 64, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.run(ctx, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header, two systems and a ratio, got:\n%s", out.String())
	}
	for i, want := range []string{"paxos-go", "hashicorp/raft", "ratio"} {
		f := strings.Fields(lines[i+1])
		if f[0] != want || f[1] != "4" {
			t.Errorf("row %q: want %s with 4 clients", lines[i+1], want)
		}
		if want != "ratio" && (f[2] == "0" || f[len(f)-1] != "0") {
			t.Errorf("row %q: want some ops/s and no errors", lines[i+1])
		}
	}
}
