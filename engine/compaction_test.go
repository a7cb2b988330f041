package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/internal/memnet"
	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/wal"
)

// The snapshot policy, compaction and catching up by snapshot, run against
// every snapshot store: Pebble (the default), memory, and the embedder's
// directory store of the example.

// storeKinds open a replica's snapshot store in dir. The memory store is
// kept across restarts of the replica, as a disk would be.
var storeKinds = []struct {
	name string
	open func(t *testing.T, dir string, mem map[string]*storage.Mem) storage.SnapshotStore
}{
	{"pebble", func(t *testing.T, dir string, _ map[string]*storage.Mem) storage.SnapshotStore {
		s, err := storage.OpenPebble(dir, storage.PebbleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"memory", func(t *testing.T, dir string, mem map[string]*storage.Mem) storage.SnapshotStore {
		if mem[dir] == nil {
			mem[dir] = storage.NewMem()
		}
		return mem[dir]
	}},
	{"embedder-dir", func(t *testing.T, dir string, _ map[string]*storage.Mem) storage.SnapshotStore {
		s, err := newDirStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// memCluster runs replicas on a MemNetwork, whose links tests cut, with
// the leader's outgoing snapshot chunks passing through a tamperer.
type memCluster struct {
	t      *testing.T
	dir    string
	net    *memnet.MemNetwork
	kind   int
	mem    map[string]*storage.Mem
	tamper *tamperer
	mod    func(*engine.Config) // applied to every replica's config, if set
	mu     sync.Mutex
	nodes  map[uint64]*engine.Node
	sms    map[uint64]*engine.LogMachine
}

func newMemCluster(t *testing.T, size, kind int, mod ...func(*engine.Config)) *memCluster {
	c := &memCluster{t: t, dir: t.TempDir(), net: memnet.NewMemNetwork(), kind: kind,
		mem: map[string]*storage.Mem{}, tamper: &tamperer{corruptAt: -1}, nodes: map[uint64]*engine.Node{}, sms: map[uint64]*engine.LogMachine{}}
	if len(mod) > 0 {
		c.mod = mod[0]
	}
	for id := uint64(1); id <= uint64(size); id++ {
		c.start(id)
	}
	t.Cleanup(func() {
		for id := range c.nodes {
			c.stop(id)
		}
	})
	return c
}

func (c *memCluster) start(id uint64) {
	peers := map[uint64]string{}
	for p := uint64(1); p <= 3; p++ {
		peers[p] = "mem"
	}
	dir := filepath.Join(c.dir, fmt.Sprint(id))
	sm := &engine.LogMachine{}
	cfg := engine.Config{
		ID: id, Peers: peers, DataDir: dir,
		Transport:             &tamperingTransport{MemTransport: c.net.Transport(id), t: c.tamper},
		Snapshots:             storeKinds[c.kind].open(c.t, filepath.Join(dir, "snapshots"), c.mem),
		ElectionTimeout:       300 * time.Millisecond,
		SnapshotEverySlots:    20,
		SnapshotTrailingSlots: 5,
		SnapshotChunkBytes:    512,
		WAL:                   walOptions(),
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	n, err := engine.Start(cfg, sm)
	if err != nil {
		c.t.Fatalf("starting replica %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
}

func (c *memCluster) stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	n.Close()
}

// roles waits for a leader and returns it with the two others: lagger
// after it (the one the tests cut off), then other.
func (c *memCluster) roles() (leader, lagger, other uint64) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, "a leader", func() bool {
		for id := uint64(1); id <= 3; id++ {
			if c.node(id).Status().Role == "leader" {
				leader, lagger, other = id, id%3+1, (id+1)%3+1
				return true
			}
		}
		return false
	})
	return leader, lagger, other
}

// recordChunks has the tamperer record the offsets of the chunks sent
// from now on, tampering with none.
func (c *memCluster) recordChunks() {
	c.tamper.mu.Lock()
	defer c.tamper.mu.Unlock()
	c.tamper.armed, c.tamper.corruptAt, c.tamper.dropped = true, 1<<30, 4
}

// chunksSent returns how many chunks were recorded.
func (c *memCluster) chunksSent() int {
	c.tamper.mu.Lock()
	defer c.tamper.mu.Unlock()
	return len(c.tamper.offsets)
}

func (c *memCluster) sm(id uint64) *engine.LogMachine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

func (c *memCluster) node(id uint64) *engine.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// submit writes payload as (client, seq) through the replicas but lagger
// until one applies it.
func (c *memCluster) submit(lagger, client, seq uint64, payload string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		id := uint64(1 + i%3)
		if id == lagger {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.node(id).Submit(ctx, client, seq, []byte(payload))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("submitting %q: %v", payload, err)
		}
		var nl *engine.NotLeaderError
		if !errors.As(err, &nl) && !errors.Is(err, engine.ErrTimeout) {
			c.t.Fatalf("submitting %q: %v", payload, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// walOptions makes small segments, so that compaction deletes some.
func walOptions() wal.Options { return wal.Options{SegmentBytes: 64 << 10} }

// waitFor is the engine's polling helper.
var waitFor = engine.WaitFor

// tamperer, once armed, corrupts one snapshot chunk and then drops a
// window of others, as a broken connection would, and records the offsets
// of the chunks sent.
type tamperer struct {
	mu           sync.Mutex
	armed        bool
	offsets      []uint64
	corruptAt    int // index in offsets of the corrupted chunk, or -1
	firstDropped uint64
	dropped      int
}

// snapshotFrame mirrors the engine's transfer frame (a msgpack array of
// 12 elements), to read offsets on the wire.
type snapshotFrame struct {
	Kind     uint8
	From, To uint64
	Transfer uint64
	Slot     uint64
	Ballot   struct{ Round, Node uint64 }
	Size     uint64
	Checksum uint32
	Offset   uint64
	Data     []byte
	DataCRC  uint32
	Done     bool
}

var frameHandle = &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{EncodeOptions: codec.EncodeOptions{StructToArray: true}}}

type tamperingTransport struct {
	*memnet.MemTransport
	t *tamperer
}

func (tt *tamperingTransport) Send(to uint64, payload []byte) {
	if len(payload) == 0 || payload[0] != 0x9c {
		tt.MemTransport.Send(to, payload)
		return
	}
	var f snapshotFrame
	if err := codec.NewDecoderBytes(payload, frameHandle).Decode(&f); err != nil || f.Kind != 1 {
		tt.MemTransport.Send(to, payload)
		return
	}
	tt.t.mu.Lock()
	if !tt.t.armed {
		tt.t.mu.Unlock()
		tt.MemTransport.Send(to, payload)
		return
	}
	tt.t.offsets = append(tt.t.offsets, f.Offset)
	switch {
	case tt.t.corruptAt < 0 && f.Offset >= 1024 && len(f.Data) > 16:
		// Flip a byte of the chunk's data (which ends 6 bytes before the
		// frame: the CRC and the Done flag follow it).
		tt.t.corruptAt = len(tt.t.offsets) - 1
		payload = slices.Clone(payload)
		payload[len(payload)-10] ^= 0xff
	case tt.t.corruptAt >= 0 && tt.t.dropped < 4 && f.Offset >= 4096:
		if tt.t.dropped == 0 {
			tt.t.firstDropped = f.Offset
		}
		tt.t.dropped++
		tt.t.mu.Unlock()
		return // lost with the connection
	}
	tt.t.mu.Unlock()
	tt.MemTransport.Send(to, payload)
}

// TestIsolatedFollowerCatchesUpBySnapshot isolates a follower while the
// others apply hundreds of slots, snapshotting every 20 and compacting
// their logs; once healed, the follower needs slots nobody holds in a log
// any more and must catch up from the leader's snapshot, streamed in 512
// byte chunks of which one arrives corrupt and a window is lost. It must
// refuse the corrupt chunk, resume after the loss instead of restarting,
// install the snapshot, continue from the log, and come back from a
// restart with the same state.
func TestIsolatedFollowerCatchesUpBySnapshot(t *testing.T) {
	for kind := range storeKinds {
		t.Run(storeKinds[kind].name, func(t *testing.T) {
			c := newMemCluster(t, 3, kind)
			_, lagger, _ := c.roles()
			c.net.Isolate(lagger)
			for seq := uint64(1); seq <= 200; seq++ {
				c.submit(lagger, 9, seq, fmt.Sprintf("command-%03d-%s", seq, strings.Repeat("x", 40)))
			}
			if st := c.node(lagger).Status(); st.Applied > 20 {
				t.Fatalf("the isolated replica applied %d slots", st.Applied)
			}
			ref := lagger%3 + 1
			c.tamper.mu.Lock()
			c.tamper.armed = true
			c.tamper.mu.Unlock()
			c.net.Heal()
			var want []string
			waitFor(t, 10*time.Second, "the other follower to apply all 200", func() bool {
				want = c.sm(ref).Entries()
				return len(want) == 200
			})
			waitFor(t, 30*time.Second, "the isolated replica to catch up", func() bool {
				return slices.Equal(c.sm(lagger).Entries(), want)
			})
			c.submit(0, 9, 201, "after-the-snapshot")
			waitFor(t, 10*time.Second, "a command after the snapshot", func() bool {
				got := c.sm(lagger).Entries()
				return len(got) == len(want)+1 && got[len(got)-1] == "after-the-snapshot"
			})
			c.tamper.mu.Lock()
			offsets := slices.Clone(c.tamper.offsets)
			at, dropped, firstDropped := c.tamper.corruptAt, c.tamper.dropped, c.tamper.firstDropped
			c.tamper.mu.Unlock()
			if at < 0 || dropped == 0 {
				t.Fatalf("the transfer was too short to tamper with: chunks at %v", offsets)
			}
			// The corrupt chunk was refused, so it went again; so did the
			// first lost one; and nothing went from the start again: the
			// transfer resumed.
			after := offsets[at+1:]
			if !slices.Contains(after, offsets[at]) || !slices.Contains(after, firstDropped) || slices.Contains(after, 0) {
				t.Errorf("chunk %d was corrupted and chunks from %d lost; then chunks went at offsets %v: want both resent, and no restart from 0", offsets[at], firstDropped, after)
			}
			c.stop(lagger)
			c.start(lagger)
			waitFor(t, 10*time.Second, "the restarted replica to restore", func() bool {
				return slices.Equal(c.sm(lagger).Entries(), append(want, "after-the-snapshot"))
			})
		})
	}
}

// TestRestartWithSnapshotPastTheLog restarts a follower as a crash would
// leave it between committing a snapshot received from the leader and
// recording the compaction point in its log: its store holds a snapshot
// of a slot past the end of its log. It must restore it, isolated (so
// from its own disk alone), and then converge with the others.
func TestRestartWithSnapshotPastTheLog(t *testing.T) {
	const memory = 1
	c := newMemCluster(t, 3, memory)
	leader, lagger, _ := c.roles()
	c.net.Isolate(lagger)
	for seq := uint64(1); seq <= 100; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("command-%03d", seq))
	}
	c.stop(lagger)
	logLast := c.mem[filepath.Join(c.dir, fmt.Sprint(lagger), "snapshots")]
	from := c.mem[filepath.Join(c.dir, fmt.Sprint(leader), "snapshots")]
	m, ok, err := from.Latest()
	if err != nil || !ok {
		t.Fatalf("the leader has no snapshot: %v", err)
	}
	r, _, err := from.Open(m.Slot)
	if err != nil {
		t.Fatal(err)
	}
	w, err := logLast.Create(m.Slot, m.Ballot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}

	c.start(lagger) // still isolated: everything comes from its own disk
	if st := c.node(lagger).Status(); st.Applied != m.Slot {
		t.Fatalf("restarted at applied slot %d, want the snapshot's %d", st.Applied, m.Slot)
	}
	c.net.Heal()
	c.submit(lagger, 9, 101, "after-restart")
	want := c.sm(leader).Entries()
	waitFor(t, 20*time.Second, "the restarted replica to converge", func() bool {
		return slices.Equal(c.sm(lagger).Entries(), want)
	})
}

// lockedBuffer collects the replicas' logs, shown if a test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSnapshotTransferDoesNotStarveReplication throttles snapshot sending
// to 16 KiB/s and has a follower need a snapshot of about 80 KiB: while
// it trickles in, for seconds, commands go on committing.
func TestSnapshotTransferDoesNotStarveReplication(t *testing.T) {
	const memory = 1
	var logs lockedBuffer
	c := newMemCluster(t, 3, memory, func(cfg *engine.Config) {
		cfg.SnapshotSendBytesPerSec = 16 << 10
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprint("replica-", cfg.ID), Level: hclog.Info, Output: &logs})
	})
	defer func() {
		if t.Failed() {
			t.Logf("the replicas' logs:\n%s", logs.String())
		}
	}()
	_, lagger, _ := c.roles()
	c.net.Isolate(lagger)
	for seq := uint64(1); seq <= 100; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("%03d-%s", seq, strings.Repeat("y", 800)))
	}
	c.recordChunks()
	c.net.Heal()
	waitFor(t, 10*time.Second, "the transfer to start", func() bool { return c.chunksSent() > 0 })
	// Twenty commands through the others (which the follower, still
	// receiving, cannot help commit).
	for seq := uint64(101); seq <= 120; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("%03d-during-the-transfer", seq))
	}
	if got := len(c.sm(lagger).Entries()); got >= 100 {
		t.Fatalf("the follower already holds %d commands: the transfer ended before the test could write during it", got)
	}
	want := c.sm(lagger%3 + 1).Entries()
	waitFor(t, 60*time.Second, "the follower to catch up", func() bool {
		return slices.Equal(c.sm(lagger).Entries(), want)
	})
}

