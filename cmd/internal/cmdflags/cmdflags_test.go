package cmdflags

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paxos-go/paxos/net/certs"
)

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string // "" for none
	}{
		{Replicas("--n", 1), ""},
		{Replicas("--n", 99), ""},
		{Replicas("--n", 0), "--n 0: a cluster has between 1 and 99"},
		{Replicas("--n", 100), "--n 100"},
		{ReplicaID("--id", 0), ""},
		{ReplicaID("--id", MaxReplicaID), ""},
		{ReplicaID("--id", MaxReplicaID+1), "--id 1000000: a replica ID is between 0 and 999999"},
		{ReplicaID("--id", 1<<64-1), "--id 18446744073709551615"},
		{Port("--p", 1), ""},
		{Port("--p", 65535), ""},
		{Port("--p", 0), "--p 0: not a TCP port"},
		{Port("--p", 65536), "--p 65536"},
		{PortRange("--p", 65533, 3), ""},
		{PortRange("--p", 65534, 3), "need ports 65534 to 65536"},
		{ElectionTimeout("--t", 10*time.Millisecond), ""},
		{ElectionTimeout("--t", time.Minute), ""},
		{ElectionTimeout("--t", 5*time.Nanosecond), "--t 5ns: an election timeout is between 10ms and 1m0s"},
		{ElectionTimeout("--t", -time.Second), "--t -1s"},
		{ElectionTimeout("--t", time.Hour), "--t 1h0m0s"},
		{Positive("--d", time.Nanosecond), ""},
		{Positive("--d", 0), "--d 0s: must be positive"},
		{ClusterID("--c", "chatroom"), ""},
		{ClusterID("--c", "a b"), `--c "a b"`},
		{HostPort("--a", "127.0.0.1:1"), ""},
		{HostPort("--a", "[::1]:65535"), ""},
		{HostPort("--a", "127.0.0.1"), "is not host:port"},
		{HostPort("--a", ":80"), "is not host:port"},
		{HostPort("--a", "h:0"), `"0" is not a TCP port`},
		{HostPort("--a", "h:x"), `"x" is not a TCP port`},
		{TLS{Dir: "d", Insecure: true}.Check(), "choose one"},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("unexpected error %v", tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("error %v, want one containing %q", tc.err, tc.want)
		}
	}
}

// TestReplicaDir: the default directory is made once, by one of several
// replicas starting at once; a named one is only read.
func TestReplicaDir(t *testing.T) {
	def := filepath.Join(t.TempDir(), "data", "tls")
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := 0
	for id := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, created, err := TLS{}.ReplicaDir(def, "c", 3, []uint64{uint64(id)})
			if err != nil || dir != def {
				t.Errorf("replica %d: %q, %v", id, dir, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if created {
				made++
			}
		}()
	}
	wg.Wait()
	if made != 1 {
		t.Errorf("%d replicas made the directory, want one", made)
	}
	if cluster, err := ClusterOf(def); err != nil || cluster != "c" {
		t.Errorf("ClusterOf: %q, %v", cluster, err)
	}
	if dir, _, err := (TLS{Insecure: true}).ReplicaDir(def, "c", 3, []uint64{0}); dir != "" || err != nil {
		t.Errorf("--insecure: %q, %v", dir, err)
	}
	if dir, _, err := (TLS{Dir: def}).ReplicaDir("unused", "c", 3, []uint64{2}); dir != def || err != nil {
		t.Errorf("--tls-dir: %q, %v", dir, err)
	}
	for _, tc := range []struct {
		tls  TLS
		ids  []uint64
		want string
	}{
		{TLS{Dir: def}, []uint64{3}, "node-3.pem"},
		{TLS{Dir: filepath.Join(def, "none")}, []uint64{0}, "paxos certs --dir " + filepath.Join(def, "none") + " --cluster-id c"},
	} {
		if _, _, err := tc.tls.ReplicaDir("unused", "c", 4, tc.ids); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v %v: %v, want an error containing %q", tc.tls, tc.ids, err, tc.want)
		}
	}
	// The default, for another cluster: refused, not remade.
	if _, _, err := (TLS{}).ReplicaDir(def, "other", 3, []uint64{0}); err == nil || !strings.Contains(err.Error(), `cluster "c", not "other"`) {
		t.Errorf("another cluster's default: %v", err)
	}
}

func TestClientBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(dir, "c", []uint64{0}); err != nil {
		t.Fatal(err)
	}
	if b, err := (TLS{}).ClientBundle(dir, "c"); err != nil || b == nil || !b.Identity.IsClient() {
		t.Errorf("default: %+v, %v", b, err)
	}
	if b, err := (TLS{Insecure: true}).ClientBundle(dir, "c"); err != nil || b != nil {
		t.Errorf("--insecure: %+v, %v", b, err)
	}
	missing := filepath.Join(dir, "none")
	if _, err := (TLS{}).ClientBundle(missing, "c"); err == nil || !strings.Contains(err.Error(), "start the servers first") {
		t.Errorf("a missing default: %v", err)
	}
	if _, err := (TLS{Dir: dir}).ClientBundle("unused", "other"); err == nil || !strings.Contains(err.Error(), "--tls-dir "+dir) {
		t.Errorf("another cluster: %v", err)
	}
	if _, err := ClusterOf(missing); err == nil {
		t.Error("ClusterOf a missing directory")
	}
}

// TestJoinerDir: a joining replica's certificate must be in the
// directory already; the error says how to issue it, and nothing is made.
func TestJoinerDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(dir, "c", []uint64{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if got, err := (TLS{}).JoinerDir(dir, "c", 1); err != nil || got != dir {
		t.Errorf("a replica with its certificate: %q, %v", got, err)
	}
	_, err := (TLS{}).JoinerDir(dir, "c", 3)
	if err == nil || !strings.Contains(err.Error(), "paxos certs --dir "+dir+" --cluster-id c --add 3") || !strings.Contains(err.Error(), "(--tls-dir to name others") {
		t.Errorf("no certificate for 3: %v", err)
	}
	if _, err := (TLS{Dir: dir}).JoinerDir("unused", "other", 1); err == nil || !strings.Contains(err.Error(), "--tls-dir "+dir) {
		t.Errorf("another cluster: %v", err)
	}
	none := filepath.Join(t.TempDir(), "none")
	if _, err := (TLS{}).JoinerDir(none, "c", 0); err == nil {
		t.Error("a missing directory was accepted")
	}
	if _, err := os.Stat(none); err == nil {
		t.Error("JoinerDir made a directory")
	}
	if got, err := (TLS{Insecure: true}).JoinerDir(none, "c", 0); err != nil || got != "" {
		t.Errorf("--insecure: %q, %v", got, err)
	}
}

// TestReplicaDirHints: a missing directory is made with --nodes; a
// missing certificate in a directory that has the CA is issued with --add.
func TestReplicaDirHints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.CreateDir(dir, "c", []uint64{0, 1}); err != nil {
		t.Fatal(err)
	}
	_, _, err := TLS{Dir: dir}.ReplicaDir("", "c", 3, []uint64{0, 2})
	if err == nil || !strings.Contains(err.Error(), "(issue it with: paxos certs --dir "+dir+" --cluster-id c --add 2)") {
		t.Errorf("a missing certificate: %v", err)
	}
	none := filepath.Join(t.TempDir(), "none")
	_, _, err = TLS{Dir: none}.ReplicaDir("", "c", 3, []uint64{0})
	if err == nil || !strings.Contains(err.Error(), "(make it with: paxos certs --dir "+none+" --cluster-id c --nodes N)") {
		t.Errorf("a missing directory: %v", err)
	}
}
