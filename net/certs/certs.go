// Package certs makes and loads the certificates of a paxos-go cluster and
// builds the tls.Configs of its ports.
//
// A cluster has a certificate authority of its own (ECDSA P-256), and every
// certificate the CA issues names one identity in a URI SAN:
//
//	paxos://<cluster>              the cluster's CA
//	paxos://<cluster>/<id>         replica <id> (decimal)
//	paxos://<cluster>/client/<name> a client
//
// A replica trusts only its cluster's CA, and learns who is at the other
// end of a connection from the certificate, never from what the other
// side says: a certificate of another cluster, of another replica than
// the one dialed, expired, or issued by another CA is refused.
//
// The files of a cluster live in one directory (see CreateDir):
//
//	ca.pem, ca-key.pem                the CA
//	node-<id>.pem, node-<id>-key.pem  replica <id>
//	client.pem, client-key.pem        a client
//
// CreateDir writes them all in one place for convenience; a replica needs
// only ca.pem and its own two files (LoadReplica), a client ca.pem and the
// client files (LoadClient). Keep ca-key.pem away from the replicas: with it
// anyone can mint a replica.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Scheme is the URI scheme of identities.
const Scheme = "paxos"

// DefaultValidity is how long the certificates made by NewCA, Issue and
// CreateDir are valid: ten years, since nothing renews them yet.
const DefaultValidity = 10 * 365 * 24 * time.Hour

// clockSkew backdates certificates, so that a replica whose clock is a
// little behind accepts a certificate made just now.
const clockSkew = time.Hour

// Identity is who a certificate speaks for: a replica of a cluster, or a
// client of it (Client set).
type Identity struct {
	Cluster string
	// Replica is the replica's ID; meaningless for a client.
	Replica uint64
	// Client is a client's name; empty for a replica.
	Client string
}

// ReplicaIdentity is the identity of replica id of cluster.
func ReplicaIdentity(cluster string, id uint64) Identity {
	return Identity{Cluster: cluster, Replica: id}
}

// ClientIdentity is the identity of the client called name of cluster.
func ClientIdentity(cluster, name string) Identity {
	return Identity{Cluster: cluster, Client: name}
}

// IsClient reports whether the identity is a client's.
func (id Identity) IsClient() bool { return id.Client != "" }

// URI returns the identity as the URI its certificate carries.
func (id Identity) URI() *url.URL {
	path := "/" + strconv.FormatUint(id.Replica, 10)
	if id.IsClient() {
		path = "/client/" + id.Client
	}
	return &url.URL{Scheme: Scheme, Host: id.Cluster, Path: path}
}

// String returns the URI of the identity.
func (id Identity) String() string { return id.URI().String() }

func (id Identity) validate() error {
	if err := ValidateClusterID(id.Cluster); err != nil {
		return err
	}
	if id.IsClient() {
		return validateName("client name", id.Client)
	}
	return nil
}

// ValidateClusterID checks that a cluster ID can name a cluster in a
// certificate: 1 to 63 letters, digits, '-' and '_', in labels separated
// by single dots.
func ValidateClusterID(cluster string) error {
	if err := validateName("cluster ID", cluster); err != nil {
		return err
	}
	for _, label := range strings.Split(cluster, ".") {
		if label == "" {
			return fmt.Errorf("certs: cluster ID %q: empty label (a dot at either end, or two in a row)", cluster)
		}
	}
	return nil
}

func validateName(what, s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("certs: %s %q: must be 1 to 63 characters", what, s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("certs: %s %q: only letters, digits, '-', '_' and '.' are allowed", what, s)
		}
	}
	return nil
}

// ErrNoIdentity is matched by the error of IdentityOf for a certificate
// that names no paxos-go identity, or more than one.
var ErrNoIdentity = errors.New("certs: the certificate names no paxos-go identity")

