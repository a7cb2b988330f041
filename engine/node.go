package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
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

	// incarnation numbers this life of the replica (see claimDataDir);
	// transfers counts the snapshot transfers it started.
	incarnation uint64
	transfers   atomic.Uint64
	// dirLock is the lock on the data directory, held until Close.
	dirLock io.Closer
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
	proposed time.Time // when it was last handed to the core
	notify   []func(Result)
}

// Result is the outcome of a command.
type Result struct {
	Response []byte
	Err      error
}

type resolved struct {
	key cmdKey
	res Result
}

type readRequest struct {
	fn        func()
	finish    func(error) // called once, on the loop goroutine; must not block
	ctx       uint64      // the core's context for the current attempt
	index     uint64
	started   time.Time
	cancelled atomic.Bool
}

// Status is a snapshot of a node's state, for monitoring and tests.
type Status struct {
	ID       uint64
	Role     string
	Leader   uint64 // valid when HasLeader
	HasLead  bool
	Promised paxos.Ballot
	Commit   uint64
	Applied  uint64
	LastSlot uint64
	// Joining says the replica knows no configuration yet: it waits to be
	// added (Config.Join). Removed says the cluster removed it: it stopped.
	// ChangeInProgress says this leader has a configuration change or a
	// leadership transfer under way.
	Joining, Removed, ChangeInProgress bool
}

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
	}
	if ro, ok := sm.(ReadOnlyCommands); ok {
		n.readOnly = ro.ReadOnly
	}
	if err := n.open(); err != nil {
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

// run is the node's loop: feed the core what arrived, act on its Ready.
func (n *Node) run() {
	defer close(n.done)
	defer close(n.persistQ) // the persister finishes what was queued, then stops
	ticker := time.NewTicker(n.cfg.HeartbeatInterval)
	defer ticker.Stop()
	recv := n.tr.Receive()
	for {
		// err is what stops the replica: a failed write, or a snapshot
		// that could not be installed whole.
		var err error
		select {
		case <-n.stop:
			return
		case err = <-n.persistErr:
		case err = <-n.refusedCh:
		case <-ticker.C:
			n.rn.Tick()
			n.sweep()
			n.checkQuiet()
		case batch := <-recv:
			n.quietTicks = 0
			err = n.stepAll(batch)
		case msgs := <-n.selfCh:
			n.stepSelf(msgs)
		case r := <-n.snapResults:
			delete(n.senders, r.to)
			n.rn.ReportSnapshot(paxos.NodeID(r.to), r.ok)
		case <-n.kick:
		}
		// Take whatever else is waiting without blocking, so that one
		// Ready covers all of it.
	drain:
		for i := 0; i < 64 && err == nil; i++ {
			select {
			case batch := <-recv:
				err = n.stepAll(batch)
			case msgs := <-n.selfCh:
				n.stepSelf(msgs)
			default:
				break drain
			}
		}
		if err == nil {
			err = n.takeRequests()
		}
		if err == nil {
			n.unpark()
			n.driveChanges()
			if n.rn.HasReady() {
				err = n.handleReady()
			}
		}
		if err == nil {
			err = n.afterTurn()
		}
		if err != nil {
			n.fail(err)
			return
		}
		if len(n.senders) > 0 {
			n.stopSendersIfFollowing()
		}
	}
}

func (n *Node) stepSelf(msgs []paxos.Message) {
	for _, m := range msgs {
		if err := n.rn.Step(m); err != nil {
			n.log.Error("stepping a message to self", "error", err)
		}
	}
}

// stepAll decodes and steps messages from peers. A message that does not
// decode, or claims another sender than its connection's, is dropped. It
// returns an error only when the replica cannot go on (installing a
// snapshot failed midway).
func (n *Node) stepAll(batch []paxosnet.Inbound) error {
	for _, in := range batch {
		if isSnapshotFrame(in.Payload) {
			f, err := decodeSnapshotFrame(in.Payload)
			if err == nil {
				err = n.handleSnapshotFrame(in.From, f)
			}
			var fatal fatalError
			if errors.As(err, &fatal) {
				return err
			}
			if err != nil {
				n.log.Warn("dropped a snapshot frame", "from", in.From, "error", err)
			}
			continue
		}
		m, err := n.codec.decode(in.Payload)
		if err == nil && uint64(m.From) != in.From {
			err = fmt.Errorf("message from replica %d on the connection of replica %d", m.From, in.From)
		}
		if err == nil {
			err = n.rn.Step(m)
		}
		switch {
		case errors.Is(err, paxos.ErrProtocolViolation):
			// A message no correct replica sends: a bug, a damaged replica
			// or a stranger. Refused whole; say so loudly.
			n.log.Error("refused a message that breaks the protocol", "from", in.From, "error", err)
		case err != nil:
			n.log.Warn("dropped a message", "from", in.From, "error", err)
		}
	}
	return nil
}

// takeRequests hands the core the commands and reads that callers
// queued, and takes the snapshots asked for. It returns an error only
// when the replica cannot go on (a snapshot's compaction of the log, or
// the snapshot store, failed): the caller that asked gets it too.
func (n *Node) takeRequests() error {
	n.mu.Lock()
	hold := n.holdBatch()
	batch, reads, snaps := n.batch, n.reads, n.snapReqs
	if hold {
		batch = nil
	} else {
		n.batch, n.batchBytes = nil, 0
	}
	n.reads, n.snapReqs = nil, nil
	n.mu.Unlock()
	if len(batch) > 0 {
		if n.rn.IsLeader() {
			n.inflight, n.gatherTarget = len(batch), 0
		}
		// Encoded here, once, in a buffer of its exact size: appended to a
		// growing buffer as they came, a batch of 1 KiB commands was
		// copied about twice over, a quarter of a loaded leader's CPU.
		if err := n.rn.Propose(paxos.EncodeBatch(batch)); err != nil {
			if errors.Is(err, paxos.ErrNoLeader) && n.leaderRecently() {
				// A leader was known a moment ago: a transfer, or an
				// election, is under way. Wait for the next one rather
				// than fail.
				n.park(batch)
			} else {
				n.failCommands(batch, n.proposeError(err))
			}
		}
	}
	for _, r := range reads {
		n.startRead(r)
	}
	for i, reply := range snaps {
		m, err := n.snapshotAndCompact()
		reply <- snapshotResult{m, err}
		if isFatal(err) {
			for _, r := range snaps[i+1:] {
				r <- snapshotResult{err: fmt.Errorf("%w: %w", ErrClosed, err)}
			}
			return err
		}
	}
	return nil
}

// batchDelay is the longest a leader holds commands back to fill a batch.
const batchDelay = 300 * time.Microsecond

// holdBatch decides whether the leader keeps the commands it has for a
// moment instead of proposing them now. A slot costs an fdatasync on every
// replica, so a slot should carry as many commands as there are:
//
//   - While a slot is uncommitted, new commands wait: they ride in the
//     next slot, proposed at the commit.
//   - When the slot commits, its clients are answered and most come
//     straight back with their next command; the leader waits, at most
//     batchDelay, until about as many as the committed slot carried are
//     back, on top of those that were already waiting. Without this, the
//     clients split into two halves that alternate, each slot carrying
//     half of them.
//
// A lone client is never held: it waits for itself. Called with n.mu held.
func (n *Node) holdBatch() bool {
	if len(n.batch) == 0 || !n.rn.IsLeader() || n.batchBytes >= n.cfg.MaxBatchBytes/2 {
		return false
	}
	st := n.rn.Status()
	if st.LastSlot > st.Commit {
		return true // proposed at the commit, with everything gathered by then
	}
	if n.inflight > 0 {
		// The slot just committed: wait for its clients too.
		n.gatherTarget = len(n.batch) + n.inflight*9/10
		n.gatherSince = time.Now()
		n.inflight = 0
	}
	if len(n.batch) >= n.gatherTarget {
		return false
	}
	wait := batchDelay - time.Since(n.gatherSince)
	if wait <= 0 {
		return false
	}
	if n.batchTimer == nil {
		n.batchTimer = time.AfterFunc(wait, n.wake)
	} else {
		n.batchTimer.Reset(wait)
	}
	return true
}

func (n *Node) proposeError(err error) error {
	switch {
	case errors.Is(err, paxos.ErrNoLeader):
		return n.notLeader()
	case errors.Is(err, paxos.ErrBusy):
		return ErrBusy
	}
	return err
}

func (n *Node) notLeader() error {
	e := &NotLeaderError{}
	if l := n.rn.Leader(); l != paxos.None {
		e.LeaderKnown, e.LeaderID = true, uint64(l)
		e.LeaderAddr = n.clientAddrOf(uint64(l))
	}
	return e
}

// persistJob is one Ready's write and the replies that wait for it.
type persistJob struct {
	write  bool
	ticket wal.Ticket
	after  []outbound      // to other replicas
	self   []paxos.Message // to this replica
}

type outbound struct {
	to      uint64
	payload []byte
}

// handleReady does what a Ready asks, in the order the core requires:
//
//  1. Messages that depend on nothing durable go at once: the leader's
//     Accepts travel while it writes its own log.
//  2. The hard state and entries are queued in the WAL, in Ready order,
//     and the replies that promise durable state are handed to the
//     persister, which sends them only once the WAL has synced the write
//     (or a later one: the WAL writes in order). The loop does not wait:
//     it goes on stepping acknowledgements and proposals while the disk
//     works, and the WAL merges the writes that queue meanwhile into one
//     fdatasync.
//  3. Committed entries are applied now. They are chosen, durable on a
//     majority, whether or not this replica's own copy is on disk yet.
func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	for _, m := range rd.Messages {
		n.send(m)
	}
	var job persistJob
	if rd.HardState != nil || len(rd.Entries) > 0 {
		// The WAL keeps the batch until it is written: it gets slices of
		// its own (the values are shared; nobody modifies them).
		b := wal.Batch{Entries: make([]wal.Entry, len(rd.Entries))}
		if hs := rd.HardState; hs != nil {
			b.HardState = &wal.HardState{Promised: toWALBallot(hs.Promised), Commit: hs.Commit}
		}
		for i, e := range rd.Entries {
			b.Entries[i] = wal.Entry{Slot: e.Slot, Ballot: toWALBallot(e.Ballot), Value: e.Value}
		}
		t, err := n.wal.Enqueue(b, rd.MustSync)
		if err != nil {
			return fmt.Errorf("engine: the write-ahead log refused a write: %w", err)
		}
		job.write, job.ticket = true, t
	}
	for _, m := range rd.MessagesAfterPersist {
		if uint64(m.To) == n.cfg.ID {
			job.self = append(job.self, m)
		} else {
			job.after = append(job.after, outbound{uint64(m.To), n.codec.encode(m)})
		}
	}
	if job.write || len(job.after) > 0 || len(job.self) > 0 {
		// Every reply goes through the queue, even with no write of its
		// own: it may report entries an earlier, still pending write holds.
		select {
		case n.persistQ <- job:
		case err := <-n.persistErr:
			return err
		}
	}
	if err := n.apply(rd.Committed); err != nil {
		return err
	}
	for _, rs := range rd.ReadStates {
		if r, ok := n.readsByCtx[rs.Context]; ok {
			delete(n.readsByCtx, rs.Context)
			r.index = rs.Index
			n.readsToServe = append(n.readsToServe, r)
		}
	}
	n.serveReads()
	n.rn.Advance(rd)
	for _, to := range rd.SendSnapshots {
		if _, running := n.senders[uint64(to)]; running {
			continue
		}
		if err := n.snapshotToSend(); err != nil {
			return err
		}
		n.startSnapshotSender(uint64(to))
	}
	return n.maybeSnapshot()
}

