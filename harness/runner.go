package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/internal/chatmodel"
	"github.com/paxos-go/paxos/net/certs"
)

// Options configure runs.
type Options struct {
	// Server is the chatroom-server binary. Required.
	Server string
	// Verbose is passed to the servers as -v, repeated.
	Verbose int
	// WorkDir holds each run's directory (data and logs of its servers,
	// and the report of a failure). Default: a temporary directory.
	WorkDir string
	// ElectionTimeout is the servers' -t. Default 500 ms.
	ElectionTimeout time.Duration
	// GetTimeout is the deadline of every Get. Default 10 s.
	GetTimeout time.Duration
	// SettleTimeout bounds the wait, after the last operation, for
	// outstanding puts and for the replicas to converge. Default 20 s.
	SettleTimeout time.Duration
	// Keep keeps the run directories of passing runs too.
	Keep bool
	// Logf, if set, receives a line per operation executed.
	Logf func(format string, args ...any)

	// The servers' peer ports run mutual TLS, with certificates that each
	// run makes for its own cluster in its run directory (tls/), unless:
	// TLSDir names a directory as `paxos certs` writes it, with the
	// certificates of every server a scenario starts, used by every run,
	// whose cluster is then ClusterID (required with TLSDir); or Insecure
	// runs them in plaintext (--insecure).
	TLSDir    string
	ClusterID string
	Insecure  bool
}

