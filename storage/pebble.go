package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Pebble keeps snapshots in a Pebble database, in chunks:
//
//	c/<slot:be64><gen:be64><chunk:be32>  up to ChunkBytes of the bytes of
//	                                     generation gen of the snapshot
//	m/<slot:be64>                        metadata: version 2, slot, round,
//	                                     node, size, checksum, gen, and a
//	                                     CRC-32C of those (big-endian)
//
// Every writer gets a generation of its own, unique in the store, and
// writes its chunks under it: a snapshot being written never touches the
// chunks of another, committed or not, even at the same slot.
//
// Writing: each full chunk is committed in its own batch without sync; the
// last chunk, the metadata and the deletion of the chunks of the
// generation the metadata replaces (if the slot had a committed snapshot)
// go in one final batch, synced. Pebble's log is written in order, so when
// that synced commit returns every earlier chunk is durable too, and the
// metadata key, which is what makes a snapshot exist, is written last: a
// crash at any point before leaves at most chunks that no metadata names,
// which OpenPebble deletes, and the snapshot committed before at the slot,
// if any, whole. Pruning deletes the metadata first (synced), then the
// chunks.
//
// A store written by an earlier version (metadata version 1, chunks under
// d/<slot:be64>/<chunk:be32>) is read as it is; new snapshots replace its
// snapshots in the new layout.
//
// Pebble reports some failures (a commit that cannot be written: a full
// disk, an I/O error) through its logger's Fatalf, after which its commit
// pipeline is stuck. The store records the first such failure and from
// then on refuses every call with an error matching ErrFailed; the call
// in progress returns it too. What was durable before is intact, and
// reopening the store (restarting the replica, once the disk has room)
// recovers it. A failure that strikes while another goroutine is inside a
// write may leave that write blocked inside Pebble: the engine writes from
// one goroutine only.
//
// (Only snapshots live here. The consensus log is the WAL's alone: keeping
// it in Pebble too would write it twice and sync it twice.)
type Pebble struct {
	db       *pebble.DB
	chunk    int
	readOnly bool
	fail     *failure
	gen      atomic.Uint64 // the last generation handed out
	// mu serialises the metadata swaps of Commit with each other and with
	// Prune: each reads the metadata it replaces or deletes, and acts on
	// the generation it names.
	mu sync.Mutex
}

// PebbleOptions configure OpenPebble.
type PebbleOptions struct {
	// ChunkBytes is the size of the chunks a snapshot is stored in.
	// Default 1 MiB.
	ChunkBytes int
	// FS is Pebble's file system. Default: the real one.
	FS vfs.FS
	// Logger receives Pebble's messages, at debug level. Default: none.
	Logger hclog.Logger
	// ReadOnly opens an existing store for reading only (for tools): it
	// is an error if there is none, and nothing is written or deleted.
	ReadOnly bool
}

// OpenPebble opens (or creates) the store in dir, and deletes whatever
// an interrupted snapshot left behind.
func OpenPebble(dir string, opts PebbleOptions) (*Pebble, error) {
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = 1 << 20
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	fail := &failure{}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 opts.FS,
		Logger:             pebbleLogger{l: opts.Logger, fail: fail},
		EventListener:      eventListener(opts.Logger),
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           opts.ReadOnly,
		ErrorIfNotExists:   opts.ReadOnly,
	})
	if err == nil {
		err = fail.get()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("storage: opening the snapshot store in %s: %w", dir, err)
	}
	p := &Pebble{db: db, chunk: opts.ChunkBytes, readOnly: opts.ReadOnly, fail: fail}
	if opts.ReadOnly {
		return p, nil
	}
	if err := p.deleteOrphans(); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: opening the snapshot store in %s: %w", dir, err)
	}
	return p, nil
}

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
// failure, which the store then returns from every call, instead of
// ending the process: a full disk under the snapshot store is the
// replica's to handle (it stops, with the cause), not a panic.
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
			err.cause = cause // so that errors.Is(err, syscall.ENOSPC) says why
			break
		}
	}
	p.l.Error("the snapshot store failed; it refuses every call until reopened", "error", err.msg)
	p.fail.set(err)
}

// failedError is the failure Pebble reported: it matches ErrFailed, and
// the error Pebble gave as its cause, if any.
type failedError struct {
	msg   string
	cause error
}

func (e *failedError) Error() string        { return ErrFailed.Error() + ": " + e.msg }
func (e *failedError) Unwrap() error        { return e.cause }
func (e *failedError) Is(target error) bool { return target == ErrFailed }

