// Command chatroom-server runs one replica of the chat room, with the
// flags of the original project:
//
//	chatroom-server -i ID -p PORT -c COUNT [-t MS] [-v...|-q] [--data-dir DIR] [--peers LIST] [--cluster-id ID]
//	                [--tls-dir DIR | --insecure]
//	chatroom-server --join -i ID -p PORT [...]   a new replica for a running cluster
//
// The replica serves clients on 127.0.0.1:PORT and its peers on
// 127.0.0.1:20000+ID, unless --peers says otherwise. The peer port runs
// mutual TLS with the certificates of --tls-dir; without it, those of
// data/tls, which the first server to start makes for replicas 0 to
// COUNT-1 (servers started at once agree on one set), so the original
// project's command lines run secure unchanged. --insecure runs it in
// plaintext. It stops cleanly on SIGINT or SIGTERM.
//
// With --join it starts a new replica for a running cluster, with an
// empty data dir: it waits until the cluster adds it (paxos cluster add),
// then receives a snapshot and the log. It needs no -c, and its
// certificate must already be in the directory (paxos certs --add ID).
// The same command line restarts it once it has joined.
//
// With --metrics-addr HOST:PORT it serves /metrics (Prometheus), /healthz
// and /readyz over HTTP there: see the README's Metrics section.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	stdnet "net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/cmd/internal/opsserver"
	"github.com/paxos-go/paxos/engine"
)

