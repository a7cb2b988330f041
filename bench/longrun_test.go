package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/wal"
)

// The long run: millions of commands through a 3-replica cluster with the
// snapshot policy on, sampling the bytes on disk and the process's
// resident memory as it goes, then restarting a follower and timing how
// long until it serves a linearizable read again.

// kvMachine keeps the last value of 4096 keys: a state machine whose
// state is bounded however many commands it applies, so that what grows,
// if anything does, is the replica's own bookkeeping.
type kvMachine struct {
	mu   sync.Mutex
	vals map[uint32][]byte
	n    uint64
}

func newKV() *kvMachine { return &kvMachine{vals: map[uint32][]byte{}} }

func (m *kvMachine) Apply(slot uint64, cmd []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	m.vals[uint32(m.n%4096)] = append(m.vals[uint32(m.n%4096)][:0], cmd...)
	return nil
}

func (m *kvMachine) Snapshot(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b []byte
	b = binary.BigEndian.AppendUint64(b, m.n)
	for k, v := range m.vals {
		b = binary.BigEndian.AppendUint32(b, k)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	_, err := w.Write(b)
	return err
}

func (m *kvMachine) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(b) < 8 {
		return errors.New("kv snapshot too short")
	}
	m.n, b = binary.BigEndian.Uint64(b), b[8:]
	m.vals = map[uint32][]byte{}
	for len(b) >= 8 {
		k, n := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		if uint32(len(b)-8) < n {
			return errors.New("kv snapshot truncated")
		}
		m.vals[k] = append([]byte(nil), b[8:8+n]...)
		b = b[8+n:]
	}
	return nil
}

// longRun is a 3-replica cluster on loopback TCP whose replicas can be
// restarted.
type longRun struct {
	dir   string
	peers map[uint64]string
	mod   func(*engine.Config)
	mu    sync.Mutex
	nodes map[uint64]*engine.Node
	seqs  []uint64
}

func startLongRun(tb testing.TB, clients int, mod func(*engine.Config)) *longRun {
	lr := &longRun{dir: tb.TempDir(), peers: map[uint64]string{}, mod: mod, nodes: map[uint64]*engine.Node{}, seqs: make([]uint64, clients)}
	for id := uint64(0); id < 3; id++ {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lr.peers[id] = ln.Addr().String()
		ln.Close()
	}
	for id := range lr.peers {
		lr.start(tb, id)
	}
	tb.Cleanup(func() {
		for _, n := range lr.nodes {
			n.Close()
		}
	})
	return lr
}

func (lr *longRun) start(tb testing.TB, id uint64) *engine.Node {
	cfg := engine.Config{ID: id, Peers: lr.peers, ClusterID: "longrun", DataDir: filepath.Join(lr.dir, fmt.Sprint(id)), Insecure: true}
	lr.mod(&cfg)
	var n *engine.Node
	var err error
	// The port may still be held by the previous incarnation a moment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, err = engine.Start(cfg, newKV()); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		tb.Fatalf("starting replica %d: %v", id, err)
	}
	lr.mu.Lock()
	lr.nodes[id] = n
	lr.mu.Unlock()
	return n
}

func (lr *longRun) leader() *engine.Node {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, n := range lr.nodes {
		if n.Status().Role == "leader" {
			return n
		}
	}
	return nil
}

// Write implements Writer: client's next command, to the leader.
func (lr *longRun) Write(ctx context.Context, client int, payload []byte) error {
	n := lr.leader()
	if n == nil {
		return engine.ErrNotLeader
	}
	lr.seqs[client]++
	_, err := n.Submit(ctx, uint64(client)+1, lr.seqs[client], payload)
	return err
}

// Close implements Writer; the test's cleanup closes the replicas.
func (lr *longRun) Close() error { return nil }

// usage samples the peak bytes on disk (WAL and snapshots, all replicas)
// and the process's peak resident memory.
type usage struct {
	peakWAL, peakSnap int64
	peakRSS, peakHeap int64 // the process's resident set; the Go heap in use
}

func dirBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// residentBytes returns VmRSS from /proc/self/status (0 elsewhere).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (lr *longRun) sample(u *usage) {
	var w, s int64
	for id := range lr.peers {
		w += dirBytes(filepath.Join(lr.dir, fmt.Sprint(id), "wal"))
		s += dirBytes(filepath.Join(lr.dir, fmt.Sprint(id), "snapshots"))
	}
	u.peakWAL, u.peakSnap = max(u.peakWAL, w), max(u.peakSnap, s)
	u.peakRSS = max(u.peakRSS, residentBytes())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.peakHeap = max(u.peakHeap, int64(ms.HeapInuse))
}

