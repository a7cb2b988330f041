package engine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The readiness rule, case by case, on the state a node publishes.
func TestReadinessRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     Status
		closed bool
		failed error
		want   string // "" for ready
	}{
		{"leader", Status{HasLead: true, Leader: 1, ID: 1, Applied: 50, LeaderCommit: 50}, false, nil, ""},
		{"follower within the window", Status{HasLead: true, Leader: 2, Applied: 10, LeaderCommit: 10 + ReadyLagSlots}, false, nil, ""},
		{"follower past the window", Status{HasLead: true, Leader: 2, Applied: 10, LeaderCommit: 11 + ReadyLagSlots}, false, nil, "catching up: applied slot 10, 1001 behind"},
		{"no leader", Status{Applied: 10, LeaderCommit: 10}, false, nil, "no leader known"},
		{"joining", Status{Joining: true}, false, nil, "waits to be added"},
		{"removed", Status{Removed: true, HasLead: true}, false, nil, "removed"},
		{"closed", Status{HasLead: true}, true, nil, "closed"},
		{"failed", Status{HasLead: true}, true, errors.New("disk on fire"), "stopped: disk on fire"},
	} {
		n := &Node{}
		st := tc.st
		n.status.Store(&st)
		n.closed, n.failure = tc.closed, tc.failed
		err := n.Readiness()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want ready", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want ErrNotReady saying %q", tc.name, err, tc.want)
		}
	}
}

// A cluster's replicas become ready once they know the leader; a replica
// left alone loses its leader and its readiness, though it is alive.
func TestReadinessFollowsTheCluster(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	waitFor(t, 10*time.Second, "every replica ready", func() bool {
		for _, n := range c.running() {
			if n.Readiness() != nil {
				return false
			}
		}
		return true
	})
	alone := leader%3 + 1
	for id := range c.running() {
		if id != alone {
			c.crash(id)
		}
	}
	waitFor(t, 10*time.Second, "the replica left alone to be not ready", func() bool {
		err := c.node(alone).Readiness()
		return err != nil && strings.Contains(err.Error(), "no leader known")
	})
	n := c.node(alone)
	c.crash(alone)
	if err := n.Readiness(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a closed replica: %v", err)
	}
}
