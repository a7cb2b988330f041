package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/net/certs"
)

// certsCmd writes a cluster's certificate directory.
type certsCmd struct {
	Dir       string `required:"" placeholder:"DIR" help:"The directory to write (made if missing; one that holds another cluster's certificates is refused)."`
	ClusterID string `name:"cluster-id" required:"" placeholder:"ID" help:"The cluster's name, as its replicas' --cluster-id: letters, digits, '-', '_' and '.'."`
	Nodes     int    `required:"" placeholder:"N" help:"Make certificates for replicas 0 to N-1."`
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
	if c.Nodes == 0 {
		missing = append(missing, "--nodes=N")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing flags: %s", strings.Join(missing, ", "))
	}
	if err := cmdflags.Replicas("--nodes", c.Nodes); err != nil {
		return err
	}
	return cmdflags.ClusterID("--cluster-id", c.ClusterID)
}

// Run makes the directory with certs.CreateDir and says what it holds.
func (c *certsCmd) Run(g *globals) error {
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