// persist waits, in order, for each queued write to be durable, then
// releases the replies that depended on it. This is the only place that
// sends replies promising durable state, and it sends them only after
// Wait has returned: after the fdatasync that made their state durable.
func (n *Node) persist() {
	defer close(n.persistDone)
	failed := false
	for job := range n.persistQ {
		if failed {
			continue // drain: nothing is sent after a failure
		}
		if job.write {
			if err := n.wal.Wait(job.ticket); err != nil {
				failed = true
				n.persistErr <- fmt.Errorf("engine: the write-ahead log failed: %w", err)
				continue
			}
			n.noteDurableState()
		}
		for _, m := range job.after {
			n.tr.Send(m.to, m.payload)
		}
		if len(job.self) > 0 {
			select {
			case n.selfCh <- job.self:
			case <-n.stop:
			}
		}
	}
}

func (n *Node) send(m paxos.Message) {
	n.tr.Send(uint64(m.To), n.codec.encode(m))
}

// apply applies committed entries through the session table, then
// answers the waiting callers all at once.
func (n *Node) apply(ents []paxos.Entry) error {
	confsChanged := false
	for _, e := range ents {
		if e.Slot <= n.applied {
			continue // covered by the snapshot the node restarted from
		}
		err := n.sessions.ApplyWith(e.Slot, e.Value, n.sm.Apply, n.readOnly, func(r session.Result) {
			res := Result{Response: r.Response}
			switch r.Outcome {
			case session.Stale:
				res.Err = ErrStale
			case session.Expired:
				res.Err = ErrSessionExpired
			case session.NotKept:
				res.Err = ErrResponseNotKept
			}
			n.results = append(n.results, resolved{cmdKey{r.Command.ClientID, r.Command.Seq}, res})
		})
		if err != nil {
			return fmt.Errorf("engine: slot %d holds a malformed value: %w", e.Slot, err)
		}
		n.applied, n.appliedBallot = e.Slot, e.Ballot
		n.bytesSinceSnap += int64(len(e.Value))
		if n.confs != nil && paxos.IsConfigValue(e.Value) {
			// A configuration chosen: it governs from ConfigWindow slots
			// on. (The session table applied nothing: the value holds no
			// commands.)
			n.confs, confsChanged = n.confs.Apply(e.Slot, e.Value), true
		}
	}
	if len(n.confs) > 1 {
		if c := n.confs.Compact(n.applied); len(c) != len(n.confs) {
			n.confs, confsChanged = c, true
		}
	}
	if confsChanged {
		n.syncPeers()
	}
	if len(n.results) == 0 {
		return nil
	}
	var notify []func()
	n.mu.Lock()
	for _, r := range n.results {
		if w, ok := n.waiters[r.key]; ok {
			delete(n.waiters, r.key)
			for _, fn := range w.notify {
				fn, res := fn, r.res
				notify = append(notify, func() { fn(res) })
			}
		}
	}
	n.mu.Unlock()
	clear(n.results)
	n.results = n.results[:0]
	for _, f := range notify {
		f()
	}
	return nil
}

