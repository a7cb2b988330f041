package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/internal/memnet"
	"github.com/paxos-go/paxos/storage"
)

// Regressions for problems a review of the durability work found; each
// test failed before its fix.

// TestConcurrentStartsOnOneDataDir claims one data directory from four
// goroutines at once, 50 times each, while another reads REPLICA. (Before,
// the directory was claimed before anything locked it, and every writer
// shared REPLICA.tmp: concurrent starts were handed the same incarnation,
// the file went back to an older one, or was read half written.) Every
// claim must get an incarnation no other got, or be refused because the
// directory is in use; the file must never go back nor be damaged.
func TestConcurrentStartsOnOneDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := claim(dir, "c", 1); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		issued   = map[uint64]int{}
		refused  int
		stop     atomic.Bool
		readErrs []string
		wg       sync.WaitGroup
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		var last uint64
		for !stop.Load() {
			b, err := os.ReadFile(filepath.Join(dir, identityFile))
			if err != nil {
				readErrs = append(readErrs, err.Error())
				continue
			}
			id, err := parseIdentity(identityFile, b)
			switch {
			case err != nil:
				readErrs = append(readErrs, err.Error())
			case id.incarnation < last:
				readErrs = append(readErrs, fmt.Sprintf("REPLICA went back from incarnation %d to %d", last, id.incarnation))
			}
			last = max(last, id.incarnation)
		}
	}()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				inc, lock, err := claimDataDir(dir, "c", 1, true)
				if err != nil {
					if !errors.Is(err, ErrDataDirLocked) {
						t.Errorf("a claim failed otherwise than on the lock: %v", err)
						return
					}
					mu.Lock()
					refused++
					mu.Unlock()
					continue
				}
				// While the lock is held, the file says this life.
				b, err := os.ReadFile(filepath.Join(dir, identityFile))
				if id, perr := parseIdentity(identityFile, b); err != nil || perr != nil || id.incarnation != inc {
					t.Errorf("claimed incarnation %d; REPLICA holds %q (%v %v)", inc, b, err, perr)
				}
				mu.Lock()
				issued[inc]++
				mu.Unlock()
				lock.Close()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-readDone
	if len(readErrs) > 0 {
		t.Fatalf("the reader of REPLICA saw %d bad reads; first: %s", len(readErrs), readErrs[0])
	}
	for inc, n := range issued {
		if n > 1 {
			t.Fatalf("incarnation %d was handed out %d times", inc, n)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, identityFile))
	id, err := parseIdentity(identityFile, b)
	if err != nil || id.incarnation != uint64(len(issued))+1 {
		t.Fatalf("REPLICA says incarnation %d (%v) after %d claims", id.incarnation, err, len(issued)+1)
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, identityFile+"*.tmp")); len(temps) > 0 {
		t.Fatalf("temporary files left: %v", temps)
	}
	t.Logf("%d claims, %d refused while another held the directory", len(issued), refused)
}

// TestSecondStartOnALockedDataDirFails: a replica is running on a data
// directory; a second start there fails, saying the directory is in use,
// and leaves the first replica's identity alone; once the first closes,
// the directory can be started again.
func TestSecondStartOnALockedDataDirFails(t *testing.T) {
	dir := t.TempDir()
	net := memnet.NewMemNetwork()
	start := func() (*Node, error) {
		return Start(Config{ID: 1, Peers: map[uint64]string{1: ""}, ClusterID: "c1", DataDir: dir, NoSync: true, Transport: net.Transport(1)}, &logMachine{})
	}
	n, err := start()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, identityFile))
	if n2, err := start(); err == nil {
		n2.Close()
		n.Close()
		t.Fatal("a second replica started on a data directory in use")
	} else if !errors.Is(err, ErrDataDirLocked) || !strings.Contains(err.Error(), filepath.Join(dir, lockFile)) {
		n.Close()
		t.Fatalf("second start: %v; want ErrDataDirLocked naming the lock file", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, identityFile)); string(after) != string(before) {
		n.Close()
		t.Fatalf("the refused start changed REPLICA from %q to %q", before, after)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, err = start()
	if err != nil {
		t.Fatalf("start after the first replica closed: %v", err)
	}
	n.Close()
}

// TestIdentityFileWithAnOverlongLine: an identity file whose lines are
// all there, followed by a line over 64 KiB. (Before, the scanner stopped
// at the long line without an error being checked, and the file was taken
// as sound.) It is damage, and the error names the file.
func TestIdentityFileWithAnOverlongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, identityFile)
	body := "cluster=c1\nreplica=1\nincarnation=1\n" + strings.Repeat("x", 70000) + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := claim(dir, "c1", 1); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("identity file with a line of 70000 bytes: %v, want an error naming %s", err, path)
	}
}

// TestSnapshotHeaderLengthIsChecked: a 17-byte snapshot whose header says
// its session table takes 4 GiB. (Before, loadSnapshot allocated the table
// from the header before checking it against the snapshot's size: Start
// allocated 4 GiB.) It must be refused as malformed, allocating nothing
// of the sort.
func TestSnapshotHeaderLengthIsChecked(t *testing.T) {
	for _, length := range []int{0xFFFFFFF0, 1} {
		s := storage.NewMem()
		w, _ := s.Create(5, storage.Ballot{})
		w.Write(legacySnapshotHeader(5, length))
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{snaps: s, log: hclog.NewNullLogger()}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = n.loadSnapshot(m, false)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "malformed header") {
			t.Fatalf("a %d-byte snapshot declaring a session table of %d bytes: %v, want a malformed header", m.Size, length, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
			t.Fatalf("loading a %d-byte snapshot allocated %d MiB", m.Size, got>>20)
		}
	}
}
