// Package opstest helps the commands' tests read what opsserver serves,
// and what a command writes while it runs.
package opstest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Get fetches url and returns the status code and the body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// Scrape fetches base/metrics and parses it.
func Scrape(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := Get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", base, code, body)
	}
	fams, err := new(expfmt.TextParser).TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing %s/metrics: %v", base, err)
	}
	return fams
}

// Value returns the value of the sample of name whose labels include
// labels (name, value pairs): a gauge's or a counter's value, a
// histogram's count; and whether there is one.
func Value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// WaitFor polls cond until it holds, failing the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Names are the metric names issue 14 fixes, each with a replica label
// (docs/grafana/dashboard_test.go lists the same for the dashboard).
var Names = []string{
	"paxos_commit_latency_seconds", "paxos_wal_fsync_seconds", "paxos_batch_commands",
	"paxos_inflight_slots", "paxos_commit_index", "paxos_applied_index", "paxos_is_leader",
	"paxos_leader_changes_total", "paxos_elections_total", "paxos_snapshot_seconds",
	"paxos_snapshot_bytes", "paxos_snapshot_installs_total", "paxos_peer_connected",
	"paxos_peer_send_queue_bytes", "paxos_client_connections", "paxos_protocol_violations_total",
}

// SyncBuffer is a bytes.Buffer safe to read while a goroutine writes: a
// running command's output.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