// eventListener logs Pebble's background errors, and reports damage it
// finds in its files as an error of the read that found it, rather than
// through Fatalf (Pebble's default): one rotten file is not a reason to
// refuse writes.
func eventListener(l hclog.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) { l.Warn("background error in the snapshot store", "error", err) },
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			l.Error("damage in a file of the snapshot store", "info", info.String())
		},
	}
}

// check returns the store's failure, if it failed.
func (p *Pebble) check() error { return p.fail.get() }

// after returns err, or the store's failure if Pebble reported one
// during the call that returned err: Pebble then returns nil from the
// commit that failed.
func (p *Pebble) after(err error) error {
	if ferr := p.check(); ferr != nil {
		return ferr
	}
	return err
}

const (
	metaV1 = 1
	metaV2 = 2
	// metaV1Len and metaV2Len are the lengths of the metadata versions.
	metaV1Len = 1 + 8 + 8 + 8 + 8 + 4
	metaV2Len = metaV1Len + 8 + 4
)

// storedMeta is a snapshot's metadata as stored: the generation its
// chunks are under (0 for version 1, whose chunks are under d/).
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

func crc32c(b []byte) uint32 {
	h := NewChecksum()
	h.Write(b)
	return h.Sum32()
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

// deleteRange deletes every key starting with prefix.
func (p *Pebble) deleteRange(prefix []byte, opts *pebble.WriteOptions) error {
	return p.after(p.db.DeleteRange(prefix, prefixEnd(prefix), opts))
}

// metas returns the stored metadata of every snapshot, by slot.
func (p *Pebble) metas(r pebble.Reader) ([]storedMeta, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return nil, err
	}
	var l []storedMeta
	for it.First(); it.Valid(); it.Next() {
		slot, ok := metaSlot(it.Key())
		if !ok {
			it.Close()
			return nil, fmt.Errorf("%w: a metadata key of %d bytes, %x", ErrCorrupt, len(it.Key()), it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, err)
		}
		m, err := decodeMeta(slot, v)
		if err != nil {
			it.Close()
			return nil, err
		}
		l = append(l, m)
	}
	return l, errors.Join(it.Error(), it.Close())
}

// deleteOrphans deletes the chunks that no metadata names: those of
// snapshots never committed (a crash while writing, or an Abort whose
// deletion was not synced), replaced by a newer generation, or pruned
// (a crash while pruning). Keys of no shape the store writes, in the
// chunk key spaces, are deleted too. It also sets the generation counter
// past every generation in the store.
//
// Damaged metadata does not stop it: the chunks of its slot are kept
// (which generation it named cannot be told), and List and Open report
// the damage, naming the snapshot.
func (p *Pebble) deleteOrphans() error {
	const unknown = ^uint64(0)
	live := map[uint64]uint64{} // slot -> generation, or unknown
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		slot, ok := metaSlot(it.Key())
		if !ok {
			continue // List reports it
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, err)
		}
		live[slot] = unknown
		if m, err := decodeMeta(slot, v); err == nil {
			live[m.Slot] = m.gen
			p.gen.Store(max(p.gen.Load(), m.gen))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	type orphan struct {
		key    []byte
		prefix bool // key is a prefix: delete every key under it
	}
	var orphans []orphan
	for _, space := range []struct {
		lo, hi string
		// parse returns the slot and generation of a chunk key, and the
		// length of the prefix its generation's chunks share.
		parse func(key []byte) (slot, gen uint64, prefixLen int, ok bool)
	}{
		{"d/", "d0", func(k []byte) (uint64, uint64, int, bool) {
			if len(k) != 15 || k[10] != '/' {
				return 0, 0, 0, false
			}
			return binary.BigEndian.Uint64(k[2:]), 0, 10, true
		}},
		{"c/", "c0", func(k []byte) (uint64, uint64, int, bool) {
			if len(k) != 22 {
				return 0, 0, 0, false
			}
			gen := binary.BigEndian.Uint64(k[10:])
			return binary.BigEndian.Uint64(k[2:]), gen, 18, gen != 0
		}},
	} {
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(space.lo), UpperBound: []byte(space.hi)})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); {
			key := it.Key()
			slot, gen, plen, ok := space.parse(key)
			if !ok {
				orphans = append(orphans, orphan{key: append([]byte(nil), key...)})
				it.Next()
				continue
			}
			p.gen.Store(max(p.gen.Load(), gen))
			prefix := append([]byte(nil), key[:plen]...)
			if g, committed := live[slot]; !committed || (g != gen && g != unknown) {
				orphans = append(orphans, orphan{key: prefix, prefix: true})
			}
			it.SeekGE(prefixEnd(prefix))
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	for _, o := range orphans {
		var err error
		if o.prefix {
			err = p.deleteRange(o.key, pebble.Sync)
		} else {
			err = p.after(p.db.Delete(o.key, pebble.Sync))
		}
		if err != nil {
			return fmt.Errorf("storage: deleting the chunks of an unfinished snapshot: %w", err)
		}
	}
	return nil
}

