package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/net/certs"
)

// clusterCmd changes the membership of a running cluster through its
// client ports, as an operator does: every subcommand finds the leader
// among --target, asks it, waits for the outcome and prints the
// configuration the cluster then has.
type clusterCmd struct {
	Status   clusterStatusCmd   `cmd:"" help:"Print the cluster's configuration: each replica's ID, role (voter or learner), peer and client addresses, and the leader."`
	Add      clusterAddCmd      `cmd:"" help:"Add a replica as a learner: it receives the log and snapshots but does not vote until it is promoted. Start it first, with an empty data dir (chatroom-server --join)."`
	Promote  clusterPromoteCmd  `cmd:"" help:"Make a learner a voter, once it has caught up with the log (this waits for it, up to --timeout)."`
	Remove   clusterRemoveCmd   `cmd:"" help:"Remove a replica, voter or learner, for good: its ID is never used again. Removing the leader hands leadership over first."`
	Transfer clusterTransferCmd `cmd:"" help:"Hand leadership over to a voter: the leader brings it up to date and tells it to campaign; writes meanwhile wait, they do not fail."`
}

// clusterTarget is what every cluster subcommand needs to reach the
// cluster: where, which cluster, with which certificates, and how long to
// wait.
type clusterTarget struct {
	Target    []string      `sep:"," placeholder:"HOST:PORT" default:"127.0.0.1:10000,127.0.0.1:10001,127.0.0.1:10002" help:"Client addresses of replicas of the cluster, comma-separated: any that answer will do, the command finds the leader. Default: those of paxos up."`
	ClusterID string        `name:"cluster-id" default:"chatroom" help:"The cluster's name."`
	TLSDir    string        `name:"tls-dir" placeholder:"DIR" help:"The cluster's certificates, as paxos certs writes them (ca.pem, client.pem, client-key.pem). Default: data/tls, which paxos up and chatroom-server make."`
	Insecure  bool          `help:"Use no certificates: for a cluster whose replicas run --insecure."`
	Timeout   time.Duration `default:"30s" help:"How long to wait for the cluster's answer (for promote: for the learner to catch up, then for the change)."`
}

// maxTargets bounds --target: more addresses than a cluster has members
// are a mistake.
const maxTargets = paxos.MaxMembers

func (t *clusterTarget) validate() error {
	if len(t.Target) == 0 {
		return errors.New("--target: no address (give the client address of at least one replica)")
	}
	if len(t.Target) > maxTargets {
		return fmt.Errorf("--target: %d addresses; a cluster has at most %d members", len(t.Target), maxTargets)
	}
	for _, addr := range t.Target {
		if err := cmdflags.HostPort("--target", addr); err != nil {
			return err
		}
	}
	if err := cmdflags.Positive("--timeout", t.Timeout); err != nil {
		return err
	}
	if err := cmdflags.ClusterID("--cluster-id", t.ClusterID); err != nil {
		return err
	}
	return t.tls().Check()
}

func (t *clusterTarget) tls() cmdflags.TLS { return cmdflags.TLS{Dir: t.TLSDir, Insecure: t.Insecure} }

// dial reads the certificates and returns a client of the cluster.
func (t *clusterTarget) dial() (membership, error) {
	b, err := t.tls().ClientBundle(cmdflags.DefaultTLSDir, t.ClusterID)
	if err != nil {
		return nil, err
	}
	var cfg *tls.Config
	if b != nil {
		cfg = certs.ClientConfig(b)
	}
	return dialCluster(t.Target, t.ClusterID, cfg), nil
}

// membership is what the cluster subcommands ask of a cluster. The engine's
// Client provides it (clusterclient.go); tests substitute a fake.
type membership interface {
	// Configuration returns the newest configuration the cluster chose,
	// and the leader as the replica that answered knows it.
	Configuration(ctx context.Context) (clusterView, error)
	AddLearner(ctx context.Context, id uint64, peerAddr, clientAddr string) error
	Promote(ctx context.Context, id uint64) error
	RemoveReplica(ctx context.Context, id uint64) error
	TransferLeadership(ctx context.Context, id uint64) error
	Close() error
}

// clusterView is a configuration and the leader.
type clusterView struct {
	Config    paxos.Configuration
	Leader    uint64
	HasLeader bool
}

// dialCluster returns a client of the cluster at addrs (tls nil for
// plaintext). A variable so that tests can run the commands against a
// fake cluster.
var dialCluster = newEngineMembership

// clusterStatusCmd prints the configuration.
type clusterStatusCmd struct {
	clusterTarget `embed:""`
}

func (c *clusterStatusCmd) Validate() error { return c.validate() }

func (c *clusterStatusCmd) Run(g *globals) error {
	return c.do(g, "", func(context.Context, membership) error { return nil })
}

// clusterAddCmd adds a learner.
type clusterAddCmd struct {
	clusterTarget `embed:""`
	ID            uint64 `arg:"" name:"id" help:"The new replica's ID: one the cluster has never had (a removed replica's ID is never reused)."`
	PeerAddr      string `name:"peer-addr" required:"" placeholder:"HOST:PORT" help:"Where the other replicas reach the new one (its peer port)."`
	ClientAddr    string `name:"client-addr" required:"" placeholder:"HOST:PORT" help:"Where clients reach the new one (its client port), for redirects to it once it leads."`
}

