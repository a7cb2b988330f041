// Package harness runs fault scenarios against real chat room server
// processes and judges them. It accepts the scenario format of the
// original project (a bare JSON array of operations tagged by "type") and
// adds operations for faults the original could not express, and oracles
// the original lacked: deadlines on every read, prefix-consistent reads in
// harness order, no duplicates, no lost acknowledged write, converged
// replicas at the end, and a linearizability check of the client history.
package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/paxos-go/paxos/chatroom"
)

// Scenario is a parsed scenario file.
type Scenario struct {
	Name string
	Ops  []Op
}

// Op is one operation of a scenario. Which fields are set depends on
// Type; Parse checks that each type has what it needs.
//
// The original operations:
//
//	{"type":"Start","id":0,"port":10000,"count":3}   start server id (client port, cluster size)
//	{"type":"Connect","id":0}                        connect client id to server id
//	{"type":"Disconnect","id":0}                     drop that connection
//	{"type":"Put","id":0,"message":"a"}              store a message; does not wait for it
//	{"type":"Get","id":0}                            read the log; must answer within a deadline
//	{"type":"Crash","id":0}                          SIGKILL the server (a no-op if it is not running)
//	{"type":"Sleep","ms":1000}                       wait
//
// And ours:
//
//	{"type":"Partition","groups":[[0,1],[2]]}        cut every link between groups (servers not listed are alone)
//	{"type":"Heal"}                                  restore every link
//	{"type":"Cut","from":0,"to":1}                   cut one direction of one link
//	{"type":"Pause","id":0} / {"type":"Resume","id":0}   SIGSTOP / SIGCONT
//	{"type":"Restart","id":0}                        crash and start again, same flags
//	{"type":"Isolate","id":0}                        cut every link to and from a server
//	{"type":"WaitLeader","timeout_ms":10000}         wait until a leader is followed by a majority
//	{"type":"Expect","id":0,"messages":["a"],"count":3,"timeout_ms":10000}
//	                                                 wait until server id's log holds these messages (and this many)
//
// Where an operation names a server (Crash, Pause, Resume, Restart,
// Isolate, Expect), "id" may also be "leader", the server leading at that moment,
// or "last-leader", the one the last "leader" named. Connect takes an
// optional "server" (default: the same number as "id"), so that many
// clients can share a server; Put, Get and Disconnect name clients.
type Op struct {
	Index     int // position in the scenario, from 0
	Type      string
	ID        int // a server or client; LeaderID or LastLeaderID for a server op
	Server    int // Connect's server
	Port      int
	Count     int
	Message   string
	Ms        int
	Groups    [][]int
	From, To  int
	TimeoutMs int
	Messages  []string
	Len       int // Expect's "count"; -1 when not given
}

func (op Op) String() string {
	switch op.Type {
	case "Start":
		return fmt.Sprintf("Start{id: %d, port: %d, count: %d}", op.ID, op.Port, op.Count)
	case "Put":
		return fmt.Sprintf("Put{id: %d, message: %q}", op.ID, op.Message)
	case "Sleep":
		return fmt.Sprintf("Sleep{ms: %d}", op.Ms)
	case "Partition":
		return fmt.Sprintf("Partition{groups: %v}", op.Groups)
	case "Heal":
		return "Heal"
	case "Cut":
		return fmt.Sprintf("Cut{from: %d, to: %d}", op.From, op.To)
	case "WaitLeader":
		return fmt.Sprintf("WaitLeader{timeout_ms: %d}", op.TimeoutMs)
	case "Expect":
		return fmt.Sprintf("Expect{id: %d, messages: %q, count: %d}", op.ID, op.Messages, op.Len)
	}
	switch op.ID {
	case LeaderID:
		return op.Type + "{id: leader}"
	case LastLeaderID:
		return op.Type + "{id: last-leader}"
	}
	if op.Type == "Connect" && op.Server != op.ID {
		return fmt.Sprintf("Connect{id: %d, server: %d}", op.ID, op.Server)
	}
	return fmt.Sprintf("%s{id: %d}", op.Type, op.ID)
}

// Server ids that are resolved when the operation runs.
const (
	LeaderID     = -1 // "leader"
	LastLeaderID = -2 // "last-leader"
)

