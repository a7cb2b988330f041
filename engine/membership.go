package engine

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/paxos-go/paxos/engine/paxos"
	paxosnet "github.com/paxos-go/paxos/net"
)

// Membership: the configuration (voters, learners, and each replica's peer
// and client addresses) is replicated state. It changes only by
// configuration values chosen in the log (the core's window rule: a
// configuration chosen in slot s governs from s+paxos.ConfigWindow on),
// and the node keeps it as it applies the log: confs, the configuration
// state at the applied slot, which every snapshot carries (snapshot.go)
// and which a restart or an installed snapshot starts from. The bootstrap
// configuration, recorded in the data directory at the first start
// (bootstrap.go), is where the log starts from.
//
// The transport follows the configuration: its peers are the members of
// every configuration that governs a slot after the applied one
// (syncPeers), and it admits a dialer not among them only if it is a
// member of the newest committed configuration, or while this replica
// knows none (joining). It refuses, with a code that stops the dialer,
// a replica that was removed, and one that lost its data (admit).

// memberView is what the transport's goroutines and the client port read
// of the membership: published by the loop after every turn that changed
// it.
type memberView struct {
	// conf is the newest configuration the committed log chose (empty
	// while joining).
	conf paxos.Configuration
	// members are the replicas of every configuration in confs.
	members map[uint64]bool
	// dismiss are the removed replicas this replica may tell so, so that
	// they stop (paxos.RawNode.MayDismiss: it leads, and the configuration
	// after them durably knows they are not needed), among those that
	// tried to connect (knocking): the removed IDs only grow, up to
	// paxos.MaxRemoved, and asking about each at every turn of the loop
	// would cost the leader half a millisecond a turn.
	dismiss map[uint64]bool
	joining bool
	gen     uint64 // confsGen when published
}

// startingConfiguration decides what the replica starts from: the
// configuration state of the snapshot it restored, else the bootstrap
// configuration recorded in the data directory (recorded now, from
// Config.Peers, at the first start), else nothing (joining). hasLog says
// the data directory holds a log or a snapshot.
func (n *Node) startingConfiguration(hasLog bool) error {
	dir := n.cfg.DataDir
	boot, recorded, err := readBootstrap(dir)
	if err != nil {
		return err
	}
	var flags bootstrapRecord
	if len(n.cfg.Peers) > 0 {
		if flags, err = bootstrapOf(n.cfg.Peers, n.cfg.ClientAddrs); err != nil {
			return err
		}
	}
	switch {
	case n.cfg.Join:
		if recorded && !boot.join {
			return fmt.Errorf("%w: %s holds replica %d of a cluster it was started with (not by joining); restart it without Join",
				ErrJoinNotEmpty, dir, n.cfg.ID)
		}
		if hasLog {
			return fmt.Errorf("%w: %s holds the log or a snapshot of replica %d, which has joined already: restart it without Join",
				ErrJoinNotEmpty, dir, n.cfg.ID)
		}
		if !recorded {
			boot = bootstrapRecord{join: true}
			if err := writeBootstrap(dir, boot, n.cfg.NoSync); err != nil {
				return err
			}
		}
	case !recorded:
		if _, ok := n.cfg.Peers[n.cfg.ID]; len(n.cfg.Peers) > 0 && !ok {
			return fmt.Errorf("engine: Config.ID %d is not in Config.Peers: a new cluster's first configuration must have this replica (to join a running cluster, set Join)", n.cfg.ID)
		}
		if len(n.cfg.Peers) == 0 {
			if hasLog {
				return fmt.Errorf("engine: %s holds a log but no record of the cluster's first configuration (%s; a data directory of an older version): "+
					"start it once with Config.Peers set to the replicas the cluster was started with", dir, bootstrapFile)
			}
			return ErrNoPeers
		}
		boot = flags
		// A directory that holds a log already was begun by an earlier
		// version: its log replays under the rule of that version.
		boot.strictSeq = !hasLog
		if err := writeBootstrap(dir, boot, n.cfg.NoSync); err != nil {
			return err
		}
		if hasLog {
			n.log.Info("recorded Config.Peers as the first configuration of a data directory made by an older version", "configuration", boot.configState().Latest())
		}
	case len(n.cfg.Peers) > 0 && boot.join && hasLog:
		n.log.Info("this replica joined its cluster: Config.Peers is ignored; the configuration comes from its snapshots and log")
	}
	switch {
	case n.restoredConfs != nil:
		n.confs = n.restoredConfs
	case boot.join && hasLog:
		return fmt.Errorf("engine: %s holds a joined replica's log but no snapshot that carries its configuration", dir)
	case boot.join:
		n.joining = true
		n.log.Info("joining: this replica knows no configuration; it waits until the cluster adds it (AddLearner on the leader) and sends it a snapshot")
	default:
		// No snapshot, or one of version 1, from before configuration
		// changes: the bootstrap configuration, with the log replayed.
		n.confs = boot.configState()
	}
	if n.confs != nil {
		n.confs = n.confs.Compact(n.applied)
		if removedFrom(n.confs, n.cfg.ID) {
			return fmt.Errorf("%w: the configuration %v no longer has replica %d", ErrRemoved, n.confs.Latest(), n.cfg.ID)
		}
	}
	n.confsGen++
	return nil
}

