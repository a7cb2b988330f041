package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Pebble keeps snapshots in a Pebble database, in chunks:
//
//	d/<slot:be64>/<chunk:be32>  up to ChunkBytes of the snapshot's bytes
//	m/<slot:be64>               metadata: version 1, slot, round, node,
//	                            size, checksum (fixed-width, big-endian)
//
// Writing: each full chunk is committed in its own batch without sync; the
// last chunk and the metadata go in one final batch, synced. Pebble's log
// is written in order, so when that synced commit returns every earlier
// chunk is durable too, and the metadata key, which is what makes a
// snapshot exist, is written last: a crash at any point before leaves at
// most chunks without metadata, which Open deletes. Pruning deletes the
// metadata first (synced), then the chunks.
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
	mu       sync.Mutex // serialises Prune with itself
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

func metaKey(slot uint64) []byte { return binary.BigEndian.AppendUint64([]byte("m/"), slot) }

func dataPrefix(slot uint64) []byte { return binary.BigEndian.AppendUint64([]byte("d/"), slot) }

func chunkKey(slot uint64, n uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dataPrefix(slot), '/'), n)
}

const (
	metaVersion = 1
	metaLen     = 1 + 8 + 8 + 8 + 8 + 4
)

func encodeMeta(m Meta) []byte {
	b := []byte{metaVersion}
	b = binary.BigEndian.AppendUint64(b, m.Slot)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Round)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Node)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	return binary.BigEndian.AppendUint32(b, m.Checksum)
}

