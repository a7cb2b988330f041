// Package cmdflags holds what the commands of paxos-go share about their
// flags: the bounds of counts, ports and durations, checked the same way
// everywhere so that a bad value is refused with the flag's name instead
// of panicking or being replaced by a default; and how --tls-dir and
// --insecure resolve to a certificate directory.
//
// Every command that runs or reaches replicas takes the same two flags:
// --tls-dir DIR, a directory as `paxos certs` writes it (certs.CreateDir:
// ca.pem, node-<id>.pem and node-<id>-key.pem, client.pem and
// client-key.pem), or --insecure. One directory serves both ports of a
// replica: today it secures the peer port; the client port will use the
// same files when it gets TLS.
package cmdflags

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	stdnet "net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/net/certs"
)

// MaxReplicas bounds the size of a cluster that a command starts or makes
// certificates for: enough for any real cluster, and small enough that a
// typo (1000, 1e9) is refused rather than tried.
const MaxReplicas = 99

// Election timeouts, bounded: below MinElectionTimeout the heartbeat (a
// tenth of it) rounds down to nothing; above MaxElectionTimeout a replica
// would wait minutes to replace a dead leader, which is a typo, not a
// configuration.
const (
	MinElectionTimeout = chatroom.MinElectionTimeout
	MaxElectionTimeout = time.Minute
)

// Replicas checks a cluster size given by flag.
func Replicas(flag string, n int) error {
	if n < 1 || n > MaxReplicas {
		return fmt.Errorf("%s %d: a cluster has between 1 and %d replicas", flag, n, MaxReplicas)
	}
	return nil
}

// MaxReplicaID bounds a replica ID given by flag. IDs of removed replicas
// are never reused, so a cluster that replaces machines goes on to higher
// IDs; a million leaves room for that, and refuses a typo (1e12, -1 read
// as a huge number) before it reaches a certificate's name or a
// configuration.
const MaxReplicaID = 999_999

// ReplicaID checks a replica ID given by flag.
func ReplicaID(flag string, id uint64) error {
	if id > MaxReplicaID {
		return fmt.Errorf("%s %d: a replica ID is between 0 and %d", flag, id, MaxReplicaID)
	}
	return nil
}

// Port checks a TCP port given by flag.
func Port(flag string, p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%s %d: not a TCP port (1 to 65535)", flag, p)
	}
	return nil
}

// PortRange checks that the n consecutive ports from first are all TCP
// ports, for a flag that gives the first of a cluster's ports.
func PortRange(flag string, first, n int) error {
	if err := Port(flag, first); err != nil {
		return err
	}
	if last := first + n - 1; last > 65535 {
		return fmt.Errorf("%s %d: %d replicas need ports %d to %d, past 65535", flag, first, n, first, last)
	}
	return nil
}

// ElectionTimeout checks an election timeout given by flag.
func ElectionTimeout(flag string, d time.Duration) error {
	if d < MinElectionTimeout || d > MaxElectionTimeout {
		return fmt.Errorf("%s %v: an election timeout is between %v and %v", flag, d, MinElectionTimeout, MaxElectionTimeout)
	}
	return nil
}

// Positive checks a duration that must be greater than zero.
func Positive(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %v: must be positive", flag, d)
	}
	return nil
}

// ClusterID checks a cluster ID: it names the cluster in certificates, so
// it must be one that certs accepts, even where TLS is off (a cluster
// could not be secured later otherwise).
func ClusterID(flag, id string) error {
	if err := certs.ValidateClusterID(id); err != nil {
		return fmt.Errorf("%s %q: %w", flag, id, err)
	}
	return nil
}

// HostPort checks an address host:port, with a TCP port.
func HostPort(flag, addr string) error {
	host, port, err := stdnet.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%s: %q is not host:port", flag, addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s: %q: %q is not a TCP port (1 to 65535)", flag, addr, port)
	}
	return nil
}

// DefaultTLSDir is the certificate directory of the chat room's commands
// when they are given neither --tls-dir nor --insecure: `paxos up` and
// chatroom-server make it on first use, chatroom-client and
// `paxos bench --target` read it.
const DefaultTLSDir = "data/tls"

// TLS is what a command's --tls-dir and --insecure said.
type TLS struct {
	// Dir is --tls-dir, empty if not given.
	Dir string
	// Insecure is --insecure.
	Insecure bool
}

// Check refuses both flags at once.
func (t TLS) Check() error {
	if t.Dir != "" && t.Insecure {
		return errors.New("--tls-dir and --insecure: choose one (TLS with that directory's certificates, or plaintext)")
	}
	return nil
}

