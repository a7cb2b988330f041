package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
	"github.com/paxos-go/paxos/internal/clientproto"
	paxosnet "github.com/paxos-go/paxos/net"
	"github.com/paxos-go/paxos/net/certs"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// StateMachine is what a Node replicates. Apply is called for every
// command, in the same order on every replica, exactly once per (client,
// seq) (the node's session table filters retries); it must be
// deterministic: no clock, no randomness, no I/O whose result it depends
// on. Apply, Snapshot and Restore are called from one goroutine, never
// concurrently. The response goes back to the client.
type StateMachine interface {
	Apply(slot uint64, cmd []byte) []byte
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// Querier is implemented by state machines that answer read-only queries;
// Node.Query serves them linearizably (read index), without a slot.
type Querier interface {
	Query(q []byte) []byte
}

// ReadOnlyCommands is implemented by state machines some of whose
// commands change nothing: a read sent as a command, through the log.
// ReadOnly must be deterministic (a function of cmd alone, the same on
// every replica and in every version that shares a log), and Apply of a
// command it reports read-only must change nothing. The session table then
// keeps no response for such a command (a read's response can be as long
// as the state), and runs a retry of it again instead of answering from
// the table.
type ReadOnlyCommands interface {
	ReadOnly(cmd []byte) bool
}

// Node is one replica: the protocol core driven by one goroutine that
// owns it, with the write-ahead log, the snapshot store and the transport.
// Its methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   hclog.Logger
	sm    StateMachine
	wal   *wal.Log
	snaps storage.SnapshotStore
	tr    Transport
	cs    *clientServer

	// Owned by the loop goroutine.
	rn            *paxos.RawNode
	codec         *messageCodec
	sessions      *session.Table
	readOnly      func([]byte) bool // the state machine's ReadOnly, or nil
	applied       uint64
	appliedBallot paxos.Ballot
	results       []resolved
	// Batching at the leader (see holdBatch): inflight counts the commands
	// of the slot in flight; after it commits, the leader waits for
	// gatherTarget commands, or until gatherSince+batchDelay.
	inflight     int
	gatherTarget int
	gatherSince  time.Time
	batchTimer   *time.Timer
	readsByCtx   map[uint64]*readRequest
	readsToServe []*readRequest // confirmed, waiting for the state machine to reach their index
	lastSweep    time.Time
	// The snapshot policy: the slot of the latest snapshot, and the bytes
	// of commands applied since.
	lastSnapSlot   uint64
	bytesSinceSnap int64
	// Snapshot transfers: senders by follower (each on its goroutine,
	// reporting to snapResults), and the one being received.
	senders     map[uint64]*snapSender
	senderWG    sync.WaitGroup
	snapResults chan snapSendResult
	incoming    *snapReceiver
	// snapHasConfig says the newest snapshot carries the configuration
	// state (version 2): one without it is not sent to a follower.
	snapHasConfig bool

	// Membership (see membership.go), owned by the loop. confs is the
	// configuration state at the applied slot, compacted to it: the
	// configurations of the slots after it; nil while joining (no
	// configuration known yet). Invariant: confs is the bootstrap (or
	// snapshot's) state with every configuration value applied up to
	// applied.
	confs         paxos.ConfigState
	restoredConfs paxos.ConfigState // of the snapshot Start restored, if any
	joining       bool
	peerAddrs     map[uint64]string // what the transport was last given
	change        *changeOp         // the change or transfer under way
	changing      atomic.Bool       // change != nil, for tests
	// Commands that found no leader to go to (a leadership transfer under
	// way, usually): they wait, up to an election timeout, for one.
	parked      [][]paxos.Command
	parkedSince time.Time
	// hadLeader says a leader was known at the end of the last turn;
	// leaderLost is when the last one was lost.
	hadLeader  bool
	leaderLost time.Time
	// confsGen counts the changes of confs.
	confsGen uint64
	// quietTicks counts the ticks since a message last arrived.
	quietTicks int
	// freshState says the replica holds no durable state yet (see
	// noteDurableState).
	freshState atomic.Bool

	// Shared with callers; guarded by mu.
	mu         sync.Mutex
	batch      []paxos.Command // commands for the loop to propose, in order
	batchBytes int             // the payload bytes in batch
	waiters    map[cmdKey]*waiter
	reads      []*readRequest // read requests for the loop to start
	snapReqs   []chan snapshotResult
	changeReqs []*changeWaiter // configuration changes for the loop to take
	closed     bool
	failure    error

	// Shared with the transport's goroutines (see admit): the membership
	// this replica knows, and the replicas it heard from with state (kept
	// in the data directory: statefulPeersFile).
	view       atomic.Pointer[memberView]
	statefulMu sync.Mutex
	stateful   map[uint64]bool
	// statefulUnsaved says the last write of stateful to the data
	// directory failed: the next peer heard with state writes it again.
	statefulUnsaved bool
	// knocking are the removed replicas refused since they tried to
	// connect (see memberView.dismiss).
	knockMu  sync.Mutex
	knocking map[uint64]bool
	// peerState is what the transport's Hellos say; the persister and the
	// loop change it (under peerStateMu, so that they never send it back).
	peerStateMu sync.Mutex
	peerState   paxosnet.PeerState
	// refusedCh carries a refusal by the cluster (removed, data lost) from
	// the transport to the loop, which stops.
	refusedCh chan error

	kick chan struct{} // wakes the loop: a command or read arrived
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the loop has returned

	// The persister: the loop queues each Ready's write and the replies
	// that must wait for it; the persister goroutine waits for the writes
	// in order and releases the replies (see persist).
	persistQ    chan persistJob
	selfCh      chan []paxos.Message // replies to itself, back to the loop
	persistErr  chan error
	persistDone chan struct{}

	closeOnce sync.Once
	closeErr  error
	status    atomic.Pointer[Status]
	readCtx   atomic.Uint64

	// events is the stream Events returns; leaderCh is closed and
	// replaced at each change of the leader (see leaderSignal).
	events   *events
	leaderCh atomic.Pointer[chan struct{}]

	// incarnation numbers this life of the replica (see claimDataDir);
	// transfers counts the snapshot transfers it started.
	incarnation uint64
	transfers   atomic.Uint64
	// dirLock is the lock on the data directory, held until Close.
	dirLock io.Closer

	// metrics are the node's Prometheus metrics (metrics.go); nil without
	// Config.Metrics.
	metrics *nodeMetrics
}