// check refuses options that no default stands for.
func (o Options) check() error {
	switch {
	case o.Server == "":
		return fmt.Errorf("harness: Options.Server is empty")
	case o.ElectionTimeout < 0:
		return fmt.Errorf("harness: Options.ElectionTimeout %v is negative", o.ElectionTimeout)
	case o.GetTimeout < 0:
		return fmt.Errorf("harness: Options.GetTimeout %v is negative", o.GetTimeout)
	case o.SettleTimeout < 0:
		return fmt.Errorf("harness: Options.SettleTimeout %v is negative", o.SettleTimeout)
	case o.TLSDir != "" && o.Insecure:
		return fmt.Errorf("harness: Options.TLSDir and Options.Insecure are both set; choose one")
	case o.TLSDir != "" && o.ClusterID == "":
		return fmt.Errorf("harness: Options.TLSDir needs Options.ClusterID, the cluster of its certificates")
	case o.TLSDir == "" && o.ClusterID != "":
		return fmt.Errorf("harness: Options.ClusterID is for Options.TLSDir; without it each run has a cluster of its own")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.ElectionTimeout <= 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	if o.GetTimeout <= 0 {
		o.GetTimeout = 10 * time.Second
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 20 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Report is the verdict of one run.
type Report struct {
	Scenario string
	// Failures says what went wrong; a run passes when it is empty.
	Failures []string
	Ops      int
	// Faults counts crashes, restarts, pauses, partitions and cuts, and
	// membership changes (added and removed servers, transfers).
	Faults   int
	Duration time.Duration
	// Dir is the run directory (server logs), if it was kept.
	Dir string
	// Picture is the path of porcupine's picture of a history that is not
	// linearizable, if there was one.
	Picture string
	// Puts counts the puts issued and acknowledged; Gets the gets.
	Puts, Acked, Gets int
}

// Pass reports whether the run passed.
func (r *Report) Pass() bool { return len(r.Failures) == 0 }

// run is the state of one scenario run.
type run struct {
	opts    Options
	sc      *Scenario
	ctx     context.Context
	dir     string
	cluster string
	start   time.Time
	report  *Report

	count      int         // the servers the scenario's Starts name
	tlsDir     string      // the servers' --tls-dir; "" with Insecure
	lastLeader int         // the server the last "leader" named, or -1
	ports      map[int]int // client port: scenario's to the one used
	portOf     map[int]int // server id to its client port in the scenario
	peerPorts  map[int]int // server id to its real peer port
	starts     map[int]Op  // server id to its last Start (or AddServer)
	fronts     map[int]*front
	servers    map[int]*server
	clients    map[int]*harnessClient
	// voters are the servers whose votes count, as the harness's own
	// membership operations left them; removed, those it removed.
	voters  map[int]bool
	removed map[int]bool

	pidMu sync.Mutex
	pids  map[int]int // the process of each running server, to its id

	load *load // the running Load, if any

	mu      sync.Mutex // guards what the put workers write
	history []porcupine.Operation
	acked   []string
	reads   [][]string // what the Gets returned, in harness order
	pending sync.WaitGroup
}

// harnessClient is the client of one scenario id: a chat room client
// whose session retries a put, on its server first and then on the
// others, until it is acknowledged; puts go through a queue so that the
// scenario never waits for them.
type harnessClient struct {
	id        int
	c         *chatroom.Client
	connected bool
	queue     chan putRequest
	done      chan struct{}
}

type putRequest struct {
	msg  string
	call int64
}

// Run runs a scenario and judges it. It kills every process it started
// before it returns, whatever happens; it never takes longer than ctx
// allows.
func Run(ctx context.Context, sc *Scenario, opts Options) *Report {
	if err := opts.check(); err != nil {
		return &Report{Scenario: sc.Name, Ops: len(sc.Ops), Failures: []string{err.Error()}}
	}
	opts = opts.withDefaults()
	cluster := opts.ClusterID
	if cluster == "" {
		cluster = runCluster(sc.Name)
	}
	r := &run{
		opts: opts, sc: sc, ctx: ctx, start: time.Now(),
		cluster:    cluster,
		report:     &Report{Scenario: sc.Name, Ops: len(sc.Ops)},
		lastLeader: -1,
		ports:      map[int]int{},
		portOf:     map[int]int{},
		peerPorts:  map[int]int{},
		starts:     map[int]Op{},
		fronts:     map[int]*front{},
		servers:    map[int]*server{},
		clients:    map[int]*harnessClient{},
		voters:     map[int]bool{},
		removed:    map[int]bool{},
		pids:       map[int]int{},
	}
	var err error
	if r.dir, err = os.MkdirTemp(opts.WorkDir, "run-"+sc.Name+"-"); err != nil {
		r.fail("creating the run directory: %v", err)
		return r.report
	}
	defer r.cleanup()
	// Every server's client port, known from the start: a client knows
	// them all, those of servers added later too, so that it can still
	// reach the cluster after every server it first knew was replaced.
	for _, op := range sc.Ops {
		if op.Type == "Start" || op.Type == "AddServer" {
			r.portOf[op.ID] = op.Port
			if _, err := r.clientPort(op.Port); err != nil {
				r.fail("%v", err)
				return r.report
			}
		}
	}
	for _, op := range sc.Ops {
		if ctx.Err() != nil {
			r.fail("op %d (%s): the run's deadline passed", op.Index, op)
			break
		}
		opts.Logf("%s: executing op %d: %s", sc.Name, op.Index, op)
		if err := r.exec(op); err != nil {
			r.fail("op %d (%s): %v", op.Index, op, err)
			break
		}
	}
	if r.report.Pass() {
		r.judge()
	}
	if !r.report.Pass() {
		// What a server said as it stopped by itself is often the reason.
		for _, line := range r.exitedServers() {
			r.fail("%s", line)
		}
	}
	return r.report
}

// runCluster names a run's cluster: "harness-", the scenario's name and a
// random suffix, so that no process of another run can pass for one of
// this run's. It must be a cluster ID that certificates accept: other
// characters of the name become '-', and a long name is cut.
func runCluster(scenario string) string {
	name := []rune(scenario)
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			name[i] = '-'
		}
	}
	const maxName = 63 - len("harness--") - 8
	if len(name) > maxName {
		name = name[:maxName]
	}
	return fmt.Sprintf("harness-%s-%08x", string(name), rand.Uint32())
}

func (r *run) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Failures = append(r.report.Failures, fmt.Sprintf(format, args...))
}

