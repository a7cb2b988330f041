package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/net/certs"
)

// TestCerts writes a directory, says it again without writing, and
// refuses a directory of another cluster.
func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	code, out, errOut := runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--nodes", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "node-0.pem", "node-2-key.pem", "client.pem", "client-key.pem"} {
		if !strings.Contains(out, filepath.Join(dir, f)) {
			t.Errorf("output does not name %s:\n%s", f, out)
		}
	}
	for id := uint64(0); id < 3; id++ {
		if _, err := certs.LoadReplica(dir, "demo", id); err != nil {
			t.Errorf("replica %d: %v", id, err)
		}
	}
	if _, err := certs.LoadClient(dir, "demo"); err != nil {
		t.Error(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))

	code, out, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--nodes", "2")
	if code != 0 || !strings.Contains(out, "nothing written") {
		t.Errorf("again: exit %d, %q %q; want exit 0 and nothing written", code, out, errOut)
	}
	code, _, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "other", "--nodes", "3")
	if code != 1 || !strings.Contains(errOut, `cluster "demo", not "other"`) {
		t.Errorf("another cluster: exit %d, %q; want exit 1 naming both clusters", code, errOut)
	}
	code, _, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--nodes", "5")
	if code != 1 || !strings.Contains(errOut, "node-4.pem") {
		t.Errorf("more replicas: exit %d, %q; want exit 1 naming the missing files", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(after) != string(before) {
		t.Error("the CA changed")
	}
}

func TestCertsBadFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-id", "c", "--nodes", "3"}, "missing flags: --dir"},
		{[]string{"--dir", dir, "--nodes", "3"}, "missing flags: --cluster-id"},
		{[]string{"--dir", dir, "--cluster-id", "c"}, "missing flags: --nodes"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes", "0"}, "missing flags: --nodes"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes", "100"}, "--nodes 100: a cluster has between 1 and 99"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes", "1000"}, "--nodes 1000"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes=-1"}, "--nodes -1"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes", "-1"}, "--nodes"},
		{[]string{"--dir", dir, "--cluster-id", "a b", "--nodes", "3"}, `--cluster-id "a b"`},
		{[]string{"--dir", dir, "--cluster-id", "-x", "--nodes", "3"}, `--cluster-id`},
		{[]string{"--dir", dir, "--cluster-id", "a..b", "--nodes", "3"}, `--cluster-id "a..b"`},
		{[]string{"--dir", dir, "--cluster-id", "c", "--nodes", "3", "--add", "3"}, "--nodes and --add: choose one"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--add", "3,3"}, "--add: replica 3 given twice"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--add", "1000000"}, "--add 1000000: a replica ID is between 0 and 999999"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--add", "x"}, "--add"},
		{[]string{"--dir", dir, "--cluster-id", "c", "--add=-1"}, "--add"},
	} {
		code, _, errOut := runCLI(append([]string{"certs"}, tc.args...)...)
		if code != 80 || !strings.Contains(errOut, tc.want) {
			t.Errorf("certs %q: exit %d, stderr %q; want exit 80 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s was made by a refused command line", dir)
	}
}

// TestCertsAdd: --add issues certificates for more replicas with the CA
// already in the directory, leaves the others alone, and does nothing
// the second time.
func TestCertsAdd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if code, _, errOut := runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--nodes", "3"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ca0, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	node0, _ := os.ReadFile(filepath.Join(dir, "node-0.pem"))
	code, out, errOut := runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--add", "3,7")
	if code != 0 || !strings.Contains(out, "wrote replica 3's certificate") || !strings.Contains(out, filepath.Join(dir, "node-7-key.pem")) {
		t.Fatalf("--add: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, id := range []uint64{0, 3, 7} {
		if _, err := certs.LoadReplica(dir, "demo", id); err != nil {
			t.Errorf("replica %d: %v", id, err)
		}
	}
	if ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(ca) != string(ca0) {
		t.Error("--add changed the CA")
	}
	if n, _ := os.ReadFile(filepath.Join(dir, "node-0.pem")); string(n) != string(node0) {
		t.Error("--add changed replica 0's certificate")
	}
	node3, _ := os.ReadFile(filepath.Join(dir, "node-3.pem"))
	code, out, _ = runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--add", "3")
	if n, _ := os.ReadFile(filepath.Join(dir, "node-3.pem")); code != 0 || !strings.Contains(out, "nothing written") || string(n) != string(node3) {
		t.Errorf("again: exit %d, %q", code, out)
	}
	// A certificate that does not verify is not overwritten.
	if err := os.WriteFile(filepath.Join(dir, "node-9.pem"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--add", "9")
	if code != 1 || !strings.Contains(errOut, "node-9.pem exists but is not a usable certificate") {
		t.Errorf("junk certificate: exit %d, %q", code, errOut)
	}
	// Without the CA's key, or of another cluster, nothing is written.
	if err := os.Remove(filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "demo", "--add", "4")
	if code != 1 || !strings.Contains(errOut, "ca-key.pem") {
		t.Errorf("no CA key: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI("certs", "--dir", dir, "--cluster-id", "other", "--add", "4")
	if code != 1 || !strings.Contains(errOut, `not the CA of cluster "other"`) {
		t.Errorf("another cluster: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "node-4.pem")); err == nil {
		t.Error("node-4.pem written")
	}
	code, _, errOut = runCLI("certs", "--dir", filepath.Join(t.TempDir(), "none"), "--cluster-id", "demo", "--add", "4")
	if code != 1 || !strings.Contains(errOut, "ca.pem") {
		t.Errorf("no directory: exit %d, %q", code, errOut)
	}
}
