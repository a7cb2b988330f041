package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/engine"
)

// TestSnapshotEvents: a follower cut off while the others snapshot and
// compact their logs catches up from the leader's snapshot; the leader
// reports the snapshots it took and the follower the one it installed,
// from the leader.
func TestSnapshotEvents(t *testing.T) {
	c := newMemCluster(t, 3, 1) // the memory store
	leader, lagger, _ := c.roles()
	c.net.Isolate(lagger)
	for seq := uint64(1); seq <= 100; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("command-%03d-%s", seq, strings.Repeat("x", 40)))
	}
	c.net.Heal()
	var installed engine.SnapshotInstalled
	waitFor(t, 30*time.Second, "SnapshotInstalled", func() bool {
		for {
			select {
			case e := <-c.node(lagger).Events():
				if s, ok := e.(engine.SnapshotInstalled); ok {
					installed = s
					return true
				}
			default:
				return false
			}
		}
	})
	if installed.From != leader || installed.Slot < 20 || installed.Bytes <= 0 {
		t.Fatalf("SnapshotInstalled %+v, want one from the leader, %d, of slot 20 or later", installed, leader)
	}
	taken := 0
	for len(c.node(leader).Events()) > 0 {
		if s, ok := (<-c.node(leader).Events()).(engine.SnapshotTaken); ok {
			if s.Slot == 0 || s.Bytes <= 0 {
				t.Fatalf("SnapshotTaken %+v", s)
			}
			taken++
		}
	}
	if taken == 0 {
		t.Fatal("the leader reported no SnapshotTaken, having snapshotted every 20 slots")
	}
}
