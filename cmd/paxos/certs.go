package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/net/certs"
)

// certsCmd writes a cluster's certificate directory.
type certsCmd struct {
	Dir       string   `required:"" placeholder:"DIR" help:"The directory to write (made if missing; one that holds another cluster's certificates is refused)."`
	ClusterID string   `name:"cluster-id" required:"" placeholder:"ID" help:"The cluster's name, as its replicas' --cluster-id: letters, digits, '-', '_' and '.'."`
	Nodes     int      `placeholder:"N" help:"Make a new CA, and certificates for replicas 0 to N-1 and for clients."`
	Add       []uint64 `sep:"," placeholder:"ID,..." help:"Instead of --nodes: add certificates for these replicas, signed by the CA already in --dir (its ca-key.pem), for replicas that join a running cluster. Nothing else in the directory changes."`
}

// Validate refuses a bad command line before anything is written. (Kong
// calls it before it looks for missing flags: it says which are missing
// itself, rather than calling a missing --nodes 0.)
func (c *certsCmd) Validate() error {
	var missing []string
	if c.Dir == "" {
		missing = append(missing, "--dir=DIR")
	}
	if c.ClusterID == "" {
		missing = append(missing, "--cluster-id=ID")
	}
	if c.Nodes == 0 && len(c.Add) == 0 {
		missing = append(missing, "--nodes=N (or --add=ID,...)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing flags: %s", strings.Join(missing, ", "))
	}
	if c.Nodes != 0 && len(c.Add) > 0 {
		return fmt.Errorf("--nodes and --add: choose one (--nodes makes a new CA; --add uses the one in --dir)")
	}
	if len(c.Add) > cmdflags.MaxReplicas {
		return fmt.Errorf("--add: %d replicas at once; at most %d", len(c.Add), cmdflags.MaxReplicas)
	}
	seen := map[uint64]bool{}
	for _, id := range c.Add {
		if err := cmdflags.ReplicaID("--add", id); err != nil {
			return err
		}
		if seen[id] {
			return fmt.Errorf("--add: replica %d given twice", id)
		}
		seen[id] = true
	}
	if len(c.Add) == 0 {
		if err := cmdflags.Replicas("--nodes", c.Nodes); err != nil {
			return err
		}
	}
	return cmdflags.ClusterID("--cluster-id", c.ClusterID)
}

// Run makes the directory with certs.CreateDir and says what it holds;
// with --add, it adds replicas' certificates to it.
func (c *certsCmd) Run(g *globals) error {
	if len(c.Add) > 0 {
		return c.add(g)
	}
	ids := cmdflags.IDs(c.Nodes)
	created, err := certs.CreateDir(c.Dir, c.ClusterID, ids)
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(g.out, "%s already holds the certificates of cluster %q for replicas 0 to %d: nothing written\n", c.Dir, c.ClusterID, c.Nodes-1)
		return nil
	}
	type file struct{ name, what string }
	files := []file{
		{certs.CAFile, "the cluster's CA: every replica and client trusts it"},
		{certs.CAKeyFile, "the CA's private key (0600): it signs certificates; no replica needs it"},
	}
	for _, id := range ids {
		files = append(files,
			file{certs.NodeFile(id), fmt.Sprintf("replica %d's certificate", id)},
			file{certs.NodeKeyFile(id), fmt.Sprintf("replica %d's private key (0600)", id)})
	}
	files = append(files,
		file{certs.ClientFile, "the certificate of the cluster's clients"},
		file{certs.ClientKeyFile, "the clients' private key (0600)"})
	fmt.Fprintf(g.out, "wrote the certificates of cluster %q for replicas 0 to %d into %s:\n", c.ClusterID, c.Nodes-1, c.Dir)
	width := 0
	for _, f := range files {
		width = max(width, len(filepath.Join(c.Dir, f.name)))
	}
	for _, f := range files {
		fmt.Fprintf(g.out, "  %-*s  %s\n", width, filepath.Join(c.Dir, f.name), f.what)
	}
	fmt.Fprintf(g.out, "Start each replica with --tls-dir %s --cluster-id %s (its node-<id>.pem and node-<id>-key.pem are read).\n", c.Dir, c.ClusterID)
	return nil
}

// add issues the certificates of the replicas of --add with the CA of
// --dir. A replica whose certificate is already there, and verifies, is
// left alone; one whose certificate is there but does not verify is
// refused rather than overwritten (it may be in use).
func (c *certsCmd) add(g *globals) error {
	ca, err := certs.LoadCA(c.Dir, c.ClusterID)
	if err != nil {
		return fmt.Errorf("%w (--add signs with the CA's key, ca-key.pem: run it where the key is, then copy the replica's two files to its host)", err)
	}
	for _, id := range c.Add {
		certPath, keyPath := filepath.Join(c.Dir, certs.NodeFile(id)), filepath.Join(c.Dir, certs.NodeKeyFile(id))
		if _, err := certs.LoadReplica(c.Dir, c.ClusterID, id); err == nil {
			fmt.Fprintf(g.out, "%s already holds replica %d's certificate: nothing written\n", c.Dir, id)
			continue
		}
		if _, err := os.Stat(certPath); err == nil {
			return fmt.Errorf("%s exists but is not a usable certificate of replica %d of cluster %q: remove it first if it is not in use", certPath, id, c.ClusterID)
		}
		kp, err := ca.Issue(certs.ReplicaIdentity(c.ClusterID, id), 0)
		if err != nil {
			return err
		}
		// The key first: a crash between the two leaves a key without a
		// certificate, which the next --add replaces, rather than a
		// certificate without its key.
		if err := certs.WriteFileAtomic(keyPath, kp.KeyPEM(), 0o600); err != nil {
			return err
		}
		if err := certs.WriteFileAtomic(certPath, kp.CertPEM(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(g.out, "wrote replica %d's certificate and key: %s, %s\n", id, certPath, keyPath)
	}
	return nil
}