// TestLeaderChangeDuringSnapshotTransfer deposes the leader while it
// streams a snapshot to a follower: the new leader streams its own, the
// old one's transfer must not get in its way once the old leader is back
// in touch, and the follower must catch up.
func TestLeaderChangeDuringSnapshotTransfer(t *testing.T) {
	const memory = 1
	var logs lockedBuffer
	c := newMemCluster(t, 3, memory, func(cfg *engine.Config) {
		cfg.SnapshotSendBytesPerSec = 16 << 10
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprint("replica-", cfg.ID), Level: hclog.Info, Output: &logs})
	})
	defer func() {
		if t.Failed() {
			t.Logf("the replicas' logs:\n%s", logs.String())
		}
	}()
	old, lagger, other := c.roles()
	c.net.Isolate(lagger)
	for seq := uint64(1); seq <= 100; seq++ {
		c.submit(lagger, 9, seq, fmt.Sprintf("%03d-%s", seq, strings.Repeat("z", 800)))
	}
	// Only the old leader reaches the lagger; it starts streaming.
	c.net.Heal()
	c.net.Cut(other, lagger)
	c.net.Cut(lagger, other)
	c.recordChunks()
	waitFor(t, 10*time.Second, "the transfer to start", func() bool { return c.chunksSent() > 2 })
	// Depose it: the other two elect one of themselves.
	c.net.Heal()
	c.net.Isolate(old)
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		return c.node(other).Status().Role == "leader" || c.node(lagger).Status().Role == "leader"
	})
	// The old leader is back in touch, its transfer perhaps still going.
	c.net.Heal()
	c.submit(0, 9, 101, "after-the-change")
	var want []string
	waitFor(t, 10*time.Second, "the new leader's replica to apply everything", func() bool {
		want = c.sm(other).Entries()
		return len(want) == 101
	})
	waitFor(t, 60*time.Second, "the lagger to catch up", func() bool {
		return slices.Equal(c.sm(lagger).Entries(), want)
	})
}