// checkFlags logs it when Config.Peers (or ClientAddrs) says another
// configuration than the one the replica recovered: the flags only
// bootstrap a new cluster.
func (n *Node) checkFlags(recovered paxos.Configuration) {
	if len(n.cfg.Peers) == 0 || n.cfg.Join || len(recovered.Members) == 0 {
		return
	}
	flags, err := bootstrapOf(n.cfg.Peers, n.cfg.ClientAddrs)
	if err != nil {
		return
	}
	same := func(a, b paxos.Member) bool {
		return a.ID == b.ID && a.Voter == b.Voter && a.PeerAddr == b.PeerAddr && a.ClientAddr == b.ClientAddr
	}
	if !slices.EqualFunc(flags.members, recovered.Members, same) {
		n.log.Warn("Config.Peers (or Config.ClientAddrs) differs from the configuration recovered from the data directory: "+
			"using the recovered one (the configuration is replicated state; the flags only bootstrap a new cluster)",
			"recovered", recovered, "flags", flags.configState().Latest())
	}
}

// removedFrom reports whether id's removal governs every slot cs covers.
func removedFrom(cs paxos.ConfigState, id uint64) bool {
	if !cs.Latest().IsRemoved(paxos.NodeID(id)) {
		return false
	}
	for _, sc := range cs {
		if _, ok := sc.Config.Member(paxos.NodeID(id)); ok {
			return false
		}
	}
	return true
}

// listenAddr is where the replica listens for peers: the address the
// configuration gives it (the core's, which has replayed the committed
// log), which is where the others reach it; else
// Config.Peers[ID] (a joining replica, or one the configuration gives no
// address).
func (n *Node) listenAddr() (string, error) {
	self := paxos.NodeID(n.cfg.ID)
	flag := n.cfg.Peers[n.cfg.ID]
	var addr string
	// The core's newest committed configuration first: it includes the
	// committed log after the snapshot, which may be what added this
	// replica (a joined replica whose snapshot predates its addition).
	if m, ok := n.rn.Status().Config.Member(self); ok {
		addr = m.PeerAddr
	}
	for i := len(n.confs) - 1; i >= 0 && addr == ""; i-- {
		if m, ok := n.confs[i].Config.Member(self); ok {
			addr = m.PeerAddr
		}
	}
	switch {
	case addr == "" && flag == "":
		return "", fmt.Errorf("engine: no address to listen on for peers: the configuration gives replica %d none, nor does Config.Peers", n.cfg.ID)
	case addr == "":
		return flag, nil
	case flag != "" && flag != addr:
		n.log.Warn("Config.Peers gives this replica another address than the configuration does: listening on the configuration's, where the other replicas reach it",
			"configuration", addr, "flags", flag)
	}
	return addr, nil
}

// wantedPeers returns the peers the transport should talk to: the members
// of every configuration in confs (the later one's address wins), or,
// while joining, Config.Peers.
func (n *Node) wantedPeers() map[uint64]string {
	out := map[uint64]string{}
	if n.confs == nil {
		for id, a := range n.cfg.Peers {
			if id != n.cfg.ID {
				out[id] = a
			}
		}
		return out
	}
	for _, sc := range n.confs {
		for _, m := range sc.Config.Members {
			if uint64(m.ID) != n.cfg.ID && m.PeerAddr != "" {
				out[uint64(m.ID)] = m.PeerAddr
			}
		}
	}
	return out
}

// peerSetter is implemented by transports whose peers can change at run
// time (*paxosnet.Transport).
type peerSetter interface {
	SetPeers(map[uint64]string)
}

// syncPeers gives the transport the peers of confs, which changed.
func (n *Node) syncPeers() {
	n.confsGen++
	want := n.wantedPeers()
	if maps.Equal(want, n.peerAddrs) {
		return
	}
	n.peerAddrs = want
	if ps, ok := n.tr.(peerSetter); ok {
		ps.SetPeers(want)
	}
}

