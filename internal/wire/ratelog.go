package wire

import (
	"fmt"
	stdnet "net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// RateLog logs events that a stranger can cause at will (refused
// connections, failing accepts) without letting them flood the log: each
// at debug level; at warn level, the first after a quiet period at once,
// and those that follow as one summary line per interval, with their
// reasons counted. The peer port (net) and the client port (engine) each
// keep theirs. It is safe for concurrent use.
type RateLog struct {
	log     hclog.Logger
	every   time.Duration
	first   string // message of the first event's line
	summary string // format of the summary: count, interval

	mu      sync.Mutex
	timer   *time.Timer // running while a period is open
	n       int
	reasons map[string]int
	closed  bool
}

// NewRateLog returns a RateLog writing to log: first is the message of an
// event's line; summary the format of the summary line, given the count
// and the interval (as "refused %d client connections in the last %v").
// every is the interval (10 s if not positive).
func NewRateLog(log hclog.Logger, every time.Duration, first, summary string) *RateLog {
	if every <= 0 {
		every = 10 * time.Second
	}
	return &RateLog{log: log, every: every, first: first, summary: summary, reasons: map[string]int{}}
}

// Add records an event: reason is a short keyword counted in the summary
// (may be empty), remote the other side (may be nil).
func (r *RateLog) Add(reason string, remote stdnet.Addr, err error) {
	args := []any{"error", err}
	if remote != nil {
		args = append(args, "remote", remote.String())
	}
	if reason != "" {
		args = append(args, "reason", reason)
	}
	r.log.Debug(r.first, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.timer == nil {
		r.log.Warn(r.first+fmt.Sprintf(" (more are summarised every %v)", r.every), args...)
		r.timer = time.AfterFunc(r.every, r.flush)
		return
	}
	r.n++
	if reason != "" {
		r.reasons[reason]++
	}
}

// flush logs the summary of the period that ends, if anything happened in
// it, and opens the next one; after a quiet period, it closes.
func (r *RateLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.n == 0 {
		r.timer = nil
		return
	}
	var reasons []string
	for k, v := range r.reasons {
		reasons = append(reasons, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(reasons)
	args := []any{}
	if len(reasons) > 0 {
		args = append(args, "reasons", strings.Join(reasons, " "))
	}
	r.log.Warn(fmt.Sprintf(r.summary, r.n, r.every), args...)
	r.n, r.reasons = 0, map[string]int{}
	r.timer.Reset(r.every)
}

// Close stops the summary timer; later events are logged at debug level
// only.
func (r *RateLog) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
}
