package main

import (
	"fmt"
	stdnet "net"
	"path/filepath"
	"strings"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
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
	return u.tls().Check()
}

func (u *upCmd) tls() cmdflags.TLS { return cmdflags.TLS{Dir: u.TLSDir, Insecure: u.Insecure} }

// Run starts the replicas, prints how to reach them, and shows the leader
// and the commit progress until the context ends (Ctrl-C).
func (u *upCmd) Run(g *globals) error {
	peers := map[uint64]string{}
	for id := 0; id < u.Nodes; id++ {
		peers[uint64(id)] = fmt.Sprintf("127.0.0.1:%d", u.PeerPort+id)
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
	for id := range nodes {
		n, err := chatroom.StartServer(chatroom.ServerConfig{
			ID: id, Count: u.Nodes, Peers: peers,
			ClientAddr:      fmt.Sprintf("127.0.0.1:%d", u.ClientPort+id),
			DataDir:         filepath.Join(u.DataDir, fmt.Sprintf("node-%d", id)),
			ClusterID:       u.ClusterID,
			ElectionTimeout: u.Timeout,
			TLSDir:          tlsDir,
			Insecure:        u.Insecure,
			Logger:          g.log.Named(fmt.Sprintf("replica-%d", id)),
		})
		if err != nil {
			return fmt.Errorf("starting replica %d: %w", id, err)
		}
		nodes[id] = n
	}
	fmt.Fprintf(g.out, "paxos-go chat room: %d replicas on 127.0.0.1, data in %s\n", u.Nodes, u.DataDir)
	for id := range nodes {
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
	fmt.Fprintf(g.out, "Talk to it:  %s   then   connect %d\n", u.clientCommand(tlsDir), u.ClientPort)
	fmt.Fprintf(g.out, "Stop it with Ctrl-C.\n")
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, lastPrint := "", time.Time{}
	for {
		select {
		case <-g.ctx.Done():
			fmt.Fprintln(g.out, "stopping")
			return nil
		case <-tick.C:
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

// clusterLine describes the leader and each replica's progress.
func clusterLine(nodes []*engine.Node) string {
	leader := "none yet"
	var applied []string
	var commit uint64
	for _, n := range nodes {
		st := n.Status()
		if st.Role == "leader" {
			leader = fmt.Sprintf("replica %d (ballot %s)", st.ID, st.Promised)
		}
		commit = max(commit, st.Commit)
		applied = append(applied, fmt.Sprint(st.Applied))
	}
	return fmt.Sprintf("leader: %s | commit: slot %d | applied: %s", leader, commit, strings.Join(applied, " "))
}

func portFree(port int) error {
	ln, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return ln.Close()
}
