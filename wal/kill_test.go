package wal

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var killRounds = flag.Int("wal.killrounds", 20, "rounds of TestKill9")

// killHelperEnv, set to a directory, makes the test binary run killHelper
// on it instead of the tests (see TestMain).
const killHelperEnv = "WAL_KILL_HELPER_DIR"

// killValue is the value the helper writes for slot in its life: the
// parent recomputes it to check what it reads back.
func killValue(life, slot uint64) []byte {
	v := fmt.Appendf(nil, "life %d slot %d ", life, slot)
	return append(v, bytes.Repeat([]byte{byte('a' + slot%26)}, int(slot*37%1500))...)
}

// killHelper is the child process of TestKill9: it opens the log in dir,
// with the real file system and the background preparation of segments,
// and appends until it is killed, printing every acknowledged save as
// "ack <first> <last> <life>" once Save has returned, and every compaction
// as "compact <slot>" before it starts.
func killHelper(dir string) int {
	life, _ := strconv.ParseUint(os.Getenv("WAL_KILL_HELPER_LIFE"), 10, 64)
	l, st, err := Open(dir, Options{SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: Open:", err)
		return 2
	}
	fmt.Printf("open %d %d\n", st.FirstSlot, st.LastSlot)
	rng := rand.New(rand.NewPCG(life, 99))
	next := st.LastSlot + 1
	for i := 0; ; i++ {
		if i%50 == 49 && next > st.FirstSlot+200 {
			c := Compacted{Slot: next - 100, Ballot: Ballot{Round: life, Node: 1}}
			// Announced first: from here on the slots up to c.Slot may be
			// gone, whether or not Compact returns before the kill.
			fmt.Printf("compact %d\n", c.Slot)
			if err := l.Compact(c); err != nil {
				fmt.Fprintln(os.Stderr, "helper: Compact:", err)
				return 2
			}
			continue
		}
		var b Batch
		for n := rng.IntN(4) + 1; n > 0; n-- {
			b.Entries = append(b.Entries, Entry{Slot: next, Ballot: Ballot{Round: life, Node: 1}, Value: killValue(life, next)})
			next++
		}
		synced := rng.IntN(4) > 0
		if err := l.Save(b, synced); err != nil {
			fmt.Fprintln(os.Stderr, "helper: Save:", err)
			return 2
		}
		if synced {
			fmt.Printf("ack %d %d %d\n", b.Entries[0].Slot, b.Entries[len(b.Entries)-1].Slot, life)
		}
	}
}

// TestKill9 runs the log in a child process (this test binary, re-run as
// killHelper) and kills it with SIGKILL at a random point, round after
// round on the same directory: after a random number of acknowledged
// saves, or at once (in the middle of Open). After each kill it opens the
// log itself and checks that every acknowledged slot is there with its
// value. -wal.killrounds sets the number of rounds.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	acked := map[uint64]uint64{} // slot -> life that wrote it
	var compacted uint64
	totalAcks, losses := 0, 0
	for round := 1; round <= *killRounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killHelperEnv+"="+dir, fmt.Sprintf("WAL_KILL_HELPER_LIFE=%d", round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := rng.IntN(300) + 1
		if rng.IntN(8) == 0 {
			killAt = 0 // at once: most likely in the middle of Open
		}
		acks := 0
		killed := false
		kill := func() {
			if !killed {
				killed = true
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		if killAt == 0 {
			kill()
		}
		// Every line read was printed after its Save returned, so it is
		// acknowledged, even if it is read after the kill was sent.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 4 && f[0] == "ack":
				first, _ := strconv.ParseUint(f[1], 10, 64)
				last, _ := strconv.ParseUint(f[2], 10, 64)
				life, _ := strconv.ParseUint(f[3], 10, 64)
				for s := first; s <= last; s++ {
					acked[s] = life
				}
				acks++
				totalAcks++
				if acks >= killAt {
					kill()
				}
			case len(f) == 2 && f[0] == "compact":
				c, _ := strconv.ParseUint(f[1], 10, 64)
				compacted = max(compacted, c)
			}
		}
		kill()
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: the helper was not killed: %v; stderr: %s", round, werr, stderr.String())
		}
		l, st, err := Open(dir, Options{SegmentBytes: 64 << 10})
		if err != nil {
			t.Fatalf("round %d: Open after kill -9: %v", round, err)
		}
		if st.Compacted.Slot > compacted {
			t.Errorf("round %d: the log is compacted up to slot %d; the helper asked for %d at most", round, st.Compacted.Slot, compacted)
		}
		for s := range acked {
			if s <= compacted {
				delete(acked, s)
			}
		}
		lost := 0
		for s, life := range acked {
			if s < st.FirstSlot || s > st.LastSlot {
				lost++
				continue
			}
			ents, err := l.Entries(s, s+1, 1<<30)
			if err != nil || len(ents) != 1 || !bytes.Equal(ents[0].Value, killValue(life, s)) {
				lost++
			}
		}
		l.Close()
		losses += lost
		if lost > 0 {
			t.Errorf("round %d (killed after %d acks): %d acknowledged slots lost or changed; log has %d..%d", round, acks, lost, st.FirstSlot, st.LastSlot)
		}
	}
	t.Logf("kill -9: %d rounds, %d acknowledged saves, %d acknowledged slots checked in the last round, %d lost", *killRounds, totalAcks, len(acked), losses)
}
