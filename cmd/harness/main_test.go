package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/paxos-go/paxos/harness"
	"github.com/paxos-go/paxos/net/certs"
)

func TestBadScenarioFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Put","id":0}]`), 0o644)
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, []byte(`[{"type":"Start","id":0,"port":1,"count":50}]`), 0o644)
	for _, tc := range []struct{ file, want string }{
		{bad, `op 1: Put: missing field "message"`},
		{big, "count 50: the harness runs at most 16 servers"},
		{filepath.Join(dir, "none-*.json"), "no scenario matches"},
	} {
		var out, errOut bytes.Buffer
		c := cli{File: tc.file, Server: "/bin/false"}
		if code := c.run(context.Background(), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", tc.file, code, errOut.String(), tc.want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", "x", "--timeout", "0s"}, "--timeout 0s: must be positive"},
		{[]string{"-f", "x", "--timeout=-1m"}, "--timeout -1m0s"},
		{[]string{"-f", "x", "--get-timeout", "0s"}, "--get-timeout 0s"},
		{[]string{"-f", "x", "--tls-dir", "d", "--insecure"}, "choose one"},
	} {
		var c cli
		parser, err := kong.New(&c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.Parse(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestTLSDirChecked: a --tls-dir is refused before any scenario runs if
// it lacks a certificate for a server the scenarios start.
func TestTLSDirChecked(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "three.json")
	os.WriteFile(sc, []byte(`[{"type":"Start","id":0,"port":1,"count":3}]`), 0o644)
	tlsDir := filepath.Join(dir, "tls")
	if _, err := certs.CreateDir(tlsDir, "two", []uint64{0, 1}); err != nil {
		t.Fatal(err)
	}
	// A server the scenario adds needs its certificate too.
	added := filepath.Join(dir, "added.json")
	os.WriteFile(added, []byte(`[{"type":"Start","id":0,"port":1,"count":2},{"type":"AddServer","id":5,"port":2}]`), 0o644)
	for _, tc := range []struct{ file, tlsDir, want string }{
		{sc, tlsDir, "--tls-dir " + tlsDir + ": certs: loading"},
		{sc, filepath.Join(dir, "none"), "--tls-dir " + filepath.Join(dir, "none") + ": open"},
		{added, tlsDir, "node-5.pem"},
	} {
		var out, errOut bytes.Buffer
		c := cli{File: tc.file, Server: "/bin/false", TLSDir: tc.tlsDir}
		if code := c.run(context.Background(), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", tc.tlsDir, code, errOut.String(), tc.want)
		}
	}
}

// TestPeerPortModes runs a small scenario of three servers three ways:
// certificates made by the run (the default), those of --tls-dir, and
// none (--insecure); each server's log says how its peer port ran.
func TestPeerPortModes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds chatroom-server and starts nine processes")
	}
	dir := t.TempDir()
	server, err := harness.BuildServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := filepath.Join(dir, "three.json")
	os.WriteFile(sc, []byte(`[
		{"type":"Start","id":0,"port":10000,"count":3},
		{"type":"Start","id":1,"port":10001,"count":3},
		{"type":"Start","id":2,"port":10002,"count":3},
		{"type":"Connect","id":0},
		{"type":"Put","id":0,"message":"a"},
		{"type":"Expect","id":1,"messages":["a"]}
	]`), 0o644)
	tlsDir := filepath.Join(dir, "tls")
	if _, err := certs.CreateDir(tlsDir, "shared", []uint64{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cli  cli
		want string // in each server's log
	}{
		{"per-run", cli{}, "peer_port=\"mutual TLS, certificates in " + dir},
		{"tls-dir", cli{TLSDir: tlsDir}, "peer_port=\"mutual TLS, certificates in " + tlsDir + "\""},
		{"insecure", cli{Insecure: true}, "peer_port=\"plaintext (--insecure: the client port too)\""},
	} {
		work := filepath.Join(dir, tc.name)
		os.Mkdir(work, 0o755)
		c := tc.cli
		c.File, c.Server, c.WorkDir, c.Keep, c.Verbose = sc, server, work, true, 1
		c.GetTimeout, c.Timeout = 10e9, 60e9
		var out, errOut bytes.Buffer
		if code := c.run(context.Background(), &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d:\n%s\n%s", tc.name, code, out.String(), errOut.String())
		}
		logs, _ := filepath.Glob(filepath.Join(work, "run-three-*", "node-*.log"))
		if len(logs) != 3 {
			t.Fatalf("%s: logs %v, want three", tc.name, logs)
		}
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("%s: %s lacks %q:\n%s", tc.name, l, tc.want, b)
			}
		}
	}
}
