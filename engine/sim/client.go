package sim

import (
	"fmt"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/chatmodel"
)

// The state machine of the simulation is the chat room's: an append-only
// log of messages. "P <text>" appends text and answers "ok"; "G" answers
// the whole log. Reads by read index answer the log too, without a slot.

type chat struct {
	log     []string
	seen    map[string]bool
	applied uint64
}

func newChat() *chat { return &chat{seen: map[string]bool{}} }

func (c *chat) get() string { return strings.Join(c.log, ",") }

// execute runs one command. Every message a client puts is unique, so a
// message executed twice is a command executed twice.
func (c *chat) execute(n *node, payload []byte) []byte {
	p := string(payload)
	switch {
	case strings.HasPrefix(p, "P "):
		text := p[2:]
		if c.seen[text] {
			n.s.fail(Safety, "replica %s executed %q twice: exactly-once broken", n.id, text)
		}
		c.seen[text] = true
		c.log = append(c.log, text)
		return []byte("ok")
	case p == "G":
		return []byte(c.get())
	}
	n.s.fail(Other, "replica %s: unknown command %q", n.id, p)
	return nil
}

// client issues commands one at a time: puts, gets through the log, and
// reads by read index, each retried with the same (ClientID, Seq) on
// another replica after a timeout or an error, until it is answered.
type client struct {
	s       *Sim
	id      int
	cid     uint64
	seq     uint64
	req     *request // the request in progress, or nil
	history []porcupine.Operation
	acked   []string // texts of puts answered "ok"
}

type request struct {
	client  *client
	cmd     paxos.Command
	read    bool // by read index
	attempt int
	call    Time
	input   chatmodel.Input
}

type reply struct {
	resp []byte
	err  error
}

const clientTimeout = 200 * Millisecond

func newClient(s *Sim, id int) *client {
	return &client{s: s, id: id, cid: s.rng.Uint64()>>1 | 1}
}

func (c *client) start() {
	c.s.after(c.s.between(0, 20*Millisecond), c.issue)
}

// issue starts the next operation, while the faults last.
func (c *client) issue() {
	if c.s.healed {
		return
	}
	c.seq++
	r := &request{client: c, call: c.s.now}
	k := c.s.rng.IntN(10)
	if c.s.now < c.s.readsUntil {
		k = 9
	}
	switch {
	case k < 6:
		text := fmt.Sprintf("c%d-%d", c.id, c.seq)
		r.cmd = paxos.Command{ClientID: c.cid, Seq: c.seq, Payload: []byte("P " + text)}
		r.input = chatmodel.Input{Put: true, Text: text}
	case k < 8:
		r.cmd = paxos.Command{ClientID: c.cid, Seq: c.seq, Payload: []byte("G")}
	default:
		r.read = true
		c.seq-- // reads by read index are not commands
	}
	c.req = r
	c.send(r)
}

// send sends the request's current attempt to a random replica.
func (c *client) send(r *request) {
	r.attempt++
	if r.attempt > 1 {
		c.s.stats.Retries++
	}
	n := c.s.running[c.s.rng.IntN(len(c.s.running))]
	attempt := r.attempt
	if c.s.opts.Trace {
		c.s.tracef("client %d try %d of %s at %s", c.id, attempt, r.describe(), n.id)
	}
	c.s.after(c.s.between(50, 500), func() { n.submit(r) })
	c.s.after(clientTimeout, func() {
		if c.req == r && r.attempt == attempt {
			c.send(r)
		}
	})
}

// reply takes an answer for r from a replica. Errors are retried (after a
// short pause, at another replica); anything else completes r.
func (c *client) reply(r *request, rep reply) {
	if c.req != r {
		return // a late answer to a request already completed
	}
	if rep.err != nil {
		if c.s.opts.Trace {
			c.s.tracef("client %d: %s: %v", c.id, r.describe(), rep.err)
		}
		switch rep.err.Error() {
		case "stale", "expired":
			c.s.fail(Other, "client %d command %d answered %v", c.id, r.cmd.Seq, rep.err)
			return
		}
		attempt := r.attempt
		c.s.after(c.s.between(5*Millisecond, 30*Millisecond), func() {
			if c.req == r && r.attempt == attempt {
				c.send(r)
			}
		})
		return
	}
	c.s.stats.Ops++
	c.req = nil
	out := chatmodel.Output{Log: string(rep.resp)}
	if r.input.Put {
		if string(rep.resp) != "ok" {
			c.s.fail(Other, "client %d put %q answered %q", c.id, r.input.Text, rep.resp)
			return
		}
		c.acked = append(c.acked, r.input.Text)
	}
	c.history = append(c.history, porcupine.Operation{ClientId: c.id, Input: r.input, Call: r.call, Output: out, Return: c.s.now})
	if c.s.opts.Trace {
		c.s.tracef("client %d done: %s", c.id, r.describe())
	}
	c.s.after(c.s.between(0, 10*Millisecond), c.issue)
}

func (r *request) describe() string {
	switch {
	case r.read:
		return "read-index"
	case r.input.Put:
		return fmt.Sprintf("put %s (%d.%d)", r.input.Text, r.cmd.ClientID, r.cmd.Seq)
	}
	return fmt.Sprintf("get (%d.%d)", r.cmd.ClientID, r.cmd.Seq)
}
