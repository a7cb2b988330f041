package harness

import (
	"context"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/internal/chatmodel"
	"github.com/paxos-go/paxos/net/certs"
)

func TestParseErrorsNameTheOp(t *testing.T) {
	for _, tc := range []struct {
		json, want string
	}{
		{`{"type":"Start"}`, "not a JSON array"},
		{`[{"type":"Start","id":0,"port":1,"count":1}] trailing`, "data after the array"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Jump","id":0}]`, "op 1: unknown type \"Jump\""},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Put","id":0}]`, "op 1: Put: missing field \"message\""},
		{`[{"id":0}]`, `op 0: no "type"`},
		{`[{"type":"Start","id":-1,"port":1,"count":1}]`, "op 0: Start: field \"id\""},
		{`[{"type":"Start","id":0,"port":1.5,"count":1}]`, "op 0: Start: field \"port\""},
		{`[{"type":"Start","id":2,"port":1,"count":2}]`, "op 0 (Start): id 2"},
		{`[{"type":"Start","id":0,"port":1,"count":2},{"type":"Start","id":1,"port":2,"count":3}]`, "op 1 (Start): count 3"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Crash","id":5}]`, "op 1 (Crash): server 5"},
		{`[{"type":"Sleep","ms":10}]`, "no Start"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Put","id":0,"message":7}]`, "op 1: Put: field \"message\""},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Get","id":"leader"}]`, "op 1: Get: field \"id\""},
		{`[{"type":"Start","id":0,"port":1,"count":0}]`, "op 0 (Start): count 0"},
		{`[{"type":"Start","id":0,"port":1,"count":17}]`, "op 0 (Start): count 17: the harness runs at most 16 servers"},
		{`[{"type":"Start","id":0,"port":1,"count":1000000000}]`, "count 1000000000"},
		{`[{"type":"Start","id":0,"port":0,"count":1}]`, "port 0 is not a TCP port"},
		{`[{"type":"Start","id":0,"port":65536,"count":1}]`, "port 65536 is not a TCP port"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Sleep","ms":-5}]`, "op 1: Sleep: field \"ms\": -5 is not a non-negative integer"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Sleep","ms":3600001}]`, "op 1: Sleep: field \"ms\": 3600001 ms: at most 3600000"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Sleep","ms":1e12}]`, "op 1: Sleep: field \"ms\""},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"WaitLeader","timeout_ms":99999999}]`, "op 1: WaitLeader: field \"timeout_ms\": 99999999 ms"},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Expect","id":0,"timeout_ms":-1}]`, "op 1: Expect: field \"timeout_ms\""},
		{`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Put","id":0,"message":"` + strings.Repeat("x", 64<<10+1) + `"}]`, "op 1: Put: field \"message\": 65537 bytes: a chat message holds at most 65536"},
	} {
		_, err := Parse("t", []byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.json, err, tc.want)
		}
	}
}

