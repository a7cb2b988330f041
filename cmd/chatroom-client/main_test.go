package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/engine"
)

func TestREPL(t *testing.T) {
	n, err := engine.Start(engine.Config{ID: 0, Peers: map[uint64]string{0: "127.0.0.1:0"}, ClusterID: "chatroom",
		DataDir: filepath.Join(t.TempDir(), "0"), ClientAddr: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond, Insecure: true}, chatroom.New())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	port := n.ClientAddr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	var out bytes.Buffer
	r := &repl{cli: cli{Host: "127.0.0.1", ClusterID: "chatroom", Timeout: 20 * time.Second}, out: &out}
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
		"> ",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Fatalf("REPL output:\n%s\nwant:\n%s", got, want)
	}
}
