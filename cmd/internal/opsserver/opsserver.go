// Package opsserver serves the operational endpoints of the commands
// that run replicas (chatroom-server, paxos up) on their --metrics-addr:
//
//	/metrics  the Prometheus metrics of the process's registry
//	/healthz  200 "ok" while the process serves HTTP at all (liveness)
//	/readyz   200 "ready" when every replica of the process is ready
//	          (engine.Node.Readiness), else 503 with one line per replica
//	          that is not, saying why
package opsserver

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the endpoints until Close.
type Server struct {
	ln   stdnet.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// NewRegistry returns a registry for a command's replicas
// (engine.Config.Metrics), holding already the Go runtime's and the
// process's collectors (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Readiness says whether a replica is ready: nil if so, else why not.
type Readiness struct {
	Name  string // as /readyz names it, "replica 2"
	Check func() error
}

// Start listens on addr and serves the endpoints: /metrics from g, /readyz
// from replicas (read at each request, so that a command may add to it
// before it starts its replicas: it is not ready while it has none).
func Start(addr string, g prometheus.Gatherer, replicas func() []Readiness) (*Server, error) {
	ln, err := stdnet.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		code, body := readiness(replicas())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	})
	s := &Server{
		ln: ln,
		// The timeouts bound what a slow or idle scraper holds.
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

// readiness is the status code and body of /readyz.
func readiness(rs []Readiness) (int, string) {
	if len(rs) == 0 {
		return http.StatusServiceUnavailable, "not ready: no replica running yet\n"
	}
	var b strings.Builder
	for _, r := range rs {
		if err := r.Check(); err != nil {
			fmt.Fprintf(&b, "%s: %v\n", r.Name, err)
		}
	}
	if b.Len() > 0 {
		return http.StatusServiceUnavailable, "not ready\n" + b.String()
	}
	return http.StatusOK, "ready\n"
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting a moment for requests under way.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}
