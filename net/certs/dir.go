package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/paxos-go/paxos/internal/durable"
)

// The files of a cluster's directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ClientFile    = "client.pem"
	ClientKeyFile = "client-key.pem"
)

// DefaultClientName is the name in the certificate CreateDir makes for
// clients (client.pem).
const DefaultClientName = "client"

// NodeFile is the name of replica id's certificate file.
func NodeFile(id uint64) string { return fmt.Sprintf("node-%d.pem", id) }

// NodeKeyFile is the name of replica id's private key file.
func NodeKeyFile(id uint64) string { return fmt.Sprintf("node-%d-key.pem", id) }

// CreateDir makes dir hold the certificates of cluster: a new CA
// (ca.pem, ca-key.pem), a certificate for each of replicas
// (node-<id>.pem, node-<id>-key.pem) and one for clients (client.pem,
// client-key.pem), valid for DefaultValidity. Private keys are 0600, dir
// 0700.
//
// If dir already holds the CA of cluster and every file asked for,
// CreateDir leaves it alone and returns created false: running it again is
// harmless. If it holds anything else, CreateDir refuses and changes
// nothing. Several processes may call it at once for the same dir: each
// builds a complete directory under a temporary name, syncs it and renames
// it into place; one rename wins and the others use the winner's files.
func CreateDir(dir, cluster string, replicas []uint64) (created bool, err error) {
	if err := ValidateClusterID(cluster); err != nil {
		return false, err
	}
	if len(replicas) == 0 {
		return false, errors.New("certs: no replicas to make certificates for")
	}
	sorted := slices.Clone(replicas)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(replicas) {
		return false, fmt.Errorf("certs: replica IDs %v are not distinct", replicas)
	}
	dir = filepath.Clean(dir)
	if ok, err := checkDir(dir, cluster, replicas); ok || err != nil {
		return false, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp) // nothing left after a successful rename
	if err := fillDir(tmp, cluster, replicas); err != nil {
		return false, err
	}
	// An empty dir (made by hand, or by a mkdir -p) would stop the rename:
	// remove it. os.Remove leaves a directory that is not empty alone.
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
			return false, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) || isNotEmpty(err) {
			// Another process won the race: use its files.
			if ok, err := checkDir(dir, cluster, replicas); ok || err != nil {
				return false, err
			}
		}
		return false, fmt.Errorf("certs: putting %s into place: %w", dir, err)
	}
	if err := syncDir(parent); err != nil {
		return false, err
	}
	return true, nil
}

func isNotEmpty(err error) bool { return errors.Is(err, syscall.ENOTEMPTY) }

// fillDir writes a new cluster's files into dir, which is empty.
func fillDir(dir, cluster string, replicas []uint64) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	ca, err := NewCA(cluster, 0)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAFile), ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), ca.KeyPEM(), 0o600); err != nil {
		return err
	}
	write := func(id Identity, certName, keyName string) error {
		kp, err := ca.Issue(id, 0)
		if err != nil {
			return err
		}
		if err := WriteFileAtomic(filepath.Join(dir, keyName), kp.KeyPEM(), 0o600); err != nil {
			return err
		}
		return WriteFileAtomic(filepath.Join(dir, certName), kp.CertPEM(), 0o644)
	}
	for _, id := range replicas {
		if err := write(ReplicaIdentity(cluster, id), NodeFile(id), NodeKeyFile(id)); err != nil {
			return err
		}
	}
	return write(ClientIdentity(cluster, DefaultClientName), ClientFile, ClientKeyFile)
}

// checkDir reports whether dir already holds cluster's CA and every file
// CreateDir would make; false without error if dir is missing or empty;
// an error if it holds anything else.
func checkDir(dir, cluster string, replicas []uint64) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case len(entries) == 0:
		return false, nil
	}
	ca, err := readCACert(dir)
	if err != nil {
		return false, fmt.Errorf("certs: %s is not empty and holds no usable CA (%v); choose another directory", dir, err)
	}
	if got, _ := caCluster(ca); got != cluster {
		return false, fmt.Errorf("certs: %s holds the certificates of cluster %q, not %q; choose another directory", dir, got, cluster)
	}
	var missing []string
	names := []string{CAKeyFile, ClientFile, ClientKeyFile}
	for _, id := range replicas {
		names = append(names, NodeFile(id), NodeKeyFile(id))
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("certs: %s holds cluster %q's CA but not %v; adding replicas to an existing directory is not supported: make a new one", dir, cluster, missing)
	}
	return true, nil
}