// publishView publishes the membership for the transport and the client
// port, if it changed.
func (n *Node) publishView(st paxos.Status) {
	old := n.view.Load()
	var dismiss map[uint64]bool
	n.knockMu.Lock()
	for id := range n.knocking {
		if n.rn.MayDismiss(paxos.NodeID(id)) {
			if dismiss == nil {
				dismiss = map[uint64]bool{}
			}
			dismiss[id] = true
		}
	}
	n.knockMu.Unlock()
	if old != nil && old.gen == n.confsGen && old.joining == st.Joining && sameConfig(old.conf, st.Config) && maps.Equal(old.dismiss, dismiss) {
		return
	}
	v := &memberView{conf: st.Config, joining: st.Joining, members: map[uint64]bool{}, dismiss: dismiss, gen: n.confsGen}
	for _, sc := range n.confs {
		for _, m := range sc.Config.Members {
			v.members[uint64(m.ID)] = true
		}
	}
	n.view.Store(v)
}

// sameConfig reports whether a and b are the same configuration, at once
// if they share their storage (the core hands out the same one until it
// changes).
func sameConfig(a, b paxos.Configuration) bool {
	if len(a.Members) == len(b.Members) && len(a.Removed) == len(b.Removed) &&
		(len(a.Members) == 0 || &a.Members[0] == &b.Members[0]) && (len(a.Removed) == 0 || &a.Removed[0] == &b.Removed[0]) {
		return true
	}
	return a.Equal(b)
}

// clientAddrOf returns the client address the configuration gives replica
// id, if any.
func (n *Node) clientAddrOf(id uint64) string {
	v := n.view.Load()
	if v == nil {
		return ""
	}
	m, _ := v.conf.Member(paxos.NodeID(id))
	return m.ClientAddr
}

// Configuration returns the newest configuration this replica's committed
// log chose: the voters and learners, with their addresses, and the IDs
// removed for good. It is empty while the replica is joining. (The
// leader's is the most recent; a follower's may lag it.)
func (n *Node) Configuration() paxos.Configuration {
	v := n.view.Load()
	if v == nil {
		return paxos.Configuration{}
	}
	return paxos.Configuration{Members: slices.Clone(v.conf.Members), Removed: slices.Clone(v.conf.Removed)}
}

// afterTurn publishes the node's state after a turn of its loop, and
// stops a replica that the cluster removed.
func (n *Node) afterTurn() error {
	st := n.rn.Status()
	if st.Lead != paxos.None {
		n.hadLeader = true
	} else if n.hadLeader {
		n.hadLeader, n.leaderLost = false, time.Now()
	}
	n.publishStatusOf(st)
	n.publishView(st)
	n.metrics.turn(st, n.rn.IsLeader(), n.applied)
	if st.Removed {
		return fmt.Errorf("%w: the configuration the cluster chose, %v, no longer has replica %d", ErrRemoved, st.Config, n.cfg.ID)
	}
	return nil
}

// checkQuiet, on every tick, makes the transport connect again after two
// election timeouts without a message from anyone. A replica removed from
// the cluster may not hear that its removal governs (the leader stops
// sending to it once it does), and a learner never campaigns: a new
// handshake is how it learns it (its peers refuse it, saying why: see
// onRefused). For a replica that is merely cut off, connecting again
// costs nothing.
func (n *Node) checkQuiet() {
	n.quietTicks++
	if n.quietTicks < 2*int(n.cfg.ElectionTimeout/n.cfg.HeartbeatInterval) {
		return
	}
	n.quietTicks = 0
	if t, ok := n.tr.(interface{ Reconnect() }); ok {
		n.log.Debug("heard from no replica for two election timeouts: connecting again")
		t.Reconnect()
	}
}

// leaderRecently reports whether a leader was known within an election
// timeout: one is likely to be known again soon (a transfer, an election).
func (n *Node) leaderRecently() bool {
	return n.hadLeader || time.Since(n.leaderLost) < n.cfg.ElectionTimeout
}

// park keeps a batch that found no leader to go to, for the next leader.
func (n *Node) park(batch []paxos.Command) {
	if len(n.parked) == 0 {
		n.parkedSince = time.Now()
	}
	n.parked = append(n.parked, batch)
}

