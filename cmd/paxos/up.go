package main

import (
	"errors"
	"fmt"
	stdnet "net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/cmd/internal/opsserver"
	"github.com/paxos-go/paxos/engine"
)

// upCmd starts a local chat room cluster in this process.
type upCmd struct {
	Nodes      int           `default:"3" help:"How many replicas."`
	DataDir    string        `name:"data-dir" default:"data" help:"Where the replicas keep their data (one directory each)."`
	ClientPort int           `name:"client-port" default:"10000" help:"Client port of replica 0; replica i listens on this plus i."`
	PeerPort   int           `name:"peer-port" default:"20000" help:"Peer port of replica 0; replica i listens on this plus i."`
	Timeout    time.Duration `default:"1s" help:"Election timeout (10ms to 1m)."`
	ClusterID  string        `name:"cluster-id" default:"chatroom" help:"The cluster's name."`
	TLSDir     string        `name:"tls-dir" placeholder:"DIR" help:"The cluster's certificates, as paxos certs writes them; the peer ports run mutual TLS with them. Default: <data-dir>/tls, made on first start."`
	Insecure   bool          `help:"Run the peer and client ports in plaintext, unauthenticated, instead of mutual TLS."`
	Replicas   []int         `sep:"," placeholder:"ID,..." help:"Run only these replicas of the cluster in this process (default: all of them). The others run elsewhere, or are down: another paxos up --replicas runs them with the same ports and data dirs."`

	MetricsAddr string `name:"metrics-addr" placeholder:"HOST:PORT" help:"Serve /metrics (Prometheus; every replica of this process, by its replica label), /healthz and /readyz over HTTP here (see the README's Metrics section). Default: none."`
}

// Validate refuses a bad command line before anything starts (kong calls
// it while parsing, so the error comes with the usage).
func (u *upCmd) Validate() error {
	if err := cmdflags.Replicas("--nodes", u.Nodes); err != nil {
		return err
	}
	if err := cmdflags.PortRange("--client-port", u.ClientPort, u.Nodes); err != nil {
		return err
	}
	if err := cmdflags.PortRange("--peer-port", u.PeerPort, u.Nodes); err != nil {
		return err
	}
	if u.ClientPort < u.PeerPort+u.Nodes && u.PeerPort < u.ClientPort+u.Nodes {
		return fmt.Errorf("--client-port %d and --peer-port %d: %d replicas need ports %d-%d and %d-%d, which overlap",
			u.ClientPort, u.PeerPort, u.Nodes, u.ClientPort, u.ClientPort+u.Nodes-1, u.PeerPort, u.PeerPort+u.Nodes-1)
	}
	if err := cmdflags.ElectionTimeout("--timeout", u.Timeout); err != nil {
		return err
	}
	if u.DataDir == "" {
		return fmt.Errorf("--data-dir: empty")
	}
	if err := cmdflags.ClusterID("--cluster-id", u.ClusterID); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, id := range u.Replicas {
		switch {
		case id < 0 || id >= u.Nodes:
			return fmt.Errorf("--replicas: %d: the replicas of --nodes %d are 0 to %d", id, u.Nodes, u.Nodes-1)
		case seen[id]:
			return fmt.Errorf("--replicas: %d given twice", id)
		}
		seen[id] = true
	}
	if u.MetricsAddr != "" {
		if err := cmdflags.HostPort("--metrics-addr", u.MetricsAddr); err != nil {
			return err
		}
	}
	return u.tls().Check()
}

// mine returns the replicas this process runs, sorted.
func (u *upCmd) mine() []int {
	if len(u.Replicas) == 0 {
		ids := make([]int, u.Nodes)
		for i := range ids {
			ids[i] = i
		}
		return ids
	}
	return slices.Sorted(slices.Values(u.Replicas))
}

func (u *upCmd) tls() cmdflags.TLS { return cmdflags.TLS{Dir: u.TLSDir, Insecure: u.Insecure} }

