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
//   - a client numbers its commands 1, 2, 3, ...;
//   - one command at a time (Submit), or up to session.Window (64)
//     outstanding (SubmitAsync), each saying Oldest, its oldest command
//     still without an answer: Oldest <= Seq < Oldest+Window, and Oldest
//     never goes down (one at a time is Oldest = Seq);
//   - a retry (after an error or a timeout, on this replica or another)
//     reuses the command's number and payload, and is executed at most
//     once: a retry of an outstanding command gets its first response;
//   - a client that gave up on a command (ErrTimeout) sends it again,
//     with its number, before it moves on, so that it never skips one.
//
// What breaks the rule is refused, never executed: client ID 0 or number
// 0 with ErrBadSequence at once, before anything is proposed; a command
// outside its window, or below what the client said it has the answer to,
// with ErrStale; a first command that is not among a new client's first
// (a one-at-a-time client's first above 1) with ErrSessionExpired, since
// it cannot be told from the retry of a client whose session expired
// (sessions expire after Config.SessionTTL slots unused). Within a window
// commands may run in any order (a lost slot is retried after later ones
// were chosen), so a number above the last executed is not refused: the
// table keeps which ones ran. A client that lost its numbering starts
// over under a new ID. Package client follows the rule for you.
package engine