type cmdKey struct{ client, seq uint64 }

// nextTransferID names a new snapshot transfer, uniquely across the lives
// of this replica: the incarnation, then a 40-bit count (a transfer takes
// at least a round trip, so the count cannot run out within a life).
func (n *Node) nextTransferID() uint64 {
	return n.incarnation<<paxos.IDBits | n.transfers.Add(1)&(1<<paxos.IDBits-1)
}

// waiter is a command waiting to be applied, and who waits for it.
type waiter struct {
	payload  []byte
	oldest   uint64          // the command's Oldest
	proposed time.Time       // when it was last handed to the core
	notify   []*func(result) // one per caller waiting (pointers: forget removes its own)
	// submitted is when it was submitted, for the commit latency metric.
	submitted time.Time
}

// result is the outcome of a command.
type result struct {
	Response []byte
	Err      error
}

type readRequest struct {
	fn        func()
	finish    func(error) // called once, on the loop goroutine; must not block
	ctx       uint64      // the core's context for the current attempt
	index     uint64
	started   time.Time
	cancelled atomic.Bool
}

// Status is a snapshot of a node's state, for monitoring and tests (the
// fields are documented on clientproto.Status; client.Status is the same
// type, as the client port reports it).
type Status = clientproto.Status

// Start opens the node's log and snapshots, recovers its state (the latest
// snapshot that verifies, then the log after it), connects to its peers
// and starts serving.
func Start(cfg Config, sm StateMachine) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger,
		sm:          sm,
		codec:       newMessageCodec(),
		sessions:    session.New(cfg.SessionTTL),
		readsByCtx:  map[uint64]*readRequest{},
		senders:     map[uint64]*snapSender{},
		snapResults: make(chan snapSendResult, 8),
		waiters:     map[cmdKey]*waiter{},
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		persistQ:    make(chan persistJob, 256),
		selfCh:      make(chan []paxos.Message, 256),
		persistErr:  make(chan error, 1),
		persistDone: make(chan struct{}),
		stateful:    map[uint64]bool{},
		refusedCh:   make(chan error, 1),
		events:      newEvents(cfg.EventBuffer),
	}
	leaderCh := make(chan struct{})
	n.leaderCh.Store(&leaderCh)
	if ro, ok := sm.(ReadOnlyCommands); ok {
		n.readOnly = ro.ReadOnly
	}
	n.metrics = newNodeMetrics(cfg.Metrics, cfg.ID)
	if err := n.open(); err != nil {
		n.closeResources()
		return nil, err
	}
	if err := n.metrics.register(n); err != nil {
		n.closeResources()
		return nil, err
	}
	n.publishStatus()
	go n.persist()
	go n.run()
	return n, nil
}

