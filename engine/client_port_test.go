package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/clientproto"
	"github.com/paxos-go/paxos/internal/memnet"
	"github.com/paxos-go/paxos/internal/wire"
	"github.com/paxos-go/paxos/net/certs"
)

// Adversarial tests of the client port, against a real node listening on
// 127.0.0.1 (ports chosen at run time), each reproducing an attack a
// security review made, with the bound the node now keeps.

// pageMachine answers every query, and every command that starts with
// 'G', with a fresh page of pageBytes, as the chat room's get does.
type pageMachine struct{ logMachine }

const pageBytes = 4 << 20

func (m *pageMachine) Apply(slot uint64, cmd []byte) []byte {
	if len(cmd) > 0 && cmd[0] == 'G' {
		return bytes.Repeat([]byte{'p'}, pageBytes)
	}
	return m.logMachine.Apply(slot, cmd)
}

func (m *pageMachine) Query(q []byte) []byte { return bytes.Repeat([]byte{'p'}, pageBytes) }

// syncBuffer is a log output that tests read while the node writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// warnings counts the log's lines at warn level that contain substr.
func (s *syncBuffer) warnings(substr string) int {
	n := 0
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, "[WARN]") && strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// startClientPort starts a one-replica node serving clients on a loopback
// port, in plaintext unless mod sets TLS; its log goes to the returned
// buffer, at debug level.
func startClientPort(t *testing.T, sm StateMachine, mod func(*Config)) (*Node, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, ClusterID: "secret-cluster-7f3a",
		DataDir: filepath.Join(t.TempDir(), "1"), ClientAddr: "127.0.0.1:0",
		ElectionTimeout: 100 * time.Millisecond, Insecure: true, NoSync: true,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs}),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := Start(cfg, sm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Status().Role == "leader" })
	return n, logs
}

// rawClient dials addr and runs the client handshake in plaintext.
func rawClient(t *testing.T, addr, cluster string) *wire.Conn {
	t.Helper()
	c, err := stdnet.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := wire.ClientHandshake(c, wire.Hello{ClusterID: cluster, Kind: wire.KindClient}, 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// checkServes checks that a normal client gets served.
func checkServes(t *testing.T, n *Node, opts client.Options) {
	t.Helper()
	if opts.ClusterID == "" {
		opts.ClusterID = n.cfg.ClusterID
	}
	c := client.New([]string{n.ClientAddr().String()}, opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload := fmt.Sprintf("normal-%d", time.Now().UnixNano())
	if resp, err := c.Submit(ctx, []byte(payload)); err != nil || !strings.HasSuffix(string(resp), payload) {
		t.Fatalf("a normal client: %q, %v", resp, err)
	}
}

// TestClientPortPipelinedGetsUnread: a client pipelines 2000 queries whose
// answers are 4 MiB each, and reads none. The node stops reading its
// requests once ClientMaxQueuedBytes of answers wait (or ClientMaxInflight
// requests are being served), so its heap grows by at most about
// ClientMaxQueuedBytes + ClientMaxInflight answers, plus the one being
// encoded and written; the write times out and the connection closes; the
// node serves others meanwhile and after. (Found by review: 5.2 GB.)
func TestClientPortPipelinedGetsUnread(t *testing.T) {
	n, _ := startClientPort(t, &pageMachine{}, func(c *Config) { c.ClientWriteTimeout = 2 * time.Second })
	base := heapLive()
	conn := rawClient(t, n.ClientAddr().String(), n.cfg.ClusterID)
	defer conn.Close()
	var frames [][]byte
	for id := uint64(1); id <= 2000; id++ {
		frames = append(frames, encodeMsgpack(&clientproto.Request{ID: id, Op: clientproto.OpQuery, Payload: []byte("G")}))
	}
	go conn.WriteFrames(10*time.Second, frames...) // may block: the node stops reading
	var peak uint64
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, heapObjects())
		time.Sleep(5 * time.Millisecond)
	}
	cfg := n.cfg
	bound := uint64(cfg.ClientMaxQueuedBytes + (cfg.ClientMaxInflight+3)*pageBytes + 16<<20)
	grown := peak - min(peak, base)
	t.Logf("2000 unread 4 MiB answers: the live heap peaked %d MiB above its base (bound %d MiB)", grown>>20, bound>>20)
	if grown > bound {
		t.Fatalf("the live heap grew by %d MiB, above %d MiB", grown>>20, bound>>20)
	}
	// The node closed the connection (its write timed out), and holds
	// nothing of it any more.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := conn.ReadFrame(); err != nil {
			break
		}
	}
	checkServes(t, n, client.Options{})
	if after := heapLive(); after > base+32<<20 {
		t.Fatalf("after the attack, the live heap is %d MiB above its base", (after-base)>>20)
	}
}

