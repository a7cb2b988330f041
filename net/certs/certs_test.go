package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play a process that calls CreateDir (see
// TestCreateDirConcurrentProcesses).
func TestMain(m *testing.M) {
	if dir := os.Getenv("CERTS_TEST_CREATE_DIR"); dir != "" {
		if _, err := CreateDir(dir, "race", []uint64{0, 1, 2}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, err := os.ReadFile(filepath.Join(dir, CAFile))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sum := sha256.Sum256(b)
		fmt.Println(hex.EncodeToString(sum[:]))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustCA(t *testing.T, cluster string) *CA {
	t.Helper()
	ca, err := NewCA(cluster, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustBundle(t *testing.T, ca *CA, id Identity) *Bundle {
	t.Helper()
	kp, err := ca.Issue(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBundle(ca, kp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handshake runs a TLS handshake between a client and a server config
// over loopback TCP, and returns both ends' errors.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	done := make(chan error, 1)
	go func() {
		s := tls.Server(b, server)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3: the server sees the client's certificate only
			// now; make the client read, so it learns of a refusal.
			_, err = s.Write([]byte{1})
		}
		if err != nil {
			b.Close()
		}
		done <- err
	}()
	c := tls.Client(a, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
	}
	if clientErr != nil {
		a.Close()
	}
	return clientErr, <-done
}

func TestIdentityURIs(t *testing.T) {
	for _, tc := range []struct {
		id  Identity
		uri string
	}{
		{ReplicaIdentity("prod", 0), "paxos://prod/0"},
		{ReplicaIdentity("eu-west.prod_1", 18446744073709551615), "paxos://eu-west.prod_1/18446744073709551615"},
		{ClientIdentity("prod", "admin"), "paxos://prod/client/admin"},
	} {
		if got := tc.id.String(); got != tc.uri {
			t.Errorf("%+v: %s, want %s", tc.id, got, tc.uri)
		}
		u, _ := url.Parse(tc.uri)
		if got, err := parseIdentity(u); err != nil || got != tc.id {
			t.Errorf("parse %s: %+v %v", tc.uri, got, err)
		}
	}
	for _, bad := range []string{
		"paxos://prod/", "paxos://prod/01", "paxos://prod/-1", "paxos://prod/1/2", "paxos://prod:1/1",
		"paxos://prod/client/", "paxos://prod/client/a/b", "paxos://x@prod/1", "paxos://prod/1?x", "paxos://pr..od/1",
		"paxos:///1", "paxos://prod/18446744073709551616",
	} {
		u, err := url.Parse(bad)
		if err != nil {
			continue
		}
		if id, err := parseIdentity(u); err == nil {
			t.Errorf("%s parsed as %+v", bad, id)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a b", "a/b", "é", strings.Repeat("a", 64)} {
		if ValidateClusterID(bad) == nil {
			t.Errorf("cluster ID %q accepted", bad)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	ca := mustCA(t, "prod")
	kp, err := ca.Issue(ReplicaIdentity("prod", 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := IdentityOf(kp.Cert); err != nil || id != ReplicaIdentity("prod", 7) {
		t.Fatalf("IdentityOf: %+v %v", id, err)
	}
	if _, err := IdentityOf(ca.Cert); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("IdentityOf(CA): %v", err)
	}
	two := *kp.Cert
	two.URIs = append(two.URIs, ReplicaIdentity("prod", 8).URI())
	if _, err := IdentityOf(&two); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("two identities: %v", err)
	}
	if _, err := ca.Issue(ReplicaIdentity("staging", 1), 0); err == nil {
		t.Fatal("the CA of prod issued a certificate for staging")
	}
}

func TestCreateDirAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	created, err := CreateDir(dir, "prod", []uint64{0, 1, 2})
	if err != nil || !created {
		t.Fatalf("CreateDir: %v %v", created, err)
	}
	wantModes := map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, ClientFile: 0o644, ClientKeyFile: 0o600}
	for id := uint64(0); id < 3; id++ {
		wantModes[NodeFile(id)], wantModes[NodeKeyFile(id)] = 0o644, 0o600
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(wantModes) {
		t.Errorf("%d files in %s, want %d: %v", len(entries), dir, len(wantModes), entries)
	}
	for name, mode := range wantModes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", dir, fi.Mode().Perm())
	}
	// Again: nothing changes.
	before, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if created, err := CreateDir(dir, "prod", []uint64{0, 1, 2}); err != nil || created {
		t.Fatalf("CreateDir again: %v %v", created, err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, CAFile)); !bytes.Equal(before, after) {
		t.Fatal("CreateDir replaced an existing CA")
	}
	if _, err := CreateDir(dir, "staging", []uint64{0}); err == nil || !strings.Contains(err.Error(), `cluster "prod"`) {
		t.Fatalf("CreateDir for another cluster in the same dir: %v", err)
	}
	if _, err := CreateDir(dir, "prod", []uint64{0, 1, 2, 3}); err == nil || !strings.Contains(err.Error(), "node-3.pem") {
		t.Fatalf("CreateDir with more replicas: %v", err)
	}

	b, err := LoadReplica(dir, "prod", 1)
	if err != nil || b.Identity != ReplicaIdentity("prod", 1) {
		t.Fatalf("LoadReplica: %+v %v", b, err)
	}
	if _, err := LoadReplica(dir, "prod", 5); err == nil {
		t.Fatal("loaded replica 5, which has no files")
	}
	if _, err := LoadReplica(dir, "staging", 1); err == nil {
		t.Fatal("loaded prod's files as staging's")
	}
	// node-2's files renamed to node-1's: the certificate is not 1's.
	swapped := t.TempDir()
	for src, dst := range map[string]string{CAFile: CAFile, NodeFile(2): NodeFile(1), NodeKeyFile(2): NodeKeyFile(1)} {
		data, _ := os.ReadFile(filepath.Join(dir, src))
		os.WriteFile(filepath.Join(swapped, dst), data, 0o600)
	}
	if _, err := LoadReplica(swapped, "prod", 1); err == nil || !strings.Contains(err.Error(), "paxos://prod/2") {
		t.Fatalf("LoadReplica of replica 2's files as 1's: %v", err)
	}
	cb, err := LoadClient(dir, "prod")
	if err != nil || cb.Identity != ClientIdentity("prod", DefaultClientName) {
		t.Fatalf("LoadClient: %+v %v", cb, err)
	}
	if _, err := LoadCA(dir, "prod"); err != nil {
		t.Fatal(err)
	}
	// The files work: a replica handshakes with another, a client with a
	// replica's client port.
	b0, _ := LoadReplica(dir, "prod", 0)
	if ce, se := handshake(t, PeerConfig(b0), PeerConfig(b)); ce != nil || se != nil {
		t.Fatalf("replica 0 to replica 1: %v / %v", ce, se)
	}
	if ce, se := handshake(t, ClientConfig(cb), ClientPortConfig(b, ClientPortOptions{})); ce != nil || se != nil {
		t.Fatalf("client to replica 1: %v / %v", ce, se)
	}
}

// TestCreateDirConcurrentProcesses starts processes that all create the
// same directory at once: all succeed, and all end up with one CA.
func TestCreateDirConcurrentProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	const n = 6
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		outs[i] = &bytes.Buffer{}
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), "CERTS_TEST_CREATE_DIR="+dir)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	var sums []string
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v: %s", i, err, outs[i])
		}
		sums = append(sums, strings.TrimSpace(outs[i].String()))
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Fatalf("the processes saw different CAs: %v", sums)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("temporary directories left behind: %v", entries)
	}
	if _, err := LoadReplica(dir, "race", 2); err != nil {
		t.Fatal(err)
	}
}

func TestCreateDirIntoEmptyDir(t *testing.T) {
	dir := t.TempDir() // exists, empty
	if created, err := CreateDir(dir, "prod", []uint64{1}); err != nil || !created {
		t.Fatalf("CreateDir into an empty dir: %v %v", created, err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	if _, err := CreateDir(other, "prod", []uint64{1}); err == nil {
		t.Fatal("CreateDir took over a directory holding other files")
	}
}

func TestPeerConfigRefusals(t *testing.T) {
	ca := mustCA(t, "prod")
	r1 := mustBundle(t, ca, ReplicaIdentity("prod", 1))
	r2 := mustBundle(t, ca, ReplicaIdentity("prod", 2))
	r3 := mustBundle(t, ca, ReplicaIdentity("prod", 3))
	client := mustBundle(t, ca, ClientIdentity("prod", "alice"))
	staging := mustCA(t, "staging")
	s2 := mustBundle(t, staging, ReplicaIdentity("staging", 2))
	// Another CA that calls its cluster prod too.
	impostor := mustCA(t, "prod")
	i2 := mustBundle(t, impostor, ReplicaIdentity("prod", 2))
	expired := func() *Bundle {
		kp, err := ca.issue(ReplicaIdentity("prod", 2), time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewBundle(ca, kp)
		return b
	}()
	// A bundle that trusts prod's CA but presents another certificate:
	// what an attacker holding that certificate would build.
	as := func(trust, cert *Bundle) *Bundle { c := *trust; c.Cert = cert.Cert; return &c }
	// A dialer that sends its certificate even if it does not chain to a
	// CA the listener names (crypto/tls would send none).
	forced := func(cfg *tls.Config) *tls.Config {
		cert := cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}

	if ce, se := handshake(t, PeerDialConfig(r2, 1), PeerConfig(r1)); ce != nil || se != nil {
		t.Fatalf("replica 2 dialing replica 1: %v / %v", ce, se)
	}
	for _, tc := range []struct {
		name           string
		client, server *tls.Config
	}{
		{"a dialer with another cluster's certificate", forced(PeerConfig(as(r2, s2))), PeerConfig(r1)},
		{"a listener with another cluster's certificate", PeerConfig(r1), PeerConfig(as(r2, s2))},
		{"a dialer whose certificate another CA issued", forced(PeerConfig(as(r2, i2))), PeerConfig(r1)},
		{"a listener whose certificate another CA issued", PeerConfig(r1), PeerConfig(as(r2, i2))},
		{"a dialer with an expired certificate", forced(PeerConfig(expired)), PeerConfig(r1)},
		{"a listener with an expired certificate", PeerConfig(r1), PeerConfig(expired)},
		{"a client's certificate on the peer port", forced(PeerConfig(as(r2, client))), PeerConfig(r1)},
		{"replica 3 answering where replica 2 was dialed", PeerDialConfig(r1, 2), PeerConfig(r3)},
		{"a dialer without a certificate", ClientConfig(&Bundle{Cluster: "prod", Roots: ca.Pool()}), PeerConfig(r1)},
	} {
		ce, se := handshake(t, tc.client, tc.server)
		if ce == nil || se == nil {
			t.Errorf("%s: dialer %v, listener %v: want both to fail", tc.name, ce, se)
		}
		t.Logf("%s: dialer: %v; listener: %v", tc.name, ce, se)
	}
	ce, _ := handshake(t, PeerDialConfig(r1, 2), PeerConfig(r3))
	if !errors.Is(ce, ErrIdentity) || !strings.Contains(ce.Error(), "reached replica 3, not replica 2") {
		t.Errorf("replica 3 answering for 2: %v", ce)
	}
}

func TestClientPortConfigs(t *testing.T) {
	ca := mustCA(t, "prod")
	r1 := mustBundle(t, ca, ReplicaIdentity("prod", 1))
	alice := mustBundle(t, ca, ClientIdentity("prod", "alice"))
	anon := &Bundle{Cluster: "prod", Roots: ca.Pool()}
	staging := mustCA(t, "staging")
	eve := mustBundle(t, staging, ClientIdentity("staging", "eve"))
	eveTrustingProd := ClientConfig(&Bundle{Cluster: "prod", Roots: ca.Pool(), Cert: eve.Cert})
	// Sent even though it does not chain to the CA the server names.
	eveTrustingProd.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &eve.Cert, nil }

	strict := ClientPortConfig(r1, ClientPortOptions{})
	open := ClientPortConfig(r1, ClientPortOptions{ServerOnly: true})
	if ce, se := handshake(t, ClientConfig(alice), strict); ce != nil || se != nil {
		t.Fatalf("alice: %v / %v", ce, se)
	}
	if ce, se := handshake(t, ClientConfig(anon), strict); ce == nil && se == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	if _, se := handshake(t, eveTrustingProd, strict); se == nil || !strings.Contains(se.Error(), "unknown authority") {
		t.Fatalf("a client of another cluster: %v", se)
	}
	if ce, se := handshake(t, ClientConfig(anon), open); ce != nil || se != nil {
		t.Fatalf("server-only TLS: %v / %v", ce, se)
	}
	// A client of staging does not trust prod's replica.
	if ce, _ := handshake(t, ClientConfig(eve), open); ce == nil {
		t.Fatal("a client of staging accepted a replica of prod")
	}
	// A client does not take another client's certificate for a server.
	if ce, _ := handshake(t, ClientConfig(anon), ClientPortConfig(alice, ClientPortOptions{ServerOnly: true})); ce == nil {
		t.Fatal("a client accepted a client certificate as a server")
	}
}
