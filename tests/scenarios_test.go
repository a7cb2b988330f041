package tests

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/harness"
)

var (
	flagVerbose = flag.Bool("scenario.verbose", false, "print every operation as it runs")
	flagRun     = flag.String("scenario.run", "", "run only the scenarios whose name contains this")
)

var serverBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "paxos-tests-")
	if err != nil {
		panic(err)
	}
	serverBin, err = harness.BuildServer(dir)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestScenarios runs every scenario, one after the other (they start up
// to ten processes each), and fails with the harness's reasons.
func TestScenarios(t *testing.T) {
	scenarios, err := harness.LoadAll("scenarios")
	if err != nil {
		t.Fatal(err)
	}
	var reports []*harness.Report
	for _, sc := range scenarios {
		if !strings.Contains(sc.Name, *flagRun) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			opts := harness.Options{Server: serverBin, WorkDir: os.TempDir()}
			if *flagVerbose {
				opts.Logf = t.Logf
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			r := harness.Run(ctx, sc, opts)
			reports = append(reports, r)
			if !r.Pass() {
				t.Errorf("%s", r.Summary())
				if r.Dir != "" {
					t.Logf("server logs and data: %s", r.Dir)
				}
			}
		})
	}
	var table strings.Builder
	harness.PrintTable(&table, reports)
	t.Logf("\n%s", table.String())
}