// TestClientPortMaxConns: with ClientMaxConns established connections
// held idle, 300 more are refused (closed before their handshake); the
// node still serves once some go, and the refusals make a warn line or
// two, not 300. A newcomer evicts the oldest connection still in its
// handshake.
func TestClientPortMaxConns(t *testing.T) {
	const max = 16
	n, logs := startClientPort(t, &logMachine{}, func(c *Config) { c.ClientMaxConns = max })
	addr := n.ClientAddr().String()
	var held []*wire.Conn
	for i := 0; i < max; i++ {
		held = append(held, rawClient(t, addr, n.cfg.ClusterID))
	}
	for i := 0; i < 300; i++ {
		c, err := stdnet.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if conn, err := wire.ClientHandshake(c, wire.Hello{ClusterID: n.cfg.ClusterID, Kind: wire.KindClient}, 0, 5*time.Second); err == nil {
			conn.Close()
			t.Fatalf("connection %d beyond ClientMaxConns was served", max+i+1)
		}
	}
	if got := n.cs.refused.Load(); got < 300 {
		t.Fatalf("%d refusals counted", got)
	}
	w := logs.warnings("refused")
	t.Logf("%d connections beyond ClientMaxConns %d: %d refusals counted, %d warn lines", 300, max, n.cs.refused.Load(), w)
	if w > 3 {
		t.Fatalf("300 refusals made %d warn lines", w)
	}
	held[0].Close()
	waitFor(t, 5*time.Second, "the closed connection to go", func() bool {
		n.cs.mu.Lock()
		defer n.cs.mu.Unlock()
		return len(n.cs.conns) < max
	})
	checkServes(t, n, client.Options{})

	// Fill the rest with connections that never say Hello: a newcomer
	// evicts the oldest of them and is served.
	var silent []stdnet.Conn
	for i := 0; i < 3; i++ {
		c, err := stdnet.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	waitFor(t, 5*time.Second, "the silent connections to be accepted", func() bool {
		n.cs.mu.Lock()
		defer n.cs.mu.Unlock()
		return n.cs.pending.Len()+len(n.cs.conns) >= max
	})
	checkServes(t, n, client.Options{})
	silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the oldest connection in its handshake was not evicted: %v", err)
	}
	for _, c := range silent {
		c.Close()
	}
	for _, c := range held {
		c.Close()
	}
}

