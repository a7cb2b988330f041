package storagetest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"sync"
	"testing"

	"github.com/paxos-go/paxos/storage"
	"github.com/paxos-go/paxos/storage/storagetest"
)

// The contract must have teeth: a store broken in any one of the ways
// below fails it, while the same store without the flaw passes.

// flaw is one way to break a store.
type flaw string

const (
	sound     flaw = "sound"
	volatile  flaw = "volatile"   // kept in the process's memory only: lost on reopen
	noVerify  flaw = "no-verify"  // reads without checking the checksum
	abortNoop flaw = "abort-noop" // Abort does nothing: the writer stays live
	clobber   flaw = "clobber"    // Create empties the committed snapshot of its slot
)

// caughtBy is the contract test each flaw must fail (it may fail others).
var caughtBy = map[flaw]string{
	volatile:  "SurvivesReopen",
	noVerify:  "DamageIsReported",
	abortNoop: "AbortLeavesNothing",
	clobber:   "CreateAtCommittedSlot",
}

// disk is what a flawedStore keeps, and what survives its reopening.
type disk struct {
	mu    sync.Mutex
	snaps map[uint64]*stored
}

type stored struct {
	meta storage.Meta
	data []byte
}

// flawedStore is a simple store, correct but for its flaw: writers buffer
// the snapshot and Commit installs it whole.
type flawedStore struct {
	d    *disk
	flaw flaw
}

func (s *flawedStore) Create(slot uint64, b storage.Ballot) (storage.Writer, error) {
	if s.flaw == clobber {
		s.d.mu.Lock()
		if sn, ok := s.d.snaps[slot]; ok {
			sn.data = nil // "make room for the new one"
		}
		s.d.mu.Unlock()
	}
	return &flawedWriter{s: s, meta: storage.Meta{Slot: slot, Ballot: b}}, nil
}

type flawedWriter struct {
	s    *flawedStore
	meta storage.Meta
	buf  bytes.Buffer
	done bool
}

func (w *flawedWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("finished")
	}
	return w.buf.Write(p)
}

func (w *flawedWriter) Commit() (storage.Meta, error) {
	if w.done {
		return storage.Meta{}, errors.New("finished")
	}
	w.done = true
	h := storage.NewChecksum()
	h.Write(w.buf.Bytes())
	w.meta.Size, w.meta.Checksum = int64(w.buf.Len()), h.Sum32()
	w.s.d.mu.Lock()
	defer w.s.d.mu.Unlock()
	w.s.d.snaps[w.meta.Slot] = &stored{meta: w.meta, data: bytes.Clone(w.buf.Bytes())}
	return w.meta, nil
}

func (w *flawedWriter) Abort() error {
	if w.s.flaw != abortNoop {
		w.done = true
	}
	return nil
}

func (s *flawedStore) List() ([]storage.Meta, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	var l []storage.Meta
	for _, sn := range s.d.snaps {
		l = append(l, sn.meta)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Slot < l[j].Slot })
	return l, nil
}

func (s *flawedStore) Latest() (storage.Meta, bool, error) {
	l, _ := s.List()
	if len(l) == 0 {
		return storage.Meta{}, false, nil
	}
	return l[len(l)-1], true, nil
}

func (s *flawedStore) Open(slot uint64) (io.ReadCloser, storage.Meta, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	sn, ok := s.d.snaps[slot]
	if !ok {
		return nil, storage.Meta{}, storage.ErrNotFound
	}
	var r io.Reader = bytes.NewReader(sn.data)
	if s.flaw != noVerify {
		r = storage.VerifyingReader(r, sn.meta)
	}
	return io.NopCloser(r), sn.meta, nil
}

func (s *flawedStore) Prune(keep int) error {
	l, _ := s.List()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for i := 0; i < len(l)-keep; i++ {
		delete(s.d.snaps, l[i].Slot)
	}
	return nil
}

func (s *flawedStore) Close() error { return nil }

func subject(f flaw) func(t *testing.T) storagetest.Subject {
	return func(t *testing.T) storagetest.Subject {
		d := &disk{snaps: map[uint64]*stored{}}
		reopen := func() (storage.SnapshotStore, error) {
			if f == volatile {
				d = &disk{snaps: map[uint64]*stored{}} // the process's memory is gone
			}
			return &flawedStore{d: d, flaw: f}, nil
		}
		return storagetest.Subject{
			Store:  &flawedStore{d: d, flaw: f},
			Reopen: reopen,
			Crash:  func(storage.SnapshotStore) (storage.SnapshotStore, error) { return reopen() },
			Corrupt: func(s storage.SnapshotStore, slot uint64) error {
				d := s.(*flawedStore).d
				d.mu.Lock()
				defer d.mu.Unlock()
				sn := d.snaps[slot]
				sn.data = bytes.Clone(sn.data)
				sn.data[len(sn.data)/2] ^= 0xff
				return nil
			},
		}
	}
}

// TestSoundStorePasses: without a flaw, the store passes, so that the
// flawed ones fail for their flaw alone.
func TestSoundStorePasses(t *testing.T) {
	storagetest.Run(t, subject(sound))
}

// TestFlawedStoresFail runs the contract against each flawed store in a
// child process (a failing test cannot be caught in this one) and checks
// that it failed, in the contract test meant to catch the flaw.
func TestFlawedStoresFail(t *testing.T) {
	if os.Getenv("STORAGETEST_FLAW") != "" {
		t.Skip("in the child process")
	}
	for f, test := range caughtBy {
		t.Run(string(f), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFlawedStore$", "-test.v")
			cmd.Env = append(os.Environ(), "STORAGETEST_FLAW="+string(f))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the contract passed a store whose flaw is %q (error %v):\n%s", f, err, out)
			}
			if !regexp.MustCompile(`--- FAIL: TestFlawedStore/` + test + ` `).Match(out) {
				t.Fatalf("the contract failed the store whose flaw is %q, but not in %s:\n%s", f, test, out)
			}
		})
	}
}

// TestFlawedStore is the child process of TestFlawedStoresFail.
func TestFlawedStore(t *testing.T) {
	f := flaw(os.Getenv("STORAGETEST_FLAW"))
	if f == "" {
		t.Skip("run by TestFlawedStoresFail")
	}
	storagetest.Run(t, subject(f))
}