// now is the time of the history, in nanoseconds since the run began.
func (r *run) now() int64 { return int64(time.Since(r.start)) }

func (r *run) exec(op Op) error {
	if serverOps[op.Type] {
		id, err := r.resolve(op.ID)
		if err != nil {
			return err
		}
		op.ID = id
	}
	if err := r.checkNotRemoved(op); err != nil {
		return err
	}
	switch op.Type {
	case "AddServer":
		return r.addServer(op)
	case "RemoveServer":
		return r.removeServer(op)
	case "TransferLeader":
		return r.transferLeader(op)
	case "Start":
		return r.startServer(op)
	case "Restart":
		s, ok := r.starts[op.ID]
		if !ok {
			return fmt.Errorf("server %d was never started", op.ID)
		}
		r.report.Faults++
		r.crash(op.ID)
		return r.startServer(s)
	case "Crash":
		if _, ok := r.servers[op.ID]; ok {
			r.report.Faults++
		}
		r.crash(op.ID)
	case "Pause", "Resume":
		s, ok := r.servers[op.ID]
		if !ok {
			return nil // as Crash: nothing to do for a server that is down
		}
		if op.Type == "Pause" && !s.paused {
			r.report.Faults++
			return s.pause()
		}
		if op.Type == "Resume" && s.paused {
			return s.resume()
		}
	case "Connect":
		return r.connect(op.ID, op.Server)
	case "Isolate":
		r.report.Faults++
		for dst, f := range r.fronts {
			for src := range r.fronts {
				if src != dst && (src == op.ID || dst == op.ID) {
					f.setCut(src, true)
				}
			}
		}
	case "Disconnect":
		if c, ok := r.clients[op.ID]; ok {
			c.connected = false
		}
	case "Put":
		c, ok := r.clients[op.ID]
		if !ok || !c.connected {
			return fmt.Errorf("client %d is not connected", op.ID)
		}
		r.mu.Lock()
		r.report.Puts++
		r.mu.Unlock()
		c.queue <- putRequest{msg: op.Message, call: r.now()}
	case "Get":
		return r.get(op.ID)
	case "Sleep":
		select {
		case <-time.After(time.Duration(op.Ms) * time.Millisecond):
		case <-r.ctx.Done():
		}
	case "Partition":
		r.report.Faults++
		group := map[int]int{}
		for id := range r.fronts {
			group[id] = -1 - id // alone unless listed
		}
		for g, ids := range op.Groups {
			for _, id := range ids {
				group[id] = g
			}
		}
		for dst, f := range r.fronts {
			for src := range r.fronts {
				if src != dst {
					f.setCut(src, group[src] != group[dst])
				}
			}
		}
	case "Heal":
		for _, f := range r.fronts {
			f.heal()
		}
	case "Cut":
		if op.From == op.To {
			return fmt.Errorf("a server has no link to itself")
		}
		f, ok := r.fronts[op.To]
		if _, from := r.fronts[op.From]; !ok || !from {
			return fmt.Errorf("no link from %d to %d yet: start the servers first", op.From, op.To)
		}
		r.report.Faults++
		f.setCut(op.From, true)
	case "WaitLeader":
		return r.waitLeader(time.Duration(op.TimeoutMs) * time.Millisecond)
	case "Load":
		return r.startLoad(op)
	case "StopLoad":
		return r.stopLoad()
	case "Expect":
		return r.expect(op)
	}
	return nil
}

