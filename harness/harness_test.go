package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/internal/chatmodel"
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
	} {
		_, err := Parse("t", []byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.json, err, tc.want)
		}
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
