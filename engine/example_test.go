package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paxos-go/paxos/engine"
	"github.com/paxos-go/paxos/net/certs"
	"github.com/paxos-go/paxos/storage"
)

// dirStore is an embedder's own snapshot store: one file per snapshot in
// a directory. A snapshot is written to a temporary file, synced, and
// renamed into place, and the directory is synced: until the rename is
// durable the snapshot does not exist. The metadata is a 24-byte trailer.
type dirStore struct{ dir string }

func newDirStore(dir string) (*dirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &dirStore{dir: dir}, nil
}

func (s *dirStore) path(slot uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.snap", slot))
}

func (s *dirStore) Create(slot uint64, b storage.Ballot) (storage.Writer, error) {
	f, err := os.CreateTemp(s.dir, "tmp-*")
	if err != nil {
		return nil, err
	}
	return &dirWriter{s: s, f: f, meta: storage.Meta{Slot: slot, Ballot: b}, h: storage.NewChecksum()}, nil
}

type dirWriter struct {
	s    *dirStore
	f    *os.File
	meta storage.Meta
	h    hash.Hash32
}

func (w *dirWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	w.meta.Size += int64(len(p))
	return w.f.Write(p)
}

func (w *dirWriter) Commit() (storage.Meta, error) {
	w.meta.Checksum = w.h.Sum32()
	var t []byte
	t = binary.BigEndian.AppendUint64(t, w.meta.Ballot.Round)
	t = binary.BigEndian.AppendUint64(t, w.meta.Ballot.Node)
	t = binary.BigEndian.AppendUint32(t, w.meta.Checksum)
	t = binary.BigEndian.AppendUint32(t, 0)
	if _, err := w.f.Write(t); err != nil {
		return storage.Meta{}, err
	}
	if err := w.f.Sync(); err != nil {
		return storage.Meta{}, err
	}
	w.f.Close()
	if err := os.Rename(w.f.Name(), w.s.path(w.meta.Slot)); err != nil {
		return storage.Meta{}, err
	}
	d, err := os.Open(w.s.dir)
	if err != nil {
		return storage.Meta{}, err
	}
	defer d.Close()
	return w.meta, d.Sync()
}

func (w *dirWriter) Abort() error {
	w.f.Close()
	return os.Remove(w.f.Name())
}

func (s *dirStore) meta(slot uint64) (storage.Meta, error) {
	f, err := os.Open(s.path(slot))
	if errors.Is(err, os.ErrNotExist) {
		return storage.Meta{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Meta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 24 {
		return storage.Meta{}, fmt.Errorf("snapshot %d: %v (size %d)", slot, err, st.Size())
	}
	t := make([]byte, 24)
	if _, err := f.ReadAt(t, st.Size()-24); err != nil {
		return storage.Meta{}, err
	}
	return storage.Meta{
		Slot:     slot,
		Ballot:   storage.Ballot{Round: binary.BigEndian.Uint64(t), Node: binary.BigEndian.Uint64(t[8:])},
		Size:     st.Size() - 24,
		Checksum: binary.BigEndian.Uint32(t[16:]),
	}, nil
}

func (s *dirStore) List() ([]storage.Meta, error) {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var l []storage.Meta
	for _, e := range names {
		num, ok := strings.CutSuffix(e.Name(), ".snap")
		slot, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			continue
		}
		m, err := s.meta(slot)
		if err != nil {
			return nil, err
		}
		l = append(l, m)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Slot < l[j].Slot })
	return l, nil
}

func (s *dirStore) Latest() (storage.Meta, bool, error) {
	l, err := s.List()
	if err != nil || len(l) == 0 {
		return storage.Meta{}, false, err
	}
	return l[len(l)-1], true, nil
}

func (s *dirStore) Open(slot uint64) (io.ReadCloser, storage.Meta, error) {
	m, err := s.meta(slot)
	if err != nil {
		return nil, m, err
	}
	f, err := os.Open(s.path(slot))
	if err != nil {
		return nil, m, err
	}
	r := storage.VerifyingReader(io.LimitReader(f, m.Size), m)
	return struct {
		io.Reader
		io.Closer
	}{r, f}, m, nil
}

func (s *dirStore) Prune(keep int) error {
	l, err := s.List()
	if err != nil {
		return err
	}
	for i := 0; i < len(l)-keep; i++ {
		if err := os.Remove(s.path(l[i].Slot)); err != nil {
			return err
		}
	}
	return nil
}

func (s *dirStore) Close() error { return nil }

// counter is a tiny state machine: it counts the commands applied.
type counter struct{ n uint64 }

func (c *counter) Apply(slot uint64, cmd []byte) []byte {
	c.n++
	return []byte(strconv.FormatUint(c.n, 10))
}

func (c *counter) Snapshot(w io.Writer) error {
	return binary.Write(w, binary.BigEndian, c.n)
}

func (c *counter) Restore(r io.Reader) error {
	return binary.Read(r, binary.BigEndian, &c.n)
}

// An embedder's own snapshot store plugs in through Config.Snapshots. This
// runs a one-replica cluster, takes a snapshot into the store, and
// restarts from it.
func ExampleConfig_snapshots() {
	dir, _ := os.MkdirTemp("", "paxos-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	// The certificates of the cluster (what `paxos certs` makes): a
	// replica talks to its peers over mutual TLS.
	tlsDir := filepath.Join(dir, "certs")
	if _, err := certs.CreateDir(tlsDir, "paxos", []uint64{1}); err != nil {
		panic(err)
	}
	start := func() (*engine.Node, *counter) {
		store, err := newDirStore(filepath.Join(dir, "my-snapshots"))
		if err != nil {
			panic(err)
		}
		sm := &counter{}
		node, err := engine.Start(engine.Config{
			ID:        1,
			Peers:     map[uint64]string{1: "127.0.0.1:0"},
			DataDir:   filepath.Join(dir, "data"),
			TLSDir:    tlsDir,
			Snapshots: store,
		}, sm)
		if err != nil {
			panic(err)
		}
		for node.Status().Role != "leader" {
			time.Sleep(time.Millisecond)
		}
		return node, sm
	}

	node, _ := start()
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := node.Submit(ctx, 7, seq, []byte("tick")); err != nil {
			panic(err)
		}
	}
	meta, err := node.Snapshot(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("snapshot of slot", meta.Slot)
	node.Close()

	node, sm := start()
	defer node.Close()
	fmt.Println("restored count:", sm.n)
	// Output:
	// snapshot of slot 3
	// restored count: 3
}