// failCommands answers the waiters of keys with err.
func (n *Node) failCommands(cmds []paxos.Command, err error) {
	var notify []func(Result)
	n.mu.Lock()
	for _, c := range cmds {
		k := cmdKey{c.ClientID, c.Seq}
		if w, ok := n.waiters[k]; ok {
			delete(n.waiters, k)
			notify = append(notify, w.notify...)
		}
	}
	n.mu.Unlock()
	for _, fn := range notify {
		fn(Result{Err: err})
	}
}

// sweep proposes again the commands that have waited an election timeout
// (their proposal may have been lost with a leader), and asks again for
// the read indexes that have not come back.
func (n *Node) sweep() {
	now := time.Now()
	if now.Sub(n.lastSweep) < n.cfg.ElectionTimeout/2 {
		return
	}
	n.lastSweep = now
	n.mu.Lock()
	for k, w := range n.waiters {
		if now.Sub(w.proposed) >= n.cfg.ElectionTimeout {
			w.proposed = now
			n.batch = append(n.batch, paxos.Command{ClientID: k.client, Seq: k.seq, Payload: w.payload})
			n.batchBytes += len(w.payload)
		}
	}
	n.mu.Unlock()
	for ctx, r := range n.readsByCtx {
		if now.Sub(r.started) >= n.cfg.ElectionTimeout {
			delete(n.readsByCtx, ctx)
			n.startRead(r)
		}
	}
}

