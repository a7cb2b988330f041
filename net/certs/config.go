package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrIdentity is matched by the handshake error of a connection whose
// other end has a valid certificate of the wrong identity: another
// cluster, a client where a replica is wanted, another replica than the
// one dialed.
var ErrIdentity = errors.New("certs: wrong identity at the other end")

// VerifyPeer verifies the certificate chain the other end of a connection
// presented against roots, for usage (x509.ExtKeyUsageServerAuth for a
// server's certificate, ClientAuth for a client's), and returns the
// identity it names. It verifies even when crypto/tls already did: it is
// the one check that does not depend on how a tls.Config was built.
func VerifyPeer(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage) (Identity, error) {
	if roots == nil {
		return Identity{}, errors.New("certs: no CA to verify the other end against")
	}
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("certs: the other end presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now()}
	if _, err := leaf.Verify(opts); err != nil {
		return Identity{}, fmt.Errorf("certs: the other end's certificate: %w", err)
	}
	return IdentityOf(leaf)
}

// checkReplica verifies the other end and checks that it is a replica of
// cluster (replica want, if want is not nil).
func checkReplica(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage, cluster string, want *uint64) error {
	id, err := VerifyPeer(cs, roots, usage)
	if err != nil {
		return err
	}
	switch {
	case id.Cluster != cluster || id.IsClient():
		return fmt.Errorf("%w: %s is not a replica of this cluster", ErrIdentity, id)
	case want != nil && id.Replica != *want:
		return fmt.Errorf("%w: reached replica %d, not replica %d", ErrIdentity, id.Replica, *want)
	}
	return nil
}

// PeerConfig returns the tls.Config of b's replica on the peer port, for
// its listener and its dialers alike: TLS 1.3 only, this replica's
// certificate, and the cluster's CA as the only root. The handshake fails
// unless the other end presents a certificate of a replica of b's cluster
// issued by its CA and valid now: a listener requires and verifies the
// dialer's certificate; a dialer verifies the listener's in
// VerifyConnection (InsecureSkipVerify only turns off the host-name check
// of crypto/tls, which does not apply: replicas are named by URI SANs).
// The server side is the config GetConfigForClient returns.
//
// Which replica is at the other end is for the caller to check, from the
// certificate (VerifyPeer): the peer transport does. PeerDialConfig pins
// it in the handshake.
func PeerConfig(b *Bundle) *tls.Config {
	return peerConfig(b, nil)
}

// PeerDialConfig is PeerConfig for dialing replica id only: the handshake
// fails if another replica answers.
func PeerDialConfig(b *Bundle, id uint64) *tls.Config {
	return peerConfig(b, &id)
}

func peerConfig(b *Bundle, want *uint64) *tls.Config {
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    b.Roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkReplica(cs, b.Roots, x509.ExtKeyUsageClientAuth, b.Cluster, nil)
		},
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{b.Cert},
		RootCAs:            b.Roots,
		ClientCAs:          b.Roots,
		ClientAuth:         tls.RequireAndVerifyClientCert,
		InsecureSkipVerify: true, // verified in VerifyConnection, against RootCAs
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkReplica(cs, b.Roots, x509.ExtKeyUsageServerAuth, b.Cluster, want)
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return server, nil },
	}
}

// ClientPortOptions tune ClientPortConfig.
type ClientPortOptions struct {
	// ServerOnly serves clients without certificates: the connection is
	// encrypted and the replica authenticated, but anyone who reaches the
	// port may use it (a client that presents a certificate must present
	// one of the cluster's, and the engine takes configuration changes
	// only from those). By default clients must present a certificate of
	// the cluster.
	ServerOnly bool
}

// ClientPortConfig returns the tls.Config of b's replica on the client
// port: TLS 1.3, this replica's certificate, and unless opts.ServerOnly,
// a required client certificate issued by the cluster's CA, naming a
// client (or a replica) of the cluster.
func ClientPortConfig(b *Bundle, opts ClientPortOptions) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    b.Roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := VerifyPeer(cs, b.Roots, x509.ExtKeyUsageClientAuth)
			if err != nil {
				return err
			}
			if id.Cluster != b.Cluster {
				return fmt.Errorf("%w: %s is not of this cluster", ErrIdentity, id)
			}
			return nil
		},
	}
	if opts.ServerOnly {
		// A certificate is not required, but one given must be the
		// cluster's: the engine takes configuration changes only from a
		// client that presented one.
		verify := cfg.VerifyConnection
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			return verify(cs)
		}
	}
	return cfg
}

// ClientConfig returns the tls.Config of a client of b's cluster: TLS 1.3;
// the server must present the certificate of a replica of the cluster
// issued by its CA; b's certificate, if it has one, goes to servers that
// ask for it.
func ClientConfig(b *Bundle) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		RootCAs:            b.Roots,
		InsecureSkipVerify: true, // verified in VerifyConnection, against RootCAs
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkReplica(cs, b.Roots, x509.ExtKeyUsageServerAuth, b.Cluster, nil)
		},
	}
	if len(b.Cert.Certificate) > 0 {
		cfg.Certificates = []tls.Certificate{b.Cert}
	}
	return cfg
}