// TestParseMembershipOps: the membership and load operations are read
// with their defaults, and an added server may be named once it is added.
func TestParseMembershipOps(t *testing.T) {
	sc, err := Parse("t", []byte(`[
		{"type":"Start","id":0,"port":11000,"count":3},
		{"type":"Load","clients":4},
		{"type":"AddServer","id":3,"port":11003},
		{"type":"Crash","id":3},
		{"type":"Restart","id":3},
		{"type":"Partition","groups":[[0,3],[1,2]]},
		{"type":"Connect","id":9,"server":3},
		{"type":"TransferLeader","id":3,"timeout_ms":5000},
		{"type":"RemoveServer","id":"leader"},
		{"type":"RemoveServer","id":0},
		{"type":"StopLoad"},
		{"type":"Load","clients":1,"max_errors":0}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	ops := sc.Ops
	if ops[1].Clients != 4 || ops[1].MaxErrors != -1 || ops[11].MaxErrors != 0 {
		t.Errorf("Load parsed as %+v and %+v", ops[1], ops[11])
	}
	if ops[2].ID != 3 || ops[2].Port != 11003 || ops[2].TimeoutMs != defaultChangeMs {
		t.Errorf("AddServer parsed as %+v", ops[2])
	}
	if ops[7].TimeoutMs != 5000 || ops[8].ID != LeaderID || ops[9].ID != 0 {
		t.Errorf("parsed %+v, %+v, %+v", ops[7], ops[8], ops[9])
	}
	for i, want := range map[int]string{1: "Load{clients: 4}", 2: "AddServer{id: 3, port: 11003}", 7: "TransferLeader{id: 3}",
		8: "RemoveServer{id: leader}", 10: "StopLoad", 11: "Load{clients: 1, max_errors: 0}"} {
		if got := ops[i].String(); got != want {
			t.Errorf("op %d prints as %q, want %q", i, got, want)
		}
	}
}

func TestParseMembershipErrors(t *testing.T) {
	const start = `{"type":"Start","id":0,"port":11000,"count":3},`
	for _, tc := range []struct {
		ops, want string
	}{
		{`{"type":"AddServer","id":3}`, `op 1: AddServer: missing field "port"`},
		{`{"type":"AddServer","port":11003}`, `op 1: AddServer: missing field "id"`},
		{`{"type":"AddServer","id":"leader","port":11003}`, `op 1: AddServer: field "id"`},
		{`{"type":"AddServer","id":1,"port":11003}`, "op 1 (AddServer): server 1 already exists"},
		{`{"type":"AddServer","id":3,"port":11000}`, "op 1 (AddServer): port 11000 is server 0's"},
		{`{"type":"AddServer","id":3,"port":0}`, "op 1 (AddServer): port 0 is not a TCP port"},
		{`{"type":"AddServer","id":1000,"port":11003}`, "op 1 (AddServer): id 1000: at most 999"},
		{`{"type":"AddServer","id":3,"port":11003},{"type":"AddServer","id":4,"port":11003}`, "op 2 (AddServer): port 11003 is server 3's"},
		{`{"type":"RemoveServer","id":2},{"type":"AddServer","id":2,"port":11005}`, "op 2 (AddServer): server 2 was removed by op 1, and a removed id is never used again"},
		{`{"type":"RemoveServer","id":2},{"type":"Restart","id":2}`, "op 2 (Restart): server 2 was removed by op 1"},
		{`{"type":"RemoveServer","id":2},{"type":"Partition","groups":[[0],[1,2]]}`, "op 2 (Partition): server 2 was removed by op 1"},
		{`{"type":"RemoveServer","id":2},{"type":"RemoveServer","id":2}`, "op 2 (RemoveServer): server 2 was removed by op 1"},
		{`{"type":"Crash","id":3},{"type":"AddServer","id":3,"port":11003}`, "op 1 (Crash): server 3, but the cluster has 3 servers and no AddServer{id: 3} comes before"},
		{`{"type":"TransferLeader","id":7}`, "op 1 (TransferLeader): server 7"},
		{`{"type":"TransferLeader","id":"leader"}`, `op 1: TransferLeader: field "id"`},
		{`{"type":"RemoveServer","id":0,"timeout_ms":4000000}`, `op 1: RemoveServer: field "timeout_ms"`},
		{`{"type":"Connect","id":0,"server":3}`, "op 1 (Connect): server 3"},
		{`{"type":"Load"}`, `op 1: Load: missing field "clients"`},
		{`{"type":"Load","clients":0}`, `op 1: Load: field "clients": 0: between 1 and 64`},
		{`{"type":"Load","clients":65}`, `op 1: Load: field "clients": 65: between 1 and 64`},
		{`{"type":"Load","clients":1,"max_errors":-1}`, `op 1: Load: field "max_errors"`},
		{`{"type":"Start","id":1,"port":11000,"count":3}`, "op 1 (Start): server 1 on port 11000, which is server 0's"},
	} {
		_, err := Parse("t", []byte("["+start+tc.ops+"]"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.ops, err, tc.want)
		}
	}
	// Sixteen servers in all, started and added.
	ops := `{"type":"Start","id":0,"port":1,"count":15}`
	for id := 15; id <= 16; id++ {
		ops += fmt.Sprintf(`,{"type":"AddServer","id":%d,"port":%d}`, id, 100+id)
	}
	if _, err := Parse("t", []byte("["+ops+"]")); err == nil || !strings.Contains(err.Error(), "op 2 (AddServer): server 16 would be the 17th: the harness runs at most 16 servers") {
		t.Errorf("a 17th server: %v", err)
	}
}

func TestParseIgnoresUnknownKeysAndReadsTheOriginals(t *testing.T) {
	sc, err := Parse("t", []byte(`[{"type":"Start","id":0,"port":10000,"count":1,"colour":"blue"},{"type":"Crash","id":"leader"},{"type":"Connect","id":7,"server":0}]`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Ops[1].ID != LeaderID || sc.Ops[2].Server != 0 || sc.Ops[2].ID != 7 {
		t.Fatalf("parsed %+v", sc.Ops)
	}
	all, err := LoadAll(filepath.Join("..", "tests", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 16 {
		t.Fatalf("%d scenarios, want the 8 original ones and at least 8 more", len(all))
	}
}

// TestRunCluster: a run's cluster ID is one that certificates accept,
// whatever the scenario's file is called.
func TestRunCluster(t *testing.T) {
	for _, name := range []string{"basic", "with space", "dots.and/slashes", "ünïcode", "", strings.Repeat("long", 30)} {
		id := runCluster(name)
		if err := certs.ValidateClusterID(id); err != nil {
			t.Errorf("%q: cluster %q: %v", name, id, err)
		}
		if !strings.HasPrefix(id, "harness-") {
			t.Errorf("%q: cluster %q", name, id)
		}
	}
	if a, b := runCluster("x"), runCluster("x"); a == b {
		t.Errorf("two runs of one scenario share cluster %q", a)
	}
}

// TestRunRefusesBadOptions: options that no default stands for fail the
// run before it starts anything.
func TestRunRefusesBadOptions(t *testing.T) {
	sc, err := Parse("t", []byte(`[{"type":"Start","id":0,"port":1,"count":1}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "Options.Server is empty"},
		{Options{Server: "x", GetTimeout: -time.Second}, "Options.GetTimeout -1s is negative"},
		{Options{Server: "x", ElectionTimeout: -1}, "Options.ElectionTimeout"},
		{Options{Server: "x", SettleTimeout: -1}, "Options.SettleTimeout"},
		{Options{Server: "x", TLSDir: "d", ClusterID: "c", Insecure: true}, "choose one"},
		{Options{Server: "x", TLSDir: "d"}, "needs Options.ClusterID"},
		{Options{Server: "x", ClusterID: "c"}, "Options.ClusterID is for Options.TLSDir"},
	} {
		r := Run(context.Background(), sc, tc.opts)
		if r.Pass() || !strings.Contains(strings.Join(r.Failures, "; "), tc.want) {
			t.Errorf("%+v: %v, want a failure containing %q", tc.opts, r.Failures, tc.want)
		}
	}
}

func TestOracles(t *testing.T) {
	if f := checkReads([][]string{{"a"}, {"a", "b"}, {"a", "b"}}); len(f) != 0 {
		t.Errorf("consistent reads judged bad: %v", f)
	}
	if f := checkReads([][]string{{"a", "b"}, {"b"}}); len(f) != 1 || !strings.Contains(f[0], "does not extend") {
		t.Errorf("a read that goes back: %v", f)
	}
	if f := checkReads([][]string{{"a", "a"}}); len(f) != 1 || !strings.Contains(f[0], "twice") {
		t.Errorf("a duplicate: %v", f)
	}
	if f := checkFinal([]string{"a", "b"}, []string{"a", "c"}); len(f) != 1 || !strings.Contains(f[0], `"c"`) {
		t.Errorf("a lost acknowledged put: %v", f)
	}
}

func TestLinearizabilityOracle(t *testing.T) {
	put := func(m string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: chatmodel.Input{Put: true, Text: m}, Call: call, Return: ret}
	}
	get := func(log string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: chatmodel.Input{}, Output: chatmodel.Output{Log: log}, Call: call, Return: ret}
	}
	dir := t.TempDir()
	good := []porcupine.Operation{put("a", 0, 10), put("b", 5, 20), get("a,b", 30, 40), put("c", 35, 1<<62)}
	if _, err := checkLinearizable(good, []string{"a", "b", "c"}, 100, dir); err != nil {
		t.Fatalf("a linearizable history: %v", err)
	}
	// A stale read: "a" was acknowledged before the get began, which did
	// not see it.
	stale := []porcupine.Operation{put("a", 0, 10), get("", 20, 30)}
	path, err := checkLinearizable(stale, []string{"a"}, 100, dir)
	if err == nil || path == "" {
		t.Fatalf("a stale read went unnoticed: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no picture: %v", err)
	}
}

