package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/net/certs"
)

// The membership operations. Each asks the cluster through an
// engine.Client of every live server (it finds the leader), waits for the
// change to be made (the client retries until the operation's deadline),
// and then checks what it can see: a server added is a voter of the
// configuration, one removed is not in it, the one handed the leadership
// leads.

// checkNotRemoved refuses an operation on a server the run removed (Parse
// refuses those it can see; "leader" is resolved only now).
func (r *run) checkNotRemoved(op Op) error {
	var ids []int
	switch op.Type {
	case "Connect":
		ids = []int{op.Server}
	case "Cut":
		ids = []int{op.From, op.To}
	case "Partition":
		for _, g := range op.Groups {
			ids = append(ids, g...)
		}
	default:
		if serverOps[op.Type] || op.Type == "TransferLeader" {
			ids = []int{op.ID}
		}
	}
	for _, id := range ids {
		if r.removed[id] {
			return fmt.Errorf("server %d was removed from the cluster before", id)
		}
	}
	return nil
}

// admin returns a client of every live server that is not id.
func (r *run) admin(except int) *engine.Client {
	var addrs []string
	ids := make([]int, 0, len(r.servers))
	for id := range r.servers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		if id != except && !r.removed[id] {
			addrs = append(addrs, r.addr(id))
		}
	}
	if len(addrs) == 0 { // no other server runs: let the client say so
		addrs = []string{r.addr(except)}
	}
	return engine.NewClient(addrs, engine.ClientOptions{ClusterID: r.cluster, TLSDir: r.tlsDir, AttemptTimeout: time.Second})
}

// addServer starts server op.ID with an empty data dir and --join, adds it
// as a learner, and promotes it once it has caught up.
func (r *run) addServer(op Op) error {
	if r.count == 0 {
		return fmt.Errorf("no server was started before")
	}
	if err := r.issueCertificate(op.ID); err != nil {
		return err
	}
	if err := r.addFront(op.ID); err != nil {
		return err
	}
	if err := r.startServer(op); err != nil {
		return err
	}
	r.report.Faults++
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(op.TimeoutMs)*time.Millisecond)
	defer cancel()
	c := r.admin(op.ID)
	defer c.Close()
	start := time.Now()
	if err := c.AddLearner(ctx, uint64(op.ID), r.fronts[op.ID].addr(), r.addr(op.ID)); err != nil {
		return fmt.Errorf("adding server %d as a learner: %w", op.ID, err)
	}
	added := time.Since(start)
	if err := c.Promote(ctx, uint64(op.ID)); err != nil {
		return fmt.Errorf("promoting server %d (a learner since %v): %w", op.ID, added.Round(time.Millisecond), err)
	}
	r.voters[op.ID] = true
	r.opts.Logf("%s: server %d added in %v and promoted in %v more", r.sc.Name, op.ID, added.Round(time.Millisecond), (time.Since(start) - added).Round(time.Millisecond))
	return r.checkConfiguration(ctx, c, func(v map[int]bool) error {
		if !v[op.ID] {
			return fmt.Errorf("server %d was promoted, but the configuration has it as no voter", op.ID)
		}
		return nil
	})
}

// removeServer removes server op.ID from the configuration, then stops
// its process.
func (r *run) removeServer(op Op) error {
	r.report.Faults++
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(op.TimeoutMs)*time.Millisecond)
	defer cancel()
	// Through every server, the one removed too: removing the leader is
	// asked of it.
	c := r.admin(-1)
	defer c.Close()
	start := time.Now()
	if err := c.RemoveReplica(ctx, uint64(op.ID)); err != nil {
		return fmt.Errorf("removing server %d: %w", op.ID, err)
	}
	r.opts.Logf("%s: server %d removed in %v", r.sc.Name, op.ID, time.Since(start).Round(time.Millisecond))
	r.removed[op.ID] = true
	delete(r.voters, op.ID)
	if err := r.checkConfiguration(ctx, c, func(v map[int]bool) error {
		if v[op.ID] {
			return fmt.Errorf("server %d was removed, but the configuration still has it", op.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	// A removed replica stops by itself once its removal governs; stop
	// the process in any case (SIGTERM, as an operator would).
	if s, ok := r.servers[op.ID]; ok {
		s.stop(10 * time.Second)
		r.crash(op.ID)
	}
	return nil
}

// transferLeader hands the leadership to op.ID and checks that it leads.
func (r *run) transferLeader(op Op) error {
	if !r.voters[op.ID] {
		return fmt.Errorf("server %d is not a voter", op.ID)
	}
	r.report.Faults++
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(op.TimeoutMs)*time.Millisecond)
	defer cancel()
	c := r.admin(-1)
	defer c.Close()
	start := time.Now()
	if err := c.TransferLeadership(ctx, uint64(op.ID)); err != nil {
		return fmt.Errorf("handing the leadership to server %d: %w", op.ID, err)
	}
	for {
		sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
		st, err := r.status(sctx, op.ID)
		scancel()
		if err == nil && st.Role == "leader" {
			r.lastLeader = op.ID
			r.opts.Logf("%s: server %d leads, %v after the request", r.sc.Name, op.ID, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the transfer to server %d returned, but it does not lead (%+v, %v)", op.ID, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkConfiguration reads the configuration until check, given its
// voters, accepts it and its voters are those the harness expects, or ctx
// ends. It reads again because the replica that answers may be a follower
// that has not yet heard that the change committed.
func (r *run) checkConfiguration(ctx context.Context, c *engine.Client, check func(voters map[int]bool) error) error {
	want := make([]int, 0, len(r.voters))
	for id := range r.voters {
		want = append(want, id)
	}
	sort.Ints(want)
	for {
		conf, err := c.Configuration(ctx)
		if err == nil {
			voters := map[int]bool{}
			got := make([]int, 0, len(voters))
			for _, id := range conf.Voters() {
				voters[int(id)] = true
				got = append(got, int(id))
			}
			err = check(voters)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("the configuration's voters are %v, the harness expects %v", got, want)
			}
			if err == nil {
				return nil
			}
			err = fmt.Errorf("%w (configuration %v)", err, conf)
		} else {
			err = fmt.Errorf("reading the configuration: %w", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// issueCertificate makes server id's certificate, with the run's CA, or
// checks that Options.TLSDir holds it.
func (r *run) issueCertificate(id int) error {
	switch {
	case r.opts.Insecure:
		return nil
	case r.opts.TLSDir != "":
		if _, err := certs.LoadReplica(r.opts.TLSDir, r.cluster, uint64(id)); err != nil {
			return fmt.Errorf("the certificate of server %d, which the scenario adds: %w (paxos certs --add %d makes it)", id, err, id)
		}
		return nil
	}
	ca, err := certs.LoadCA(r.tlsDir, r.cluster)
	if err != nil {
		return err
	}
	kp, err := ca.Issue(certs.ReplicaIdentity(r.cluster, uint64(id)), 0)
	if err != nil {
		return err
	}
	if err := certs.WriteFileAtomic(filepath.Join(r.tlsDir, certs.NodeKeyFile(uint64(id))), kp.KeyPEM(), 0o600); err != nil {
		return err
	}
	return certs.WriteFileAtomic(filepath.Join(r.tlsDir, certs.NodeFile(uint64(id))), kp.CertPEM(), 0o644)
}