func (c *clusterAddCmd) Validate() error {
	// Kong calls Validate before it looks for missing flags: say which
	// are missing here, rather than calling an empty one malformed.
	var missing []string
	if c.PeerAddr == "" {
		missing = append(missing, "--peer-addr=HOST:PORT")
	}
	if c.ClientAddr == "" {
		missing = append(missing, "--client-addr=HOST:PORT")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing flags: %s", strings.Join(missing, ", "))
	}
	if err := cmdflags.ReplicaID("<id>", c.ID); err != nil {
		return err
	}
	if err := cmdflags.HostPort("--peer-addr", c.PeerAddr); err != nil {
		return err
	}
	if err := cmdflags.HostPort("--client-addr", c.ClientAddr); err != nil {
		return err
	}
	if c.PeerAddr == c.ClientAddr {
		return fmt.Errorf("--peer-addr and --client-addr are both %s: a replica's peer and client ports are two ports", c.PeerAddr)
	}
	return c.validate()
}

func (c *clusterAddCmd) Run(g *globals) error {
	return c.do(g, fmt.Sprintf("replica %d added as a learner; promote it with: paxos cluster promote %d", c.ID, c.ID),
		func(ctx context.Context, m membership) error {
			return m.AddLearner(ctx, c.ID, c.PeerAddr, c.ClientAddr)
		})
}

// clusterPromoteCmd makes a learner a voter.
type clusterPromoteCmd struct {
	clusterTarget `embed:""`
	ID            uint64 `arg:"" name:"id" help:"The learner to promote."`
}

func (c *clusterPromoteCmd) Validate() error {
	if err := cmdflags.ReplicaID("<id>", c.ID); err != nil {
		return err
	}
	return c.validate()
}

func (c *clusterPromoteCmd) Run(g *globals) error {
	return c.do(g, fmt.Sprintf("replica %d promoted to voter", c.ID),
		func(ctx context.Context, m membership) error { return m.Promote(ctx, c.ID) })
}

// clusterRemoveCmd removes a replica.
type clusterRemoveCmd struct {
	clusterTarget `embed:""`
	ID            uint64 `arg:"" name:"id" help:"The replica to remove."`
}

func (c *clusterRemoveCmd) Validate() error {
	if err := cmdflags.ReplicaID("<id>", c.ID); err != nil {
		return err
	}
	return c.validate()
}

func (c *clusterRemoveCmd) Run(g *globals) error {
	return c.do(g, fmt.Sprintf("replica %d removed; stop its process (it takes no part any more)", c.ID),
		func(ctx context.Context, m membership) error { return m.RemoveReplica(ctx, c.ID) })
}

// clusterTransferCmd hands leadership over.
type clusterTransferCmd struct {
	clusterTarget `embed:""`
	ID            uint64 `arg:"" name:"id" help:"The voter to hand leadership to."`
}

func (c *clusterTransferCmd) Validate() error {
	if err := cmdflags.ReplicaID("<id>", c.ID); err != nil {
		return err
	}
	return c.validate()
}

func (c *clusterTransferCmd) Run(g *globals) error {
	return c.do(g, fmt.Sprintf("replica %d leads", c.ID),
		func(ctx context.Context, m membership) error { return m.TransferLeadership(ctx, c.ID) })
}

// do runs change against the cluster within --timeout, says done on
// success, then prints the configuration.
func (t *clusterTarget) do(g *globals, done string, change func(context.Context, membership) error) error {
	m, err := t.dial()
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(g.ctx, t.Timeout)
	defer cancel()
	if err := change(ctx, m); err != nil {
		return explain(err, t.Timeout)
	}
	if done != "" {
		fmt.Fprintln(g.errOut, done)
	}
	v, err := m.Configuration(ctx)
	if err != nil {
		return fmt.Errorf("reading the configuration: %w", explain(err, t.Timeout))
	}
	printConfiguration(g.out, v)
	return nil
}

// explain adds what to do to the errors a person can act on.
func explain(err error, timeout time.Duration) error {
	if e := explainEngine(err); e != err {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within --timeout %v (is a majority of the voters up?): %w", timeout, err)
	}
	return err
}

// printConfiguration prints one line per member, sorted by ID, then the
// removed IDs.
func printConfiguration(w io.Writer, v clusterView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tPEER ADDRESS\tCLIENT ADDRESS\tLEADER")
	for _, m := range v.Config.Members {
		role := "learner"
		if m.Voter {
			role = "voter"
		}
		leader := ""
		if v.HasLeader && uint64(m.ID) == v.Leader {
			leader = "*"
		}
		client := m.ClientAddr
		if client == "" {
			client = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", uint64(m.ID), role, m.PeerAddr, client, leader)
	}
	tw.Flush()
	if len(v.Config.Removed) > 0 {
		ids := make([]string, len(v.Config.Removed))
		for i, id := range v.Config.Removed {
			ids[i] = fmt.Sprint(uint64(id))
		}
		fmt.Fprintf(w, "removed (IDs never reused): %s\n", strings.Join(ids, " "))
	}
	if !v.HasLeader {
		fmt.Fprintln(w, "no leader known at the moment")
	}
}
