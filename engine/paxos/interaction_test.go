package paxos

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripts in testdata/: readable protocol
// exchanges whose every Ready and message is written out, so that a change
// of behaviour shows up as a diff to review. Rewrite them after an
// intended change with: go test ./engine/paxos -run TestInteraction -rewrite
//
// Commands (ids are replica numbers from 1):
//
//	cluster nodes=N                  a new cluster of N replicas
//	poll ID                          ID polls for an election now
//	tick ID... [n=K]                 tick those replicas K times (default 1)
//	propose ID CLIENT SEQ PAYLOAD    ID proposes one command
//	read ID CONTEXT                  ID asks for a read index
//	process-ready ID...              handle the Ready of each replica
//	deliver [from=ID] [to=ID] [type=T] [drop]
//	                                 deliver (or drop) the queued messages that match
//	stabilize                        process Readys and deliver until quiet
//	isolate ID / heal                cut a replica off / restore the network
//	crash ID / restart ID            lose a replica's memory / restart it from disk
//	status ID...                     the replicas' state
//	applied ID...                    what the replicas applied
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var c *testCluster
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "cluster" && c == nil {
				t.Fatalf("%s: no cluster yet", d.Pos)
			}
			var out strings.Builder
			if c != nil {
				c.trace = &out
			}
			ids := func() []NodeID {
				var ids []NodeID
				for _, a := range d.CmdArgs {
					if a.Vals == nil {
						n, err := strconv.ParseUint(a.Key, 10, 64)
						if err != nil {
							t.Fatalf("%s: %q is not a replica id", d.Pos, a.Key)
						}
						ids = append(ids, NodeID(n))
					}
				}
				return ids
			}
			intArg := func(key string, def int) int {
				if a, ok := d.Arg(key); ok {
					n, err := strconv.Atoi(a.SingleVal(t))
					if err != nil {
						t.Fatalf("%s: %s=%s is not a number", d.Pos, key, a.SingleVal(t))
					}
					return n
				}
				return def
			}
			switch d.Cmd {
			case "cluster":
				c = newTestCluster(t, intArg("nodes", 3), nil)
				return "ok"
			case "poll":
				for _, id := range ids() {
					c.node(id).rn.startPoll()
				}
			case "tick":
				for i := 0; i < intArg("n", 1); i++ {
					for _, id := range ids() {
						c.node(id).rn.Tick()
					}
				}
			case "propose":
				args := strings.Fields(d.CmdArgs[0].Key + " " + joinKeys(d.CmdArgs[1:]))
				if len(args) != 4 {
					t.Fatalf("%s: propose ID CLIENT SEQ PAYLOAD", d.Pos)
				}
				id, _ := strconv.ParseUint(args[0], 10, 64)
				client, _ := strconv.ParseUint(args[1], 10, 64)
				seq, _ := strconv.ParseUint(args[2], 10, 64)
				if err := c.propose(NodeID(id), client, seq, args[3]); err != nil {
					fmt.Fprintf(&out, "error: %v\n", err)
				}
			case "read":
				args := ids()
				if err := c.node(args[0]).rn.ReadIndex(uint64(args[1])); err != nil {
					fmt.Fprintf(&out, "error: %v\n", err)
				}
			case "process-ready":
				for _, id := range ids() {
					c.process(id)
				}
			case "deliver":
				from, to := intArg("from", 0), intArg("to", 0)
				typ := ""
				if a, ok := d.Arg("type"); ok {
					typ = a.SingleVal(t)
				}
				match := func(m Message) bool {
					return (from == 0 || m.From == NodeID(from)) && (to == 0 || m.To == NodeID(to)) && (typ == "" || m.Type.String() == typ)
				}
				if d.HasArg("drop") {
					var kept []Message
					for _, m := range c.queue {
						if match(m) {
							fmt.Fprintf(&out, "dropped %s\n", DescribeMessage(m))
						} else {
							kept = append(kept, m)
						}
					}
					c.queue = kept
				} else {
					c.deliver(match)
				}
			case "stabilize":
				c.stabilize()
			case "isolate":
				for _, id := range ids() {
					c.isolate(id)
				}
			case "heal":
				c.heal()
			case "crash":
				for _, id := range ids() {
					c.crash(id)
				}
			case "restart":
				for _, id := range ids() {
					c.start(c.node(id))
				}
			case "status":
				for _, id := range ids() {
					st := c.node(id).rn.Status()
					fmt.Fprintf(&out, "%s: %s lead=%s promised=%s commit=%d applied=%d last=%d\n",
						id, st.Role, st.Lead, st.Promised, st.Commit, st.Applied, st.LastSlot)
				}
			case "applied":
				for _, id := range ids() {
					fmt.Fprintf(&out, "%s: %s\n", id, strings.Join(c.appliedValues(id), " "))
				}
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			if out.Len() == 0 {
				return "ok"
			}
			return out.String()
		})
	})
}

func joinKeys(args []datadriven.CmdArg) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, " ")
}