type cli struct {
	ID         int    `short:"i" required:"" help:"This server's id, from 0 to count-1."`
	Port       int    `short:"p" required:"" help:"The port clients connect to, on 127.0.0.1."`
	Count      int    `short:"c" help:"How many servers the cluster has (not with --join)."`
	Timeout    int    `short:"t" default:"1000" help:"Election timeout in milliseconds: a follower that hears nothing from the leader for one to two of these starts an election."`
	Verbose    int    `short:"v" type:"counter" help:"Log more: -v debug, -vv trace (default: info: start-up, leader changes, snapshots, membership)."`
	Quiet      bool   `short:"q" help:"Log warnings and errors only."`
	DataDir    string `name:"data-dir" help:"Where the log and snapshots live (default ./data/node-<id>)."`
	Peers      string `help:"Every server's peer address, in id order, comma-separated (or id=host:port pairs). Default 127.0.0.1:20000+id."`
	ClusterID  string `name:"cluster-id" default:"chatroom" help:"The cluster's name; servers refuse peers and data of another."`
	SegmentMB  int    `name:"wal-segment-mb" default:"8" help:"Size of the write-ahead log's segment files, in MiB."`
	TLSDir     string `name:"tls-dir" placeholder:"DIR" help:"The cluster's certificates, as paxos certs writes them (ca.pem, node-<id>.pem, node-<id>-key.pem); the peer port runs mutual TLS with them. Default: data/tls, made on first use for replicas 0 to count-1."`
	Insecure   bool   `help:"Run both ports (peer and client) in plaintext, unauthenticated: anyone who reaches the peer port can act as a replica, and anyone who reaches the client port is a client. Only where every host is trusted."`
	PeerListen string `name:"peer-listen" placeholder:"HOST:PORT" help:"Listen for peers here instead of at this server's peer address (the one --peers, and then the cluster's configuration, give for it, where the other servers dial): for a proxy, NAT or port mapping in between."`
	Join       bool   `help:"Join a running cluster as a new replica, with an empty data dir: wait until the cluster adds it (paxos cluster add ID --peer-addr ... --client-addr ...), then take a snapshot and the log from it. Any unused ID (not one the cluster ever had); no -c; the peer address is 127.0.0.1:20000+ID, or --peers ID=HOST:PORT. Its certificate must already be in the certificate directory (paxos certs --add ID). Once it has joined, the same command line restarts it from its data."`

	MetricsAddr string `name:"metrics-addr" placeholder:"HOST:PORT" help:"Serve /metrics (Prometheus), /healthz and /readyz over HTTP here (see the README's Metrics section). Default: none."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run runs the server until ctx ends and returns the exit status: 0 on a
// clean stop, 1 when the server cannot run, 80 for a bad command line.
func run(ctx context.Context, args []string, stderr io.Writer) (code int) {
	var c cli
	parser, err := kong.New(&c, kong.Name("chatroom-server"),
		kong.Description("One replica of the paxos-go chat room."),
		kong.Writers(stderr, stderr),
		kong.Exit(func(code int) { panic(exitRequest{code}) }))
	if err != nil {
		panic(err)
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	if _, err := parser.Parse(args); err != nil {
		fmt.Fprintf(stderr, "chatroom-server: %v\n", err)
		return 80
	}
	if err := c.validate(); err != nil {
		fmt.Fprintf(stderr, "chatroom-server: %v\n", err)
		return 80
	}
	if err := c.serve(ctx, stderr); err != nil {
		fmt.Fprintf(stderr, "chatroom-server: %v\n", err)
		return 1
	}
	return 0
}

type exitRequest struct{ code int }

// maxTimeoutMs bounds -t, in milliseconds, as cmdflags bounds every
// election timeout.
const maxTimeoutMs = int(cmdflags.MaxElectionTimeout / time.Millisecond)

func (c *cli) validate() error {
	if c.Join {
		if err := c.validateJoin(); err != nil {
			return err
		}
	} else {
		switch {
		case c.Count == 0:
			return fmt.Errorf("missing flags: --count=INT (or --join, for a replica that joins a running cluster)")
		case c.Count < 1:
			return fmt.Errorf("--count %d: a cluster has at least one server", c.Count)
		case c.Count > cmdflags.MaxReplicas:
			return fmt.Errorf("--count %d: a cluster has at most %d servers", c.Count, cmdflags.MaxReplicas)
		case c.ID < 0 || c.ID >= c.Count:
			return fmt.Errorf("--id %d: ids run from 0 to count-1 (%d)", c.ID, c.Count-1)
		}
	}
	switch {
	case c.Timeout < 10 || c.Timeout > maxTimeoutMs:
		return fmt.Errorf("--timeout %d: between 10 and %d ms", c.Timeout, maxTimeoutMs)
	case c.SegmentMB < 1 || c.SegmentMB > 1024:
		return fmt.Errorf("--wal-segment-mb %d: between 1 and 1024", c.SegmentMB)
	}
	if err := cmdflags.Port("--port", c.Port); err != nil {
		return err
	}
	if err := cmdflags.ClusterID("--cluster-id", c.ClusterID); err != nil {
		return err
	}
	if c.PeerListen != "" {
		if err := cmdflags.HostPort("--peer-listen", c.PeerListen); err != nil {
			return err
		}
		if _, port, _ := stdnet.SplitHostPort(c.PeerListen); port == strconv.Itoa(c.Port) {
			return fmt.Errorf("--peer-listen %s: the same port as --port %d; a server's peer and client ports are two ports", c.PeerListen, c.Port)
		}
	}
	if c.MetricsAddr != "" {
		if err := cmdflags.HostPort("--metrics-addr", c.MetricsAddr); err != nil {
			return err
		}
	}
	if err := c.tls().Check(); err != nil {
		return err
	}
	peers, err := c.peers()
	if err != nil {
		return err
	}
	// The client port must not be a peer port of the cluster on this
	// host: two listeners cannot share it, and the one that lost would
	// say only "address already in use".
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		host, port, _ := stdnet.SplitHostPort(peers[id])
		if port == strconv.Itoa(c.Port) && (host == "127.0.0.1" || host == "localhost") {
			return fmt.Errorf("--port %d: it is server %d's peer port (%s); choose another", c.Port, id, peers[id])
		}
	}
	return nil
}

// validateJoin checks what --join changes: no count, and any replica ID
// whose peer address is known.
func (c *cli) validateJoin() error {
	if c.Count != 0 {
		return fmt.Errorf("--count %d and --join: a joining replica learns the cluster from it; drop --count", c.Count)
	}
	if c.ID < 0 {
		return fmt.Errorf("--id %d: a replica ID is between 0 and %d", c.ID, cmdflags.MaxReplicaID)
	}
	if err := cmdflags.ReplicaID("--id", uint64(c.ID)); err != nil {
		return err
	}
	if c.Peers == "" && defaultPeerPort+c.ID > 65535 {
		return fmt.Errorf("--id %d: its default peer port, %d+id, is past 65535; give its address with --peers %d=HOST:PORT", c.ID, defaultPeerPort, c.ID)
	}
	return nil
}

// defaultPeerPort is replica 0's peer port without --peers; replica i's
// is this plus i.
const defaultPeerPort = 20000

func (c *cli) tls() cmdflags.TLS { return cmdflags.TLS{Dir: c.TLSDir, Insecure: c.Insecure} }

// peers returns every server's peer address; with --join, this server's
// (and any others --peers gives).
func (c *cli) peers() (map[uint64]string, error) {
	peers := map[uint64]string{}
	if c.Peers == "" {
		if c.Join {
			peers[uint64(c.ID)] = fmt.Sprintf("127.0.0.1:%d", defaultPeerPort+c.ID)
			return peers, nil
		}
		for id := 0; id < c.Count; id++ {
			peers[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", defaultPeerPort+id)
		}
		return peers, nil
	}
	parts := strings.Split(c.Peers, ",")
	if len(parts) > cmdflags.MaxReplicas {
		return nil, fmt.Errorf("--peers lists %d servers; a cluster has at most %d", len(parts), cmdflags.MaxReplicas)
	}
	for i, part := range parts {
		id, addr := uint64(i), strings.TrimSpace(part)
		if k, v, ok := strings.Cut(addr, "="); ok {
			n, err := strconv.ParseUint(k, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("--peers: %q is not id=host:port", part)
			}
			if err := cmdflags.ReplicaID("--peers: id", n); err != nil {
				return nil, err
			}
			id, addr = n, v
		}
		if err := cmdflags.HostPort("--peers", addr); err != nil {
			return nil, err
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("--peers: id %d given twice", id)
		}
		peers[id] = addr
	}
	if c.Join {
		if _, ok := peers[uint64(c.ID)]; !ok {
			return nil, fmt.Errorf("--peers has no address for id %d, this server (with --join, give it as %d=HOST:PORT)", c.ID, c.ID)
		}
		return peers, nil
	}
	if len(peers) != c.Count {
		return nil, fmt.Errorf("--peers lists %d servers, --count says %d", len(peers), c.Count)
	}
	for id := 0; id < c.Count; id++ {
		if _, ok := peers[uint64(id)]; !ok {
			return nil, fmt.Errorf("--peers has no address for id %d", id)
		}
	}
	return peers, nil
}

func (c *cli) serve(ctx context.Context, stderr io.Writer) error {
	peers, err := c.peers()
	if err != nil {
		return err
	}
	dir := c.DataDir
	if dir == "" {
		dir = filepath.Join("data", fmt.Sprintf("node-%d", c.ID))
	}
	// Info by default: an operator sees the replica start, and who leads.
	level := []hclog.Level{hclog.Info, hclog.Debug, hclog.Trace}[min(c.Verbose, 2)]
	if c.Quiet {
		level = hclog.Warn
	}
	log := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("chatroom-server[%d]", c.ID), Level: level, Output: stderr})
	var tlsDir string
	var created bool
	if c.Join {
		tlsDir, err = c.tls().JoinerDir(cmdflags.DefaultTLSDir, c.ClusterID, uint64(c.ID))
	} else {
		tlsDir, created, err = c.tls().ReplicaDir(cmdflags.DefaultTLSDir, c.ClusterID, c.Count, []uint64{uint64(c.ID)})
	}
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "chatroom-server: made the certificates of cluster %s, replicas 0 to %d, in %s\n", c.ClusterID, c.Count-1, tlsDir)
	}
	var metrics *prometheus.Registry
	if c.MetricsAddr != "" {
		metrics = opsserver.NewRegistry()
	}
	node, err := chatroom.StartServer(chatroom.ServerConfig{
		ID: c.ID, Count: c.Count, Peers: peers, Join: c.Join, PeerListenAddr: c.PeerListen,
		ClientAddr:      fmt.Sprintf("127.0.0.1:%d", c.Port),
		DataDir:         dir,
		ClusterID:       c.ClusterID,
		ElectionTimeout: time.Duration(c.Timeout) * time.Millisecond,
		SegmentBytes:    int64(c.SegmentMB) << 20,
		TLSDir:          tlsDir,
		Insecure:        c.Insecure,
		Logger:          log,
		Metrics:         metricsRegisterer(metrics),
	})
	if err != nil {
		return err
	}
	if metrics != nil {
		ops, err := opsserver.Start(c.MetricsAddr, metrics, func() []opsserver.Readiness {
			return []opsserver.Readiness{{Name: fmt.Sprintf("replica %d", c.ID), Check: node.Readiness}}
		})
		if err != nil {
			node.Close()
			return err
		}
		defer ops.Close()
		log.Info("serving metrics", "addr", ops.Addr(), "endpoints", "/metrics /healthz /readyz")
	}
	peerTLS := "mutual TLS, certificates in " + tlsDir
	if c.Insecure {
		peerTLS = "plaintext (--insecure: the client port too)"
	}
	log.Info("serving", "cluster", c.ClusterID, "id", c.ID, "clients", fmt.Sprintf("127.0.0.1:%d", c.Port), "peers", peers[uint64(c.ID)],
		"peer_port", peerTLS, "data", dir)
	if node.Status().Joining {
		fmt.Fprintf(stderr, "chatroom-server: replica %d waits to join cluster %s; add it with:\n  paxos cluster add %d --peer-addr %s --client-addr 127.0.0.1:%d\n",
			c.ID, c.ClusterID, c.ID, peers[uint64(c.ID)], c.Port)
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return node.Close()
	case <-node.Done():
	}
	// The replica stopped by itself.
	err = node.Err()
	node.Close()
	if errors.Is(err, engine.ErrRemoved) {
		fmt.Fprintf(stderr, "chatroom-server: replica %d was removed from the cluster; it stops (its ID is never used again)\n", c.ID)
		return nil
	}
	return fmt.Errorf("the replica stopped: %w", err)
}

// metricsRegisterer is reg as an engine.Config.Metrics: nil (no metrics)
// for a nil reg, not an interface holding a nil pointer.
func metricsRegisterer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}