// decodeMeta decodes the metadata stored under the key of slot. Whatever
// b holds, it returns an error naming the snapshot rather than panic.
func decodeMeta(slot uint64, b []byte) (Meta, error) {
	bad := func(format string, args ...any) (Meta, error) {
		return Meta{}, fmt.Errorf("%w: the metadata of the snapshot of slot %d %s", ErrCorrupt, slot, fmt.Sprintf(format, args...))
	}
	switch {
	case len(b) == 0:
		return bad("is empty")
	case b[0] != metaVersion:
		return bad("is of unknown version %d", b[0])
	case len(b) != metaLen:
		return bad("is %d bytes long, not %d", len(b), metaLen)
	}
	m := Meta{
		Slot:     binary.BigEndian.Uint64(b[1:]),
		Ballot:   Ballot{Round: binary.BigEndian.Uint64(b[9:]), Node: binary.BigEndian.Uint64(b[17:])},
		Size:     int64(binary.BigEndian.Uint64(b[25:])),
		Checksum: binary.BigEndian.Uint32(b[33:]),
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

// deleteRange deletes every key starting with prefix.
func (p *Pebble) deleteRange(prefix []byte, opts *pebble.WriteOptions) error {
	return p.after(p.db.DeleteRange(prefix, prefixEnd(prefix), opts))
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

// deleteOrphans deletes the chunks of snapshots whose metadata was never
// written (a crash while writing) or already deleted (a crash while
// pruning), and keys in the chunks' space of no shape the store writes.
// The chunks of a slot whose metadata is damaged are kept: List and Open
// report the damage, naming the snapshot.
func (p *Pebble) deleteOrphans() error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("d/"), UpperBound: []byte("d0")})
	if err != nil {
		return err
	}
	var orphans []uint64
	var garbage [][]byte
	for it.First(); it.Valid(); {
		if len(it.Key()) != 15 || it.Key()[10] != '/' {
			garbage = append(garbage, append([]byte(nil), it.Key()...))
			it.Next()
			continue
		}
		slot := binary.BigEndian.Uint64(it.Key()[2:10])
		if _, closer, err := p.db.Get(metaKey(slot)); err == nil {
			closer.Close()
		} else if errors.Is(err, pebble.ErrNotFound) {
			orphans = append(orphans, slot)
		} else {
			it.Close()
			return err
		}
		it.SeekGE(prefixEnd(dataPrefix(slot)))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	for _, slot := range orphans {
		if err := p.deleteRange(dataPrefix(slot), pebble.Sync); err != nil {
			return err
		}
	}
	for _, key := range garbage {
		if err := p.after(p.db.Delete(key, pebble.Sync)); err != nil {
			return err
		}
	}
	return nil
}

// Create implements SnapshotStore.
func (p *Pebble) Create(slot uint64, ballot Ballot) (Writer, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	// Chunks of an earlier, interrupted attempt at this slot would mix
	// with ours: clear them first.
	if err := p.deleteRange(dataPrefix(slot), pebble.NoSync); err != nil {
		return nil, err
	}
	return &pebbleWriter{p: p, meta: Meta{Slot: slot, Ballot: ballot}, h: NewChecksum(), buf: make([]byte, 0, p.chunk)}, nil
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
			if err := w.p.after(w.p.db.Set(chunkKey(w.meta.Slot, w.next), w.buf, pebble.NoSync)); err != nil {
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
		return Meta{}, w.err
	}
	w.meta.Checksum = w.h.Sum32()
	b := w.p.db.NewBatch()
	defer b.Close()
	if len(w.buf) > 0 {
		b.Set(chunkKey(w.meta.Slot, w.next), w.buf, nil)
	}
	b.Set(metaKey(w.meta.Slot), encodeMeta(w.meta), nil)
	// The durability point of the snapshot: act on it only after this
	// synced commit returns (a commit is visible before it is durable),
	// and only if Pebble reported no failure meanwhile (then the commit
	// returns nil, having failed).
	if err := w.p.after(b.Commit(pebble.Sync)); err != nil {
		return Meta{}, fmt.Errorf("storage: committing the snapshot of slot %d: %w", w.meta.Slot, err)
	}
	return w.meta, nil
}

func (w *pebbleWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.p.check() != nil {
		return nil // nothing more can be written; reopening cleans up
	}
	// Not synced: whatever survives a crash is an orphan, which
	// OpenPebble deletes.
	return w.p.deleteRange(dataPrefix(w.meta.Slot), pebble.NoSync)
}

// List implements SnapshotStore.
func (p *Pebble) List() ([]Meta, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return nil, err
	}
	var l []Meta
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

// Latest implements SnapshotStore.
func (p *Pebble) Latest() (Meta, bool, error) {
	if err := p.check(); err != nil {
		return Meta{}, false, err
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return Meta{}, false, err
	}
	var m Meta
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
		return Meta{}, false, err
	}
	return m, ok, nil
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
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: dataPrefix(slot), UpperBound: prefixEnd(dataPrefix(slot))})
	if err != nil {
		snap.Close()
		return nil, Meta{}, err
	}
	r := &pebbleReader{snap: snap, it: it, slot: slot}
	r.valid = it.First()
	return &verifyingCloser{Reader: VerifyingReader(r, m), c: r}, m, nil
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
	next  uint32
	cur   []byte
	valid bool
}

func (r *pebbleReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if !r.valid {
			if err := r.it.Error(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		if !bytes.Equal(r.it.Key(), chunkKey(r.slot, r.next)) {
			return 0, fmt.Errorf("%w: chunk %d of slot %d is missing", ErrChecksum, r.next, r.slot)
		}
		v, err := r.it.ValueAndErr()
		if err != nil {
			return 0, err
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
	l, err := p.List()
	if err != nil {
		return err
	}
	for i := 0; i < len(l)-keep; i++ {
		slot := l[i].Slot
		// Metadata first, synced: from then on the snapshot does not exist,
		// and a crash leaves only orphan chunks, which Open deletes.
		if err := p.after(p.db.Delete(metaKey(slot), pebble.Sync)); err != nil {
			return fmt.Errorf("storage: pruning the snapshot of slot %d: %w", slot, err)
		}
		if err := p.deleteRange(dataPrefix(slot), pebble.NoSync); err != nil {
			return fmt.Errorf("storage: pruning the snapshot of slot %d: %w", slot, err)
		}
	}
	return nil
}

// Close implements SnapshotStore. After a failure it still releases the
// store, and returns the failure.
func (p *Pebble) Close() error {
	return errors.Join(p.check(), p.db.Close())
}