// TestClientPortIdleTimeout: a connection that sends nothing is closed
// after ClientIdleTimeout; one that keeps asking is not.
func TestClientPortIdleTimeout(t *testing.T) {
	n, _ := startClientPort(t, &logMachine{}, func(c *Config) { c.ClientIdleTimeout = 300 * time.Millisecond })
	idle := rawClient(t, n.ClientAddr().String(), n.cfg.ClusterID)
	defer idle.Close()
	busy := rawClient(t, n.ClientAddr().String(), n.cfg.ClusterID)
	defer busy.Close()
	start := time.Now()
	idleClosed := make(chan error, 1)
	go func() {
		idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := idle.ReadFrame()
		idleClosed <- fmt.Errorf("after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}()
	for id := uint64(1); time.Since(start) < 1500*time.Millisecond; id++ {
		if err := busy.WriteFrames(time.Second, encodeMsgpack(&clientproto.Request{ID: id, Op: clientproto.OpStatus})); err != nil {
			t.Fatalf("a busy connection was closed after %v: %v", time.Since(start), err)
		}
		busy.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := busy.ReadFrame(); err != nil {
			t.Fatalf("a busy connection was closed after %v: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := <-idleClosed
	if errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("an idle connection was not closed: %v", err)
	}
	t.Logf("idle connection closed %v (ClientIdleTimeout 300ms); a busy one stayed open 1.5 s", err)
	if n.cs.idleClosed.Load() == 0 {
		t.Fatal("no idle closure counted")
	}
	checkServes(t, n, client.Options{})
}

// flakyListener fails its first failures Accepts with EMFILE, as a
// process out of file descriptors does.
type flakyListener struct {
	stdnet.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (stdnet.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &stdnet.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestClientPortAcceptSurvivesEMFILE: the accept loop backs off and
// carries on after "too many open files" (found by review: it returned for
// good), and logs the failures at warn level once, not each.
func TestClientPortAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.failures.Store(8)
	n, logs := startClientPort(t, &logMachine{}, func(c *Config) { c.ClientAddr, c.ClientListener = "", fl })
	checkServes(t, n, client.Options{})
	if fl.failures.Load() >= 0 {
		t.Fatal("the listener's failures were not all met")
	}
	if w := logs.warnings("accepting client connections failed"); w != 1 {
		t.Fatalf("8 failed accepts made %d warn lines, want 1:\n%s", w, logs)
	}
}

// TestClientPortStrangerLearnsNothing: with the default TLS (client
// certificates required), a stranger without a certificate of the
// cluster, whether it speaks plaintext, TLS with no certificate or TLS
// with another CA's certificate, gets no Welcome and no refusal reason;
// nothing it reads after the TLS handshake names the cluster. A client of
// the cluster is served. Past TLS (server-only mode, or plaintext), a
// Hello for another cluster is told "wrong cluster", without this one's
// name.
func TestClientPortStrangerLearnsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	const cluster = "secret-cluster-7f3a"
	if _, err := certs.CreateDir(dir, cluster, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := certs.CreateDir(other, "other", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	n, logs := startClientPort(t, &logMachine{}, func(c *Config) { c.TLSDir, c.Insecure = dir, false })
	addr := n.ClientAddr().String()
	hello := wire.AppendFrame(nil, encodeMsgpackHello(cluster))

	// readAll returns what the stranger reads before the node closes.
	readAll := func(c stdnet.Conn) ([]byte, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(hello)
		b, err := io.ReadAll(c)
		c.Close()
		return b, err
	}
	plain, err := stdnet.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(plain); bytes.Contains(got, []byte(cluster)) || bytes.Contains(got, []byte("PXNT")) {
		t.Fatalf("a plaintext stranger read %q", got)
	}
	ob, err := certs.LoadClient(other, "other")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":           {InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
		"another CA's certificate": {InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ob.Cert}},
	} {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			continue // refused in the handshake: fine
		}
		got, err := readAll(c)
		if len(got) > 0 || err == nil {
			t.Fatalf("a stranger with %s read %q (%v)", name, got, err)
		}
	}
	if w := logs.warnings("refused a client connection"); w > 1 {
		t.Fatalf("3 refusals made %d warn lines", w)
	}
	checkServes(t, n, client.Options{TLSDir: dir})
	// A plaintext client of the cluster is refused too.
	c := client.New([]string{addr}, client.Options{ClusterID: cluster})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.Submit(ctx, []byte("x")); err == nil {
		t.Fatal("a plaintext client was served by a TLS port")
	}
	c.Close()

	// Past TLS, the refusal does not name the cluster.
	for _, mod := range []func(*Config){
		func(c *Config) { c.TLSDir, c.Insecure, c.ClientTLSServerOnly = dir, false, true },
		nil, // plaintext
	} {
		n, _ := startClientPort(t, &logMachine{}, mod)
		opts := client.Options{ClusterID: "guess"}
		if n.cfg.TLSDir != "" {
			b, err := certs.LoadTrust(dir, cluster)
			if err != nil {
				t.Fatal(err)
			}
			opts.TLS = certs.ClientConfig(b) // trusts the CA, presents nothing
			checkServes(t, n, client.Options{TLS: opts.TLS})
		}
		c := client.New([]string{n.ClientAddr().String()}, opts)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Submit(ctx, []byte("x"))
		cancel()
		c.Close()
		if err == nil || !strings.Contains(err.Error(), "wrong cluster") || strings.Contains(err.Error(), cluster) {
			t.Fatalf("a client of another cluster: %v", err)
		}
	}
}

func encodeMsgpackHello(cluster string) []byte {
	return encodeMsgpack(&struct {
		Magic     string
		Version   uint8
		ClusterID string
		NodeID    uint64
		Kind      uint8
	}{"PXNT", 1, cluster, 0, wire.KindClient})
}

// TestClientPortTooLarge: a command above MaxCommandBytes is refused with
// ErrTooLarge, at once and for good (not ErrBusy, which says retry), by
// Node.Submit, by the client port, and, for a request frame too long to
// read, with a response of ID 0 before the connection closes.
func TestClientPortTooLarge(t *testing.T) {
	n, _ := startClientPort(t, &logMachine{}, func(c *Config) { c.MaxCommandBytes = 64 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Submit(ctx, 1, 1, make([]byte, 64<<10+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Node.Submit of MaxCommandBytes+1: %v", err)
	}
	if _, err := n.Submit(ctx, 1, 1, make([]byte, 64<<10)); err != nil {
		t.Fatalf("Node.Submit of MaxCommandBytes: %v", err)
	}
	c := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: n.cfg.ClusterID})
	defer c.Close()
	for _, size := range []int{64<<10 + 1, 64<<10 + 512, 1 << 20, 10 << 20} {
		start := time.Now()
		if _, err := c.Submit(ctx, make([]byte, size)); !errors.Is(err, ErrTooLarge) || time.Since(start) > 3*time.Second {
			t.Fatalf("Client.Submit of %d bytes: %v after %v", size, err, time.Since(start))
		}
	}
	if _, err := c.Submit(ctx, []byte("fits")); err != nil {
		t.Fatalf("a command after the refusals: %v", err)
	}
	if _, err := c.Submit(ctx, make([]byte, 32<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a command above the client's MaxFrameBytes: %v", err)
	}
}

// TestFreshClientsLongResponses: 300 commands from fresh clients (a new
// client ID each), each answered with 4 MiB, through the client port: the
// session table keeps none of it, so the snapshot stays small and the
// heap does not grow with them. (Found by review: ~2 GB on every replica,
// replicated and restored.)
func TestFreshClientsLongResponses(t *testing.T) {
	n, _ := startClientPort(t, &pageMachine{}, nil)
	base := heapLive()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 300; i++ {
		c := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: n.cfg.ClusterID})
		resp, err := c.Submit(ctx, []byte("G"))
		c.Close()
		if err != nil || len(resp) != pageBytes {
			t.Fatalf("request %d: %d bytes, %v", i, len(resp), err)
		}
	}
	grown := int64(heapLive()) - int64(base)
	m, err := n.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("300 fresh clients with 4 MiB answers: live heap %+d KiB, snapshot %d bytes", grown>>10, m.Size)
	if m.Size > 64<<10 || grown > 32<<20 {
		t.Fatalf("the snapshot takes %d bytes, the live heap grew by %d bytes", m.Size, grown)
	}
}

// TestClientPortNeedsTLSOrInsecure: a client port is secure by default; a
// config that says nothing about its TLS does not start, nor one that
// asks for contradictory things, nor one whose commands would not fit a
// message.
func TestClientPortNeedsTLSOrInsecure(t *testing.T) {
	base := Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, ClientAddr: "127.0.0.1:0"}
	for _, tc := range []struct {
		mod  func(*Config)
		want error
		text string
	}{
		{func(c *Config) { c.Transport = memnet.NewMemNetwork().Transport(1) }, ErrNoClientTLS, "Config.ClientTLS"},
		{func(c *Config) { c.Insecure, c.ClientTLSServerOnly = true, true }, nil, "needs Config.TLSDir"},
		{func(c *Config) { c.TLSDir, c.ClientTLS, c.ClientTLSServerOnly = "x", &tls.Config{}, true }, nil, "Config.ClientTLS is set"},
		{func(c *Config) { c.Insecure, c.MaxCommandBytes = true, 4<<20 }, nil, "MaxCommandBytes"},
	} {
		c := base
		c.DataDir = filepath.Join(t.TempDir(), "1")
		tc.mod(&c)
		n, err := Start(c, &logMachine{})
		if err == nil {
			n.Close()
		}
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: %v, want an error saying %q", c, err, tc.text)
		}
	}
	// A client TLS config of one's own, with a plaintext peer port.
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := certs.CreateDir(dir, "paxos", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadReplica(dir, "paxos", 1)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startClientPort(t, &logMachine{}, func(c *Config) {
		c.ClusterID, c.ClientTLS = "paxos", certs.ClientPortConfig(b, certs.ClientPortOptions{})
	})
	checkServes(t, n, client.Options{TLSDir: dir})
	cb, err := certs.LoadTrust(dir, "paxos")
	if err != nil {
		t.Fatal(err)
	}
	c := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: "paxos", TLS: certs.ClientConfig(cb)})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.Submit(ctx, []byte("x")); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// TLSDir and TLS are exclusive in the client, refused at once.
	c2 := client.New([]string{n.ClientAddr().String()}, client.Options{ClusterID: "paxos", TLSDir: dir, TLS: certs.ClientConfig(cb)})
	defer c2.Close()
	if _, err := c2.Submit(context.Background(), []byte("x")); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Fatalf("a client with TLS and TLSDir: %v", err)
	}
	if c2.Seq() != 0 {
		t.Fatalf("a command refused by the client's configuration used sequence number %d", c2.Seq())
	}
}