// open opens everything the node needs and recovers its state.
func (n *Node) open() error {
	var err error
	var st wal.InitialState
	if n.cfg.TLSDir != "" {
		// Before anything else: a replica without its certificate is
		// refused by its peers, and should not start at all.
		b, err := certs.LoadReplica(n.cfg.TLSDir, n.cfg.ClusterID, n.cfg.ID)
		if err != nil {
			return fmt.Errorf("engine: the peer port's certificates: %w", err)
		}
		n.cfg.PeerTLS = certs.PeerConfig(b)
		if n.cfg.ClientTLS == nil {
			n.cfg.ClientTLS = certs.ClientPortConfig(b, certs.ClientPortOptions{ServerOnly: n.cfg.ClientTLSServerOnly})
		}
	}
	if n.incarnation, n.dirLock, err = claimDataDir(n.cfg.DataDir, n.cfg.ClusterID, n.cfg.ID, n.cfg.NoSync); err != nil {
		return err
	}
	if n.metrics != nil {
		if own := n.cfg.WAL.OnSync; own != nil {
			n.cfg.WAL.OnSync = func(d time.Duration) { own(d); n.metrics.observeFsync(d) }
		} else {
			n.cfg.WAL.OnSync = n.metrics.observeFsync
		}
	}
	if n.wal, st, err = wal.Open(n.cfg.walDir(), n.cfg.WAL); err != nil {
		return fmt.Errorf("engine: opening the write-ahead log: %w", err)
	}
	n.snaps = n.cfg.Snapshots
	if n.snaps == nil {
		if n.snaps, err = storage.OpenPebble(n.cfg.snapshotDir(), storage.PebbleOptions{Logger: n.log.Named("pebble")}); err != nil {
			return err
		}
	}
	if err := checkDataLost(n.cfg.DataDir); err != nil {
		return err
	}
	if n.stateful, err = readStatefulPeers(n.cfg.DataDir); err != nil {
		return err
	}
	if err := n.restoreSnapshot(st); err != nil {
		return err
	}
	n.lastSnapSlot = n.applied
	if n.applied > st.LastSlot && n.applied > st.Compacted.Slot {
		// The snapshot is past the whole log: the node crashed after
		// receiving it and before recording the compaction point. Record it
		// now, so that the log continues after the snapshot.
		c := wal.Compacted{Slot: n.applied, Ballot: toWALBallot(n.appliedBallot)}
		if err := n.wal.Compact(c); err != nil {
			return fmt.Errorf("engine: compacting the log to the snapshot: %w", err)
		}
		st = n.wal.State()
	}
	entries, err := n.loadEntries(st)
	if err != nil {
		return err
	}
	// The replica holds state if it has a log, a snapshot or a promise:
	// fresh, it has promised and accepted nothing (see paxosnet.Hello).
	snaps, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("engine: listing snapshots: %w", err)
	}
	hasLog := st.LastSlot > 0 || st.Compacted.Slot > 0 || n.applied > 0 || len(snaps) > 0
	fresh := !hasLog && st.HardState == (wal.HardState{})
	if err := n.startingConfiguration(hasLog); err != nil {
		return err
	}
	n.peerState = paxosnet.PeerState{Fresh: fresh, Joining: n.joining}
	n.freshState.Store(fresh)
	n.rn, err = paxos.NewRawNode(paxos.Config{
		ID:                  paxos.NodeID(n.cfg.ID),
		ConfigState:         n.confs,
		ElectionTicks:       int(n.cfg.ElectionTimeout / n.cfg.HeartbeatInterval),
		HeartbeatTicks:      1,
		MaxBatchBytes:       n.cfg.MaxBatchBytes,
		MaxInflightSlots:    n.cfg.MaxInflightSlots,
		MaxMsgBytes:         n.cfg.MaxMsgBytes,
		MaxUncommittedBytes: n.cfg.MaxUncommittedBytes,
		Rand:                newRand(),
		Incarnation:         n.incarnation,
		HardState:           paxos.HardState{Promised: fromWALBallot(st.HardState.Promised), Commit: st.HardState.Commit},
		Compacted:           paxos.Compacted{Slot: st.Compacted.Slot, Ballot: fromWALBallot(st.Compacted.Ballot)},
		Entries:             entries,
		Applied:             n.applied,
	})
	if err != nil {
		return err
	}
	n.checkFlags(n.rn.Status().Config)
	n.publishView(n.rn.Status())
	n.peerAddrs = n.wantedPeers()
	n.tr = n.cfg.Transport
	if n.tr == nil {
		listen, err := n.listenAddr()
		if err != nil {
			return err
		}
		tr, err := paxosnet.Listen(paxosnet.Options{
			ClusterID:     n.cfg.ClusterID,
			ID:            n.cfg.ID,
			Peers:         n.peerAddrs,
			ListenAddr:    n.cfg.peerListenAddr(listen),
			AdvertiseAddr: listen,
			State:         n.peerState,
			Admit:         n.admit,
			OnRefused:     n.onRefused,
			OnPeer:        n.onPeer,
			TLS:           n.cfg.PeerTLS,
			Insecure:      n.cfg.Insecure,
			MaxFrameBytes: n.cfg.MaxFrameBytes,
			Logger:        n.log.Named("net"),
		})
		if err != nil {
			return err
		}
		n.tr = tr
	}
	if n.cfg.ClientAddr != "" || n.cfg.ClientListener != nil {
		if n.cs, err = startClientServer(n); err != nil {
			return err
		}
	}
	conf := "none yet (joining)"
	if n.confs != nil {
		conf = n.confs.Latest().String()
	}
	n.log.Info("replica started", "id", n.cfg.ID, "configuration", conf, "fresh", fresh, "applied", n.applied,
		"log_first", st.FirstSlot, "log_last", st.LastSlot, "promised", st.HardState.Promised)
	return nil
}