// IdentityOf returns the identity a leaf certificate names in its URI
// SANs. It does not verify the certificate: do that first (the configs of
// this package do).
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert.IsCA {
		return Identity{}, fmt.Errorf("%w: it is a CA certificate", ErrNoIdentity)
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w (%d %s:// URIs)", ErrNoIdentity, len(found), Scheme)
	}
	return parseIdentity(found[0])
}

func parseIdentity(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: %q: %s", ErrNoIdentity, u.String(), why)
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return bad("unexpected parts")
	}
	id := Identity{Cluster: u.Host}
	if err := ValidateClusterID(id.Cluster); err != nil {
		return bad(err.Error())
	}
	switch rest, ok := strings.CutPrefix(u.Path, "/client/"); {
	case ok:
		id.Client = rest
		if err := validateName("client name", rest); err != nil {
			return bad(err.Error())
		}
	default:
		digits := strings.TrimPrefix(u.Path, "/")
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || digits != strconv.FormatUint(n, 10) {
			return bad("the path is neither /<replica id> nor /client/<name>")
		}
		id.Replica = n
	}
	return id, nil
}

// caCluster returns the cluster of a CA certificate made by NewCA.
func caCluster(cert *x509.Certificate) (string, error) {
	if !cert.IsCA || len(cert.URIs) != 1 || cert.URIs[0].Scheme != Scheme || cert.URIs[0].Path != "" {
		return "", errors.New("certs: not the CA certificate of a paxos-go cluster")
	}
	cluster := cert.URIs[0].Host
	if err := ValidateClusterID(cluster); err != nil {
		return "", err
	}
	return cluster, nil
}

// CA is a cluster's certificate authority.
type CA struct {
	Cluster string
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
}

// NewCA makes the CA of cluster, valid for validity (DefaultValidity if 0).
func NewCA(cluster string, validity time.Duration) (*CA, error) {
	if err := ValidateClusterID(cluster); err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "paxos-go CA of cluster " + cluster},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: Scheme, Host: cluster}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: making the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cluster: cluster, Cert: cert, Key: key}, nil
}

// KeyPair is a certificate and its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// CertPEM returns the certificate in PEM.
func (kp *KeyPair) CertPEM() []byte { return certPEM(kp.Cert) }

// KeyPEM returns the private key in PEM (PKCS #8).
func (kp *KeyPair) KeyPEM() []byte { return keyPEM(kp.Key) }

// TLSCertificate returns the pair as crypto/tls wants it.
func (kp *KeyPair) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}
}

// CertPEM returns the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert) }

// KeyPEM returns the CA's private key in PEM (PKCS #8).
func (ca *CA) KeyPEM() []byte { return keyPEM(ca.Key) }

// Pool returns a pool that trusts only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a certificate for id, which must be of the CA's cluster,
// valid for validity (DefaultValidity if 0). A replica's certificate serves
// both ends of a connection (server and client authentication); a
// client's, only the client end.
func (ca *CA) Issue(id Identity, validity time.Duration) (*KeyPair, error) {
	if validity <= 0 {
		validity = DefaultValidity
	}
	now := time.Now()
	return ca.issue(id, now.Add(-clockSkew), now.Add(validity))
}

func (ca *CA) issue(id Identity, notBefore, notAfter time.Time) (*KeyPair, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	if id.Cluster != ca.Cluster {
		return nil, fmt.Errorf("certs: the CA of cluster %q cannot issue %s", ca.Cluster, id)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	name := fmt.Sprintf("replica %d of cluster %s", id.Replica, id.Cluster)
	if id.IsClient() {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		name = fmt.Sprintf("client %s of cluster %s", id.Client, id.Cluster)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: issuing %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(fmt.Sprintf("certs: encoding a P-256 key: %v", err)) // cannot fail for a valid key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// parseCertPEM reads the one certificate of a PEM file.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	if blk, _ := pem.Decode(rest); blk != nil {
		return nil, errors.New("more than one PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKeyPEM reads a P-256 private key (PKCS #8 or SEC 1).
func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is a %T, not ECDSA", key)
	}
	return ek, nil
}