// unpark proposes the parked batches once a leader is known, or fails
// them after an election timeout without one.
func (n *Node) unpark() {
	if len(n.parked) == 0 {
		return
	}
	parked := n.parked
	switch {
	case n.rn.Leader() != paxos.None:
		n.parked = nil
		for _, batch := range parked {
			if err := n.rn.Propose(paxos.EncodeBatch(batch)); err != nil {
				n.failCommands(batch, n.proposeError(err))
			}
		}
	case time.Since(n.parkedSince) >= n.cfg.ElectionTimeout:
		n.parked = nil
		for _, batch := range parked {
			n.failCommands(batch, n.notLeader())
		}
	}
}

// admit is the transport's admission of a peer (paxosnet.Options.Admit),
// called from its goroutines. See the comment at the top of the file, and
// dataLost.
func (n *Node) admit(h paxosnet.Hello, known bool) error {
	v := n.view.Load()
	if v == nil || v.joining {
		// Knowing no configuration, this replica takes any replica of the
		// cluster (authenticated by its certificate, unless Insecure): the
		// leader that added it, whose address it learns from the Hello.
		return nil
	}
	id := paxos.NodeID(h.NodeID)
	if v.conf.IsRemoved(id) && !v.members[h.NodeID] {
		// Removed, and no longer governing a slot this replica has not
		// applied. Only a leader whose new configuration durably knows it
		// is not needed tells it so (it then stops); anyone else refuses it
		// plainly, and it keeps trying: stopped too early, it could be
		// needed after all to recover the last slots its old
		// configuration governed (see paxos.RawNode.MayDismiss).
		if v.dismiss[h.NodeID] {
			return &paxosnet.PeerRefusal{Code: paxosnet.RefusalRemoved,
				Reason: fmt.Sprintf("replica %d was removed from the cluster; its ID is never used again", h.NodeID)}
		}
		n.knock(h.NodeID)
		return fmt.Errorf("replica %d was removed from the cluster", h.NodeID)
	}
	m, member := v.conf.Member(id)
	if why := n.dataLost(h, m, member); why != "" {
		n.log.Warn("refused a replica that lost its data", "peer", h.NodeID, "reason", why)
		return &paxosnet.PeerRefusal{Code: paxosnet.RefusalDataLost, Reason: why}
	}
	if !known && !member && !v.members[h.NodeID] {
		return fmt.Errorf("replica %d is not a member of this cluster", h.NodeID)
	}
	if !h.Fresh && !h.Joining {
		// (Only a replica admitted: each new ID costs a synced write, and
		// with Insecure anyone may claim any ID.)
		n.noteStateful(h.NodeID)
	}
	return nil
}

// maxKnocking bounds the removed replicas remembered as trying to connect.
const maxKnocking = 256

// knock notes that removed replica id tried to connect: the loop asks the
// core, at its next turn, whether id may be told it was removed (see
// memberView.dismiss), and its next attempt is refused so if it may.
func (n *Node) knock(id uint64) {
	n.knockMu.Lock()
	defer n.knockMu.Unlock()
	if n.knocking[id] {
		return
	}
	if n.knocking == nil {
		n.knocking = map[uint64]bool{}
	}
	if len(n.knocking) >= maxKnocking {
		for old := range n.knocking {
			delete(n.knocking, old) // any one: bounded, not fair
			break
		}
	}
	n.knocking[id] = true
}

// noteStateful remembers, in the data directory, that replica id said it
// holds state: the first time only, so a write (synced) per replica.
func (n *Node) noteStateful(id uint64) {
	n.statefulMu.Lock()
	defer n.statefulMu.Unlock()
	if n.stateful[id] && !n.statefulUnsaved {
		return
	}
	n.stateful[id] = true
	if err := writeStatefulPeers(n.cfg.DataDir, n.stateful, n.cfg.NoSync); err != nil {
		// In memory it is noted; the next replica heard with state (or
		// this one again) tries the write again, so that a failure is not
		// forgotten at the next restart.
		n.statefulUnsaved = true
		n.log.Warn("recording a replica heard with state failed", "peer", id, "error", err)
		return
	}
	n.statefulUnsaved = false
}

