package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
	"github.com/paxos-go/paxos/internal/durable"
)

// identityFile is the name, in the data directory, of the file that binds
// the directory to one replica of one cluster and counts the replica's
// lives.
const identityFile = "REPLICA"

// maxIncarnation is the number of lives a data directory may have: the
// core draws its request ids from the incarnation, which must stay below
// paxos.MaxIncarnation (2^24).
const maxIncarnation = paxos.MaxIncarnation - 1

// identity is what the identity file holds.
type identity struct {
	cluster     string
	replica     uint64
	incarnation uint64
}

func (id identity) encode() []byte {
	return fmt.Appendf(nil, "cluster=%s\nreplica=%d\nincarnation=%d\n", id.cluster, id.replica, id.incarnation)
}

// parseIdentity reads an identity file's contents; path is for errors.
func parseIdentity(path string, b []byte) (identity, error) {
	var id identity
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "=")
		if !ok || seen[key] {
			return id, fmt.Errorf("engine: %s is damaged: line %q", path, sc.Text())
		}
		seen[key] = true
		var err error
		switch key {
		case "cluster":
			id.cluster = val
		case "replica":
			id.replica, err = strconv.ParseUint(val, 10, 64)
		case "incarnation":
			id.incarnation, err = strconv.ParseUint(val, 10, 64)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return id, fmt.Errorf("engine: %s is damaged: line %q: %v", path, sc.Text(), err)
		}
	}
	if err := sc.Err(); err != nil {
		// A line over 64 KiB: not a file this code wrote.
		return id, fmt.Errorf("engine: %s is damaged: %v", path, err)
	}
	if !seen["cluster"] || !seen["replica"] || !seen["incarnation"] {
		return id, fmt.Errorf("engine: %s is damaged: it must name the cluster, the replica and the incarnation", path)
	}
	return id, nil
}

// lockFile is the name, in the data directory, of the file whose lock a
// replica holds for as long as it runs.
const lockFile = "LOCK"

// ErrDataDirLocked is matched by the error of a start on a data directory
// that another replica, in this process or another, has open.
var ErrDataDirLocked = errors.New("engine: the data directory is in use")

// lockDataDir takes an exclusive lock on dir/LOCK, without waiting: a
// second replica started on the directory is refused, before it reads
// anything there. Closing the returned file releases the lock, and so does
// the end of the process.
func lockDataDir(dir string) (io.Closer, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("engine: opening %s: %w", path, err)
	}
	locked, err := lockFileExclusive(f)
	if err != nil || !locked {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("engine: locking %s: %w", path, err)
		}
		return nil, fmt.Errorf("%w: %s is locked by another replica (is it already running?)", ErrDataDirLocked, path)
	}
	return f, nil
}

// claimDataDir locks dir for as long as the replica runs (see
// lockDataDir) and makes sure it belongs to replica of cluster (claiming
// it if it belongs to nobody yet), then starts a new life of the replica:
// it increments the incarnation and makes it durable (the file, then the
// directory, synced unless noSync) before it returns it, with the lock,
// which the caller closes when the replica stops. The core draws the ids
// that match replies to requests from the incarnation, so a reply meant
// for an earlier life, arriving late, is never taken for one meant for
// this life. Without the lock, two starts at once could read the same
// incarnation and both use it, or write the file back to an older one.
//
// A data directory whose log exists but whose identity file is missing is
// refused: the file was lost or the directory made by an older version,
// and starting the count again at 1 could repeat an earlier life's ids.
func claimDataDir(dir, cluster string, replica uint64, noSync bool) (inc uint64, lock io.Closer, err error) {
	if strings.ContainsAny(cluster, "\r\n") {
		return 0, nil, fmt.Errorf("engine: cluster ID %q contains a line break", cluster)
	}
	if err := durable.MkdirAll(dir, 0o755, !noSync); err != nil {
		return 0, nil, fmt.Errorf("engine: creating the data directory: %w", err)
	}
	if lock, err = lockDataDir(dir); err != nil {
		return 0, nil, err
	}
	if inc, err = claimLocked(dir, cluster, replica, noSync); err != nil {
		lock.Close()
		return 0, nil, err
	}
	return inc, lock, nil
}

// claimLocked is claimDataDir once the lock is held.
func claimLocked(dir, cluster string, replica uint64, noSync bool) (uint64, error) {
	removeStaleTemps(dir)
	path := filepath.Join(dir, identityFile)
	cur := identity{cluster: cluster, replica: replica}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ents, _ := os.ReadDir(filepath.Join(dir, walDirName)); len(ents) > 0 {
			return 0, fmt.Errorf("engine: %s holds a write-ahead log but no %s file: it was lost, or the directory was made by an older version. "+
				"If you know this directory is replica %d of cluster %q, write the file with an incarnation above any it used "+
				"(printf 'cluster=%s\\nreplica=%d\\nincarnation=%d\\n' > %s); otherwise start from an empty directory",
				dir, identityFile, replica, cluster, cluster, replica, 1<<16, path)
		}
	case err != nil:
		return 0, fmt.Errorf("engine: reading %s: %w", path, err)
	default:
		if cur, err = parseIdentity(path, b); err != nil {
			return 0, err
		}
		if cur.cluster != cluster || cur.replica != replica {
			return 0, fmt.Errorf("engine: data directory %s belongs to replica %d of cluster %q, not to replica %d of cluster %q",
				dir, cur.replica, cur.cluster, replica, cluster)
		}
	}
	if cur.incarnation >= maxIncarnation {
		return 0, fmt.Errorf("engine: %s: replica %d has used all %d incarnations", path, replica, maxIncarnation)
	}
	cur.incarnation++
	if err := durable.WriteFile(path, cur.encode(), 0o644, !noSync); err != nil {
		return 0, fmt.Errorf("engine: recording the replica's incarnation: %w", err)
	}
	return cur.incarnation, nil
}

// removeStaleTemps deletes the temporary files that writes of the
// identity file left behind when the process stopped before renaming
// them. It is called with the lock held, so none is being written.
func removeStaleTemps(dir string) {
	// durable.WriteFile's temporaries, and the single REPLICA.tmp of the
	// first version of this file, which a data dir may still hold.
	names, _ := filepath.Glob(filepath.Join(dir, identityFile+".*.tmp"))
	for _, name := range append(names, filepath.Join(dir, identityFile+".tmp")) {
		os.Remove(name)
	}
}
