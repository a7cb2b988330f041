package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSequenceRule: what breaks the sequence rule (see the package doc) is
// refused with a typed error and never executed; and it stays so across a
// restart that replays the log, and one from a snapshot.
func TestSequenceRule(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.node(c.leader())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(client, seq uint64, payload string) {
		t.Helper()
		if _, err := n.Submit(ctx, client, seq, []byte(payload)); err != nil {
			t.Fatalf("client %d command %d: %v", client, seq, err)
		}
	}
	refused := func(client, seq uint64, want error, words string) {
		t.Helper()
		_, err := n.Submit(ctx, client, seq, []byte("refused"))
		if !errors.Is(err, want) || !strings.Contains(err.Error(), words) {
			t.Fatalf("client %d command %d: %v, want %v saying %q", client, seq, err, want, words)
		}
	}
	refused(0, 1, ErrBadSequence, "start at 1")
	refused(1, 0, ErrBadSequence, "start at 1")
	refused(5, 5, ErrSessionExpired, "first command is number 1")
	must(1, 1, "one")
	must(1, 2, "two")
	refused(1, 1, ErrStale, "")
	must(1, 3, "three")
	want := []string{"one", "two", "three"}
	if got := c.sm(1).entries(); !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}

	c.crash(1)
	n = c.start(1)
	waitFor(t, 30*time.Second, "the log replayed", func() bool { return n.Status().Applied >= n.Status().Commit && n.Status().HasLead })
	refused(1, 2, ErrStale, "")
	must(1, 4, "four")
	if got := c.sm(1).entries(); !slices.Equal(got, append(want, "four")) {
		t.Fatalf("after a restart, applied %q", got)
	}
	// And from a snapshot, which carries the rule.
	if _, err := n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.crash(1)
	n = c.start(1)
	waitFor(t, 30*time.Second, "a leader", func() bool { return n.Status().HasLead })
	refused(1, 3, ErrStale, "")
	refused(0, 9, ErrBadSequence, "start at 1")
}

// TestSequenceRuleOfEarlierClusters: a data directory whose bootstrap file
// predates the sequence rule keeps the rule of its version, under which a
// gap was executed, so that its log replays to the same state; but client
// ID 0 and number 0 are refused before proposal there too.
func TestSequenceRuleOfEarlierClusters(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.node(c.leader())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.Submit(ctx, 1, 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	c.crash(1)
	// As an earlier version wrote it: no sequence line.
	path := filepath.Join(c.dir, "1", bootstrapFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), "sequence=strict\n", "", 1)
	if old == string(data) {
		t.Fatalf("the bootstrap file of a new cluster has no sequence line:\n%s", data)
	}
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	n = c.start(1)
	waitFor(t, 30*time.Second, "a leader", func() bool { return n.Status().HasLead })
	if _, err := n.Submit(ctx, 1, 3, []byte("three")); err != nil {
		t.Fatalf("a gap on a cluster of an earlier version: %v, want it executed as that version did", err)
	}
	if _, err := n.Submit(ctx, 0, 1, []byte("zero")); !errors.Is(err, ErrBadSequence) {
		t.Fatalf("client ID 0: %v, want ErrBadSequence", err)
	}
	if got, want := c.sm(1).entries(), []string{"one", "three"}; !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
	// A snapshot carries the rule: after one, a restart keeps it.
	if _, err := n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.crash(1)
	n = c.start(1)
	waitFor(t, 30*time.Second, "a leader", func() bool { return n.Status().HasLead })
	if _, err := n.Submit(ctx, 1, 7, []byte("seven")); err != nil {
		t.Fatalf("a gap after a snapshot of an earlier cluster: %v", err)
	}
}
