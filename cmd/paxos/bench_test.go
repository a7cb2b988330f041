package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/bench"
	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/net/certs"
)

// jsonKeys are the keys paxos bench --json promises.
var jsonKeys = []string{"nodes", "clients", "payload_bytes", "duration_s", "warmup_s", "fsync", "ops", "ops_per_sec", "p50_ms", "p99_ms", "p999_ms", "errors"}

func checkJSONRun(t *testing.T, run map[string]any, clients float64) {
	t.Helper()
	for _, k := range jsonKeys {
		if _, ok := run[k]; !ok {
			t.Errorf("JSON result lacks %q: %v", k, run)
		}
	}
	if run["clients"] != clients || run["ops"].(float64) <= 0 || run["errors"] != 0.0 {
		t.Errorf("JSON result %v: want %v clients, some ops and no errors", run, clients)
	}
}

func TestBenchJSON(t *testing.T) {
	code, out, errOut := runCLI("bench", "--clients", "4", "--duration", "300ms", "--warmup", "0s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var run map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&run); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON object:\n%s", out)
	}
	checkJSONRun(t, run, 4)
	if run["nodes"] != 3.0 || run["payload_bytes"] != 64.0 || run["peer_tls"] != true || run["fsync"] != true || run["warmup_s"] != 0.0 {
		t.Errorf("JSON result %v: want the defaults, 3 nodes, 64 B, mutual TLS and fsync, and no warm-up", run)
	}
}

func TestBenchSweepJSONAndPlot(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "sweep.svg")
	code, out, errOut := runCLI("bench", "--sweep", "2,5", "--payload", "200", "--duration", "200ms", "--warmup", "0s", "--no-fsync", "--json", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sweep struct{ Runs []map[string]any }
	if err := json.Unmarshal([]byte(out), &sweep); err != nil || len(sweep.Runs) != 2 {
		t.Fatalf("--sweep --json: want {\"runs\": [two]}, got %q (%v)", out, err)
	}
	checkJSONRun(t, sweep.Runs[0], 2)
	checkJSONRun(t, sweep.Runs[1], 5)
	if sweep.Runs[1]["payload_bytes"] != 200.0 {
		t.Errorf("payload_bytes %v, want 200", sweep.Runs[1]["payload_bytes"])
	}
	if sweep.Runs[0]["peer_tls"] != true {
		t.Errorf("peer_tls %v, want true (the default)", sweep.Runs[0]["peer_tls"])
	}
	if b, err := os.ReadFile(plot); err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("plot %s not written as SVG (%v)", plot, err)
	}
}

