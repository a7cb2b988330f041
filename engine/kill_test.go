package engine

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/internal/memnet"
	"github.com/paxos-go/paxos/storage"
)

var (
	engineKillRounds = flag.Int("engine.killrounds", 8, "rounds of TestKill9Engine")
	engineKillDir    = flag.String("engine.killdir", "", "data directory of TestKill9Engine, new or empty, kept afterwards for inspection (default: a temporary one)")
)

// engineKillHelperEnv, set to a data directory, makes the test binary run
// engineKillHelper on it instead of the tests (see TestMain);
// engineKillRoundEnv numbers the helper's life.
const (
	engineKillHelperEnv = "ENGINE_KILL_HELPER_DIR"
	engineKillRoundEnv  = "ENGINE_KILL_HELPER_ROUND"
)

// killClients is the number of clients (goroutines) of the helper. Their
// IDs, 1..killClients, are the same in every life: the session table,
// recovered from snapshots and the log, must carry their sequence numbers
// across kills.
const killClients = 4

// killConfig is the configuration of the replica of TestKill9Engine: a
// cluster of one, on an in-memory transport, with snapshots and
// compactions every few dozen slots and small log segments, so that kills
// land in the middle of them too.
func killConfig(dir string, logger hclog.Logger) Config {
	cfg := Config{
		ID:                    1,
		Peers:                 map[uint64]string{1: "mem:1"},
		ClusterID:             "engine-kill9",
		DataDir:               dir,
		Transport:             memnet.NewMemNetwork().Transport(1),
		ElectionTimeout:       100 * time.Millisecond,
		SnapshotEverySlots:    50,
		SnapshotTrailingSlots: 10,
		Logger:                logger,
	}
	cfg.WAL.SegmentBytes = 8 << 10
	return cfg
}

// killPayload is the payload of command seq of client in life round.
func killPayload(round int, client, seq uint64) string {
	return fmt.Sprintf("r%d-c%d-%d", round, client, seq)
}

// parseKillPayload is the inverse of killPayload.
func parseKillPayload(p string) (round int, client, seq uint64, ok bool) {
	f := strings.Split(p, "-")
	if len(f) != 3 || !strings.HasPrefix(f[0], "r") || !strings.HasPrefix(f[1], "c") {
		return 0, 0, 0, false
	}
	r, err1 := strconv.Atoi(f[0][1:])
	c, err2 := strconv.ParseUint(f[1][1:], 10, 64)
	s, err3 := strconv.ParseUint(f[2], 10, 64)
	return r, c, s, err1 == nil && err2 == nil && err3 == nil
}

// recoverState waits until n leads and has applied everything it holds,
// and returns the state machine's contents: it waits for the node to lead
// and to have applied its commit index, then takes the log in a
// linearizable read, which a new leader serves only once it has committed
// everything phase 1 re-proposed (everything its log held). The first
// condition alone is not enough: the commit index in the log's hard state
// may lag what was applied (and acknowledged) before the kill, and a
// restarted replica leads, with Applied == Commit, before it has committed
// its log's last slots again (seen: leader, Commit 1460, LastSlot 1461,
// the acknowledged commands of slot 1461 not applied yet).
func recoverState(n *Node, sm *logMachine, deadline time.Time) ([]string, error) {
	for {
		st := n.Status()
		if st.Role == "leader" && st.Applied >= st.Commit {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the replica did not lead with everything applied in time: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var state []string
		err := n.Read(ctx, func() { state = sm.entries() })
		cancel()
		switch {
		case err == nil:
			return state, nil
		case errors.Is(err, ErrNotLeader) && time.Now().Before(deadline):
			time.Sleep(2 * time.Millisecond)
		default:
			return nil, fmt.Errorf("the read of the recovered state: %w", err)
		}
	}
}

// engineKillHelper is the child process of TestKill9Engine: it starts the
// replica on dir, prints its recovered state as "STATE <json list>", then
// submits commands from killClients clients until it is killed. Each
// client prints "sub <client> <seq> <payload>" before submitting a
// command and "ack <client> <seq> <payload>" once Submit has returned
// success. Each client carries on its sequence from the last of its
// commands in the recovered state.
func engineKillHelper(dir string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "helper: "+format+"\n", args...)
		return 2
	}
	round, err := strconv.Atoi(os.Getenv(engineKillRoundEnv))
	if err != nil {
		return fail("bad %s: %v", engineKillRoundEnv, err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("round%d", round), Level: hclog.Info, Output: os.Stderr})
	sm := &logMachine{}
	n, err := Start(killConfig(dir, logger), sm)
	if err != nil {
		return fail("Start: %v", err)
	}
	state, err := recoverState(n, sm, time.Now().Add(30*time.Second))
	if err != nil {
		return fail("%v", err)
	}
	st := n.Status()
	fmt.Fprintf(os.Stderr, "helper: recovered %d commands; status %+v\n", len(state), st)
	js, err := json.Marshal(state)
	if err != nil {
		return fail("%v", err)
	}
	// One write, whole, so that a line the parent reads is a whole state.
	os.Stdout.Write(append(append([]byte("STATE "), js...), '\n'))

	next := map[uint64]uint64{}
	for c := uint64(1); c <= killClients; c++ {
		next[c] = 1
	}
	for _, p := range state {
		if _, c, s, ok := parseKillPayload(p); ok && c >= 1 && c <= killClients {
			next[c] = max(next[c], s+1)
		}
	}
	errc := make(chan error, killClients)
	for c := uint64(1); c <= killClients; c++ {
		go func() {
			for seq := next[c]; ; seq++ {
				p := killPayload(round, c, seq)
				fmt.Printf("sub %d %d %s\n", c, seq, p)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp, err := n.Submit(ctx, c, seq, []byte(p))
					cancel()
					if err == nil {
						if !strings.HasSuffix(string(resp), ":"+p) {
							errc <- fmt.Errorf("client %d seq %d (%s) answered %q", c, seq, p, resp)
							return
						}
						break
					}
					if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrNotLeader) {
						errc <- fmt.Errorf("client %d seq %d (%s): %w", c, seq, p, err)
						return
					}
					fmt.Fprintf(os.Stderr, "helper: client %d seq %d: %v; again\n", c, seq, err)
				}
				fmt.Printf("ack %d %d %s\n", c, seq, p)
			}
		}()
	}
	return fail("%v", <-errc)
}