// loadEntries reads the log after the compaction point into memory.
func (n *Node) loadEntries(st wal.InitialState) ([]paxos.Entry, error) {
	var entries []paxos.Entry
	for lo := st.FirstSlot; lo <= st.LastSlot; {
		ents, err := n.wal.Entries(lo, st.LastSlot+1, 64<<20)
		if err != nil {
			return nil, fmt.Errorf("engine: reading the write-ahead log: %w", err)
		}
		for _, e := range ents {
			entries = append(entries, paxos.Entry{Slot: e.Slot, Ballot: fromWALBallot(e.Ballot), Value: e.Value})
		}
		lo += uint64(len(ents))
	}
	return entries, nil
}

func fromWALBallot(b wal.Ballot) paxos.Ballot {
	return paxos.Ballot{Round: b.Round, Node: paxos.NodeID(b.Node)}
}

func toWALBallot(b paxos.Ballot) wal.Ballot { return wal.Ballot{Round: b.Round, Node: uint64(b.Node)} }

// Submit proposes the command payload of client clientID, numbered seq,
// and waits until it is applied, returning the state machine's response.
// The numbers follow the sequence rule (see the package doc): clientID is
// not 0; a client has one command outstanding at a time, numbered 1, 2,
// 3, ...; a retry with the same (clientID, seq), on this node or another,
// is applied at most once and gets the first execution's response.
//
// The node keeps payload without copying it, possibly past an ErrTimeout
// return (the command may still be proposed): the caller must not modify
// it after the call.
//
// While no leader is known (an election, a replica starting), Submit
// waits for one until ctx ends, and proposes the command then.
//
// It returns ErrTooLarge, at once, for a payload longer than
// Config.MaxCommandBytes (nothing is proposed: do not retry it), ErrBusy
// when too much is uncommitted, ErrTimeout when ctx ends first (the
// command may still be applied: retry it; with no leader known, the error
// says so and wraps the last *NotLeaderError), ErrResponseNotKept for a
// retry of a command that was executed but whose response was not kept,
// ErrBadSequence for a client ID or number 0 (at once, before anything is
// proposed), and ErrStale, ErrSessionExpired or ErrClosed.
func (n *Node) Submit(ctx context.Context, clientID, seq uint64, payload []byte) ([]byte, error) {
	// One command at a time is a Future whose oldest is itself: it waits
	// for a leader, and proposes again, the same way.
	return n.SubmitAsync(clientID, seq, seq, payload).Wait(ctx)
}

