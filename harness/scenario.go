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
// Membership changes:
//
//	{"type":"AddServer","id":3,"port":11003}         start a new server with an empty data dir (--join), add it
//	                                                 as a learner, and promote it once it has caught up
//	{"type":"RemoveServer","id":0}                   remove a server from the configuration, then stop its process
//	{"type":"TransferLeader","id":1}                 hand leadership to a voter; returns once it leads
//
// each with an optional "timeout_ms" (default 30 s). An added server is a
// server like the others: every operation that names a server may name it
// once it is added, and none may name a removed one. And load:
//
//	{"type":"Load","clients":4,"max_errors":0}       start clients that put messages of their own, one after
//	                                                 another, until StopLoad (or the end of the scenario);
//	                                                 with "max_errors", more puts that fail (after the client's
//	                                                 own retries) than that fail the run
//	{"type":"StopLoad"}                              stop them, and wait for their last puts
//
// Where an operation names a server (Crash, Pause, Resume, Restart,
// Isolate, Expect, RemoveServer), "id" may also be "leader", the server leading at that moment,
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
	Clients   int // Load's "clients"
	MaxErrors int // Load's "max_errors"; -1 when not given
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
	case "AddServer":
		return fmt.Sprintf("AddServer{id: %d, port: %d}", op.ID, op.Port)
	case "Load":
		if op.MaxErrors >= 0 {
			return fmt.Sprintf("Load{clients: %d, max_errors: %d}", op.Clients, op.MaxErrors)
		}
		return fmt.Sprintf("Load{clients: %d}", op.Clients)
	case "StopLoad":
		return "StopLoad"
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

	"AddServer":      {[]string{"id", "port"}, []string{"timeout_ms"}},
	"RemoveServer":   {[]string{"id"}, []string{"timeout_ms"}},
	"TransferLeader": {[]string{"id"}, []string{"timeout_ms"}},
	"Load":           {[]string{"clients"}, []string{"max_errors"}},
	"StopLoad":       {nil, nil},
}

// membershipOps are the operations that change the configuration; their
// deadline defaults to defaultChangeMs: adding a server waits for it to
// start and catch up.
var membershipOps = map[string]bool{"AddServer": true, "RemoveServer": true, "TransferLeader": true}

// defaultChangeMs is the deadline of a membership operation without one.
const defaultChangeMs = 30000

// MaxServerID bounds the id of a server a scenario adds: ids are small
// numbers, and the harness names files and certificates after them.
const MaxServerID = 999

// MaxLoadClients bounds Load's "clients".
const MaxLoadClients = 64

// defaultWaitMs is the deadline of WaitLeader and Expect without one.
const defaultWaitMs = 10000

// maxWaitMs bounds "ms" and "timeout_ms": a scenario that waits an hour is
// a typo, and would only end at the run's deadline, for another reason.
const maxWaitMs = 3_600_000

// MaxServers bounds a scenario's servers, started and added: each is a
// process, and partitions cut each directed link between them,
// n*(n-1) of them.
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
	op := Op{Type: typ, Len: -1, MaxErrors: -1, TimeoutMs: defaultWaitMs, Server: -3}
	if membershipOps[typ] {
		op.TimeoutMs = defaultChangeMs
	}
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
		case "clients":
			op.Clients, err = nat(v)
			if err == nil && (op.Clients < 1 || op.Clients > MaxLoadClients) {
				err = fmt.Errorf("%d: between 1 and %d", op.Clients, MaxLoadClients)
			}
		case "max_errors":
			op.MaxErrors, err = nat(v)
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
var serverOps = map[string]bool{"Crash": true, "Pause": true, "Resume": true, "Restart": true, "Isolate": true, "Expect": true, "RemoveServer": true}

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
// within it or added before, ports consistent per server and distinct
// between servers, no operation on a server removed before.
func (sc *Scenario) check() error {
	count := 0
	ports := map[int]int{} // server to its client port
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
		for id, p := range ports {
			if p == op.Port && id != op.ID {
				return fmt.Errorf("op %d (Start): server %d on port %d, which is server %d's", op.Index, op.ID, op.Port, id)
			}
		}
		count, ports[op.ID] = op.Count, op.Port
	}
	if count == 0 {
		return fmt.Errorf("no Start: nothing to run")
	}
	known := map[int]bool{} // the servers started or added so far
	for id := 0; id < count; id++ {
		known[id] = true
	}
	removedBy := map[int]int{} // server to the op that removed it
	for _, op := range sc.Ops {
		var servers []int // the servers the operation names
		switch op.Type {
		case "Sleep", "Heal", "WaitLeader", "Put", "Get", "Disconnect", "Load", "StopLoad":
		case "Connect":
			servers = []int{op.Server}
		case "Cut":
			servers = []int{op.From, op.To}
		case "Partition":
			for _, g := range op.Groups {
				servers = append(servers, g...)
			}
		case "AddServer":
			if err := checkAdd(op, known, removedBy, ports); err != nil {
				return fmt.Errorf("op %d (AddServer): %w", op.Index, err)
			}
			known[op.ID], ports[op.ID] = true, op.Port
			continue
		default:
			servers = []int{op.ID}
		}
		for _, id := range servers {
			if id < 0 { // "leader", "last-leader": resolved when the op runs
				continue
			}
			if !known[id] {
				return fmt.Errorf("op %d (%s): server %d, but the cluster has %d servers and no AddServer{id: %d} comes before", op.Index, op.Type, id, count, id)
			}
			if by, ok := removedBy[id]; ok {
				return fmt.Errorf("op %d (%s): server %d was removed by op %d", op.Index, op.Type, id, by)
			}
		}
		if op.Type == "RemoveServer" && op.ID >= 0 {
			removedBy[op.ID] = op.Index
		}
	}
	return nil
}

// checkAdd checks an AddServer against the servers before it.
func checkAdd(op Op, known map[int]bool, removedBy map[int]int, ports map[int]int) error {
	if by, ok := removedBy[op.ID]; ok {
		return fmt.Errorf("server %d was removed by op %d, and a removed id is never used again", op.ID, by)
	}
	if known[op.ID] {
		return fmt.Errorf("server %d already exists", op.ID)
	}
	if op.ID > MaxServerID {
		return fmt.Errorf("id %d: at most %d", op.ID, MaxServerID)
	}
	if len(known) >= MaxServers {
		return fmt.Errorf("server %d would be the %dth: the harness runs at most %d servers, started and added", op.ID, len(known)+1, MaxServers)
	}
	if op.Port < 1 || op.Port > 65535 {
		return fmt.Errorf("port %d is not a TCP port", op.Port)
	}
	for id, p := range ports {
		if p == op.Port {
			return fmt.Errorf("port %d is server %d's", op.Port, id)
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

// ServerIDs returns the ids of every server the scenario starts or adds,
// sorted: those a certificate directory must hold certificates for.
func (sc *Scenario) ServerIDs() []uint64 {
	seen := map[uint64]bool{}
	for id := 0; id < sc.Servers(); id++ {
		seen[uint64(id)] = true
	}
	for _, op := range sc.Ops {
		if op.Type == "AddServer" {
			seen[uint64(op.ID)] = true
		}
	}
	ids := make([]uint64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
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
