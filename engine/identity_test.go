package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/internal/memnet"
)

// claim claims dir as a start does, and releases it as a Close does.
func claim(dir, cluster string, replica uint64) (uint64, error) {
	inc, lock, err := claimDataDir(dir, cluster, replica, false)
	if lock != nil {
		lock.Close()
	}
	return inc, err
}

// Each start of a replica is a new life: the incarnation grows and is on
// disk before the core gets it.
func TestIncarnationGrowsAcrossStarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b") // parents created too
	var last uint64
	for i := 0; i < 3; i++ {
		inc, err := claim(dir, "c1", 4)
		if err != nil {
			t.Fatal(err)
		}
		if inc <= last {
			t.Fatalf("start %d: incarnation %d after %d", i, inc, last)
		}
		last = inc
	}
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil || string(b) != "cluster=c1\nreplica=4\nincarnation=3\n" {
		t.Fatalf("identity file %q (%v)", b, err)
	}
}

// A data directory belongs to one replica of one cluster: any other is
// refused with an error that names both identities.
func TestDataDirRefusesAnotherReplica(t *testing.T) {
	dir := t.TempDir()
	if _, err := claim(dir, "c1", 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster string
		id      uint64
	}{{"c1", 2}, {"other", 1}, {"other", 2}} {
		_, err := claim(dir, tc.cluster, tc.id)
		if err == nil {
			t.Fatalf("replica %d of %q took replica 1 of c1's data dir", tc.id, tc.cluster)
		}
		for _, want := range []string{`replica 1 of cluster "c1"`, fmt.Sprintf("replica %d of cluster %q", tc.id, tc.cluster)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	}
}

// The review's case, through Start: replica 2 of cluster "other" started
// on replica 1's data dir is refused before it opens anything.
func TestStartRefusesAnotherReplicasDataDir(t *testing.T) {
	dir := t.TempDir()
	start := func(cluster string, id uint64) (*Node, error) {
		peers := map[uint64]string{1: "", 2: ""}
		net := memnet.NewMemNetwork()
		return Start(Config{ID: id, Peers: peers, ClusterID: cluster, DataDir: dir, NoSync: true, Transport: net.Transport(id)}, &logMachine{})
	}
	n, err := start("c1", 1)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if n, err := start("other", 2); err == nil {
		n.Close()
		t.Fatal("replica 2 of cluster other started on replica 1's data dir")
	} else if !strings.Contains(err.Error(), `replica 1 of cluster "c1"`) {
		t.Fatalf("error %q does not say whose the data dir is", err)
	}
}

// A damaged identity file is an error naming the file, never a panic or a
// silent new identity.
func TestDamagedIdentityFile(t *testing.T) {
	for _, body := range []string{"", "cluster=c1\n", "garbage", "cluster=c1\nreplica=x\nincarnation=1\n", "cluster=c1\nreplica=1\nincarnation=1\nincarnation=2\n"} {
		dir := t.TempDir()
		path := filepath.Join(dir, identityFile)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := claim(dir, "c1", 1); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("identity %q: err = %v, want one naming %s", body, err, path)
		}
	}
}

// A data dir with a log but no identity file is refused (found by review:
// the count started again at 1 and repeated an earlier life's ids).
func TestLogWithoutIdentityRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wal", "0000000000000001-0000000000000001.paxos"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := claim(dir, "c1", 1)
	if err == nil || !strings.Contains(err.Error(), "no "+identityFile) {
		t.Fatalf("err = %v, want a refusal that names the missing file", err)
	}
}
