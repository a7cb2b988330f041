package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/paxos-go/paxos/engine/paxos"
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
	if !seen["cluster"] || !seen["replica"] || !seen["incarnation"] {
		return id, fmt.Errorf("engine: %s is damaged: it must name the cluster, the replica and the incarnation", path)
	}
	return id, nil
}

// claimDataDir makes sure dir belongs to replica of cluster (claiming it
// if it belongs to nobody yet), then starts a new life of the replica: it
// increments the incarnation and makes it durable (the file, then the
// directory, synced unless noSync) before it returns it. The core draws
// the ids that match replies to requests from it, so a reply meant for an
// earlier life, arriving late, is never taken for one meant for this life.
//
// A data directory whose log exists but whose identity file is missing is
// refused: the file was lost or the directory made by an older version,
// and starting the count again at 1 could repeat an earlier life's ids.
func claimDataDir(dir, cluster string, replica uint64, noSync bool) (uint64, error) {
	if strings.ContainsAny(cluster, "\r\n") {
		return 0, fmt.Errorf("engine: cluster ID %q contains a line break", cluster)
	}
	if err := mkdirAllSynced(dir, noSync); err != nil {
		return 0, fmt.Errorf("engine: creating the data directory: %w", err)
	}
	path := filepath.Join(dir, identityFile)
	cur := identity{cluster: cluster, replica: replica}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ents, _ := os.ReadDir(filepath.Join(dir, "wal")); len(ents) > 0 {
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
	if err := writeFileAtomic(path, cur.encode(), noSync); err != nil {
		return 0, fmt.Errorf("engine: recording the replica's incarnation: %w", err)
	}
	return cur.incarnation, nil
}

// writeFileAtomic replaces path with data: a temporary file, synced, then
// renamed over path, then the directory synced, so that after a crash path
// holds either the old contents or the new, whole.
func writeFileAtomic(path string, data []byte, noSync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if noSync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

// mkdirAllSynced creates dir and any missing parents, and syncs the parent
// of each directory it created, so that the new directories survive a
// power loss.
func mkdirAllSynced(dir string, noSync bool) error {
	dir = filepath.Clean(dir)
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if noSync {
		return nil
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