// WriteFileAtomic writes data to path so that a crash leaves either the
// old file or the whole new one: a temporary file in the same directory
// with mode perm, synced, renamed over path, then the directory synced.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return durable.WriteFile(path, data, perm, true)
}

func syncDir(dir string) error {
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("certs: syncing directory %s: %w", dir, err)
	}
	return nil
}

func readCACert(dir string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAFile), err)
	}
	return cert, nil
}

// LoadCA reads the CA of cluster from dir (ca.pem and ca-key.pem), to
// issue more certificates.
func LoadCA(dir, cluster string) (*CA, error) {
	cert, err := readCACert(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if got, err := caCluster(cert); err != nil || got != cluster {
		return nil, fmt.Errorf("certs: %s is not the CA of cluster %q", filepath.Join(dir, CAFile), cluster)
	}
	b, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	key, err := parseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("certs: %s is not the key of %s", CAKeyFile, CAFile)
	}
	return &CA{Cluster: cluster, Cert: cert, Key: key}, nil
}

// Bundle is what one end of a connection needs: the cluster's CA to
// verify the other end, and its own certificate (none for a client of a
// client port that asks for none).
type Bundle struct {
	// Identity is whom Cert speaks for (zero without Cert).
	Identity Identity
	// Cluster is the cluster whose CA is trusted.
	Cluster string
	// Roots trusts the cluster's CA and nothing else.
	Roots *x509.CertPool
	// Cert is this end's certificate; empty in a bundle of LoadTrust.
	Cert tls.Certificate
}

// NewBundle makes the bundle of identity id, with a certificate issued by
// ca: for tests and for programs that keep their keys elsewhere than in
// files.
func NewBundle(ca *CA, kp *KeyPair) (*Bundle, error) {
	id, err := IdentityOf(kp.Cert)
	if err != nil {
		return nil, err
	}
	return &Bundle{Identity: id, Cluster: ca.Cluster, Roots: ca.Pool(), Cert: kp.TLSCertificate()}, nil
}

// LoadReplica reads what replica id of cluster needs from dir: ca.pem,
// node-<id>.pem and node-<id>-key.pem. It checks that the certificate is
// replica id's of cluster, issued by that CA, and valid now.
func LoadReplica(dir, cluster string, id uint64) (*Bundle, error) {
	return load(dir, cluster, ReplicaIdentity(cluster, id), NodeFile(id), NodeKeyFile(id))
}

// LoadClient reads what a client of cluster needs from dir: ca.pem,
// client.pem and client-key.pem.
func LoadClient(dir, cluster string) (*Bundle, error) {
	return load(dir, cluster, Identity{}, ClientFile, ClientKeyFile)
}

// LoadTrust reads only ca.pem from dir: enough for a client of a client
// port that does not ask for client certificates.
func LoadTrust(dir, cluster string) (*Bundle, error) {
	return load(dir, cluster, Identity{}, "", "")
}

// load reads dir's CA, and the pair certName/keyName if given, which must
// be want's (any client of cluster if want is zero).
func load(dir, cluster string, want Identity, certName, keyName string) (*Bundle, error) {
	ca, err := readCACert(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if got, err := caCluster(ca); err != nil || got != cluster {
		return nil, fmt.Errorf("certs: %s is not the CA of cluster %q (it is %q's)", filepath.Join(dir, CAFile), cluster, got)
	}
	b := &Bundle{Cluster: cluster, Roots: x509.NewCertPool()}
	b.Roots.AddCert(ca)
	if certName == "" {
		return b, nil
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: loading %s and %s: %w", certPath, keyPath, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
		cert.Leaf = leaf
	}
	usage := x509.ExtKeyUsageServerAuth
	if want.IsClient() || want == (Identity{}) {
		usage = x509.ExtKeyUsageClientAuth
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.Roots, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now()}); err != nil {
		return nil, fmt.Errorf("certs: %s does not verify against %s: %w", certPath, CAFile, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", certPath, err)
	}
	switch {
	case want == (Identity{}) && (!id.IsClient() || id.Cluster != cluster):
		return nil, fmt.Errorf("certs: %s is %s, not a client of cluster %q", certPath, id, cluster)
	case want != (Identity{}) && id != want:
		return nil, fmt.Errorf("certs: %s is %s, not %s", certPath, id, want)
	}
	b.Identity, b.Cert = id, cert
	return b, nil
}
