package paxos

import "fmt"

// Log compaction and catching up by snapshot.
//
// The caller snapshots its state machine at an applied slot, makes the
// snapshot durable, and then calls Compact to let the core drop the
// entries up to a slot at or below it (usually some way below, so that a
// follower a little behind still catches up from the log). The core never
// sees snapshot bytes.
//
// When the leader would have to send a follower entries it no longer
// holds, it asks its caller, in Ready.SendSnapshots, to send that
// follower its latest snapshot, and sends the follower no entries until
// the caller calls ReportSnapshot or the follower reports a slot at or
// past the compaction point. The follower's caller restores the snapshot
// and calls InstallSnapshot; the follower then tells the leader where it
// stands, and the leader continues from the log.

// Compact drops the entries up to slot, which a durable snapshot covers:
// slot must be applied (Advance reported it) and not below the current
// compaction point. It returns the new compaction point, with the ballot
// of slot's entry, for the caller to record in its log.
func (n *RawNode) Compact(slot uint64) (Compacted, error) {
	l := &n.log
	if slot < l.compacted.Slot || slot > l.applied {
		return l.compacted, fmt.Errorf("paxos: Compact(%d): slot must be in [%d, %d], the compaction point and the applied slot", slot, l.compacted.Slot, l.applied)
	}
	b, _ := l.ballotAt(slot)
	l.compactTo(Compacted{Slot: slot, Ballot: b})
	return l.compacted, nil
}

// compactTo moves the compaction point to c, keeping the entries after
// it. c may be past the last entry (a snapshot from the leader).
func (l *slotLog) compactTo(c Compacted) {
	if c.Slot <= l.last() {
		l.entries = append([]Entry(nil), l.entries[c.Slot-l.compacted.Slot:]...)
	} else {
		l.entries = nil
	}
	l.compacted = c
	l.commit = max(l.commit, c.Slot)
	l.applied = max(l.applied, c.Slot)
	l.applying = max(l.applying, c.Slot)
	l.unstable = max(l.unstable, c.Slot+1)
}

// InstallSnapshot tells a follower that its caller restored the state
// machine from a snapshot of slot c.Slot, whose entry has ballot c.Ballot,
// that the caller has made durable along with the compaction point c. The
// log continues after it; entries held beyond it stay. It reports false,
// and changes nothing, if the replica has already committed c.Slot (the
// caller should then not restore the snapshot at all: see WantsSnapshot).
//
// cs is the configuration state kept with the snapshot: the
// configurations of the slots after c.Slot. A joining replica learns its
// configuration from it.
func (n *RawNode) InstallSnapshot(c Compacted, cs ConfigState) bool {
	if !n.WantsSnapshot(c.Slot) || cs.Validate() != nil {
		return false
	}
	if n.role == candidate {
		// Its campaign is for slots the snapshot now covers.
		n.becomeFollower(None)
	}
	n.log.compactTo(c)
	n.confs = ConfigState(append([]ScheduledConfig(nil), cs...)).Compact(c.Slot)
	n.noteCommitted(c.Slot)
	n.resetAcceptedUpTo()
	n.acceptedUpTo = max(n.acceptedUpTo, c.Slot)
	if n.lead != None && n.lead != n.id {
		// Tell the leader where to continue from, at once, rather than at
		// its next heartbeat. The compaction point is durable already; the
		// message goes after the next persist anyway, like every report of
		// this acceptor's state.
		n.sendAfterPersist(Message{Type: MsgAccepted, To: n.lead, Ballot: n.promised, Slot: n.acceptedUpTo, Commit: n.hardState().Commit, Reject: true})
	}
	return true
}

// WantsSnapshot reports whether a snapshot of slot would move this
// replica forward: whether slot is past its commit index. A leader never
// wants one (it holds everything committed).
//
// A joining replica, which knows no configuration, wants any snapshot,
// even of slot 0 (a cluster that has committed nothing yet): it carries
// the configuration.
func (n *RawNode) WantsSnapshot(slot uint64) bool {
	return n.role != leader && (slot > n.log.commit || len(n.confs) == 0)
}

// ReportSnapshot tells the leader that sending its snapshot to follower to
// ended: it failed (ok false: the leader asks for another at once), or the
// follower installed it (ok true: the follower's own report, on its way,
// says where to continue from; if none comes within a heartbeat, the
// leader asks again). Until then, the leader sends that follower no
// entries.
func (n *RawNode) ReportSnapshot(to NodeID, ok bool) {
	if n.role != leader {
		return
	}
	if i := n.ldr.idx(to); i >= 0 && n.ldr.progress[i].snapshotting {
		pr := &n.ldr.progress[i]
		if ok {
			pr.snapshotSent = true
		} else {
			pr.snapshotting = false
		}
	}
}

// Compacted returns the compaction point: a snapshot covers every slot up
// to it, and the core holds entries only after it.
func (n *RawNode) Compacted() Compacted { return n.log.compacted }