// Run starts the replicas, prints how to reach them, and shows the leader
// and the commit progress until the context ends (Ctrl-C).
func (u *upCmd) Run(g *globals) error {
	peers, clients := map[uint64]string{}, map[uint64]string{}
	for id := 0; id < u.Nodes; id++ {
		peers[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", u.PeerPort+id)
		clients[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", u.ClientPort+id)
	}
	mine := u.mine()
	for _, id := range mine {
		for _, port := range []int{u.ClientPort + id, u.PeerPort + id} {
			if err := portFree(port); err != nil {
				return fmt.Errorf("port %d is taken (%v); choose others with --client-port and --peer-port", port, err)
			}
		}
	}
	tlsDir, created, err := u.tls().ReplicaDir(filepath.Join(u.DataDir, "tls"), u.ClusterID, u.Nodes, cmdflags.IDs(u.Nodes))
	if err != nil {
		return err
	}
	nodes := make([]*engine.Node, u.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	var metrics prometheus.Registerer
	var ops *opsserver.Server
	var ready atomic.Pointer[[]opsserver.Readiness] // set once every replica started
	if u.MetricsAddr != "" {
		// Started before the replicas, so that a taken port fails at once;
		// not ready until they all started.
		reg := opsserver.NewRegistry()
		ops, err = opsserver.Start(u.MetricsAddr, reg, func() []opsserver.Readiness {
			if p := ready.Load(); p != nil {
				return *p
			}
			return nil
		})
		if err != nil {
			return err
		}
		defer ops.Close()
		metrics = reg
	}
	for _, id := range mine {
		n, err := chatroom.StartServer(chatroom.ServerConfig{
			ID: id, Count: u.Nodes, Peers: peers, ClientAddrs: clients,
			ClientAddr:      clients[uint64(id)],
			DataDir:         filepath.Join(u.DataDir, fmt.Sprintf("node-%d", id)),
			ClusterID:       u.ClusterID,
			ElectionTimeout: u.Timeout,
			TLSDir:          tlsDir,
			Insecure:        u.Insecure,
			Logger:          g.log.Named(fmt.Sprintf("replica-%d", id)),
			Metrics:         metrics,
		})
		if err != nil {
			return fmt.Errorf("starting replica %d: %w", id, err)
		}
		nodes[id] = n
	}
	if ops != nil {
		var rs []opsserver.Readiness
		for _, id := range mine {
			rs = append(rs, opsserver.Readiness{Name: fmt.Sprintf("replica %d", id), Check: nodes[id].Readiness})
		}
		ready.Store(&rs)
	}
	if len(mine) == u.Nodes {
		fmt.Fprintf(g.out, "paxos-go chat room: %d replicas on 127.0.0.1, data in %s\n", u.Nodes, u.DataDir)
	} else {
		fmt.Fprintf(g.out, "paxos-go chat room: replicas %s of %d on 127.0.0.1 (--replicas), data in %s\n", joinInts(mine), u.Nodes, u.DataDir)
	}
	for _, id := range mine {
		fmt.Fprintf(g.out, "  replica %d  clients 127.0.0.1:%d  peers 127.0.0.1:%d\n", id, u.ClientPort+id, u.PeerPort+id)
	}
	switch {
	case u.Insecure:
		fmt.Fprintf(g.out, "Peer and client ports: plaintext, unauthenticated (--insecure)\n")
	case created:
		fmt.Fprintf(g.out, "Peer and client ports: mutual TLS, with certificates made now in %s\n", tlsDir)
	default:
		fmt.Fprintf(g.out, "Peer and client ports: mutual TLS, with the certificates in %s\n", tlsDir)
	}
	if ops != nil {
		fmt.Fprintf(g.out, "Metrics: http://%s/metrics   health: /healthz   readiness: /readyz\n", ops.Addr())
	}
	fmt.Fprintf(g.out, "Talk to it:  %s   then   connect %d\n", u.clientCommand(tlsDir), u.ClientPort)
	fmt.Fprintf(g.out, "Stop it with Ctrl-C.\n")
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, lastPrint := "", time.Time{}
	stopped := map[int]bool{} // replicas that stopped by themselves, said once
	for {
		select {
		case <-g.ctx.Done():
			fmt.Fprintln(g.out, "stopping")
			return nil
		case <-tick.C:
		}
		for id, n := range nodes {
			if n == nil || stopped[id] {
				continue
			}
			select {
			case <-n.Done():
				stopped[id] = true
				fmt.Fprintf(g.out, "%s  replica %d stopped: %v\n", time.Now().Format("15:04:05"), id, n.Err())
			default:
			}
		}
		if len(stopped) == len(mine) {
			return errors.New("every replica of this process stopped")
		}
		if line := clusterLine(nodes); line != last || time.Since(lastPrint) > 10*time.Second {
			fmt.Fprintf(g.out, "%s  %s\n", time.Now().Format("15:04:05"), line)
			last, lastPrint = line, time.Now()
		}
	}
}

// clientCommand is the chatroom-client command line that reaches this
// cluster: the client's defaults are this command's.
func (u *upCmd) clientCommand(tlsDir string) string {
	cmd := "go run ./cmd/chatroom-client"
	if u.ClusterID != "chatroom" {
		cmd += " --cluster-id " + u.ClusterID
	}
	switch {
	case u.Insecure:
		cmd += " --insecure"
	case filepath.Clean(tlsDir) != filepath.Clean(cmdflags.DefaultTLSDir):
		cmd += " --tls-dir " + tlsDir
	}
	return cmd
}

// clusterLine describes the leader and the progress of each replica this
// process runs (labelled with their IDs when it runs only some).
func clusterLine(nodes []*engine.Node) string {
	leader, elsewhere := "none yet", ""
	var applied []string
	var commit uint64
	some := slices.Contains(nodes, nil)
	for id, n := range nodes {
		if n == nil {
			continue // another process's
		}
		st := n.Status()
		if st.Role == "leader" {
			leader = fmt.Sprintf("replica %d (ballot %s)", st.ID, st.Promised)
		} else if st.HasLead {
			elsewhere = fmt.Sprintf("replica %d (in another process)", st.Leader)
		}
		commit = max(commit, st.Commit)
		if some {
			applied = append(applied, fmt.Sprintf("%d:%d", id, st.Applied))
		} else {
			applied = append(applied, fmt.Sprint(st.Applied))
		}
	}
	if leader == "none yet" && elsewhere != "" {
		leader = elsewhere
	}
	// The configuration, as the replica that has committed furthest
	// knows it: it changes with paxos cluster add, promote and remove.
	conf := ""
	var best uint64
	for _, n := range nodes {
		if n != nil {
			if st := n.Status(); conf == "" || st.Commit > best {
				conf, best = n.Configuration().String(), st.Commit
			}
		}
	}
	return fmt.Sprintf("leader: %s | commit: slot %d | applied: %s | configuration: %s", leader, commit, strings.Join(applied, " "), conf)
}

func joinInts(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

func portFree(port int) error {
	ln, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return ln.Close()
}
