// Package engine runs a replica of a paxos-go cluster: a replicated state
// machine whose commands are ordered by Multi-Paxos and applied exactly
// once, on every replica, in the same order.
//
// # The Node
//
// A Node is one replica. Start opens its data directory (a write-ahead
// log, wal, and a snapshot store, storage), recovers its state (the newest
// snapshot that verifies, then the log after it), connects to its peers
// (net) and serves. The protocol itself is engine/paxos, a deterministic
// state machine with no goroutines, clock, disk or sockets: the Node feeds
// it and carries out what it decides. Submit proposes a command and waits
// until it is applied; Read and Query serve linearizable reads without a
// log slot; AddLearner, Promote, RemoveReplica and TransferLeadership
// change the cluster; Status reports; Close stops. With Config.ClientAddr
// the Node also serves remote clients (package client) on a client port.
//
// # The loop
//
// One goroutine owns the core (loop.go). It steps what arrived (messages
// from peers, ticks, the commands and reads that callers queued), then
// handles one Ready: the messages to send, the state to persist, the
// committed entries to apply. Commands are batched: a slot costs an fsync
// on every replica, so the leader puts in one slot what arrived while the
// previous one was in flight.
//
// # The durability order
//
// For each Ready (persist.go, where the order is argued step by step):
// messages that promise nothing are sent at once; the hard state and the
// new entries are queued in the WAL in Ready order; the replies that
// promise durable state (a promise, an accepted entry) are sent only after
// the fsync that covers them returned; committed entries are applied
// without waiting for this replica's own fsync, since they are durable on
// a majority already; then the core advances. A failed write stops the
// replica: nothing is sent after it.
//
// # Embedding
//
// Implement StateMachine (Apply must be deterministic: every replica
// applies the same commands in the same order and must reach the same
// state; Snapshot and Restore carry it across compaction), fill a Config
// (ID, ClusterID, DataDir, Peers to bootstrap a new cluster or Join to join
// one, TLSDir or Insecure), and call Start on each replica. In the same
// process, call Node.Submit; from other processes, use package client
// against the replicas' client ports. StartTyped wraps a typed state
// machine (Executor) whose commands and responses travel as msgpack, for
// callers in the same process; its remote counterpart is client.Typed.
// Bring your own snapshot store with Config.Snapshots (see the example).
//
// # The sequence rule
//
// Exactly-once execution rests on each command's (clientID, seq), which
// the session table (engine/session, part of the replicated state)
// remembers per client:
//
//   - client IDs are not 0, and two clients never share one;
//   - a client numbers its commands 1, 2, 3, ..., one command at a time,
//     each new command the last one plus 1;
//   - a retry (after an error or a timeout, on this replica or another)
//     reuses the command's number and payload, and is executed at most
//     once: a retry of the last command gets its first response;
//   - a client that gave up on a command (ErrTimeout) sends it again,
//     with its number, before it moves on, so that it never skips one.
//
// What breaks the rule is refused, never executed: client ID 0 or number
// 0 with ErrBadSequence at once, before anything is proposed; a number
// more than one above the client's last applied command with
// ErrBadSequence when it is applied (the decision is the session table's,
// the same on every replica); a number below the last with ErrStale; a
// first command numbered above 1 with ErrSessionExpired, since it cannot
// be told from the retry of a client whose session expired (sessions
// expire after Config.SessionTTL slots unused). A client that lost its
// numbering starts over under a new ID. Package client follows the rule
// for you.
//
// The rule is part of the replicated state. A cluster bootstrapped before
// it was defined keeps the rule of its day, under which a number above the
// last was executed even after a gap (its log and snapshots hold commands
// executed so, and replaying them must execute them again): only client
// ID 0 and number 0 are refused there, before proposal. Every replica of
// a new cluster must run a version that knows the rule.
package engine
