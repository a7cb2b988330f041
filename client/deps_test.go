package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoReplica checks the reason this package exists: a program
// that only talks to a cluster links neither the replica (engine) nor its
// write-ahead log, its snapshot store or Pebble.
func TestImportsNoReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/paxos-go/paxos/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/paxos-go/paxos/engine",
		"github.com/paxos-go/paxos/engine/session",
		"github.com/paxos-go/paxos/wal",
		"github.com/paxos-go/paxos/storage",
		"github.com/cockroachdb/pebble",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			// A package or one under it (engine/paxos, the pure protocol
			// core, is allowed: the configuration type is its).
			if (dep == f || strings.HasPrefix(dep, f+"/")) && !strings.HasPrefix(dep, "github.com/paxos-go/paxos/engine/paxos") {
				t.Errorf("the client package depends on %s", dep)
			}
		}
	}
}