// Create implements SnapshotStore. The new snapshot's chunks go under a
// generation of their own: a committed snapshot at the same slot stays
// whole until this one's Commit replaces it, in one synced batch.
func (p *Pebble) Create(slot uint64, ballot Ballot) (Writer, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	gen := p.gen.Add(1)
	if gen == 0 {
		// Past 2^64 generations: only damage could bring the counter here.
		return nil, fmt.Errorf("%w: no generation left for a new snapshot", ErrCorrupt)
	}
	return &pebbleWriter{p: p, gen: gen, meta: Meta{Slot: slot, Ballot: ballot}, h: NewChecksum(), buf: make([]byte, 0, p.chunk)}, nil
}

// writable returns why the store takes no writes, if it does not.
func (p *Pebble) writable() error {
	if p.readOnly {
		return errors.New("storage: the snapshot store is open read-only")
	}
	return p.check()
}

type pebbleWriter struct {
	p    *Pebble
	gen  uint64
	meta Meta
	h    hash.Hash32
	buf  []byte
	next uint32
	done bool
	err  error
}

func (w *pebbleWriter) Write(b []byte) (int, error) {
	if w.done {
		return 0, errors.New("storage: write to a finished snapshot")
	}
	if w.err == nil {
		w.err = w.p.check()
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(b)
	w.h.Write(b)
	w.meta.Size += int64(n)
	for len(b) > 0 {
		k := min(len(b), w.p.chunk-len(w.buf))
		w.buf = append(w.buf, b[:k]...)
		b = b[k:]
		if len(w.buf) == w.p.chunk {
			// Not synced: the final, synced batch makes it durable.
			if err := w.p.after(w.p.db.Set(chunkKey(w.meta.Slot, w.gen, w.next), w.buf, pebble.NoSync)); err != nil {
				w.err = fmt.Errorf("storage: writing the snapshot of slot %d: %w", w.meta.Slot, err)
				return 0, w.err
			}
			w.next++
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

func (w *pebbleWriter) Commit() (Meta, error) {
	if w.done {
		return Meta{}, errors.New("storage: snapshot already finished")
	}
	w.done = true
	if w.err == nil {
		w.err = w.p.check()
	}
	if w.err != nil {
		w.discard()
		return Meta{}, w.err
	}
	w.meta.Checksum = w.h.Sum32()
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	if len(w.buf) > 0 {
		b.Set(chunkKey(w.meta.Slot, w.gen, w.next), w.buf, nil)
	}
	b.Set(metaKey(w.meta.Slot), encodeMeta(storedMeta{Meta: w.meta, gen: w.gen}), nil)
	// The snapshot this one replaces at the slot, if any: its chunks go
	// in the same batch as the metadata that stops naming them.
	v, closer, err := p.db.Get(metaKey(w.meta.Slot))
	switch {
	case err == nil:
		old, derr := decodeMeta(w.meta.Slot, v)
		closer.Close()
		if derr != nil {
			// Unreadable metadata names no chunks we could tell: replace
			// it, and leave whatever it named to deleteOrphans.
			break
		}
		prefix := genPrefix(old.Slot, old.gen)
		b.DeleteRange(prefix, prefixEnd(prefix), nil)
	case !errors.Is(err, pebble.ErrNotFound):
		w.discard()
		return Meta{}, fmt.Errorf("storage: committing the snapshot of slot %d: %w", w.meta.Slot, p.after(err))
	}
	// The durability point of the snapshot: act on it only after this
	// synced commit returns (a commit is visible before it is durable),
	// and only if Pebble reported no failure meanwhile (then the commit
	// returns nil, having failed).
	if err := p.after(b.Commit(pebble.Sync)); err != nil {
		w.discard()
		return Meta{}, fmt.Errorf("storage: committing the snapshot of slot %d: %w", w.meta.Slot, err)
	}
	return w.meta, nil
}

func (w *pebbleWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.discard()
}

// discard deletes the writer's chunks, without sync: whatever survives a
// crash is an orphan, which OpenPebble deletes.
func (w *pebbleWriter) discard() error {
	if w.p.check() != nil {
		return nil // nothing more can be written; reopening cleans up
	}
	return w.p.deleteRange(genPrefix(w.meta.Slot, w.gen), pebble.NoSync)
}

// List implements SnapshotStore.
func (p *Pebble) List() ([]Meta, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	metas, err := p.metas(p.db)
	if err != nil {
		return nil, p.after(err)
	}
	l := make([]Meta, len(metas))
	for i, m := range metas {
		l[i] = m.Meta
	}
	return l, nil
}

// Latest implements SnapshotStore.
func (p *Pebble) Latest() (Meta, bool, error) {
	if err := p.check(); err != nil {
		return Meta{}, false, err
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return Meta{}, false, p.after(err)
	}
	var m storedMeta
	ok := it.Last()
	if ok {
		slot, good := metaSlot(it.Key())
		var v []byte
		switch {
		case !good:
			err = fmt.Errorf("%w: a metadata key of %d bytes, %x", ErrCorrupt, len(it.Key()), it.Key())
		default:
			if v, err = it.ValueAndErr(); err == nil {
				m, err = decodeMeta(slot, v)
			}
		}
	}
	if err = errors.Join(err, it.Error(), it.Close()); err != nil {
		return Meta{}, false, p.after(err)
	}
	return m.Meta, ok, nil
}

// Open implements SnapshotStore. The reader sees the snapshot as of Open,
// whatever is written or pruned meanwhile.
func (p *Pebble) Open(slot uint64) (io.ReadCloser, Meta, error) {
	if err := p.check(); err != nil {
		return nil, Meta{}, err
	}
	snap := p.db.NewSnapshot()
	v, closer, err := snap.Get(metaKey(slot))
	if errors.Is(err, pebble.ErrNotFound) {
		snap.Close()
		return nil, Meta{}, ErrNotFound
	}
	if err != nil {
		snap.Close()
		return nil, Meta{}, fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, p.after(err))
	}
	m, err := decodeMeta(slot, v)
	closer.Close()
	if err != nil {
		snap.Close()
		return nil, Meta{}, err
	}
	prefix := genPrefix(slot, m.gen)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		snap.Close()
		return nil, Meta{}, p.after(err)
	}
	r := &pebbleReader{snap: snap, it: it, slot: slot, gen: m.gen}
	r.valid = it.First()
	return &verifyingCloser{Reader: VerifyingReader(r, m.Meta), c: r}, m.Meta, nil
}

type verifyingCloser struct {
	io.Reader
	c io.Closer
}

func (v *verifyingCloser) Close() error { return v.c.Close() }

// pebbleReader reads a snapshot's chunks in order.
type pebbleReader struct {
	snap  *pebble.Snapshot
	it    *pebble.Iterator
	slot  uint64
	gen   uint64
	next  uint32
	cur   []byte
	valid bool
}

func (r *pebbleReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if !r.valid {
			if err := r.it.Error(); err != nil {
				return 0, fmt.Errorf("storage: reading the snapshot of slot %d: %w", r.slot, err)
			}
			return 0, io.EOF
		}
		if !bytes.Equal(r.it.Key(), chunkKey(r.slot, r.gen, r.next)) {
			return 0, fmt.Errorf("%w: snapshot of slot %d: chunk %d is missing", ErrChecksum, r.slot, r.next)
		}
		v, err := r.it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("storage: reading the snapshot of slot %d: %w", r.slot, err)
		}
		r.cur = append(r.cur[:0], v...) // v is only valid until the iterator moves
		r.next++
		r.valid = r.it.Next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *pebbleReader) Close() error {
	return errors.Join(r.it.Close(), r.snap.Close())
}

// Prune implements SnapshotStore.
func (p *Pebble) Prune(keep int) error {
	if err := p.writable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	metas, err := p.metas(p.db)
	if err != nil {
		return p.after(err)
	}
	for i := 0; i < len(metas)-keep; i++ {
		m := metas[i]
		// Metadata first, synced: from then on the snapshot does not exist,
		// and a crash leaves only orphan chunks, which OpenPebble deletes.
		if err := p.after(p.db.Delete(metaKey(m.Slot), pebble.Sync)); err != nil {
			return fmt.Errorf("storage: pruning the snapshot of slot %d: %w", m.Slot, err)
		}
		if err := p.deleteRange(genPrefix(m.Slot, m.gen), pebble.NoSync); err != nil {
			return fmt.Errorf("storage: pruning the snapshot of slot %d: %w", m.Slot, err)
		}
	}
	return nil
}

// Close implements SnapshotStore. After a failure it still releases the
// store, and returns the failure.
func (p *Pebble) Close() error {
	return errors.Join(p.check(), p.db.Close())
}
