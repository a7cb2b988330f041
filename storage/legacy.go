package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// The layout of the stores that earlier versions wrote, which kept
// snapshots in a Pebble database, in chunks:
//
//	c/<slot:be64><gen:be64><chunk:be32>  up to ChunkBytes of the bytes of
//	                                     generation gen of the snapshot
//	m/<slot:be64>                        metadata: version 2, slot, round,
//	                                     node, size, checksum, gen, and a
//	                                     CRC-32C of those (big-endian)
//
// and, in the first version, metadata version 1 with chunks under
// d/<slot:be64>/<chunk:be32>. Such a store is only ever read here, with
// Pebble opened read-only: to list it (a read-only OpenPebble), or to copy
// its snapshots into files (a writable OpenPebble migrates it; see
// migrate). Nothing is written through Pebble any more: Pebble ends the
// process on some disk errors (a failed write while it switches its log
// files panics, and the panic unlocks a mutex twice, which no recover can
// catch), and a replica must turn a full disk into an error.

const (
	metaV1 = 1
	metaV2 = 2
	// metaV1Len and metaV2Len are the lengths of the metadata versions.
	metaV1Len = 1 + 8 + 8 + 8 + 8 + 4
	metaV2Len = metaV1Len + 8 + 4
)

// storedMeta is a snapshot's metadata as a legacy store holds it: the
// generation its chunks are under (0 for version 1, whose chunks are
// under d/).
type storedMeta struct {
	Meta
	gen uint64
}

func metaKey(slot uint64) []byte { return binary.BigEndian.AppendUint64([]byte("m/"), slot) }

// slotPrefix is the prefix of every chunk of every generation at slot.
func slotPrefix(slot uint64) []byte { return binary.BigEndian.AppendUint64([]byte("c/"), slot) }

// genPrefix is the prefix of the chunks of generation gen at slot; for
// gen 0, of a version 1 snapshot's.
func genPrefix(slot, gen uint64) []byte {
	if gen == 0 {
		return binary.BigEndian.AppendUint64([]byte("d/"), slot)
	}
	return binary.BigEndian.AppendUint64(slotPrefix(slot), gen)
}

func chunkKey(slot, gen uint64, n uint32) []byte {
	if gen == 0 {
		return binary.BigEndian.AppendUint32(append(genPrefix(slot, 0), '/'), n)
	}
	return binary.BigEndian.AppendUint32(genPrefix(slot, gen), n)
}

func encodeMeta(m storedMeta) []byte {
	b := []byte{metaV2}
	b = binary.BigEndian.AppendUint64(b, m.Slot)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Round)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Node)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint32(b, m.Checksum)
	b = binary.BigEndian.AppendUint64(b, m.gen)
	return binary.BigEndian.AppendUint32(b, crc32c(b))
}

// decodeMeta decodes the metadata stored under the key of slot. Whatever
// b holds, it returns an error naming the snapshot rather than panic.
func decodeMeta(slot uint64, b []byte) (storedMeta, error) {
	bad := func(format string, args ...any) (storedMeta, error) {
		return storedMeta{}, fmt.Errorf("%w: the metadata of the snapshot of slot %d %s", ErrCorrupt, slot, fmt.Sprintf(format, args...))
	}
	if len(b) == 0 {
		return bad("is empty")
	}
	switch {
	case b[0] == metaV1 && len(b) == metaV1Len:
	case b[0] == metaV2 && len(b) == metaV2Len:
		if sum, want := crc32c(b[:metaV2Len-4]), binary.BigEndian.Uint32(b[metaV2Len-4:]); sum != want {
			return bad("has checksum %08x, %08x recorded", sum, want)
		}
	case b[0] == metaV1 || b[0] == metaV2:
		return bad("is %d bytes long, not %d, for version %d", len(b), map[byte]int{metaV1: metaV1Len, metaV2: metaV2Len}[b[0]], b[0])
	default:
		return bad("is of unknown version %d", b[0])
	}
	m := storedMeta{Meta: Meta{
		Slot:     binary.BigEndian.Uint64(b[1:]),
		Ballot:   Ballot{Round: binary.BigEndian.Uint64(b[9:]), Node: binary.BigEndian.Uint64(b[17:])},
		Size:     int64(binary.BigEndian.Uint64(b[25:])),
		Checksum: binary.BigEndian.Uint32(b[33:]),
	}}
	if b[0] == metaV2 {
		m.gen = binary.BigEndian.Uint64(b[37:])
		if m.gen == 0 {
			return bad("names generation 0")
		}
	}
	if m.Slot != slot {
		return bad("names slot %d", m.Slot)
	}
	if m.Size < 0 {
		return bad("records a size of %d bytes", m.Size)
	}
	return m, nil
}

// metaSlot returns the slot of a metadata key, or false for a key of
// another shape.
func metaSlot(key []byte) (uint64, bool) {
	if len(key) != 10 || !bytes.HasPrefix(key, []byte("m/")) {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[2:]), true
}

