package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/net/certs"
)

// TestStartNeedsTLSOrInsecure: the peer port is secure by default; a
// config that says nothing about it, or whose certificates are not this
// replica's, does not start, and touches nothing on disk.
func TestStartNeedsTLSOrInsecure(t *testing.T) {
	base := t.TempDir()
	cfg := Config{ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(base, "data")}
	_, err := Start(cfg, &logMachine{})
	if !errors.Is(err, ErrNoTLS) || !strings.Contains(err.Error(), "Config.TLSDir") || !strings.Contains(err.Error(), "Config.Insecure") {
		t.Fatalf("Start without TLS: %v", err)
	}
	other := filepath.Join(base, "other-certs")
	if _, err := certs.CreateDir(other, "other", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(base, "certs")
	if _, err := certs.CreateDir(mine, "paxos", []uint64{2, 3}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.TLSDir = other }, `not the CA of cluster "paxos"`},
		{func(c *Config) { c.TLSDir = mine }, "node-1.pem"},
		{func(c *Config) { c.TLSDir, c.Insecure = mine, true }, "choose one"},
	} {
		c := cfg
		tc.mod(&c)
		if _, err := Start(c, &logMachine{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLSDir %s, Insecure %v: %v, want an error saying %q", c.TLSDir, c.Insecure, err, tc.want)
		}
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a replica that did not start touched its data dir: %v", err)
	}
}
