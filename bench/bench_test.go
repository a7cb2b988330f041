package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// BenchmarkWrites is the full sweep: 3- and 5-replica clusters, C
// closed-loop clients, 64 B and 1 KiB commands. b.N is the number of
// writes; each sub-benchmark keeps its cluster across the runs the
// testing package makes to size b.N, so that the small first runs warm
// it up. Compare runs with benchstat:
//
//	go test -bench Writes -run '^$' -count 6 ./bench | tee new.txt
func BenchmarkWrites(b *testing.B) {
	for _, nodes := range []int{3, 5} {
		for _, payload := range []int{64, 1024} {
			for _, clients := range []int{1, 16, 64, 256, 1024} {
				name := fmt.Sprintf("nodes=%d/payload=%d/clients=%d", nodes, payload, clients)
				cfg := Config{Nodes: nodes, Clients: clients, PayloadBytes: payload}
				var cluster *Cluster
				b.Run(name, func(b *testing.B) {
					if cluster == nil {
						c, err := StartCluster(cfg)
						if err != nil {
							b.Fatal(err)
						}
						cluster = c
					}
					benchWrites(b, cfg, cluster)
				})
				if cluster != nil {
					if err := cluster.Close(); err != nil {
						b.Error(err)
					}
				}
			}
		}
	}
}

// BenchmarkMetricsCost measures the replicas' Prometheus metrics
// (Config.Metrics) at 256 clients on 3 replicas, off and then on, each
// with its own cluster. Profile the "on" run to see their share of the
// CPU:
//
//	go test -bench MetricsCost/metrics=on -run '^$' -benchtime 200000x -cpuprofile cpu.out ./bench
//	go tool pprof -top -focus 'prometheus|nodeMetrics' bench.test cpu.out
func BenchmarkMetricsCost(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", onOff(&on, "on", "off")), func(b *testing.B) {
			cfg := Config{Nodes: 3, Clients: 256, PayloadBytes: 64, Metrics: on}
			c, err := StartCluster(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchWrites(b, cfg, c)
		})
	}
}

func benchWrites(b *testing.B, cfg Config, w Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	res, err := MeasureN(ctx, cfg, w, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.OpsPerSec, "ops/s")
	b.ReportMetric(res.MBPerSec, "MB/s")
	b.ReportMetric(res.P50ms, "p50-ms")
	b.ReportMetric(res.P99ms, "p99-ms")
	b.ReportMetric(res.P999ms, "p99.9-ms")
	if res.Errors > 0 {
		b.ReportMetric(float64(res.Errors), "errors")
	}
}

// TestSmoke runs the benchmark's workload briefly on a 3-replica
// cluster, both ways (timed, as paxos bench does, and counted, as go test
// -bench does), so the normal test suite catches a broken benchmark.
func TestSmoke(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Nodes: 3, Clients: 8, PayloadBytes: 100, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}
	var progress []Progress
	cfg.Progress = func(p Progress) { progress = append(progress, p) }
	c, err := StartCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	res, err := Measure(ctx, cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if res.DurationS < cfg.Duration.Seconds() {
		t.Errorf("measured %.3f s, want at least %v", res.DurationS, cfg.Duration)
	}

	const n = 200
	res, err = MeasureN(ctx, cfg, c, n)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if res.Ops != n {
		t.Errorf("MeasureN(%d) measured %d writes", n, res.Ops)
	}
}

func checkResult(t *testing.T, res Result, cfg Config) {
	t.Helper()
	if res.Nodes != cfg.Nodes || res.Clients != cfg.Clients || res.PayloadBytes != cfg.PayloadBytes {
		t.Errorf("result describes %d nodes, %d clients, %d B; ran %d, %d, %d B",
			res.Nodes, res.Clients, res.PayloadBytes, cfg.Nodes, cfg.Clients, cfg.PayloadBytes)
	}
	if res.Ops == 0 || res.OpsPerSec <= 0 || res.Errors != 0 {
		t.Errorf("ops %d at %.0f/s with %d errors, want some and no errors", res.Ops, res.OpsPerSec, res.Errors)
	}
	if !(0 < res.P50ms && res.P50ms <= res.P99ms && res.P99ms <= res.P999ms) {
		t.Errorf("latency percentiles out of order: p50 %.3f p99 %.3f p99.9 %.3f ms", res.P50ms, res.P99ms, res.P999ms)
	}
	if want := res.OpsPerSec * float64(cfg.PayloadBytes) / 1e6; res.MBPerSec != want {
		t.Errorf("MB/s %.3f, want %.3f", res.MBPerSec, want)
	}
}