// TestSnapshotsUnderChurn writes without pause while replicas are cut
// off, healed and restarted at random every 50 to 250 ms for five
// seconds, with a snapshot every ten slots and a trailing window of three,
// so that catching up by snapshot, interrupted transfers and leader
// changes mid-transfer all happen. Once the churn stops, the replicas
// must converge and hold every acknowledged command exactly once.
func TestSnapshotsUnderChurn(t *testing.T) {
	const memory = 1
	var logs lockedBuffer
	c := newMemCluster(t, 3, memory, func(cfg *engine.Config) {
		cfg.SnapshotEverySlots, cfg.SnapshotTrailingSlots = 10, 3
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprint("replica-", cfg.ID), Level: hclog.Info, Output: &logs})
	})
	defer func() {
		if t.Failed() {
			t.Logf("the replicas' logs:\n%s", logs.String())
		}
	}()
	stop := make(chan struct{})
	var acked []string
	var wg sync.WaitGroup
	for w := uint64(1); w <= 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); ; seq++ {
				payload := fmt.Sprintf("w%d-%d", w, seq)
				for try := 0; ; try++ {
					select {
					case <-stop:
						return
					default:
					}
					n := c.node(uint64(1 + (int(seq)+try)%3))
					if n == nil {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					_, err := n.Submit(ctx, 100+w, seq, []byte(payload))
					cancel()
					if err == nil {
						c.mu.Lock()
						acked = append(acked, payload)
						c.mu.Unlock()
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var down uint64 // the replica stopped, if any: one at a time
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		id := uint64(1 + rng.IntN(3))
		switch rng.IntN(5) {
		case 0:
			c.net.Isolate(id)
		case 1:
			c.net.Cut(id, uint64(1+rng.IntN(3)))
		case 2, 3:
			c.net.Heal()
		case 4:
			if down != 0 {
				c.start(down)
				down = 0
			} else {
				c.stop(id)
				down = id
			}
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
	}
	c.net.Heal()
	if down != 0 {
		c.start(down)
	}
	// A last command through the healed cluster, then everyone converges.
	close(stop)
	wg.Wait()
	c.submit(0, 99, 1, "the-end")
	var want []string
	waitFor(t, 60*time.Second, "the replicas to converge", func() bool {
		want = c.sm(1).Entries()
		return slices.Contains(want, "the-end") && slices.Equal(c.sm(2).Entries(), want) && slices.Equal(c.sm(3).Entries(), want)
	})
	count := map[string]int{}
	for _, s := range want {
		count[s]++
		if count[s] > 1 {
			t.Fatalf("%q applied twice", s)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range acked {
		if count[s] != 1 {
			t.Fatalf("acknowledged %q is not in the log", s)
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d commands acknowledged in five seconds: the churn left too little work", len(acked))
	}
	installs := strings.Count(logs.String(), "installed a snapshot from the leader")
	t.Logf("%d commands acknowledged, %d applied, %d snapshots installed from a leader", len(acked), len(want), installs)
	if installs == 0 {
		t.Errorf("no replica caught up by snapshot: the churn did not test it")
	}
}
