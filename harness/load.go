package harness

import (
	"fmt"
	"sync"
	"time"

	"github.com/paxos-go/paxos/chatroom"
)

// load is the state of a Load operation: clients that put messages of
// their own, one after another, until it is stopped.
type load struct {
	op   Op
	stop chan struct{} // closed by StopLoad: finish the put in flight, then stop
	done chan struct{} // closed when the run ends: give up the put in flight
	wg   sync.WaitGroup

	mu     sync.Mutex
	errors int
	first  []string // the first few errors, for the report
	puts   int      // puts acknowledged
}

// loadClientBase numbers the load clients in the history, apart from the
// scenario's clients (and their gets, at 1000 and up).
const loadClientBase = 100_000

// maxLoadErrorsShown bounds the errors a failure quotes.
const maxLoadErrorsShown = 3

// startLoad starts op's clients. The messages are "load<op>-<client>-<n>":
// unique, so that the oracles can tell each put apart.
func (r *run) startLoad(op Op) error {
	if r.load != nil {
		return fmt.Errorf("a Load (op %d) is already running: stop it first", r.load.op.Index)
	}
	if len(r.servers) == 0 {
		return fmt.Errorf("no server is running")
	}
	l := &load{op: op, stop: make(chan struct{}), done: make(chan struct{})}
	first := -1
	for id := range r.servers {
		first = id
		break
	}
	for i := 0; i < op.Clients; i++ {
		c := chatroom.NewClient(r.addrs(first), chatroom.Options{ClusterID: r.cluster, TLSDir: r.tlsDir, AttemptTimeout: time.Second})
		client := loadClientBase + op.Index*MaxLoadClients + i
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			onErr := func(err error) {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.errors++
				if len(l.first) < maxLoadErrorsShown {
					l.first = append(l.first, fmt.Sprintf("at %v: %v", time.Since(r.start).Round(time.Millisecond), err))
				}
			}
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				p := putRequest{msg: fmt.Sprintf("load%d-%d-%d", op.Index, i, n), call: r.now()}
				r.mu.Lock()
				r.report.Puts++
				r.mu.Unlock()
				if !r.put(c, client, p, l.done, onErr) {
					return
				}
				l.mu.Lock()
				l.puts++
				l.mu.Unlock()
			}
		}()
	}
	r.load = l
	return nil
}

// stopLoad stops the running load, waits (up to the settle timeout) for
// the puts in flight, and judges its errors against max_errors.
func (r *run) stopLoad() error {
	l := r.load
	if l == nil {
		return nil
	}
	r.load = nil
	close(l.stop)
	finished := make(chan struct{})
	go func() { l.wg.Wait(); close(finished) }()
	timer := time.NewTimer(r.opts.SettleTimeout)
	defer timer.Stop()
	select {
	case <-finished:
	case <-timer.C:
		close(l.done)
		<-finished
		return fmt.Errorf("the puts of Load (op %d) were not acknowledged within %v of StopLoad", l.op.Index, r.opts.SettleTimeout)
	case <-r.ctx.Done():
		close(l.done)
		<-finished
		return fmt.Errorf("the run's deadline passed while Load (op %d) stopped", l.op.Index)
	}
	r.opts.Logf("%s: Load (op %d): %d puts acknowledged, %d failed attempts", r.sc.Name, l.op.Index, l.puts, l.errors)
	if l.puts == 0 {
		return fmt.Errorf("Load (op %d): no put was acknowledged while it ran", l.op.Index)
	}
	if l.op.MaxErrors >= 0 && l.errors > l.op.MaxErrors {
		return fmt.Errorf("Load (op %d): %d puts failed after the client's own retries, more than max_errors %d; first: %v",
			l.op.Index, l.errors, l.op.MaxErrors, l.first)
	}
	return nil
}