// fields lists, per operation type, its required and optional fields.
var fields = map[string]struct{ required, optional []string }{
	"Start":      {[]string{"id", "port", "count"}, nil},
	"Connect":    {[]string{"id"}, []string{"server"}},
	"Disconnect": {[]string{"id"}, nil},
	"Put":        {[]string{"id", "message"}, nil},
	"Get":        {[]string{"id"}, nil},
	"Crash":      {[]string{"id"}, nil},
	"Sleep":      {[]string{"ms"}, nil},
	"Partition":  {[]string{"groups"}, nil},
	"Heal":       {nil, nil},
	"Cut":        {[]string{"from", "to"}, nil},
	"Pause":      {[]string{"id"}, nil},
	"Resume":     {[]string{"id"}, nil},
	"Restart":    {[]string{"id"}, nil},
	"Isolate":    {[]string{"id"}, nil},
	"WaitLeader": {nil, []string{"timeout_ms"}},
	"Expect":     {[]string{"id"}, []string{"messages", "count", "timeout_ms"}},
}

// defaultWaitMs is the deadline of WaitLeader and Expect without one.
const defaultWaitMs = 10000

// maxWaitMs bounds "ms" and "timeout_ms": a scenario that waits an hour is
// a typo, and would only end at the run's deadline, for another reason.
const maxWaitMs = 3_600_000

// MaxServers bounds a scenario's cluster: the harness runs a proxy on each
// directed link, count*(count-1) of them.
const MaxServers = 16

// Parse parses a scenario. Errors name the operation (its index and type)
// and what is wrong with it.
func Parse(name string, data []byte) (*Scenario, error) {
	var raw []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("scenario %s: not a JSON array of operations: %v", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("scenario %s: data after the array of operations", name)
	}
	sc := &Scenario{Name: name}
	for i, r := range raw {
		op, err := parseOp(r)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: op %d: %w", name, i, err)
		}
		op.Index = i
		sc.Ops = append(sc.Ops, op)
	}
	if err := sc.check(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return sc, nil
}

func parseOp(r json.RawMessage) (Op, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r, &obj); err != nil {
		return Op{}, fmt.Errorf("not an object: %v", err)
	}
	var typ string
	if t, ok := obj["type"]; !ok {
		return Op{}, fmt.Errorf(`no "type"`)
	} else if err := json.Unmarshal(t, &typ); err != nil {
		return Op{}, fmt.Errorf(`"type" is not a string`)
	}
	spec, ok := fields[typ]
	if !ok {
		return Op{}, fmt.Errorf("unknown type %q", typ)
	}
	op := Op{Type: typ, Len: -1, TimeoutMs: defaultWaitMs, Server: -3}
	for _, f := range spec.required {
		if _, ok := obj[f]; !ok {
			return Op{}, fmt.Errorf("%s: missing field %q", typ, f)
		}
	}
	// Unknown keys are ignored, as the original ignored them.
	for _, f := range append(append([]string(nil), spec.required...), spec.optional...) {
		v, ok := obj[f]
		if !ok {
			continue
		}
		var err error
		switch f {
		case "id":
			op.ID, err = nat(v)
			var name string
			if err != nil && json.Unmarshal(v, &name) == nil && serverOps[typ] {
				switch name {
				case "leader":
					op.ID, err = LeaderID, nil
				case "last-leader":
					op.ID, err = LastLeaderID, nil
				}
			}
		case "server":
			op.Server, err = nat(v)
		case "port":
			op.Port, err = nat(v)
		case "count":
			if typ == "Expect" {
				op.Len, err = nat(v)
			} else {
				op.Count, err = nat(v)
			}
		case "ms":
			op.Ms, err = nat(v)
			if err == nil && op.Ms > maxWaitMs {
				err = fmt.Errorf("%d ms: at most %d (an hour)", op.Ms, maxWaitMs)
			}
		case "from":
			op.From, err = nat(v)
		case "to":
			op.To, err = nat(v)
		case "timeout_ms":
			op.TimeoutMs, err = nat(v)
			if err == nil && op.TimeoutMs > maxWaitMs {
				err = fmt.Errorf("%d ms: at most %d (an hour)", op.TimeoutMs, maxWaitMs)
			}
		case "message":
			err = json.Unmarshal(v, &op.Message)
			if err == nil && len(op.Message) > chatroom.MaxMessageBytes {
				// The server would refuse it, and the put's worker would
				// retry it until the run's deadline.
				err = fmt.Errorf("%d bytes: a chat message holds at most %d", len(op.Message), chatroom.MaxMessageBytes)
			}
		case "messages":
			err = json.Unmarshal(v, &op.Messages)
		case "groups":
			err = json.Unmarshal(v, &op.Groups)
			for _, g := range op.Groups {
				for _, id := range g {
					if id < 0 {
						err = fmt.Errorf("negative id %d", id)
					}
				}
			}
		}
		if err != nil {
			return Op{}, fmt.Errorf("%s: field %q: %v", typ, f, err)
		}
	}
	if op.Server == -3 {
		op.Server = op.ID
	}
	return op, nil
}

