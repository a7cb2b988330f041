package engine

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Durations that cannot work are refused before anything is opened, never
// replaced silently or left to divide by zero (an ElectionTimeout under
// 10 ns made the default tick zero).
func TestBadTimeoutsRefused(t *testing.T) {
	for _, tc := range []struct {
		election, heartbeat time.Duration
		want                string
	}{
		{5 * time.Nanosecond, 0, "below 1ms"},
		{-time.Second, 0, "negative"},
		{time.Second, -time.Millisecond, "negative"},
		{100 * time.Millisecond, 80 * time.Millisecond, "at most half"},
	} {
		dir := filepath.Join(t.TempDir(), "1")
		_, err := Start(Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: dir, Insecure: true,
			ElectionTimeout: tc.election, HeartbeatInterval: tc.heartbeat}, &logMachine{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ElectionTimeout %v, HeartbeatInterval %v: err = %v, want one saying %q", tc.election, tc.heartbeat, err, tc.want)
		}
	}
}