// prefixEnd is the first key after every key starting with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i]++; end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// isLegacyStore reports whether the names listed in a store's directory
// include a Pebble database (its CURRENT file, or the marker of its
// manifest in newer format versions).
func isLegacyStore(names []string) bool {
	for _, name := range names {
		if name == "CURRENT" || strings.HasPrefix(name, "marker.manifest.") {
			return true
		}
	}
	return false
}

// isPebbleFile reports whether name is one of the files of a Pebble
// database (but its LOCK, which the store keeps): what a migration leaves
// behind to delete.
func isPebbleFile(name string) bool {
	switch {
	case name == "CURRENT", strings.HasPrefix(name, "OPTIONS-"), strings.HasPrefix(name, "MANIFEST-"),
		strings.HasPrefix(name, "marker."):
		return true
	}
	for _, suffix := range []string{".log", ".sst", ".blob", ".dbtmp"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// legacy is a store in the Pebble layout, opened read-only.
type legacy struct {
	db   *pebble.DB
	fail *failure
}

// openLegacy opens the Pebble database in dir read-only, under lock (the
// store's lock on dir/LOCK, which is Pebble's own lock file).
func openLegacy(dir string, fs vfs.FS, lock *pebble.Lock, logger hclog.Logger) (*legacy, error) {
	fail := &failure{}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:               fs,
		Lock:             lock,
		Logger:           pebbleLogger{l: logger, fail: fail},
		EventListener:    eventListener(logger),
		ReadOnly:         true,
		ErrorIfNotExists: true,
	})
	if err == nil {
		err = fail.get()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("opening the Pebble database that an earlier version kept snapshots in: %w", err)
	}
	return &legacy{db: db, fail: fail}, nil
}

func (l *legacy) close() error { return l.db.Close() }

// after returns err, or the failure Pebble reported during the call that
// returned err.
func (l *legacy) after(err error) error {
	if ferr := l.fail.get(); ferr != nil {
		return ferr
	}
	return err
}

// metas returns the stored metadata of every snapshot, by slot.
func (l *legacy) metas() ([]storedMeta, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return nil, l.after(err)
	}
	var out []storedMeta
	for it.First(); it.Valid(); it.Next() {
		slot, ok := metaSlot(it.Key())
		if !ok {
			it.Close()
			return nil, fmt.Errorf("%w: a metadata key of %d bytes, %x", ErrCorrupt, len(it.Key()), it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, l.after(err))
		}
		m, err := decodeMeta(slot, v)
		if err != nil {
			it.Close()
			return nil, err
		}
		out = append(out, m)
	}
	return out, l.after(errors.Join(it.Error(), it.Close()))
}

// meta returns the metadata of the snapshot of slot.
func (l *legacy) meta(slot uint64) (storedMeta, error) {
	v, closer, err := l.db.Get(metaKey(slot))
	if errors.Is(err, pebble.ErrNotFound) {
		return storedMeta{}, ErrNotFound
	}
	if err != nil {
		return storedMeta{}, fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, l.after(err))
	}
	defer closer.Close()
	return decodeMeta(slot, v)
}

// chunks returns a reader of the chunks of m, in order, as they are: a
// missing chunk is not reported (a VerifyingReader finds the bytes short).
func (l *legacy) chunks(m storedMeta) (*legacyReader, error) {
	prefix := genPrefix(m.Slot, m.gen)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, l.after(err)
	}
	r := &legacyReader{it: it, slot: m.Slot}
	r.valid = it.First()
	return r, nil
}

// legacyReader reads a legacy snapshot's chunks in key order.
type legacyReader struct {
	it    *pebble.Iterator
	slot  uint64
	cur   []byte
	valid bool
}

func (r *legacyReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if !r.valid {
			if err := r.it.Error(); err != nil {
				return 0, fmt.Errorf("storage: reading the snapshot of slot %d: %w", r.slot, err)
			}
			return 0, io.EOF
		}
		v, err := r.it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("storage: reading the snapshot of slot %d: %w", r.slot, err)
		}
		r.cur = append(r.cur[:0], v...) // v is only valid until the iterator moves
		r.valid = r.it.Next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *legacyReader) Close() error { return r.it.Close() }

// failure is the first fatal error Pebble reported, if any.
type failure struct {
	mu  sync.Mutex
	err error
}

func (f *failure) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *failure) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// pebbleLogger sends Pebble's messages to hclog. Fatalf records the
// failure, which the store then returns, instead of ending the process.
type pebbleLogger struct {
	l    hclog.Logger
	fail *failure
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	err := &failedError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if cause, ok := a.(error); ok {
			err.cause = cause
			break
		}
	}
	p.l.Error("the Pebble database of the snapshot store failed", "error", err.msg)
	p.fail.set(err)
}

// eventListener logs Pebble's background errors, and reports damage it
// finds in its files as an error of the read that found it, rather than
// through Fatalf (Pebble's default).
func eventListener(l hclog.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) { l.Warn("background error in the snapshot store", "error", err) },
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			l.Error("damage in a file of the snapshot store", "info", info.String())
		},
	}
}
