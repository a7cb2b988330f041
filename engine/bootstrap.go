package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/durable"
)

// How a replica began, recorded in its data directory at its first start.
//
// The configuration is replicated state: it changes only by configuration
// values chosen in the log, and a replica recovers it from its latest
// snapshot and its log. Config.Peers (and Config.ClientAddrs) only
// bootstrap a new cluster: at the first start of a replica, they are
// written into the data directory, and every later start takes the
// bootstrap configuration from there, whatever the flags say then (a
// changed flag is logged and ignored). A replica started with Config.Join
// records that instead: it knows no configuration until a leader sends it
// a snapshot.
//
// The file, written whole with durable.WriteFile (a crash leaves the old
// contents or the new, never a mix):
//
//	version=1
//	mode=bootstrap            (or mode=join, with no member lines)
//	sequence=strict           (bootstrap only: see below)
//	member=<id> <peer address> <client address>   (- for an address not given)
//	...                       (one line per replica of the first configuration)
//
// sequence=strict says the cluster was bootstrapped by a version that
// knows the sequence rule (see the package doc). The session table no
// longer needs it: the rule it refuses at apply time (a command outside
// its client's window) is the same for every cluster, and client ID 0 and
// number 0 are refused before proposal. It is kept so that a version that
// read it still finds it, and so that an earlier version, which refuses a
// file with the line as damaged, does not run a cluster it does not know.

// bootstrapFile is the file's name in the data directory.
const bootstrapFile = "BOOTSTRAP"

// dataLostFile is the name, in the data directory, of the file that
// records that the cluster refused this replica as one that lost its data
// (ErrDataLost): every later start is refused too, since whatever the
// directory holds now is not the state the cluster counted on.
const dataLostFile = "DATA_LOST"

// statefulPeersFile is the name, in the data directory, of the file that
// lists the replicas this one heard from saying they hold state (see
// Node.dataLost): one whose data directory is then wiped is refused even
// after this replica restarted. Written whole with durable.WriteFile:
//
//	version=1
//	peer=<id>                 (one line per replica, sorted)
const statefulPeersFile = "PEERS_WITH_STATE"

// bootstrapRecord is what the bootstrap file holds.
type bootstrapRecord struct {
	join    bool
	members []paxos.Member // sorted by ID; voters
	// strictSeq says the cluster began under the sequence rule.
	strictSeq bool
}

// bootstrapOf returns the record of a new cluster whose replicas are
// peers, with the client addresses of clients (either may miss some).
func bootstrapOf(peers, clients map[uint64]string) (bootstrapRecord, error) {
	b := bootstrapRecord{strictSeq: true}
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		m := paxos.Member{ID: paxos.NodeID(id), Voter: true, PeerAddr: peers[id], ClientAddr: clients[id]}
		if m.ID == paxos.None {
			return b, fmt.Errorf("engine: replica ID %d is reserved", id)
		}
		for _, a := range []string{m.PeerAddr, m.ClientAddr} {
			if err := checkAddr(a); err != nil {
				return b, fmt.Errorf("engine: replica %d: %w", id, err)
			}
		}
		b.members = append(b.members, m)
	}
	return b, nil
}

// checkAddr refuses an address the bootstrap file (and a configuration)
// cannot hold.
func checkAddr(a string) error {
	switch {
	case len(a) > paxos.MaxAddressLen:
		return fmt.Errorf("address %.40q... is longer than %d bytes", a, paxos.MaxAddressLen)
	case strings.ContainsAny(a, " \t\r\n"), a == "-":
		return fmt.Errorf("address %q is not a host:port", a)
	}
	return nil
}

// configState is the configuration state the record starts a replica
// with: the first configuration, from slot 1; nil for a joining replica.
func (b bootstrapRecord) configState() paxos.ConfigState {
	if b.join {
		return nil
	}
	return paxos.ConfigState{{From: 1, Config: paxos.Configuration{Members: slices.Clone(b.members)}}}
}

// equal reports whether two records say the same.
func (b bootstrapRecord) equal(o bootstrapRecord) bool {
	return b.join == o.join && b.strictSeq == o.strictSeq && slices.Equal(b.members, o.members)
}

func (b bootstrapRecord) encode() []byte {
	var buf bytes.Buffer
	buf.WriteString("version=1\n")
	if b.join {
		buf.WriteString("mode=join\n")
		return buf.Bytes()
	}
	buf.WriteString("mode=bootstrap\n")
	if b.strictSeq {
		buf.WriteString("sequence=strict\n")
	}
	orDash := func(a string) string {
		if a == "" {
			return "-"
		}
		return a
	}
	for _, m := range b.members {
		fmt.Fprintf(&buf, "member=%d %s %s\n", uint64(m.ID), orDash(m.PeerAddr), orDash(m.ClientAddr))
	}
	return buf.Bytes()
}