// TestFrontCutsBySource: a front tells who dialled it from the socket
// table, forwards that server's connections, and cuts only its link.
func TestFrontCutsBySource(t *testing.T) {
	if err := checkSocketTable(); err != nil {
		t.Skip(err)
	}
	echo, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	// This test process plays server 7.
	var mu sync.Mutex
	pids := map[int]int{os.Getpid(): 7}
	dialler := func(from, to int) (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		var ps []int
		for p := range pids {
			ps = append(ps, p)
		}
		pid, ok, err := socketOwner(from, to, ps)
		if err != nil || !ok {
			return 0, false
		}
		id, ok := pids[pid]
		return id, ok
	}
	f, err := newFront(0, echo.Addr().String(), dialler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	// roundTrip reports whether a line comes back through the front.
	roundTrip := func() bool {
		c, err := stdnet.Dial("tcp", f.addr())
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return false
		}
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf)
		return err == nil && string(buf) == "ping\n"
	}
	if !roundTrip() {
		t.Fatal("no echo through an open link")
	}
	f.setCut(3, true) // another server's link: not ours
	if !roundTrip() {
		t.Fatal("cutting server 3's link cut server 7's")
	}
	c, err := stdnet.Dial("tcp", f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	f.setCut(7, true)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("an open connection of server 7 survived the cut of its link")
	}
	if roundTrip() {
		t.Fatal("server 7 got through its cut link")
	}
	f.heal()
	if !roundTrip() {
		t.Fatal("no echo after heal")
	}
	// A process the harness does not run is refused.
	mu.Lock()
	pids = map[int]int{}
	mu.Unlock()
	if roundTrip() {
		t.Fatal("a stranger got through")
	}
}