// Submit proposes the command payload of client clientID, numbered seq,
// and waits until it is applied, returning the state machine's response.
// A client has one command outstanding at a time, numbered from 1; a
// retry with the same (clientID, seq), on this node or another, is applied
// at most once and gets the first execution's response.
//
// The node keeps payload without copying it, possibly past an ErrTimeout
// return (the command may still be proposed): the caller must not modify
// it after the call.
//
// It returns ErrTooLarge, at once, for a payload longer than
// Config.MaxCommandBytes (nothing is proposed: do not retry it),
// ErrNotLeader (a *NotLeaderError) when no leader is known, ErrBusy when
// too much is uncommitted, ErrTimeout when ctx ends first (the command may
// still be applied: retry it), ErrResponseNotKept for a retry of a command
// that was executed but whose response was not kept, and ErrStale,
// ErrSessionExpired or ErrClosed.
func (n *Node) Submit(ctx context.Context, clientID, seq uint64, payload []byte) ([]byte, error) {
	ch := make(chan Result, 1)
	if err := n.submit(clientID, seq, payload, func(r Result) { ch <- r }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.Response, r.Err
	case <-ctx.Done():
		n.forget(cmdKey{clientID, seq})
		return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

// submit queues a command for the loop; notify is called, once, with its
// outcome, on the loop's goroutine (it must not block).
func (n *Node) submit(clientID, seq uint64, payload []byte, notify func(Result)) error {
	k := cmdKey{clientID, seq}
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
	n.waiters[k] = &waiter{payload: payload, proposed: time.Now(), notify: []func(Result){notify}}
	n.batch = append(n.batch, paxos.Command{ClientID: clientID, Seq: seq, Payload: payload})
	n.batchBytes += len(payload)
	n.mu.Unlock()
	n.wake()
	return nil
}

func (n *Node) forget(k cmdKey) {
	n.mu.Lock()
	delete(n.waiters, k)
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
// with no Apply running; it must be quick and must not call the Node. It
// returns ErrNotLeader, ErrTimeout or ErrClosed when fn did not run.
func (n *Node) Read(ctx context.Context, fn func()) error {
	done := make(chan error, 1)
	r, err := n.read(fn, func(err error) { done <- err })
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		r.cancelled.Store(true)
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
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

func (n *Node) startRead(r *readRequest) {
	r.ctx = n.readCtx.Add(1)
	r.started = time.Now()
	if err := n.rn.ReadIndex(r.ctx); err != nil {
		r.finish(n.proposeError(err))
		return
	}
	n.readsByCtx[r.ctx] = r
}

// serveReads runs the confirmed reads whose index has been applied.
func (n *Node) serveReads() {
	kept := n.readsToServe[:0]
	for _, r := range n.readsToServe {
		if r.index > n.applied {
			kept = append(kept, r)
			continue
		}
		if !r.cancelled.Load() {
			r.fn()
		}
		r.finish(nil)
	}
	clear(n.readsToServe[len(kept):])
	n.readsToServe = kept
}

func (n *Node) publishStatus() { n.publishStatusOf(n.rn.Status()) }

func (n *Node) publishStatusOf(st paxos.Status) {
	s := &Status{
		ID: n.cfg.ID, Role: st.Role, Promised: st.Promised, Commit: st.Commit,
		Applied: n.applied, LastSlot: st.LastSlot,
		Joining: st.Joining, Removed: st.Removed, ChangeInProgress: st.ChangeInProgress,
	}
	if st.Lead != paxos.None {
		s.Leader, s.HasLead = uint64(st.Lead), true
	}
	n.status.Store(s)
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
		st.Removed = true
		n.status.Store(&st)
	}
	n.mu.Lock()
	n.failure = err
	n.closed = true
	n.mu.Unlock()
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
			fn(Result{Err: err})
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
