package engine

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/engine/session"
	"github.com/paxos-go/paxos/storage"
)

// snapshotNode is the part of a Node that writes and loads snapshots.
func snapshotNode(store storage.SnapshotStore, sm *logMachine) *Node {
	return &Node{snaps: store, log: hclog.NewNullLogger(), sm: sm, sessions: session.New(0)}
}

func sameConfigState(a, b paxos.ConfigState) bool {
	return slices.EqualFunc(a, b, func(x, y paxos.ScheduledConfig) bool { return x.From == y.From && x.Config.Equal(y.Config) })
}

// TestSnapshotCarriesConfigState: a snapshot holds the configuration
// state (a configuration that governs now and one scheduled), and loading
// it gives it back with the state machine.
func TestSnapshotCarriesConfigState(t *testing.T) {
	cs := paxos.Bootstrap([]paxos.NodeID{1, 2, 3}, map[paxos.NodeID]string{1: "h1:1", 2: "h2:1", 3: "h3:1"}, map[paxos.NodeID]string{1: "h1:2"})
	next, err := cs.Latest().Apply(paxos.ConfChange{Type: paxos.AddLearner, ID: 4, PeerAddr: "h4:1", ClientAddr: "h4:2"}, 40)
	if err != nil {
		t.Fatal(err)
	}
	cs = cs.Apply(40, paxos.EncodeConfigValue(next))
	store := storage.NewMem()
	n := snapshotNode(store, &logMachine{log: []string{"a", "b"}})
	n.applied, n.confs = 50, cs
	m, err := n.writeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	sm := &logMachine{}
	got, err := snapshotNode(store, sm).loadSnapshot(m, true)
	if err != nil {
		t.Fatal(err)
	}
	if !sameConfigState(got, cs) || len(got) != 2 || got[1].From != 40+paxos.ConfigWindow {
		t.Fatalf("loaded configuration state %v, want %v", got, cs)
	}
	if !slices.Equal(sm.entries(), []string{"a", "b"}) {
		t.Fatalf("restored %v", sm.entries())
	}
}

// TestSnapshotOfVersion1: a snapshot written before configuration changes
// still loads, without a configuration; a joining replica, which needs
// one, refuses it before restoring anything.
func TestSnapshotOfVersion1(t *testing.T) {
	store := storage.NewMem()
	var sessions []byte
	session.New(0).WriteTo(&byteWriter{&sessions})
	w, _ := store.Create(9, storage.Ballot{Round: 1, Node: 1})
	w.Write(append(legacySnapshotHeader(9, len(sessions)), sessions...))
	w.Write([]byte("old\n"))
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	sm := &logMachine{log: []string{"untouched"}}
	if _, err := snapshotNode(store, sm).loadSnapshot(m, true); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("a joining replica loading a version 1 snapshot: %v", err)
	}
	if !slices.Equal(sm.entries(), []string{"untouched"}) {
		t.Fatalf("the refused snapshot restored %v", sm.entries())
	}
	n := snapshotNode(store, sm)
	cs, err := n.loadSnapshot(m, false)
	if err != nil || cs != nil || n.snapHasConfig || !slices.Equal(sm.entries(), []string{"old"}) {
		t.Fatalf("loading a version 1 snapshot: %v, %v, has config %v, restored %v", cs, err, n.snapHasConfig, sm.entries())
	}
}

// TestSnapshotConfigStateIsChecked: a configuration part whose length is
// beyond the snapshot, or whose bytes are not a configuration state, is
// refused as malformed, allocating nothing of the length it claims.
func TestSnapshotConfigStateIsChecked(t *testing.T) {
	good := encodeConfigState(paxos.Bootstrap([]paxos.NodeID{1}, nil, nil))
	notConfig := []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9}
	for name, tc := range map[string]struct {
		confLen uint32
		conf    []byte
		want    string
	}{
		"length beyond the snapshot": {0xFFFFFFF0, nil, "malformed header"},
		"not a configuration":        {uint32(len(notConfig)), notConfig, "malformed configuration state"},
		"trailing bytes":             {uint32(len(good)) + 1, append(append([]byte(nil), good...), 0), "malformed configuration state"},
		"no configuration":           {1, []byte{0}, "malformed configuration state"},
	} {
		t.Run(name, func(t *testing.T) {
			store := storage.NewMem()
			hdr := append([]byte(nil), snapshotMagic...)
			hdr = append(hdr, snapshotVersion)
			hdr = binary.BigEndian.AppendUint64(hdr, 5)
			hdr = binary.BigEndian.AppendUint32(hdr, tc.confLen)
			hdr = append(hdr, tc.conf...)
			if tc.confLen == uint32(len(tc.conf)) {
				hdr = binary.BigEndian.AppendUint32(hdr, 0) // an empty session table follows
			}
			w, _ := store.Create(5, storage.Ballot{})
			w.Write(hdr)
			m, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = snapshotNode(store, &logMachine{}).loadSnapshot(m, false)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error saying %q", err, tc.want)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
				t.Fatalf("allocated %d MiB", got>>20)
			}
		})
	}
}

// TestBootstrapFile: the record of how a replica began reads back as
// written, and a damaged one is refused with an error naming the file.
func TestBootstrapFile(t *testing.T) {
	dir := t.TempDir()
	b, err := bootstrapOf(map[uint64]string{3: "h3:1", 1: "h1:1", 2: "[::1]:7000"}, map[uint64]string{1: "h1:2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []bootstrapRecord{b, {join: true}} {
		if err := writeBootstrap(dir, rec, true); err != nil {
			t.Fatal(err)
		}
		got, ok, err := readBootstrap(dir)
		if err != nil || !ok || !got.equal(rec) {
			t.Fatalf("read back %+v, %v, %v; wrote %+v", got, ok, err, rec)
		}
	}
	if _, err := bootstrapOf(map[uint64]string{1: "has space:1"}, nil); err == nil {
		t.Fatal("an address with a space was taken")
	}
	path := filepath.Join(dir, bootstrapFile)
	for _, body := range []string{
		"", "version=1\n", "version=2\nmode=join\n", "version=1\nmode=other\n",
		"version=1\nmode=join\nmember=1 a:1 -\n", "version=1\nmode=bootstrap\n",
		"version=1\nmode=bootstrap\nmember=2 a:1 -\nmember=1 b:1 -\n", "version=1\nmode=bootstrap\nmember=x a:1 -\n",
		"version=1\nmode=bootstrap\nmember=1 a:1\n", "version=1\nmode=bootstrap\nmember=1 a:1 -\nfoo=bar\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readBootstrap(dir); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("bootstrap file %q: %v, want an error naming %s", body, err, path)
		}
	}
}
