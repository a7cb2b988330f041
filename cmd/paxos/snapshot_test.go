package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/storage"
)

// writeSnapshots makes a data directory whose store holds snapshots of
// slots 10 and 20.
func writeSnapshots(t *testing.T) string {
	dir := t.TempDir()
	store, err := storage.OpenPebble(filepath.Join(dir, "snapshots"), storage.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []uint64{10, 20} {
		w, err := store.Create(slot, storage.Ballot{Round: 3, Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(strings.Repeat("state ", int(slot))))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSnapshotLs(t *testing.T) {
	dir := writeSnapshots(t)
	for _, arg := range []string{dir, filepath.Join(dir, "snapshots")} {
		code, out, errOut := runCLI("snapshot", "ls", arg)
		if code != 0 {
			t.Fatalf("snapshot ls %s: exit %d, %s", arg, code, errOut)
		}
		for _, want := range []string{"SLOT", "\n10 ", "\n20 ", " 3.1 ", " 60 ", " 120 ", " ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("snapshot ls output lacks %q:\n%s", want, out)
			}
		}
	}
}

// TestSnapshotLsCorrupt rots one chunk of a snapshot behind the store's
// back: ls lists both, marks that one CORRUPT, and exits 1.
func TestSnapshotLsCorrupt(t *testing.T) {
	dir := writeSnapshots(t)
	// The store keeps each snapshot in a file named for its slot (see
	// storage.Pebble): rot the first bytes of slot 20's.
	f, err := os.OpenFile(filepath.Join(dir, "snapshots", fmt.Sprintf("%016x.snap", 20)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rot!!"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, errOut := runCLI("snapshot", "ls", dir)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(errOut, "1 of 2") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestSnapshotLsNotAStore(t *testing.T) {
	code, _, errOut := runCLI("snapshot", "ls", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "not a snapshot store") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}

// TestSnapshotLsBesideARunningReplica lists a store that another process
// holds open and keeps writing to, as a running replica does. (Before,
// ls said the directory was "not a snapshot store", blaming a lock it did
// not name.) Without --copy, ls must say plainly that a running replica
// holds the store, and how to look; with --copy, it must list the
// snapshots, all sound; and the store must be unharmed.
func TestSnapshotLsBesideARunningReplica(t *testing.T) {
	dir := writeSnapshots(t)
	child := exec.Command(os.Args[0], "-test.run=^TestHoldStore$")
	child.Env = append(os.Environ(), "PAXOS_HOLD_STORE="+filepath.Join(dir, "snapshots"))
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("the process holding the store said %q, %v", line, err)
	}

	ls := func(args ...string) (int, string, string) {
		type result struct {
			code        int
			out, errOut string
		}
		done := make(chan result, 1)
		go func() {
			code, out, errOut := runCLI(append([]string{"snapshot", "ls"}, args...)...)
			done <- result{code, out, errOut}
		}()
		select {
		case r := <-done:
			return r.code, r.out, r.errOut
		case <-time.After(30 * time.Second):
			t.Fatalf("snapshot ls %v hangs beside a running replica", args)
			return 0, "", ""
		}
	}
	code, out, errOut := ls(dir)
	if code != 1 || !strings.Contains(errOut, "held by a running replica") || !strings.Contains(errOut, "paxos snapshot ls --copy "+dir) {
		t.Fatalf("snapshot ls beside a running replica: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for range 5 {
		code, out, errOut = ls("--copy", dir)
		if code != 0 || !strings.Contains(out, "\n10 ") || !strings.Contains(out, "\n20 ") || !strings.Contains(out, "\n30 ") || strings.Contains(out, "CORRUPT") {
			t.Fatalf("snapshot ls --copy beside a running replica: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	}

	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("the process holding the store: %v", err)
	}
	if code, out, errOut := ls(dir); code != 0 || strings.Contains(out, "CORRUPT") {
		t.Fatalf("snapshot ls once the replica stopped: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestHoldStore is the process of TestSnapshotLsBesideARunningReplica
// that holds the store: it opens it, says so, and rewrites the snapshots
// of slots 30 to 33 in turn until its stdin closes.
func TestHoldStore(t *testing.T) {
	dir := os.Getenv("PAXOS_HOLD_STORE")
	if dir == "" {
		t.Skip("run by TestSnapshotLsBesideARunningReplica")
	}
	store, err := storage.OpenPebble(dir, storage.PebbleOptions{ChunkBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	write := func(slot uint64, n int) {
		w, err := store.Create(slot, storage.Ballot{Round: 4, Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(strings.Repeat(fmt.Sprintf("state %d ", n), 1000+n%1000)))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write(30, 0)
	fmt.Println("holding")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	for n := 1; ; n++ {
		select {
		case <-closed:
			return
		default:
		}
		write(30+uint64(n%4), n)
	}
}