// submit queues a command for the loop; notify is called, once, with its
// outcome, on the loop's goroutine (it must not block), unless the caller
// gives up and forgets it (the pointer identifies the caller among those
// waiting for the same command). oldest is the
// client's oldest command without an answer (0: seq; see SubmitAsync).
func (n *Node) submit(clientID, seq, oldest uint64, payload []byte, notify *func(result)) error {
	if clientID == 0 || seq == 0 {
		// Refused before it is proposed: numbers start at 1 (see the
		// package doc's sequence rule).
		return fmt.Errorf("%w: client %d, command %d: client IDs and command numbers start at 1", ErrBadSequence, clientID, seq)
	}
	k := cmdKey{clientID, seq}
	if oldest != 0 && (oldest > seq || seq-oldest >= session.Window) {
		return fmt.Errorf("engine: command %d of client %d says its oldest outstanding command is %d: "+
			"a client has at most session.Window (%d) commands outstanding, Oldest <= Seq < Oldest+Window", seq, clientID, oldest, session.Window)
	}
	n.mu.Lock()
	if n.closed {
		err := n.closedError()
		n.mu.Unlock()
		return err
	}
	if len(payload) > n.cfg.MaxCommandBytes {
		n.mu.Unlock()
		return fmt.Errorf("%w: %d bytes, the limit (MaxCommandBytes) is %d", ErrTooLarge, len(payload), n.cfg.MaxCommandBytes)
	}
	// Room for a batch of four MaxBatchBytes, or two of the largest
	// commands: a command of any allowed size fits an empty batch, so that
	// ErrBusy always means "retry later".
	if n.batchBytes+len(payload) > max(max(n.cfg.MaxBatchBytes, paxos.DefaultMaxBatchBytes)*4, 2*n.cfg.MaxCommandBytes) {
		n.mu.Unlock()
		return ErrBusy
	}
	if w, ok := n.waiters[k]; ok {
		// A retry of a command already waiting here: wait for the same
		// outcome rather than proposing it twice.
		w.notify = append(w.notify, notify)
		n.mu.Unlock()
		return nil
	}
	now := time.Now()
	n.waiters[k] = &waiter{payload: payload, oldest: oldest, proposed: now, submitted: now, notify: []*func(result){notify}}
	n.batch = append(n.batch, paxos.Command{ClientID: clientID, Seq: seq, Oldest: oldest, Payload: payload})
	n.batchBytes += len(payload)
	n.mu.Unlock()
	n.wake()
	return nil
}