// ReplicaDir returns the certificate directory of the replicas mine of
// cluster, a cluster of count replicas ("" with --insecure). A directory
// named by --tls-dir must already hold their certificates (`paxos certs`
// makes them; on a host of its own, a replica's directory needs only its
// own). Without --tls-dir, ReplicaDir uses def, and makes it with
// certs.CreateDir for replicas 0 to count-1 if it does not exist, which is
// safe when several replicas start at once. It says whether it made the
// directory.
func (t TLS) ReplicaDir(def, cluster string, count int, mine []uint64) (dir string, created bool, err error) {
	if err := t.Check(); err != nil {
		return "", false, err
	}
	if t.Insecure {
		return "", false, nil
	}
	if t.Dir == "" {
		created, err := certs.CreateDir(def, cluster, IDs(count))
		if err != nil {
			return "", false, fmt.Errorf("the certificates in %s (made on first use; --tls-dir to name others, --insecure for none): %w", def, err)
		}
		return def, created, nil
	}
	for _, id := range mine {
		if _, err := certs.LoadReplica(t.Dir, cluster, id); err != nil {
			return "", false, fmt.Errorf("--tls-dir %s: %w%s", t.Dir, err, makeHint(t.Dir, cluster, id, err))
		}
	}
	return t.Dir, false, nil
}

// JoinerDir returns the certificate directory of replica id, which joins
// a running cluster of cluster ("" with --insecure): --tls-dir, or def
// without it. Unlike ReplicaDir it makes nothing: the directory is the
// cluster's, made when the cluster was, and the new replica's certificate
// is issued by its CA (paxos certs --add), which a joining server does not
// do on its own.
func (t TLS) JoinerDir(def, cluster string, id uint64) (string, error) {
	if err := t.Check(); err != nil {
		return "", err
	}
	if t.Insecure {
		return "", nil
	}
	dir, flag := t.Dir, "--tls-dir "+t.Dir
	if dir == "" {
		dir, flag = def, "the certificates in "+def+" (--tls-dir to name others, --insecure for none)"
	}
	if _, err := certs.LoadReplica(dir, cluster, id); err != nil {
		hint := ""
		if errors.Is(err, fs.ErrNotExist) {
			hint = fmt.Sprintf("; issue it with the cluster's CA: paxos certs --dir %s --cluster-id %s --add %d", dir, cluster, id)
		}
		return "", fmt.Errorf("%s: %w%s", flag, err, hint)
	}
	return dir, nil
}

// ClientBundle reads what a client of cluster needs from --tls-dir, or
// def without it: ca.pem, client.pem and client-key.pem. Neither is made
// here: a client cannot know how many replicas the cluster has, and its
// servers make the default directory when they first start. It returns
// nil with --insecure.
func (t TLS) ClientBundle(def, cluster string) (*certs.Bundle, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	if t.Insecure {
		return nil, nil
	}
	dir, flag := t.Dir, "--tls-dir "+t.Dir
	if dir == "" {
		dir, flag = def, "the certificates in "+def+" (--tls-dir to name others, --insecure for none)"
	}
	b, err := certs.LoadClient(dir, cluster)
	if err != nil {
		hint := ""
		if errors.Is(err, fs.ErrNotExist) {
			hint = "; start the servers first (they make it), or run paxos certs"
		}
		return nil, fmt.Errorf("%s: %w%s", flag, err, hint)
	}
	return b, nil
}

// makeHint tells how to make a missing directory, or replica id's missing
// certificate in a directory that has the cluster's CA.
func makeHint(dir, cluster string, id uint64, err error) string {
	if !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if _, statErr := os.Stat(filepath.Join(dir, certs.CAFile)); statErr == nil {
		return fmt.Sprintf(" (issue it with: paxos certs --dir %s --cluster-id %s --add %d)", dir, cluster, id)
	}
	return fmt.Sprintf(" (make it with: paxos certs --dir %s --cluster-id %s --nodes N)", dir, cluster)
}

// ClusterOf returns the cluster whose CA dir holds (its ca.pem).
func ClusterOf(dir string) (string, error) {
	path := filepath.Join(dir, certs.CAFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s holds no PEM certificate", path)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !ca.IsCA || len(ca.URIs) != 1 || ca.URIs[0].Scheme != certs.Scheme {
		return "", fmt.Errorf("%s is not the CA of a paxos-go cluster", path)
	}
	cluster := ca.URIs[0].Host
	if err := certs.ValidateClusterID(cluster); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return cluster, nil
}

// IDs returns the replica IDs 0 to n-1.
func IDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i)
	}
	return ids
}