// TestClientHangUpBeforeHelloNotWarned: a dialer that closes before its
// Hello (a port probe; a client that gave up) is logged at debug level,
// not warned about; one that sends garbage still is. And the Go client's
// probe (Status) makes no refusal at all.
func TestClientHangUpBeforeHelloNotWarned(t *testing.T) {
	n, logs := startClientPort(t, &logMachine{}, nil)
	addr := n.ClientAddr().String()
	for i := 0; i < 3; i++ {
		c, err := stdnet.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	waitFor(t, 10*time.Second, "the hang-ups counted", func() bool { return n.cs.refused.Load() == 3 })
	if w := logs.warnings("refused"); w != 0 {
		t.Fatalf("hang-ups before the Hello made %d warn lines:\n%s", w, logs.String())
	}
	if !strings.Contains(logs.String(), "closed its connection before its handshake") {
		t.Fatalf("the hang-ups were not logged at debug level:\n%s", logs.String())
	}
	cl := client.New([]string{addr}, client.Options{ClusterID: n.cfg.ClusterID})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Status(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	c, err := stdnet.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.Close()
	waitFor(t, 10*time.Second, "the garbage refused", func() bool { return n.cs.refused.Load() == 4 })
	waitFor(t, 10*time.Second, "a warn line for the garbage", func() bool { return logs.warnings("refused") == 1 })
}