// forget stops waiting for command k on behalf of the caller whose notify
// this is; the others waiting for it (a retry on this node while the first
// attempt waits) still hear its outcome.
func (n *Node) forget(k cmdKey, notify *func(result)) {
	n.mu.Lock()
	if w, ok := n.waiters[k]; ok {
		w.notify = slices.DeleteFunc(w.notify, func(f *func(result)) bool { return f == notify })
		if len(w.notify) == 0 {
			delete(n.waiters, k)
		}
	}
	n.mu.Unlock()
}

func (n *Node) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Read runs fn once a linearizable read is possible: after this replica
// has applied everything that was committed when Read was called, as
// confirmed by the leader (read index). fn runs on the node's goroutine,
// with no Apply running; it must be quick and must not call the Node.
// While no leader is known, it waits for one until ctx ends. It returns
// ErrTimeout (wrapping the last *NotLeaderError if no leader was known)
// or ErrClosed when fn did not run.
func (n *Node) Read(ctx context.Context, fn func()) error {
	done := make(chan error, 1)
	finish := func(err error) { done <- err }
	for {
		changed := n.leaderSignal()
		r, err := n.read(fn, finish)
		if err == nil {
			select {
			case err = <-done:
				if !leaderUnknown(err) {
					return err // (fn did not run when it is a refusal)
				}
			case <-ctx.Done():
				r.cancelled.Store(true)
				return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
			}
		}
		if !leaderUnknown(err) {
			return err
		}
		if werr := n.waitLeaderChange(ctx, changed); werr != nil {
			return fmt.Errorf("%w (%w)", werr, err)
		}
	}
}

// read queues a read for the loop; finish is called, once, on the loop's
// goroutine, after fn ran or with the reason it did not.
func (n *Node) read(fn func(), finish func(error)) (*readRequest, error) {
	r := &readRequest{fn: fn, finish: finish}
	n.mu.Lock()
	if n.closed {
		err := n.closedError()
		n.mu.Unlock()
		return nil, err
	}
	n.reads = append(n.reads, r)
	n.mu.Unlock()
	n.wake()
	return r, nil
}

// Query answers a read-only query of a state machine that implements
// Querier, linearizably.
func (n *Node) Query(ctx context.Context, q []byte) ([]byte, error) {
	qr, ok := n.sm.(Querier)
	if !ok {
		return nil, errors.New("engine: the state machine does not answer queries")
	}
	var resp []byte
	if err := n.Read(ctx, func() { resp = qr.Query(q) }); err != nil {
		return nil, err
	}
	return resp, nil
}

func (n *Node) publishStatus() { n.publishStatusOf(n.rn.Status()) }

func (n *Node) publishStatusOf(st paxos.Status) {
	s := &Status{
		ID: n.cfg.ID, Role: paxos.RoleOf(st), Promised: st.Promised, Commit: st.Commit,
		Applied: n.applied, LastSlot: st.LastSlot,
		Joining: st.Joining, Removed: st.Removed, ChangeInProgress: st.ChangeInProgress,
	}
	if st.Lead != paxos.None {
		s.Leader, s.HasLead = uint64(st.Lead), true
		s.LeaderAddr = n.clientAddrOf(s.Leader)
	}
	s.LeaderCommit = st.LeaderCommit
	old := n.status.Swap(s)
	n.noteStatus(old, s)
}

// logLeader logs a change of leader, at info: what an operator looks for
// first.
func (n *Node) logLeader(s *Status) {
	switch {
	case !s.HasLead:
		n.log.Info("no leader known", "role", s.Role)
	case s.Leader == n.cfg.ID:
		n.log.Info("this replica leads", "ballot", s.Promised)
	default:
		n.log.Info("leader changed", "leader", s.Leader, "role", s.Role)
	}
}

// Status returns the node's state as of its last turn.
func (n *Node) Status() Status { return *n.status.Load() }