// serverOps are the operations whose id names a server that may be
// "leader" or "last-leader".
var serverOps = map[string]bool{"Crash": true, "Pause": true, "Resume": true, "Restart": true, "Isolate": true, "Expect": true}

// nat decodes a non-negative JSON integer.
func nat(v json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, fmt.Errorf("not a number")
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<31 {
		return 0, fmt.Errorf("%s is not a non-negative integer", n)
	}
	return int(i), nil
}

// check checks what a single operation cannot: one cluster size, ids
// within it, ports consistent per server.
func (sc *Scenario) check() error {
	count := 0
	ports := map[int]int{}
	for _, op := range sc.Ops {
		if op.Type != "Start" {
			continue
		}
		switch {
		case op.Count < 1:
			return fmt.Errorf("op %d (Start): count %d: a cluster has at least one server", op.Index, op.Count)
		case op.Count > MaxServers:
			return fmt.Errorf("op %d (Start): count %d: the harness runs at most %d servers", op.Index, op.Count, MaxServers)
		case count != 0 && op.Count != count:
			return fmt.Errorf("op %d (Start): count %d, but earlier Starts said %d", op.Index, op.Count, count)
		case op.ID >= op.Count:
			return fmt.Errorf("op %d (Start): id %d, but ids run from 0 to count-1 (%d)", op.Index, op.ID, op.Count-1)
		case op.Port < 1 || op.Port > 65535:
			return fmt.Errorf("op %d (Start): port %d is not a TCP port", op.Index, op.Port)
		}
		if p, ok := ports[op.ID]; ok && p != op.Port {
			return fmt.Errorf("op %d (Start): server %d on port %d, but it was started on port %d before", op.Index, op.ID, op.Port, p)
		}
		count, ports[op.ID] = op.Count, op.Port
	}
	if count == 0 {
		return fmt.Errorf("no Start: nothing to run")
	}
	for _, op := range sc.Ops {
		var servers []int // the servers the operation names
		switch op.Type {
		case "Sleep", "Heal", "WaitLeader", "Put", "Get", "Disconnect":
		case "Connect":
			servers = []int{op.Server}
		case "Cut":
			servers = []int{op.From, op.To}
		case "Partition":
			for _, g := range op.Groups {
				servers = append(servers, g...)
			}
		default:
			servers = []int{op.ID}
		}
		for _, id := range servers {
			if id >= count {
				return fmt.Errorf("op %d (%s): server %d, but the cluster has %d servers", op.Index, op.Type, id, count)
			}
		}
	}
	return nil
}

// Servers returns the size of the scenario's cluster (its Starts' count).
func (sc *Scenario) Servers() int {
	for _, op := range sc.Ops {
		if op.Type == "Start" {
			return op.Count
		}
	}
	return 0
}

// Load reads and parses a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(strings.TrimSuffix(filepath.Base(path), ".json"), data)
}

// LoadAll loads the scenarios that pattern names: a file, a directory (its
// *.json files) or a glob. They come sorted by name.
func LoadAll(pattern string) ([]*Scenario, error) {
	paths := []string{pattern}
	if st, err := os.Stat(pattern); err == nil && st.IsDir() {
		paths, _ = filepath.Glob(filepath.Join(pattern, "*.json"))
	} else if err != nil {
		if paths, err = filepath.Glob(pattern); err != nil {
			return nil, err
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no scenario matches %s", pattern)
	}
	sort.Strings(paths)
	var out []*Scenario
	for _, p := range paths {
		sc, err := Load(p)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}