// TestBenchTarget runs the workload against a chat room cluster started
// apart from it, as --target does with a real one, over TLS with the
// cluster's certificates; --insecure cannot write to it.
func TestBenchTarget(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(tlsDir, "bench-target", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	clientPort, peerPort := freePorts(t, 1), freePorts(t, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", clientPort)
	n, err := chatroom.StartServer(chatroom.ServerConfig{
		ID: 0, Count: 1, Peers: map[uint64]string{0: fmt.Sprintf("127.0.0.1:%d", peerPort)},
		ClientAddr: addr, DataDir: t.TempDir(), ClusterID: "bench-target", TLSDir: tlsDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, certArgs := range [][]string{{"--tls-dir", tlsDir}, {"--insecure"}} {
		args := append([]string{"bench", "--target", addr, "--cluster-id", "bench-target", "--clients", "3", "--duration", "300ms", "--warmup", "0s"}, certArgs...)
		code, out, errOut := runCLI(args...)
		if certArgs[0] == "--insecure" {
			if code == 0 {
				t.Errorf("--insecure wrote to a cluster whose client ports run TLS: %s", out)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", certArgs, code, errOut)
		}
		// The table: a header and one row.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "ops/s") || !strings.Contains(lines[0], "p99.9 ms") {
			t.Fatalf("want a header and a row, got:\n%s", out)
		}
		row := strings.Fields(lines[1])
		if len(row) != 13 || row[0] != "1" || row[1] != "3" || row[2] != "64" || row[5] != "-" || row[6] != "-" || row[len(row)-1] != "0" {
			t.Errorf("row %q: want 1 node (the --target list), 3 clients, 64 B, no fsync or peer mode, no errors", lines[1])
		}
	}
	if n.Status().Applied == 0 {
		t.Error("the target cluster applied nothing")
	}
	// Certificates of another cluster, or none, stop the run before it
	// writes.
	code, _, errOut := runCLI("bench", "--target", addr, "--cluster-id", "other", "--tls-dir", tlsDir, "--duration", "300ms")
	if code != 1 || !strings.Contains(errOut, `is not the CA of cluster "other"`) {
		t.Errorf("another cluster's certificates: exit %d, %q", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "none")
	code, _, errOut = runCLI("bench", "--target", addr, "--cluster-id", "bench-target", "--tls-dir", missing, "--duration", "300ms")
	if code != 1 || !strings.Contains(errOut, "--tls-dir "+missing) || !strings.Contains(errOut, "no such file") {
		t.Errorf("no certificates: exit %d, %q", code, errOut)
	}
}

// TestBenchCompareTLS runs the in-process cluster both ways and says what
// TLS costs. (Its JSON is --sweep's: {"runs": [...]}, each with peer_tls.)
func TestBenchCompareTLS(t *testing.T) {
	code, out, errOut := runCLI("bench", "--compare-tls", "--clients", "2", "--duration", "300ms", "--warmup", "0s", "--no-fsync")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Fields(lines[1])[6] != "plain" || strings.Fields(lines[2])[6] != "mTLS" ||
		!strings.Contains(lines[4], "clients=2: mutual TLS costs") {
		t.Fatalf("want a header, a plain row, an mTLS row and the cost, got:\n%s", out)
	}
}

// TestBenchCompareMetrics runs the in-process cluster without and with
// the replicas' metrics, in one run, and says what they cost; with
// --rounds 2 the second round runs the other way round first.
func TestBenchCompareMetrics(t *testing.T) {
	code, out, errOut := runCLI("bench", "--compare-metrics", "--rounds", "2", "--nodes", "1", "--clients", "2", "--duration", "200ms", "--warmup", "0s", "--no-fsync", "--insecure")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	metricsCol := func(i int) string { return strings.Fields(lines[i])[7] }
	if len(lines) != 7 || !strings.Contains(lines[0], "metrics") || metricsCol(1) != "off" || metricsCol(2) != "on" ||
		metricsCol(3) != "on" || metricsCol(4) != "off" || !strings.Contains(lines[6], "clients=2: metrics costs") ||
		!strings.Contains(lines[6], "(medians of 2 runs each)") || runtime.GOOS == "linux" && !strings.Contains(lines[6], "; CPU per op ") {
		t.Fatalf("want a header, rows off, on, on, off, and the cost, got:\n%s", out)
	}
}

// TestBenchTable: the table states the run's nodes, clients, payload,
// duration, warm-up and fsync beside what it measured.
func TestBenchTable(t *testing.T) {
	code, out, errOut := runCLI("bench", "--nodes", "1", "--clients", "2", "--payload", "100", "--duration", "250ms", "--warmup", "100ms", "--no-fsync", "--insecure")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and a row, got:\n%s", out)
	}
	header := strings.Join(strings.Fields(lines[0]), " ")
	if want := "nodes clients payload B duration s warm-up s fsync peer ops/s"; !strings.HasPrefix(header, want) {
		t.Errorf("header %q, want it to start %q", header, want)
	}
	row := strings.Fields(lines[1])
	if len(row) != 13 || row[0] != "1" || row[1] != "2" || row[2] != "100" || row[4] != "0.10" || row[5] != "off" || row[6] != "plain" {
		t.Fatalf("row %q: want 1 node, 2 clients, 100 B, 0.10 s of warm-up, fsync off, plaintext peers", lines[1])
	}
	if d, err := strconv.ParseFloat(row[3], 64); err != nil || d < 0.25 {
		t.Errorf("duration %q: want the measured time, at least 0.25 s", row[3])
	}
}

// TestProgressLineNotATerminal: where stderr is not a terminal, each
// report is a line of its own, as bench.Config.ProgressEvery paces them,
// not one line per phase.
func TestProgressLineNotATerminal(t *testing.T) {
	var b strings.Builder
	p := newProgressLine(&b, 16, " mTLS")
	for _, pr := range []bench.Progress{
		{Warmup: true, Elapsed: time.Second},
		{Warmup: true, Elapsed: 2 * time.Second},
		{Elapsed: time.Second, Ops: 500, OpsPerSec: 500},
		{Elapsed: 2 * time.Second, Ops: 1100, OpsPerSec: 550},
	} {
		p.show(pr)
	}
	p.done()
	want := "clients=16 mTLS warming up:   1.0s elapsed\n" +
		"clients=16 mTLS warming up:   2.0s elapsed\n" +
		"clients=16 mTLS measuring:   1.0s elapsed, 500 ops, 500 ops/s\n" +
		"clients=16 mTLS measuring:   2.0s elapsed, 1100 ops, 550 ops/s\n"
	if b.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--nodes", "0"},
		{"--clients", "0"},
		{"--payload", "0"},
		{"--payload", "2000000"},
		{"--duration", "0s"},
		{"--duration=-1s"},
		{"--duration", "5ms"},
		{"--warmup", "-1s"},
		{"--nodes", "1000"},
		{"--nodes=-1"},
		{"--clients", "100001"},
		{"--clients=-5"},
		{"--payload", "1048577"},
		{"--target", "127.0.0.1:1", "--payload", "70000"},
		{"--target", "127.0.0.1"},
		{"--target", "127.0.0.1:0"},
		{"--target", "127.0.0.1:65536"},
		{"--target", ":10000"},
		{"--cluster-id", "a/b"},
		{"--tls", "--insecure"},
		{"--compare-tls", "--tls"},
		{"--compare-tls", "--insecure"},
		{"--target", "127.0.0.1:1", "--tls"},
		{"--target", "127.0.0.1:1", "--compare-tls"},
		{"--compare-tls", "--compare-metrics"},
		{"--compare-metrics", "--metrics"},
		{"--target", "127.0.0.1:1", "--metrics"},
		{"--target", "127.0.0.1:1", "--compare-metrics"},
		{"--target", "127.0.0.1:1", "--tls-dir", "x", "--insecure"},
		{"--tls-dir", "x"},
		{"--rounds", "0"},
		{"--rounds", "101"},
		{"--sweep", "1,2", "--plot", "p.svg", "--rounds", "2"},
		{"--sweep", "1,x"},
		{"--sweep", "1,0"},
		{"--plot", "p.png"},
		{"--sweep", "1", "--plot", "p.gif"},
		{"--target", "127.0.0.1:1", "--no-fsync"},
		{"--duration", "soon"},
	} {
		code, _, errOut := runCLI(append([]string{"bench"}, args...)...)
		if code != 80 || !strings.Contains(errOut, "paxos: error:") {
			t.Errorf("bench %q: exit %d, stderr %q; want exit 80 and an error", args, code, errOut)
		}
	}
}

// TestTLSCost: the cost line compares the medians of the rounds.
func TestTLSCost(t *testing.T) {
	on, off := true, false
	r := func(clients int, tls *bool, ops, p50 float64) bench.Result {
		return bench.Result{Clients: clients, PeerTLS: tls, OpsPerSec: ops, P50ms: p50, P99ms: 2 * p50}
	}
	results := []bench.Result{
		r(1, &off, 1000, 0.40), r(1, &on, 990, 0.41),
		r(1, &on, 500, 0.90), r(1, &off, 1100, 0.42), // a busy moment, and a quiet one
		r(1, &off, 900, 0.44), r(1, &on, 1000, 0.43),
		r(2, &off, 1, 1), // another client count: not counted
	}
	got := tlsCost(1, results)
	want := "clients=1: mutual TLS costs 1.0% of throughput (1000 -> 990 ops/s); p50 +0.010 ms (0.420 -> 0.430), p99 +0.020 ms (medians of 3 runs each)"
	if got != want {
		t.Errorf("tlsCost:\n got %s\nwant %s", got, want)
	}
}