// fail stops the node after an error it cannot go on from (the WAL
// failing, above all): it refuses all further work, and everyone waiting
// gets the error.
func (n *Node) fail(err error) {
	switch {
	case errors.Is(err, ErrRemoved):
		n.log.Warn("this replica was removed from the cluster: it stops and takes no part any more", "reason", err)
	case errors.Is(err, ErrDataLost):
		n.log.Error("the cluster refused this replica as one that lost its data: it stops. "+
			"Remove it (RemoveReplica) and add a new replica under a new ID, with an empty data directory", "reason", err)
	default:
		n.log.Error("replica stopped", "error", err)
	}
	if errors.Is(err, ErrRemoved) {
		// Told by a peer, perhaps, before its own log showed it.
		st := *n.status.Load()
		st.Removed, st.Role = true, RoleRemoved
		n.noteStatus(n.status.Swap(&st), &st)
	}
	n.mu.Lock()
	n.failure = err
	n.closed = true
	n.mu.Unlock()
	// Before Done closes (when the loop returns), so that a consumer of
	// either learns it at once.
	n.events.emit(Stopped{Err: err})
	n.abandonAll(fmt.Errorf("%w: %w", ErrClosed, err))
	if errors.Is(err, ErrRemoved) || errors.Is(err, ErrDataLost) {
		// The cluster will not take the replica back: release its ports
		// and its data directory, as Close does. A moment later, so that
		// the messages of its last turn (a removed leader's handover) go
		// out first.
		go func() {
			t := time.NewTimer(2 * n.cfg.HeartbeatInterval)
			defer t.Stop()
			select {
			case <-t.C:
			case <-n.stop:
			}
			n.Close()
		}()
	}
}

// Done returns a channel that is closed when the node stops: Close was
// called, or it failed, or the cluster removed it (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns why the node stopped by itself (a failed write, ErrRemoved,
// ErrDataLost), or nil.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failure
}

func (n *Node) closedError() error {
	if n.failure != nil {
		return fmt.Errorf("%w: %w", ErrClosed, n.failure)
	}
	return ErrClosed
}

// abandonAll answers everyone still waiting with err.
func (n *Node) abandonAll(err error) {
	n.mu.Lock()
	waiters, reads, snaps, changes := n.waiters, n.reads, n.snapReqs, n.changeReqs
	n.waiters, n.reads, n.snapReqs, n.batch, n.batchBytes, n.changeReqs = map[cmdKey]*waiter{}, nil, nil, nil, 0, nil
	n.mu.Unlock()
	n.parked = nil
	for _, w := range changes {
		w.finish(err)
	}
	if n.change != nil {
		for _, w := range n.change.waiters {
			w.finish(err)
		}
		n.change = nil
	}
	for _, w := range waiters {
		for _, fn := range w.notify {
			(*fn)(result{Err: err})
		}
	}
	for _, r := range reads {
		r.finish(err)
	}
	for _, r := range n.readsByCtx {
		r.finish(err)
	}
	for _, r := range n.readsToServe {
		r.finish(err)
	}
	n.readsByCtx, n.readsToServe = map[uint64]*readRequest{}, nil
	for _, s := range snaps {
		s <- snapshotResult{err: err}
	}
}

// Close stops the node: its loop, its client listener, its transport, its
// log and its snapshot store. Callers still waiting get ErrClosed. It
// writes nothing: whatever was acknowledged is already durable.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		close(n.stop)
		<-n.done
		<-n.persistDone
		n.senderWG.Wait()
		n.abortIncoming()
		if n.batchTimer != nil {
			n.batchTimer.Stop()
		}
		n.abandonAll(ErrClosed)
		n.closeErr = n.closeResources()
		n.metrics.unregister()
		n.events.close() // after the transport: no peer event can follow
	})
	return n.closeErr
}

func (n *Node) closeResources() error {
	var errs []error
	if n.cs != nil {
		errs = append(errs, n.cs.close())
	} else if n.cfg.ClientListener != nil {
		errs = append(errs, n.cfg.ClientListener.Close())
	}
	if n.tr != nil {
		errs = append(errs, n.tr.Close())
	}
	if n.wal != nil {
		if err := n.wal.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if n.snaps != nil {
		errs = append(errs, n.snaps.Close())
	}
	if n.dirLock != nil {
		// Last: another replica may take the directory from here on.
		errs = append(errs, n.dirLock.Close())
	}
	return errors.Join(errs...)
}