// longRunResult is what a long run measured.
type longRunResult struct {
	Result
	usage
	restart time.Duration
	applied uint64
}

// runLong writes commands through the cluster with clients closed-loop
// clients, sampling usage every 100 ms, then restarts a follower and
// times it until it serves a linearizable read at the leader's commit.
func runLong(tb testing.TB, commands, clients int, mod func(*engine.Config)) longRunResult {
	lr := startLongRun(tb, clients, mod)
	deadline := time.Now().Add(30 * time.Second)
	for lr.leader() == nil {
		if time.Now().After(deadline) {
			tb.Fatal("no leader within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var u usage
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				lr.sample(&u)
			}
		}
	}()
	res, err := MeasureN(context.Background(), Config{Clients: clients, PayloadBytes: 64}, lr, commands)
	close(stop)
	<-sampled
	if err != nil {
		tb.Fatal(err)
	}
	if path := os.Getenv("LONGRUN_HEAPPROF"); path != "" {
		if f, err := os.Create(path); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	lr.sample(&u)

	// Restart a follower and time it back to serving.
	leader := lr.leader()
	var follower uint64
	lr.mu.Lock()
	for id, n := range lr.nodes {
		if n != leader {
			follower = id
		}
	}
	n := lr.nodes[follower]
	delete(lr.nodes, follower)
	lr.mu.Unlock()
	n.Close()
	commit := leader.Status().Commit
	begin := time.Now()
	n = lr.start(tb, follower)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := n.Read(ctx, func() {})
		cancel()
		if err == nil && n.Status().Applied >= commit {
			break
		}
		if time.Since(begin) > 30*time.Second {
			tb.Fatalf("the restarted replica is not serving after 30 s: %+v, last read: %v", n.Status(), err)
		}
		time.Sleep(time.Millisecond)
	}
	return longRunResult{Result: res, usage: u, restart: time.Since(begin), applied: n.Status().Applied}
}

// TestLongRunStaysBounded is the long run in small: 60,000 commands with
// a snapshot every 256 KiB of commands applied and 256 KiB segments. The WAL on disk must
// stay within a few segments per replica though the commands written
// fill many times that, and a restarted follower must serve again.
func TestLongRunStaysBounded(t *testing.T) {
	const segment = 256 << 10
	r := runLong(t, 60_000, 64, func(c *engine.Config) {
		c.WAL = wal.Options{SegmentBytes: segment}
		c.SnapshotEveryBytes, c.SnapshotTrailingSlots = segment, 20
	})
	written := int64(r.Ops) * 64 * 3 // payload bytes alone, on 3 replicas
	t.Logf("%d commands: %.0f ops/s; WAL peak %d KiB on disk for %d KiB of payloads written; snapshots peak %d KiB; RSS peak %d MiB, Go heap peak %d MiB; follower serving %v after restart",
		r.Ops, r.OpsPerSec, r.peakWAL>>10, written>>10, r.peakSnap>>10, r.peakRSS>>20, r.peakHeap>>20, r.restart)
	// Each replica holds its tail segment, a preallocated next one, and
	// the sealed ones after the compaction point: a handful.
	if limit := int64(3 * 6 * segment); r.peakWAL > limit {
		t.Errorf("WAL peaked at %d bytes on disk, above %d: compaction does not keep it bounded", r.peakWAL, limit)
	}
	if written < 2*int64(3*6*segment) {
		t.Errorf("only %d bytes written: too few to show compaction", written)
	}
}

var flagLongRunCommands = flag.Int("longrun.commands", 2_000_000, "commands BenchmarkLongRun writes")

// BenchmarkLongRun is the long run: 2,000,000 commands of 64
// bytes from 256 clients through 3 replicas, snapshotting every 8 MiB of
// commands into 8 MiB WAL segments, so that the run writes many times
// what compaction leaves on disk. Run it once:
//
//	go test -run '^$' -bench LongRun -benchtime 1x -timeout 30m ./bench
func BenchmarkLongRun(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := runLong(b, *flagLongRunCommands, 256, func(c *engine.Config) {
			c.WAL = wal.Options{SegmentBytes: 8 << 20}
			c.SnapshotEveryBytes = 8 << 20
		})
		b.ReportMetric(r.OpsPerSec, "ops/s")
		b.ReportMetric(float64(r.peakWAL)/(1<<20), "peak-wal-MiB")
		b.ReportMetric(float64(r.peakSnap)/(1<<20), "peak-snap-MiB")
		b.ReportMetric(float64(r.peakRSS)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(r.peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(r.restart.Microseconds())/1000, "restart-ms")
		b.ReportMetric(0, "ns/op")
	}
}