// portsHanded remembers the ports freePort gave out, in this process.
var portsHanded = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freePort finds a loopback port for a server to listen on: free now, not
// handed out before, and below Linux's ephemeral range (32768 and up), so
// that neither the fronts (which listen on ephemeral ports) nor outgoing
// connections can take it before the server binds it.
func freePort() (int, error) {
	portsHanded.Lock()
	defer portsHanded.Unlock()
	for attempt := 0; attempt < 1000; attempt++ {
		port := 10000 + rand.IntN(22000)
		if portsHanded.m[port] {
			continue
		}
		ln, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsHanded.m[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port found")
}

// setup makes the cluster's certificates and the fronts of its servers,
// the first time a server starts.
func (r *run) setup(count int) error {
	if r.count != 0 {
		return nil
	}
	if err := checkSocketTable(); err != nil {
		return err
	}
	r.count = count
	ids := make([]uint64, count)
	for i := range ids {
		ids[i] = uint64(i)
	}
	switch {
	case r.opts.Insecure:
	case r.opts.TLSDir != "":
		for _, id := range ids {
			if _, err := certs.LoadReplica(r.opts.TLSDir, r.cluster, id); err != nil {
				return fmt.Errorf("the certificates of server %d: %w", id, err)
			}
		}
		r.tlsDir = r.opts.TLSDir
	default:
		r.tlsDir = filepath.Join(r.dir, "tls")
		if _, err := certs.CreateDir(r.tlsDir, r.cluster, ids); err != nil {
			return err
		}
	}
	for id := 0; id < count; id++ {
		if err := r.addFront(id); err != nil {
			return err
		}
		r.voters[id] = true
	}
	return nil
}

// addFront gives server id a peer port and the front before it.
func (r *run) addFront(id int) error {
	p, err := freePort()
	if err != nil {
		return err
	}
	r.peerPorts[id] = p
	f, err := newFront(id, fmt.Sprintf("127.0.0.1:%d", p), r.dialler)
	if err != nil {
		return err
	}
	r.fronts[id] = f
	return nil
}

// dialler says which running server holds the local end of the
// connection from 127.0.0.1:fromPort to 127.0.0.1:toPort. It is called by
// the fronts' goroutines.
func (r *run) dialler(fromPort, toPort int) (int, bool) {
	r.pidMu.Lock()
	pids := make([]int, 0, len(r.pids))
	for pid := range r.pids {
		pids = append(pids, pid)
	}
	r.pidMu.Unlock()
	pid, ok, err := socketOwner(fromPort, toPort, pids)
	if err != nil || !ok {
		return 0, false
	}
	r.pidMu.Lock()
	defer r.pidMu.Unlock()
	id, ok := r.pids[pid]
	return id, ok
}

// clientPort maps a scenario's client port to a free one, the same each
// time the scenario names it.
func (r *run) clientPort(port int) (int, error) {
	if p, ok := r.ports[port]; ok {
		return p, nil
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	r.ports[port] = p
	return p, nil
}

func (r *run) startServer(op Op) error {
	join := op.Type == "AddServer"
	if !join {
		if err := r.setup(op.Count); err != nil {
			return err
		}
	}
	if _, ok := r.servers[op.ID]; ok {
		r.crash(op.ID) // the original replaced a running server
	}
	port, err := r.clientPort(op.Port)
	if err != nil {
		return err
	}
	// Every server is reached through its front, at the address the
	// cluster's configuration holds for it; it listens on its real peer
	// port behind it (--peer-listen).
	args := []string{
		"-i", fmt.Sprint(op.ID), "-p", fmt.Sprint(port),
		"-t", fmt.Sprint(r.opts.ElectionTimeout.Milliseconds()),
		"--data-dir", filepath.Join(r.dir, fmt.Sprintf("node-%d", op.ID)),
		"--peer-listen", fmt.Sprintf("127.0.0.1:%d", r.peerPorts[op.ID]),
		"--cluster-id", r.cluster,
		"--wal-segment-mb", "4",
	}
	if join {
		args = append(args, "--join", "--peers", fmt.Sprintf("%d=%s", op.ID, r.fronts[op.ID].addr()))
	} else {
		peers := make([]string, r.count)
		for j := range peers {
			peers[j] = r.fronts[j].addr()
		}
		args = append(args, "-c", fmt.Sprint(op.Count), "--peers", strings.Join(peers, ","))
	}
	if r.opts.Insecure {
		args = append(args, "--insecure")
	} else {
		args = append(args, "--tls-dir", r.tlsDir)
	}
	if r.opts.Verbose > 0 {
		args = append(args, "-"+strings.Repeat("v", r.opts.Verbose))
	}
	s, err := startServer(r.opts.Server, args, filepath.Join(r.dir, fmt.Sprintf("node-%d.log", op.ID)))
	if err != nil {
		return err
	}
	s.id = op.ID
	r.servers[op.ID], r.starts[op.ID] = s, op
	r.pidMu.Lock()
	r.pids[s.cmd.Process.Pid] = op.ID
	r.pidMu.Unlock()
	return nil
}

func (r *run) crash(id int) {
	if s, ok := r.servers[id]; ok {
		s.kill()
		delete(r.servers, id)
		r.pidMu.Lock()
		delete(r.pids, s.cmd.Process.Pid)
		r.pidMu.Unlock()
	}
}

// addrs returns the client addresses of every server of the scenario, but
// those removed, the one of id first.
func (r *run) addrs(id int) []string {
	out := []string{r.addr(id)}
	ids := make([]int, 0, len(r.portOf))
	for i := range r.portOf {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	for _, i := range ids {
		if i != id && !r.removed[i] {
			out = append(out, r.addr(i))
		}
	}
	return out
}

func (r *run) addr(id int) string {
	return fmt.Sprintf("127.0.0.1:%d", r.ports[r.portOf[id]])
}

// resolve turns "leader" and "last-leader" into a server id.
func (r *run) resolve(id int) (int, error) {
	switch id {
	case LastLeaderID:
		if r.lastLeader < 0 {
			return 0, fmt.Errorf(`"last-leader" before any "leader"`)
		}
		return r.lastLeader, nil
	case LeaderID:
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && r.ctx.Err() == nil {
			for sid, s := range r.servers {
				if s.paused {
					continue
				}
				ctx, cancel := context.WithTimeout(r.ctx, 500*time.Millisecond)
				st, err := r.status(ctx, sid)
				cancel()
				if err == nil && st.Role == "leader" {
					r.lastLeader = sid
					return sid, nil
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return 0, fmt.Errorf("no leader within 10s")
	}
	return id, nil
}

// connect connects client id to server, waiting (with a deadline) for
// the server to listen: the original panicked if it did not yet.
func (r *run) connect(id, server int) error {
	if _, ok := r.starts[server]; !ok {
		return fmt.Errorf("server %d was never started", server)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A status request, not a bare connection, which the server
		// would log as a refused handshake.
		ctx, cancel := context.WithTimeout(r.ctx, time.Second)
		_, err := r.status(ctx, server)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || r.ctx.Err() != nil {
			return fmt.Errorf("server %d does not answer: %v", server, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, ok := r.clients[id]; ok {
		c.connected = true
		return nil
	}
	c := &harnessClient{
		id:        id,
		c:         chatroom.NewClient(r.addrs(server), chatroom.Options{ClusterID: r.cluster, TLSDir: r.tlsDir, AttemptTimeout: time.Second}),
		connected: true,
		queue:     make(chan putRequest, 1024),
		done:      make(chan struct{}),
	}
	r.clients[id] = c
	r.pending.Add(1)
	go r.putWorker(c)
	return nil
}

// putWorker sends client id's puts, one at a time, each until it is
// acknowledged or the run ends; it records each acknowledgement.
func (r *run) putWorker(c *harnessClient) {
	defer r.pending.Done()
	for p := range c.queue {
		if !r.put(c.c, c.id, p, c.done, nil) {
			for range c.queue {
			}
			return
		}
	}
}

// put sends one put through c until it is acknowledged, and records it;
// it returns false if done closed first (the run is over: the put may or
// may not have happened, and stays pending in the history). Each failed
// attempt (the client's own retries ran out) goes to onErr, if set. A
// retry reuses the put's sequence number, so that the put is stored at
// most once whatever became of the attempts before.
func (r *run) put(c *chatroom.Client, client int, p putRequest, done <-chan struct{}, onErr func(error)) bool {
	seq := c.Seq()
	for {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		_, err := c.Put(ctx, p.msg)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.acked = append(r.acked, p.msg)
			r.report.Acked++
			r.history = append(r.history, porcupine.Operation{ClientId: client, Input: chatmodel.Input{Put: true, Text: p.msg}, Call: p.call, Return: r.now()})
			r.mu.Unlock()
			return true
		}
		if onErr != nil {
			onErr(err)
		}
		c.SetSeq(seq)
		select {
		case <-done:
			r.mu.Lock()
			r.history = append(r.history, porcupine.Operation{ClientId: client, Input: chatmodel.Input{Put: true, Text: p.msg}, Call: p.call, Return: 1 << 62})
			r.mu.Unlock()
			return false
		default:
		}
	}
}

// maxLoggedRead bounds the messages of a read that -v prints in full.
const maxLoggedRead = 20

// get reads the log through client id, with the Get deadline.
func (r *run) get(id int) error {
	c, ok := r.clients[id]
	if !ok || !c.connected {
		return fmt.Errorf("client %d is not connected", id)
	}
	call := r.now()
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.GetTimeout)
	defer cancel()
	msgs, err := c.c.Get(ctx)
	if err != nil {
		return fmt.Errorf("no answer within %v: %v", r.opts.GetTimeout, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Gets++
	r.reads = append(r.reads, msgs)
	r.history = append(r.history, porcupine.Operation{ClientId: 1000 + id, Input: chatmodel.Input{}, Call: call, Output: chatmodel.Output{Log: chatmodel.Join(msgs)}, Return: r.now()})
	if len(msgs) > maxLoggedRead {
		r.opts.Logf("%s: client %d read %d messages: %q ... %q", r.sc.Name, id, len(msgs), msgs[:maxLoggedRead/2], msgs[len(msgs)-maxLoggedRead/2:])
	} else {
		r.opts.Logf("%s: client %d read %q", r.sc.Name, id, msgs)
	}
	return nil
}

// status asks server id for its state.
func (r *run) status(ctx context.Context, id int) (engine.Status, error) {
	c := engine.NewClient([]string{r.addr(id)}, engine.ClientOptions{ClusterID: r.cluster, TLSDir: r.tlsDir, AttemptTimeout: 500 * time.Millisecond})
	defer c.Close()
	return c.Status(ctx)
}

// waitLeader waits until a server leads and a majority of the voters
// follows it.
func (r *run) waitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		votes := map[uint64]int{}
		for id, s := range r.servers {
			if s.paused {
				continue
			}
			ctx, cancel := context.WithTimeout(r.ctx, 500*time.Millisecond)
			st, err := r.status(ctx, id)
			cancel()
			if err == nil && st.HasLead && r.voters[id] {
				votes[st.Leader]++
			}
		}
		for _, n := range votes {
			if n > len(r.voters)/2 {
				return nil
			}
		}
		if time.Now().After(deadline) || r.ctx.Err() != nil {
			return fmt.Errorf("no leader followed by a majority within %v (%v)", timeout, votes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readServer reads server id's own log (its state at a linearizable point).
func (r *run) readServer(ctx context.Context, id int) ([]string, error) {
	c := chatroom.NewClient([]string{r.addr(id)}, chatroom.Options{ClusterID: r.cluster, TLSDir: r.tlsDir, AttemptTimeout: time.Second})
	defer c.Close()
	return c.Get(ctx)
}

func (r *run) expect(op Op) error {
	deadline := time.Now().Add(time.Duration(op.TimeoutMs) * time.Millisecond)
	var last []string
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(r.ctx, time.Until(deadline))
		last, lastErr = r.readServer(ctx, op.ID)
		cancel()
		if lastErr == nil {
			ok := op.Len < 0 || len(last) == op.Len
			for _, m := range op.Messages {
				ok = ok && slices.Contains(last, m)
			}
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) || r.ctx.Err() != nil {
			if lastErr != nil {
				return fmt.Errorf("server %d did not answer: %v", op.ID, lastErr)
			}
			return fmt.Errorf("server %d holds %q after %d ms", op.ID, last, op.TimeoutMs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// judge runs the oracles once the scenario is over.
func (r *run) judge() {
	// Everything comes back, and the network heals: the replicas must
	// then converge, and the puts still being retried go through.
	for _, f := range r.fronts {
		f.heal()
	}
	for _, s := range r.servers {
		if s.paused {
			s.resume()
		}
	}
	if err := r.stopLoad(); err != nil {
		r.fail("%v", err)
	}
	settle, cancel := context.WithTimeout(r.ctx, r.opts.SettleTimeout)
	defer cancel()
	r.waitPuts(settle)

	r.mu.Lock()
	reads, acked := slices.Clone(r.reads), slices.Clone(r.acked)
	history := slices.Clone(r.history)
	r.mu.Unlock()

	for _, f := range checkReads(reads) {
		r.fail("%s", f)
	}
	// The live replicas converge, and hold every acknowledged put once.
	final := r.converge(settle)
	if final == nil {
		return
	}
	for _, f := range checkFinal(final, acked) {
		r.fail("%s", f)
	}
	if path, err := checkLinearizable(history, final, r.now(), r.dir); err != nil {
		r.report.Picture = path
		r.fail("%v", err)
	}
}

// waitPuts waits for the outstanding puts, until ctx ends.
func (r *run) waitPuts(ctx context.Context) {
	for _, c := range r.clients {
		close(c.queue)
	}
	done := make(chan struct{})
	go func() {
		r.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range r.clients {
			close(c.done)
		}
		<-done
	}
	for _, c := range r.clients {
		c.c.Close()
	}
	r.clients = nil
}

// converge waits until every running server holds the same log, and
// returns it (nil if they never agree, which is a failure).
func (r *run) converge(ctx context.Context) []string {
	ids := make([]int, 0, len(r.servers))
	for id := range r.servers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var logs map[int][]string
	for {
		logs = map[int][]string{}
		agree := true
		var ref []string
		for i, id := range ids {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			log, err := r.readServer(rctx, id)
			cancel()
			if err != nil {
				agree = false
				logs[id] = []string{"<" + err.Error() + ">"}
				continue
			}
			logs[id] = log
			if i == 0 {
				ref = log
			} else if !slices.Equal(log, ref) {
				agree = false
			}
		}
		if agree {
			return ref
		}
		if ctx.Err() != nil {
			r.fail("the live replicas did not converge within %v: %v", r.opts.SettleTimeout, logs)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exitedServers describes the servers whose process exited by itself
// (the harness neither killed nor stopped it), with the last line it
// wrote that came from chatroom-server itself: its one-line error.
func (r *run) exitedServers() []string {
	var out []string
	ids := make([]int, 0, len(r.servers))
	for id := range r.servers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		s := r.servers[id]
		if s.running() {
			continue
		}
		last := "(it wrote no error)"
		if data, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("node-%d.log", id))); err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(l, "chatroom-server: ") {
					last = l
				}
			}
		}
		out = append(out, fmt.Sprintf("server %d exited by itself (%v): %s", id, s.cmd.ProcessState, last))
	}
	return out
}

func (r *run) cleanup() {
	if r.load != nil {
		close(r.load.done)
		close(r.load.stop)
		r.load.wg.Wait()
	}
	for id := range r.servers {
		r.crash(id)
	}
	if r.clients != nil {
		for _, c := range r.clients {
			close(c.queue)
			close(c.done)
		}
		r.pending.Wait()
		for _, c := range r.clients {
			c.c.Close()
		}
	}
	for _, f := range r.fronts {
		f.close()
	}
	r.report.Duration = time.Since(r.start)
	if r.report.Pass() && !r.opts.Keep {
		os.RemoveAll(r.dir)
	} else {
		r.report.Dir = r.dir
	}
}
