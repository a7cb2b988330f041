package opsserver

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The three endpoints, on a real listener on a port chosen now: the
// registry's metrics, liveness, and readiness as the replicas' checks say.
func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "paxos_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Pointer[error]
	var rs atomic.Pointer[[]Readiness]
	s, err := Start("127.0.0.1:0", reg, func() []Readiness {
		if p := rs.Load(); p != nil {
			return *p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "paxos_test_total 3") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "no replica running yet") {
		t.Errorf("/readyz with no replica: %d %q", code, body)
	}
	check := func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	}
	rs.Store(&[]Readiness{{"replica 0", func() error { return nil }}, {"replica 1", check}})
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz, all ready: %d %q", code, body)
	}
	e := errors.New("no leader known")
	notReady.Store(&e)
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready\nreplica 1: no leader known\n" {
		t.Errorf("/readyz, replica 1 not ready: %d %q", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after Close")
	}
}

// An address that cannot be listened on fails Start, naming the flag.
func TestStartFails(t *testing.T) {
	s, err := Start("127.0.0.1:0", NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Start(s.Addr(), NewRegistry(), nil); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("an address in use: %v", err)
	}
}
