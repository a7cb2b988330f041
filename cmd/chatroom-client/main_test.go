package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/net/certs"
)

func TestREPL(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if _, err := certs.CreateDir(tlsDir, "chatroom", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	n, err := engine.Start(engine.Config{ID: 0, Peers: map[uint64]string{0: "127.0.0.1:0"}, ClusterID: "chatroom",
		DataDir: filepath.Join(dir, "0"), ClientAddr: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond, TLSDir: tlsDir}, chatroom.New())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	port := n.ClientAddr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	var out, errOut bytes.Buffer
	r := &repl{cli: cli{Host: "127.0.0.1", ClusterID: "chatroom", Timeout: 20 * time.Second, TLSDir: tlsDir}, out: &out, errOut: &errOut}
	r.run(strings.NewReader(strings.Join([]string{
		"get",
		"connect 99999",
		"c " + port,
		"put hello, world",
		"p second",
		"g",
		"frobnicate",
		"put",
		"d",
		"get",
		"c " + port,
	}, "\n")))
	want := strings.Join([]string{
		"> [ERROR]: not connected to a server",
		"> [ERROR]: invalid port 99999",
		fmt.Sprintf("> [RESPONSE]: connected to server at port %s", port),
		"> [RESPONSE]: message committed (log length 1)",
		"> [RESPONSE]: message committed (log length 2)",
		`> [RESPONSE]: ["hello, world", "second"]`,
		"> [ERROR]: could not parse command",
		"> [ERROR]: could not parse command",
		"> > [ERROR]: not connected to a server",
		fmt.Sprintf("> [RESPONSE]: connected to server at port %s", port),
		"> ",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Fatalf("REPL output:\n%s\nwant:\n%s", got, want)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q: want nothing", errOut.String())
	}
}

// TestConnectNeedsCertificates: without --insecure, connect reads the
// cluster's certificates and refuses to go on without them, or with
// another cluster's.
func TestConnectNeedsCertificates(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if _, err := certs.CreateDir(other, "other", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cli  cli
		want string
	}{
		{cli{TLSDir: filepath.Join(dir, "none")}, "[ERROR]: --tls-dir " + filepath.Join(dir, "none") + ": certs: open"},
		{cli{TLSDir: other}, `is not the CA of cluster "chatroom"`},
	} {
		tc.cli.Host, tc.cli.ClusterID, tc.cli.Timeout = "127.0.0.1", "chatroom", time.Second
		var out bytes.Buffer
		r := &repl{cli: tc.cli, out: &out}
		r.run(strings.NewReader("c 1\n"))
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%+v: %q, want %q", tc.cli, out.String(), tc.want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "0s"}, "--timeout 0s: must be positive"},
		{[]string{"--timeout=-1s"}, "--timeout -1s"},
		{[]string{"--host", ""}, "--host: empty"},
		{[]string{"--cluster-id", "a b"}, `--cluster-id "a b"`},
		{[]string{"--tls-dir", "x", "--insecure"}, "choose one"},
		{[]string{"--servers", "127.0.0.1"}, `--servers: "127.0.0.1" is not host:port`},
		{[]string{"--servers", "127.0.0.1:10000,127.0.0.1:0"}, `--servers: "127.0.0.1:0": "0" is not a TCP port`},
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
