package engine

import (
	"context"
	"fmt"

	"github.com/paxos-go/paxos/engine/session"
)

// Window is the most commands one client may have outstanding: see
// SubmitAsync, and engine/session for what the replicated session table
// keeps for them.
const Window = session.Window

// Future is the outcome of a command submitted with SubmitAsync. Wait for
// it from one goroutine at a time.
type Future struct {
	n       *Node
	key     cmdKey
	oldest  uint64
	payload []byte
	ch      chan result     // the outcome of the current submission
	notify  func(result)    // delivers into ch (its address identifies this Future's waiting)
	changed <-chan struct{} // the leader signal when it was submitted
	err     error           // a refusal of the current submission, before it was queued
	done    bool
	resp    []byte
	final   error
}

// SubmitAsync proposes command seq of client clientID, as Submit does, and
// returns at once: the Future's Wait gives the outcome. It lets one client
// have up to Window commands outstanding (pipelining), under this rule:
//
//   - oldest is the client's oldest command still without an answer, at
//     most seq, and seq < oldest+Window; 0 means seq (one at a time).
//   - oldest never decreases from one command to the next: the client
//     raises it as answers arrive (or as it gives up on a command, after
//     which that command's outcome stays unknown).
//
// Commands of one client may then be applied in any order among
// themselves; each exactly once, and a retry (the same clientID, seq and
// payload, with any oldest up to the current one) of a command still
// outstanding gets the first execution's response, on this replica or
// another. A command below the oldest of a command already applied is
// refused (ErrStale): the client said it has its answer. A command that
// breaks the rule is refused at once, with an error that says so.
//
// A client that pipelines must not also submit one command at a time
// under the same clientID (that is the same as oldest = seq, which tells
// the table that all commands below it are answered).
//
// The node keeps payload without copying it: do not modify it until the
// Future is done. Like Submit, the command is a waiter on this node: its
// outcome is delivered to this node's Future, even if the leader changes.
func (n *Node) SubmitAsync(clientID, seq, oldest uint64, payload []byte) *Future {
	f := &Future{n: n, key: cmdKey{clientID, seq}, oldest: oldest, payload: payload, ch: make(chan result, 1)}
	f.notify = f.deliver
	if oldest == seq {
		f.oldest = 0 // the same, and a batch of such commands is kind 1 (see paxos.Command)
	}
	f.submit()
	return f
}

func (f *Future) submit() {
	f.changed = f.n.leaderSignal()
	f.err = f.n.submit(f.key.client, f.key.seq, f.oldest, f.payload, &f.notify)
}

// deliver is the waiter's notify: on the loop goroutine, once per
// submission, into a channel of one.
func (f *Future) deliver(r result) { f.ch <- r }

// Wait waits for the command's outcome: its response, or the errors of
// Submit. While no leader is known it waits for one, and proposes the
// command again then, until ctx ends. When ctx ends first it returns
// ErrTimeout, and the Future is done with it: the command may or may not
// be applied. Once done, Wait returns the same outcome at once.
func (f *Future) Wait(ctx context.Context) ([]byte, error) {
	if f.done {
		return f.resp, f.final
	}
	for {
		err := f.err
		if err == nil {
			select {
			case r := <-f.ch:
				if err = r.Err; err == nil || !leaderUnknown(err) {
					return f.finish(r.Response, err)
				}
			case <-ctx.Done():
				f.n.forget(f.key, &f.notify)
				return f.finish(nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err()))
			}
		}
		if !leaderUnknown(err) {
			return f.finish(nil, err)
		}
		if werr := f.n.waitLeaderChange(ctx, f.changed); werr != nil {
			return f.finish(nil, fmt.Errorf("%w (%w)", werr, err))
		}
		f.submit()
	}
}

func (f *Future) finish(resp []byte, err error) ([]byte, error) {
	f.done, f.resp, f.final = true, resp, err
	f.payload = nil
	return resp, err
}