// parseBootstrap reads the file's contents; path is for errors.
func parseBootstrap(path string, data []byte) (bootstrapRecord, error) {
	var b bootstrapRecord
	damaged := func(line string, why string) error {
		return fmt.Errorf("engine: %s is damaged: line %q: %s", path, line, why)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var version, mode, sequence bool
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return b, damaged(line, "no key")
		}
		switch key {
		case "version":
			if version || val != "1" {
				return b, damaged(line, "want one line version=1")
			}
			version = true
		case "mode":
			if mode || (val != "join" && val != "bootstrap") {
				return b, damaged(line, "want one line mode=bootstrap or mode=join")
			}
			mode, b.join = true, val == "join"
		case "sequence":
			if sequence || val != "strict" {
				return b, damaged(line, "want one line sequence=strict")
			}
			sequence, b.strictSeq = true, true
		case "member":
			f := strings.Fields(val)
			if len(f) != 3 {
				return b, damaged(line, "want member=<id> <peer address or -> <client address or ->")
			}
			id, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil || paxos.NodeID(id) == paxos.None {
				return b, damaged(line, "bad replica ID")
			}
			m := paxos.Member{ID: paxos.NodeID(id), Voter: true}
			if f[1] != "-" {
				m.PeerAddr = f[1]
			}
			if f[2] != "-" {
				m.ClientAddr = f[2]
			}
			if n := len(b.members); n > 0 && b.members[n-1].ID >= m.ID {
				return b, damaged(line, "members not sorted and unique")
			}
			b.members = append(b.members, m)
		default:
			return b, damaged(line, "unknown key")
		}
	}
	if err := sc.Err(); err != nil {
		return b, fmt.Errorf("engine: %s is damaged: %v", path, err)
	}
	switch {
	case !version || !mode:
		return b, fmt.Errorf("engine: %s is damaged: it must give the version and the mode", path)
	case b.join && len(b.members) > 0:
		return b, fmt.Errorf("engine: %s is damaged: a joining replica's file lists members", path)
	case b.join && b.strictSeq:
		return b, fmt.Errorf("engine: %s is damaged: a joining replica's file gives the sequence rule (its snapshot does)", path)
	case !b.join:
		if err := (paxos.Configuration{Members: b.members}).Validate(); err != nil {
			return b, fmt.Errorf("engine: %s is damaged: %v", path, err)
		}
	}
	return b, nil
}

// readBootstrap reads the data directory's bootstrap file; ok is false if
// there is none.
func readBootstrap(dir string) (b bootstrapRecord, ok bool, err error) {
	path := filepath.Join(dir, bootstrapFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("engine: reading %s: %w", path, err)
	}
	b, err = parseBootstrap(path, data)
	return b, err == nil, err
}

// writeBootstrap records b in the data directory, durably unless noSync.
func writeBootstrap(dir string, b bootstrapRecord, noSync bool) error {
	if err := durable.WriteFile(filepath.Join(dir, bootstrapFile), b.encode(), 0o644, !noSync); err != nil {
		return fmt.Errorf("engine: recording the bootstrap configuration: %w", err)
	}
	return nil
}

// checkDataLost refuses a data directory that the cluster refused as a
// replica that lost its data.
func checkDataLost(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, dataLostFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("engine: reading %s: %w", filepath.Join(dir, dataLostFile), err)
	}
	return fmt.Errorf("%w: %s (recorded in %s; start the replica under a new ID, with an empty data directory)",
		ErrDataLost, strings.TrimSpace(string(data)), filepath.Join(dir, dataLostFile))
}

// recordDataLost writes why the cluster refused this replica, so that no
// later start of the directory takes part either.
func recordDataLost(dir, why string, noSync bool) error {
	return durable.WriteFile(filepath.Join(dir, dataLostFile), []byte(why+"\n"), 0o644, !noSync)
}

// readStatefulPeers reads the replicas the data directory's
// statefulPeersFile lists; none if there is no such file.
func readStatefulPeers(dir string) (map[uint64]bool, error) {
	path := filepath.Join(dir, statefulPeersFile)
	peers := map[uint64]bool{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return peers, nil
	case err != nil:
		return nil, fmt.Errorf("engine: reading %s: %w", path, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "version=1" {
		return nil, fmt.Errorf("engine: %s is damaged: it must start with version=1", path)
	}
	for _, line := range lines[1:] {
		v, ok := strings.CutPrefix(line, "peer=")
		id, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("engine: %s is damaged: line %q", path, line)
		}
		peers[id] = true
	}
	return peers, nil
}

// writeStatefulPeers records peers in the data directory, durably unless
// noSync.
func writeStatefulPeers(dir string, peers map[uint64]bool, noSync bool) error {
	var buf bytes.Buffer
	buf.WriteString("version=1\n")
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		fmt.Fprintf(&buf, "peer=%d\n", id)
	}
	return durable.WriteFile(filepath.Join(dir, statefulPeersFile), buf.Bytes(), 0o644, !noSync)
}