// killBook is what TestKill9Engine knows of the commands: every one ever
// submitted, those acknowledged, and the state recovered last.
type killBook struct {
	submitted map[string]bool
	acked     map[string]int // payload -> round it was acknowledged in
	nAcked    int
	prevState []string
}

// check checks a state recovered at the start of round against
// everything before it: the previous recovered state is a prefix of it
// (what was applied is never rewritten); it holds every payload
// acknowledged before, once; it holds nothing that was never submitted;
// each client's commands are in its order. It returns the acknowledged
// payloads missing (lost) and the first other violation.
func (b *killBook) check(round int, state []string) (lost []string, err error) {
	if len(state) < len(b.prevState) || !slices.Equal(state[:len(b.prevState)], b.prevState) {
		i := 0
		for i < len(state) && i < len(b.prevState) && state[i] == b.prevState[i] {
			i++
		}
		err = fmt.Errorf("the state (%d commands) does not extend the one recovered before (%d commands): they differ from position %d", len(state), len(b.prevState), i)
	}
	seen := make(map[string]bool, len(state))
	lastSeq := map[uint64]uint64{}
	for i, p := range state {
		r, c, s, ok := parseKillPayload(p)
		switch {
		case !b.submitted[p] || !ok:
			err = cmp.Or(err, fmt.Errorf("position %d holds %q, which was never submitted", i, p))
		case seen[p]:
			err = cmp.Or(err, fmt.Errorf("position %d holds %q a second time", i, p))
		case s <= lastSeq[c]:
			err = cmp.Or(err, fmt.Errorf("position %d holds %q (round %d), after seq %d of client %d", i, p, r, lastSeq[c], c))
		}
		seen[p] = true
		lastSeq[c] = max(lastSeq[c], s)
	}
	for p := range b.acked {
		if !seen[p] {
			lost = append(lost, p)
		}
	}
	slices.Sort(lost)
	b.prevState = state
	return lost, err
}

// killProc is one helper process and its output, line by line.
type killProc struct {
	cmd    *exec.Cmd
	stderr lockedBuffer
	lines  chan string
	quit   chan struct{}
	read   chan struct{} // closed when the reader has returned
	once   sync.Once
	killed bool
}

// lockedBuffer is a bytes.Buffer that the goroutine copying a helper's
// stderr writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startKillProc(t *testing.T, dir string, round int) *killProc {
	p := &killProc{lines: make(chan string, 1024), quit: make(chan struct{}), read: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), engineKillHelperEnv+"="+dir, fmt.Sprintf("%s=%d", engineKillRoundEnv, round))
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.reap() })
	go func() {
		defer close(p.read)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<30)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			case <-p.quit:
				io.Copy(io.Discard, out)
				return
			}
		}
	}()
	return p
}

