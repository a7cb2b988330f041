package engine

import (
	"context"
	stdnet "net"
	"path/filepath"
	"testing"
	"time"
)

// TestPeerListenAddr: with PeerListenAddr the node listens for peers
// there, not at its peer address, which stays what the configuration
// holds for it (other replicas dial it, through whatever is in between).
func TestPeerListenAddr(t *testing.T) {
	free := func() string {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	advertised, listen := free(), free()
	n, err := Start(Config{ID: 1, Peers: map[uint64]string{1: advertised}, PeerListenAddr: listen,
		DataDir: filepath.Join(t.TempDir(), "1"), Insecure: true, ElectionTimeout: 50 * time.Millisecond}, &trivialMachine{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if c, err := stdnet.Dial("tcp", listen); err != nil {
		t.Errorf("nothing listens at PeerListenAddr %s: %v", listen, err)
	} else {
		c.Close()
	}
	if c, err := stdnet.Dial("tcp", advertised); err == nil {
		c.Close()
		t.Errorf("the node listens at its peer address %s too", advertised)
	}
	if m, ok := n.Configuration().Member(1); !ok || m.PeerAddr != advertised {
		t.Errorf("the configuration holds %+v for the node, want peer address %s", m, advertised)
	}
	for deadline := time.Now().Add(10 * time.Second); n.Status().Role != "leader"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %+v", n.Status())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Submit(ctx, 1, 1, []byte("x")); err != nil {
		t.Fatalf("a one-replica cluster listening elsewhere does not commit: %v", err)
	}
}