func TestPlot(t *testing.T) {
	sweep := func(scale float64) []Result {
		var rs []Result
		for _, c := range []int{1, 16, 64, 256} {
			rs = append(rs, Result{Clients: c, OpsPerSec: scale * float64(c) * 100, P99ms: 0.5 + float64(c)/100})
		}
		return rs
	}
	series := []Series{{Name: "a", Results: sweep(1)}, {Name: "b", Results: sweep(2)}}
	dir := t.TempDir()
	for _, name := range []string{"p.png", "p.svg", "P.SVG"} {
		file := filepath.Join(dir, name)
		if err := Plot(file, "test", series); err != nil {
			t.Fatalf("Plot(%s): %v", name, err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var magic []byte
		if strings.HasSuffix(strings.ToLower(name), ".svg") {
			magic = []byte("<svg")
		} else {
			magic = []byte("\x89PNG")
		}
		if !bytes.Contains(b[:min(len(b), 512)], magic) {
			t.Errorf("%s does not start like its format (%q...)", name, b[:min(len(b), 16)])
		}
	}
	if err := Plot(filepath.Join(dir, "p.gif"), "test", series); err == nil {
		t.Error("Plot accepted a .gif file name")
	}
}

// TestConfigRefusesNegatives: a zero field takes its default, a negative
// one is an error, not the default.
func TestConfigRefusesNegatives(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Nodes: -1}, "Config.Nodes -1"},
		{Config{Clients: -1}, "Config.Clients -1"},
		{Config{PayloadBytes: -1}, "Config.PayloadBytes -1"},
		{Config{Duration: -time.Second}, "Config.Duration -1s"},
		{Config{ProgressEvery: -time.Second}, "Config.ProgressEvery -1s"},
		{Config{TLS: true, Target: []string{"127.0.0.1:1"}}, "not a Target"},
		{Config{Metrics: true, Target: []string{"127.0.0.1:1"}}, "Config.Metrics configures the in-process cluster"},
		{Config{ScrapeEvery: -time.Second}, "Config.ScrapeEvery -1s"},
	} {
		if _, err := Run(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
		if _, err := StartCluster(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartCluster(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestTLSCluster: the in-process cluster commits over mutually
// authenticated peer ports, and says so in its result.
func TestTLSCluster(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Nodes: 3, Clients: 4, PayloadBytes: 64, Warmup: -1, Duration: 200 * time.Millisecond, TLS: true, NoFsync: true}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if res.PeerTLS == nil || !*res.PeerTLS {
		t.Errorf("PeerTLS %v, want true", res.PeerTLS)
	}
}

// TestMetricsCluster: with Config.Metrics, the in-process replicas export
// their metrics on the cluster's registry, which is scraped while they
// run, and the result says so; the table grows a metrics column.
func TestMetricsCluster(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Nodes: 3, Clients: 4, PayloadBytes: 64, Warmup: -1, Duration: 200 * time.Millisecond, NoFsync: true,
		Metrics: true, ScrapeEvery: 10 * time.Millisecond}
	c, err := StartCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := Measure(ctx, cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, cfg)
	if res.Metrics == nil || !*res.Metrics {
		t.Errorf("Metrics %v, want true", res.Metrics)
	}
	if runtime.GOOS == "linux" && res.CPUusPerOp <= 0 {
		t.Errorf("CPUusPerOp %v, want the process's CPU time per write", res.CPUusPerOp)
	}
	fams, err := c.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var latencies uint64
	for _, f := range fams {
		if f.GetName() == "paxos_commit_latency_seconds" {
			for _, m := range f.GetMetric() {
				latencies += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if latencies < res.Ops {
		t.Errorf("%d commit latencies observed for %d measured writes", latencies, res.Ops)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, []Result{res}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(b.String(), "\n"); !strings.Contains(lines[0], " peer  metrics  ops/s") || strings.Fields(lines[1])[7] != "on" {
		t.Errorf("table:\n%s\nwant a metrics column saying on", b.String())
	}
}

// sleepWriter commits each write after a fixed delay, with no cluster:
// inside a synctest bubble, where time moves only when every goroutine
// waits, a run's timeline is then exact.
type sleepWriter struct{ d time.Duration }

func (w sleepWriter) Write(ctx context.Context, _ int, _ []byte) error {
	select {
	case <-time.After(w.d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sleepWriter) Close() error { return nil }

// TestProgressEverySecond: a run reports its progress once a second in
// each phase (not once per phase, nor twice a second), counting the
// measured writes only, and its result states how long it warmed up and
// measured. The clock is synctest's, so the timeline is exact.
func TestProgressEverySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []Progress
		cfg := Config{
			Nodes: 3, Clients: 2, PayloadBytes: 8, Warmup: 2500 * time.Millisecond, Duration: 3500 * time.Millisecond,
			Progress: func(p Progress) { got = append(got, p) },
		}
		res, err := Measure(context.Background(), cfg, sleepWriter{time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			warmup  bool
			elapsed time.Duration
		}{{true, time.Second}, {true, 2 * time.Second}, {false, time.Second}, {false, 2 * time.Second}, {false, 3 * time.Second}}
		if len(got) != len(want) {
			t.Fatalf("%d progress reports, want %d (one a second in each phase): %+v", len(got), len(want), got)
		}
		var lastOps uint64
		for i, w := range want {
			p := got[i]
			if p.Warmup != w.warmup || p.Elapsed != w.elapsed {
				t.Errorf("report %d: warmup %v at %v, want warmup %v at %v", i, p.Warmup, p.Elapsed, w.warmup, w.elapsed)
			}
			switch {
			case p.Warmup && p.Ops != 0:
				t.Errorf("report %d counts %d warm-up writes as measured", i, p.Ops)
			case !p.Warmup && p.Ops <= lastOps:
				t.Errorf("report %d: %d ops, not more than the %d of the one before", i, p.Ops, lastOps)
			case !p.Warmup && p.OpsPerSec != float64(p.Ops)/p.Elapsed.Seconds():
				t.Errorf("report %d: %.1f ops/s for %d ops in %v", i, p.OpsPerSec, p.Ops, p.Elapsed)
			}
			if !p.Warmup {
				lastOps = p.Ops
			}
		}
		if res.WarmupS != 2.5 || res.DurationS != 3.5 {
			t.Errorf("result: warm-up %v s, duration %v s; want 2.5 and 3.5", res.WarmupS, res.DurationS)
		}
		if res.Ops <= lastOps || res.Fsync == nil || !*res.Fsync || res.PeerTLS == nil || *res.PeerTLS {
			t.Errorf("result: %d ops (last report %d), fsync %v, peer TLS %v; want more ops, fsync on, plaintext peers",
				res.Ops, lastOps, res.Fsync, res.PeerTLS)
		}
	})
}

// TestWriteTable: the table states what each run was, beside what it
// measured; a Target run's fsync and peer columns say "-".
func TestWriteTable(t *testing.T) {
	on, off := true, false
	results := []Result{
		{Nodes: 3, Clients: 16, PayloadBytes: 64, DurationS: 10.004, WarmupS: 2, Fsync: &on, PeerTLS: &on,
			Ops: 1000, OpsPerSec: 100, MBPerSec: 0.0064, P50ms: 1, P99ms: 2, P999ms: 3},
		{Nodes: 5, Clients: 1, PayloadBytes: 1024, DurationS: 0.3, Fsync: &off, PeerTLS: &off, OpsPerSec: 7, Errors: 2},
		{Nodes: 2, Clients: 4, PayloadBytes: 8, DurationS: 1, WarmupS: 0.5},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	header := "nodes  clients  payload B  duration s  warm-up s  fsync   peer  ops/s  MB/s  p50 ms  p99 ms  p99.9 ms  errors"
	rows := [][]string{
		{"3", "16", "64", "10.00", "2.00", "on", "mTLS", "100", "0.01", "1.000", "2.000", "3.000", "0"},
		{"5", "1", "1024", "0.30", "0.00", "off", "plain", "7", "0.00", "0.000", "0.000", "0.000", "2"},
		{"2", "4", "8", "1.00", "0.50", "-", "-", "0", "0.00", "0.000", "0.000", "0.000", "0"},
	}
	if len(lines) != 1+len(rows) || strings.TrimSpace(lines[0]) != header {
		t.Fatalf("table:\n%s\nwant the header %q and %d rows", b.String(), header, len(rows))
	}
	for i, want := range rows {
		if got := strings.Fields(lines[i+1]); !slices.Equal(got, want) {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
}

// TestNoWarmupStaysNone: a negative Warmup (none) survives the defaults
// being applied twice, as Run applies them before Measure does. (It used
// to become 0 the first time and the 2 s default the second.)
func TestNoWarmupStaysNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Clients: 1, Warmup: -1, Duration: time.Second}
		start := time.Now()
		res, err := Measure(context.Background(), cfg.withDefaults(), sleepWriter{time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); res.WarmupS != 0 || took != time.Second {
			t.Errorf("warm-up %v s, run of %v; want none, and 1 s in all", res.WarmupS, took)
		}
	})
}