func (p *killProc) kill() {
	if !p.killed {
		p.killed = true
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// reap kills the helper if it runs, and waits for it and its reader.
func (p *killProc) reap() {
	p.once.Do(func() {
		p.kill()
		close(p.quit)
		<-p.read
		p.cmd.Wait()
	})
}

// TestKill9Engine runs a replica (a cluster of one) in a child process
// (this test binary, re-run as engineKillHelper) and kills it with SIGKILL
// at a random point, round after round on the same data directory: most
// rounds 50 to 400 ms after its first acknowledged command, some at once
// (in the middle of Start and recovery). Each helper first prints the
// state it recovered, which must hold every command acknowledged in any
// earlier round, once, in order, and nothing never submitted (see
// killBook.check); the test itself recovers the state after the last
// round. -engine.killrounds sets the number of rounds.
func TestKill9Engine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := *engineKillDir
	if dir == "" {
		dir = t.TempDir()
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	t.Logf("seed %d, data directory %s", seed, dir)
	b := &killBook{submitted: map[string]bool{}, acked: map[string]int{}}
	totalLost, early, inDoubt := 0, 0, 0
	checkState := func(round int, state []string, stderr string) {
		t.Helper()
		lost, err := b.check(round, state)
		if err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		if len(lost) > 0 {
			totalLost += len(lost)
			byRound := map[int][]string{}
			for _, p := range lost {
				byRound[b.acked[p]] = append(byRound[b.acked[p]], p)
			}
			t.Errorf("round %d: %d acknowledged commands are not in the recovered state (%d commands): by the round that acknowledged them: %v",
				round, len(lost), len(state), byRound)
		}
		if err != nil || len(lost) > 0 {
			t.Fatalf("stopping at the first violation; data directory %s (keep it with -engine.killdir); the recovering helper's log:\n%s", dir, stderr)
		}
	}
	for round := 1; round <= *engineKillRounds; round++ {
		p := startKillProc(t, dir, round)
		var killAt <-chan time.Time
		if rng.IntN(8) == 0 {
			early++
			killAt = time.After(time.Duration(rng.IntN(100)) * time.Millisecond)
		}
		deadline := time.After(60 * time.Second)
		acks, subs := 0, 0
		gotState := false
		pending := map[string]bool{} // submitted this round, not acknowledged
	lines:
		for {
			select {
			case line, ok := <-p.lines:
				if !ok {
					break lines
				}
				kind, rest, _ := strings.Cut(line, " ")
				switch kind {
				case "STATE":
					var state []string
					if err := json.Unmarshal([]byte(rest), &state); err != nil {
						if p.killed {
							break // cut off by the kill
						}
						t.Fatalf("round %d: bad STATE line: %v", round, err)
					}
					gotState = true
					checkState(round, state, p.stderr.String())
				case "sub", "ack":
					f := strings.Fields(rest)
					if len(f) != 3 {
						if p.killed {
							break // cut off by the kill
						}
						t.Fatalf("round %d: bad line %q", round, line)
					}
					if kind == "sub" {
						b.submitted[f[2]] = true
						pending[f[2]] = true
						subs++
						break
					}
					// Printed after Submit returned: acknowledged, even if
					// read after the kill was sent.
					if !pending[f[2]] {
						t.Fatalf("round %d: %q acknowledged, not submitted", round, f[2])
					}
					delete(pending, f[2])
					b.acked[f[2]] = round
					b.nAcked++
					if acks++; acks == 1 && killAt == nil {
						killAt = time.After(time.Duration(50+rng.IntN(351)) * time.Millisecond)
					}
				default:
					if !p.killed {
						t.Fatalf("round %d: unexpected line %q", round, line)
					}
				}
			case <-killAt:
				killAt = nil
				p.kill()
			case <-deadline:
				p.reap()
				t.Fatalf("round %d: no kill after 60 s (%d acks, state printed: %v); helper's log:\n%s", round, acks, gotState, p.stderr.String())
			}
		}
		p.reap()
		ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the helper was not killed but ended: %v; its log:\n%s", round, p.cmd.ProcessState, p.stderr.String())
		}
		inDoubt += len(pending)
		t.Logf("round %d: %d submitted, %d acknowledged, %d in doubt at the kill%s", round, subs, acks, len(pending),
			map[bool]string{true: "", false: " (killed before the state was printed)"}[gotState])
	}

	// The last round's acknowledgements: recover here, once more.
	sm := &logMachine{}
	var logBuf bytes.Buffer
	n, err := Start(killConfig(dir, hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logBuf})), sm)
	if err != nil {
		t.Fatalf("Start after the last kill: %v", err)
	}
	state, err := recoverState(n, sm, time.Now().Add(30*time.Second))
	st := n.Status()
	compacted := n.wal.State().Compacted.Slot
	snaps, _ := n.snaps.List()
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("recovering after the last kill: %v", err)
	}
	checkState(*engineKillRounds+1, state, logBuf.String())
	inDoubtApplied := len(state) - len(b.acked)
	t.Logf("kill -9: %d rounds (%d killed early), %d commands acknowledged, %d in doubt at a kill of which %d applied, %d lost; "+
		"the replica ended at slot %d (log compacted to %d, %d snapshots kept, newest at %d), its state holds %d commands",
		*engineKillRounds, early, b.nAcked, inDoubt, inDoubtApplied, totalLost,
		st.Applied, compacted, len(snaps), snapSlot(snaps), len(state))
}

// snapSlot is the slot of the newest of snaps, 0 if none.
func snapSlot(snaps []storage.Meta) uint64 {
	if len(snaps) == 0 {
		return 0
	}
	return snaps[len(snaps)-1].Slot
}
