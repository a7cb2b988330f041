package client_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/engine"
)

// TestErrorsMatchEngine checks that an error from either package matches
// the other's sentinels with errors.Is and errors.As.
func TestErrorsMatchEngine(t *testing.T) {
	pairs := []struct{ c, e error }{
		{client.ErrNotLeader, engine.ErrNotLeader}, {client.ErrBusy, engine.ErrBusy},
		{client.ErrClosed, engine.ErrClosed}, {client.ErrTimeout, engine.ErrTimeout},
		{client.ErrStale, engine.ErrStale}, {client.ErrSessionExpired, engine.ErrSessionExpired},
		{client.ErrTooLarge, engine.ErrTooLarge}, {client.ErrResponseNotKept, engine.ErrResponseNotKept},
		{client.ErrRemoved, engine.ErrRemoved}, {client.ErrDataLost, engine.ErrDataLost},
		{client.ErrChangeInProgress, engine.ErrChangeInProgress}, {client.ErrBadChange, engine.ErrBadChange},
		{client.ErrNotCaughtUp, engine.ErrNotCaughtUp}, {client.ErrBadSequence, engine.ErrBadSequence},
		{client.ErrBadCommand, engine.ErrBadCommand},
	}
	for _, p := range pairs {
		if !errors.Is(fmt.Errorf("wrapped: %w", p.c), p.e) || !errors.Is(fmt.Errorf("wrapped: %w", p.e), p.c) {
			t.Errorf("%v: the client's and the engine's errors differ", p.c)
		}
	}
	var err error = fmt.Errorf("wrapped: %w", &engine.NotLeaderError{LeaderKnown: true, LeaderID: 2})
	var nl *client.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != 2 || !errors.Is(err, client.ErrNotLeader) {
		t.Errorf("an engine.NotLeaderError is not a client.NotLeaderError: %v", err)
	}
}

// TestWindowMatchesEngine: the client keeps at most as many commands
// outstanding as the session table has room for.
func TestWindowMatchesEngine(t *testing.T) {
	if client.Window != engine.Window {
		t.Fatalf("client.Window %d, engine.Window %d", client.Window, engine.Window)
	}
}