// dataLost returns why a dialer must be refused as a replica that lost its
// data, or "". A replica that lost its data forgot what it promised and
// accepted: as a voter it could help choose a second value for a slot.
// The dialer's Hello says whether it holds state (Fresh: no promise, no
// log, no snapshot) and whether it was started to join (Joining: it knows
// no configuration yet). "Heard with state" below means that this replica
// took a connection from it whose Hello said it held state and was not
// joining, in this life or an earlier one (the data directory keeps the
// list, statefulPeersFile: a power cut restarts every replica, and is when
// a disk dies). Refused:
//
//   - a joining voter of the first configuration (Since 0): those never
//     join, so it had state and was started again with Join;
//   - a joining voter added by a reconfiguration (Since > 0), heard or
//     not: the core promotes a learner only once it holds the log up to
//     the change that added it (ProposeChange), which a joining replica
//     never reports (it asks for a snapshot, and installs it durably
//     before it acknowledges anything), so a voter that says it is
//     joining had joined and lost its data. (Deciding on the configuration
//     rather than on what this replica heard matters: after the others
//     restart, a promoted learner whose disk died, started again with the
//     command line it joined with, was taken back.)
//   - a fresh replica, not joining, that a reconfiguration added (Since >
//     0): it had no bootstrap configuration of its own to start from, so
//     it joined, and had state (or it was started as a new cluster by
//     mistake: refused as well, it would campaign under a configuration
//     of its own making);
//   - a fresh voter, not joining, heard with state.
//
// The gap: a replica of the first configuration whose data directory is
// wiped before any replica heard from it with state is taken back (by the
// replicas that did not, if some did). A replica says it holds state in a
// new connection as soon as its first write is durable (the transport
// connects again), so the gap is the first moments of a new cluster, or of
// a replica that joins the others late. The documented way stays the only
// safe one: remove the replica and add a new one under a new ID.
func (n *Node) dataLost(h paxosnet.Hello, m paxos.Member, member bool) string {
	const remedy = "a replica that lost its data must be removed (RemoveReplica) and added again under a new ID, with an empty data directory"
	if !member || !h.Joining && !h.Fresh {
		return ""
	}
	n.statefulMu.Lock()
	heard := n.stateful[h.NodeID]
	n.statefulMu.Unlock()
	switch {
	case h.Joining && m.Voter && m.Since == 0:
		return fmt.Sprintf("replica %d was started to join (Join) with an empty data directory, but it is a voter of the cluster's first configuration, so it had state: %s", h.NodeID, remedy)
	case h.Joining && m.Voter:
		return fmt.Sprintf("replica %d was started to join (Join) with an empty data directory, but the cluster has it as a voter, which a learner becomes only once it holds the log, so it had state: %s", h.NodeID, remedy)
	case h.Joining:
		return ""
	case m.Since > 0:
		return fmt.Sprintf("replica %d's data directory is new but the cluster added replica %d at slot %d (a new replica must start with Join): %s", h.NodeID, h.NodeID, m.Since, remedy)
	case heard && m.Voter:
		return fmt.Sprintf("replica %d's data directory is new but the cluster knows replica %d, which had state: %s", h.NodeID, h.NodeID, remedy)
	}
	return ""
}

// onRefused is the transport's report of a refusal by a peer with a code
// (paxosnet.Options.OnRefused): the cluster will not take this replica
// back, and the loop stops it.
func (n *Node) onRefused(peer uint64, e *paxosnet.RefusedError) {
	var err error
	switch e.Code {
	case paxosnet.RefusalRemoved:
		err = fmt.Errorf("%w: replica %d refused this one: %s", ErrRemoved, peer, e.Reason)
	case paxosnet.RefusalDataLost:
		if werr := recordDataLost(n.cfg.DataDir, e.Reason, n.cfg.NoSync); werr != nil {
			n.log.Error("recording the refusal in the data directory failed", "error", werr)
		}
		err = fmt.Errorf("%w: replica %d refused this one: %s", ErrDataLost, peer, e.Reason)
	default:
		return
	}
	select {
	case n.refusedCh <- err:
	default:
	}
}

// setPeerState changes what the transport's Hellos say.
func (n *Node) setPeerState(f func(*paxosnet.PeerState)) {
	n.peerStateMu.Lock()
	defer n.peerStateMu.Unlock()
	old := n.peerState
	f(&n.peerState)
	if n.peerState == old {
		return
	}
	if t, ok := n.tr.(interface{ SetState(paxosnet.PeerState) }); ok {
		t.SetState(n.peerState)
	}
}

// noteDurableState is called by the persister after each durable write:
// the replica holds state from the first one on, and says so.
func (n *Node) noteDurableState() {
	if !n.freshState.Load() {
		return
	}
	n.freshState.Store(false)
	n.setPeerState(func(s *paxosnet.PeerState) { s.Fresh = false })
}

// notLeaderHint is a *NotLeaderError naming the leader this replica last
// knew, for callers off the loop.
func (n *Node) notLeaderHint() error {
	e := &NotLeaderError{}
	if st := n.Status(); st.HasLead {
		e.LeaderKnown, e.LeaderID, e.LeaderAddr = true, st.Leader, n.clientAddrOf(st.Leader)
	}
	return e
}
