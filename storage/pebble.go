package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Pebble is the durable snapshot store: one file per snapshot, in its
// directory. (It is named for the Pebble database that earlier versions
// kept snapshots in; such a store is still read, and a writable
// OpenPebble moves its snapshots into files: see legacy.go.)
//
//	FORMAT                        "paxos-go snapshot store, version 3\n"
//	LOCK                          locked while a store has the directory open
//	<slot:016x>.snap              a committed snapshot: its bytes, then a
//	                              trailer holding its metadata
//	<slot:016x>-<n:x>.snap.tmp    a snapshot being written
//
// The trailer is 45 bytes, big-endian: magic "PXSM", version 3, slot,
// round, node, size, checksum (CRC-32C of the bytes), and a CRC-32C of
// those 41 bytes.
//
// Writing: Create creates a temporary file of the writer's own, and Write
// appends to it through a buffer. Commit appends the trailer, fsyncs the
// file, renames it to its slot's name (atomically replacing the snapshot
// committed there, if any) and fsyncs the directory: that is the
// durability point, after which Commit returns. A crash at any point
// before leaves a temporary file, which OpenPebble deletes, and whatever
// was committed at the slot, whole: a file gets its name only once its
// bytes are synced, so either name a crash leaves holds a whole snapshot.
// A writer never touches another's file. Prune removes the oldest files
// and fsyncs the directory.
//
// Failures: any error from a file operation that changes the store (a
// full disk, an I/O error, a failed fsync) fails the store, as a failed
// fsync fails the write-ahead log: what reached the disk is not known, so
// the call in progress and every later call return an error matching
// ErrFailed and the cause (errors.Is(err, syscall.ENOSPC)). What was
// committed before is intact, and reopening the store once the cause is
// gone recovers it. No disk error ends the process. (That is why nothing
// is written through Pebble any more: on some disk errors it panics, in a
// way no recover can catch.)
type Pebble struct {
	fs       vfs.FS
	dir      string
	chunk    int
	readOnly bool
	log      hclog.Logger
	lock     *pebble.Lock
	legacy   *legacy // set for a store in the Pebble layout, opened read-only
	fail     failure
	closed   atomic.Bool
	tmpSeq   atomic.Uint64
	// mu serialises the renames of Commit with Prune, so that Prune acts
	// on the snapshots as they are.
	mu sync.Mutex
}

// PebbleOptions configure OpenPebble.
type PebbleOptions struct {
	// ChunkBytes is the size of the writes made to a snapshot's file (its
	// write buffer). Default 1 MiB.
	ChunkBytes int
	// FS is the file system. Default: the real one.
	FS vfs.FS
	// Logger receives the store's messages. Default: none.
	Logger hclog.Logger
	// ReadOnly opens an existing store for reading only (for tools): it
	// is an error if there is none, and nothing is written or deleted.
	ReadOnly bool
}

const (
	formatFile = "FORMAT"
	formatText = "paxos-go snapshot store, version 3\n"
	lockFile   = "LOCK"
	snapSuffix = ".snap"
	tmpSuffix  = ".tmp"

	trailerVersion = 3
	trailerLen     = 4 + 1 + 8 + 8 + 8 + 8 + 4 + 4
)

var trailerMagic = [4]byte{'P', 'X', 'S', 'M'}

func snapName(slot uint64) string { return fmt.Sprintf("%016x%s", slot, snapSuffix) }

func tempName(slot, n uint64) string {
	return fmt.Sprintf("%016x-%x%s%s", slot, n, snapSuffix, tmpSuffix)
}

// parseSnapName returns the slot of a committed snapshot's file name, or
// false for a name of another shape.
func parseSnapName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, snapSuffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	slot, err := strconv.ParseUint(base, 16, 64)
	return slot, err == nil
}

// OpenPebble opens (or creates) the store in dir, and deletes whatever an
// interrupted snapshot left behind. A store that an earlier version kept
// in a Pebble database is read as it is when ReadOnly is set; otherwise
// its snapshots are first moved into files, each checked as it was
// recorded (a damaged one stays damaged, and is reported when read), and
// the database is deleted.
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
	p := &Pebble{fs: opts.FS, dir: dir, chunk: opts.ChunkBytes, readOnly: opts.ReadOnly, log: opts.Logger}
	if err := p.open(); err != nil {
		p.release()
		return nil, fmt.Errorf("storage: opening the snapshot store in %s: %w", dir, err)
	}
	return p, nil
}

func (p *Pebble) path(name string) string { return p.fs.PathJoin(p.dir, name) }

func (p *Pebble) open() error {
	if p.readOnly {
		names, err := p.fs.List(p.dir)
		if err != nil {
			return err
		}
		hasFormat, isLegacy := slices.Contains(names, formatFile), isLegacyStore(names)
		if !hasFormat && !isLegacy {
			return errors.New("there is no snapshot store there")
		}
		if err := p.takeLock(); err != nil {
			return err
		}
		if hasFormat {
			return p.checkFormat()
		}
		p.legacy, err = openLegacy(p.dir, p.fs, p.lock, p.log)
		return err
	}
	if err := p.mkdirAll(); err != nil {
		return fmt.Errorf("creating the directory: %w", err)
	}
	if err := p.takeLock(); err != nil {
		return err
	}
	names, err := p.fs.List(p.dir)
	if err != nil {
		return err
	}
	switch {
	case slices.Contains(names, formatFile):
		if err := p.checkFormat(); err != nil {
			return err
		}
	case isLegacyStore(names):
		if err := p.migrate(); err != nil {
			return fmt.Errorf("moving the snapshots of the Pebble database an earlier version wrote into files: %w", err)
		}
	default:
		if err := p.writeFormat(); err != nil {
			return err
		}
	}
	return p.cleanUp()
}

// takeLock locks dir/LOCK for as long as the store is open: two stores on
// one directory would delete each other's files being written. It is
// Pebble's lock file, so that a store in the Pebble layout is opened
// under it.
func (p *Pebble) takeLock() error {
	lock, err := pebble.LockDirectory(p.dir, p.fs)
	if err != nil {
		return fmt.Errorf("locking %s (is the store open in another process?): %w", p.path(lockFile), err)
	}
	p.lock = lock
	return nil
}

// release closes what open opened.
func (p *Pebble) release() error {
	var errs []error
	if p.legacy != nil {
		errs = append(errs, p.legacy.close())
	}
	if p.lock != nil {
		errs = append(errs, p.lock.Close())
	}
	return errors.Join(errs...)
}

// mkdirAll creates the store's directory and any missing parent, and
// syncs the parent of each directory it creates, so that a power loss
// cannot take the store away with a directory entry.
func (p *Pebble) mkdirAll() error {
	var created []string
	for d := p.dir; ; {
		if _, err := p.fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		created = append(created, d)
		parent := p.fs.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := p.fs.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(p.fs, p.fs.PathDir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

func (p *Pebble) checkFormat() error {
	f, err := p.fs.Open(p.path(formatFile))
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return fmt.Errorf("reading %s: %w", formatFile, err)
	}
	if string(b) != formatText {
		return fmt.Errorf("%w: %s says %q, not %q: a store of another version, or damaged", ErrCorrupt, p.path(formatFile), b, formatText)
	}
	return nil
}

// writeFormat writes FORMAT durably: a temporary file, synced, renamed,
// and the directory synced.
func (p *Pebble) writeFormat() error {
	tmp := p.path(formatFile + tmpSuffix)
	f, err := p.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(formatText))
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", formatFile, err)
	}
	if err := p.fs.Rename(tmp, p.path(formatFile)); err != nil {
		return err
	}
	return syncDir(p.fs, p.dir)
}

// cleanUp deletes the temporary files of snapshots never committed, and
// the files of a Pebble database whose snapshots were moved into files
// (a migration that a crash interrupted after writing FORMAT).
func (p *Pebble) cleanUp() error {
	names, err := p.fs.List(p.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, name := range names {
		if strings.HasSuffix(name, snapSuffix+tmpSuffix) || name == formatFile+tmpSuffix || isPebbleFile(name) {
			if err := p.fs.Remove(p.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("deleting %s: %w", name, err)
			}
			removed = true
		}
	}
	if removed {
		return syncDir(p.fs, p.dir)
	}
	return nil
}

// migrate copies every snapshot of the Pebble database in the store's
// directory into a file, with the metadata recorded for it, then writes
// FORMAT; cleanUp then deletes the database. A crash midway leaves the
// database whole and no FORMAT: the next open migrates again.
func (p *Pebble) migrate() error {
	l, err := openLegacy(p.dir, p.fs, p.lock, p.log)
	if err != nil {
		return err
	}
	defer func() {
		if l != nil {
			l.close()
		}
	}()
	metas, err := l.metas()
	if err != nil {
		return err
	}
	for _, m := range metas {
		r, err := l.chunks(m)
		if err != nil {
			return err
		}
		w, err := p.create(m.Slot, m.Ballot)
		if err == nil {
			_, err = io.Copy(w, r)
		}
		r.Close()
		if err != nil {
			if w != nil {
				w.Abort()
			}
			return err
		}
		// The metadata as recorded: bytes that do not match it (damage in
		// the database) are reported when read, as they were.
		w.fixed = &m.Meta
		if _, err := w.Commit(); err != nil {
			return err
		}
	}
	err = l.close()
	l = nil
	if err != nil {
		return err
	}
	if err := p.writeFormat(); err != nil {
		return err
	}
	p.log.Info("moved the snapshots of the store's Pebble database into files", "dir", p.dir, "snapshots", len(metas))
	return nil
}

// failedError is a store's failure: it matches ErrFailed, and the error
// that caused it, if any.
type failedError struct {
	msg   string
	cause error
}

func (e *failedError) Error() string        { return ErrFailed.Error() + ": " + e.msg }
func (e *failedError) Unwrap() error        { return e.cause }
func (e *failedError) Is(target error) bool { return target == ErrFailed }

var errStoreClosed = errors.New("storage: the snapshot store is closed")

// failWith fails the store after err, from what, and returns its failure
// (the first, if it had already failed).
func (p *Pebble) failWith(what string, err error) error {
	fe := &failedError{msg: what + ": " + err.Error(), cause: err}
	p.fail.set(fe)
	if p.fail.get() == error(fe) {
		p.log.Error("the snapshot store failed; it refuses every call until reopened", "error", fe.msg)
	}
	return p.fail.get()
}

// check returns why the store takes no calls, if it does not.
func (p *Pebble) check() error {
	if p.closed.Load() {
		return errStoreClosed
	}
	return p.fail.get()
}

// writable returns why the store takes no writes, if it does not.
func (p *Pebble) writable() error {
	if p.readOnly {
		return errors.New("storage: the snapshot store is open read-only")
	}
	return p.check()
}

// Create implements SnapshotStore. The new snapshot is written to a file
// of its own: a committed snapshot at the same slot stays whole until
// this one's Commit replaces it.
func (p *Pebble) Create(slot uint64, ballot Ballot) (Writer, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	w, err := p.create(slot, ballot)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (p *Pebble) create(slot uint64, ballot Ballot) (*fileWriter, error) {
	tmp := tempName(slot, p.tmpSeq.Add(1))
	f, err := p.fs.Create(p.path(tmp), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, p.failWith(fmt.Sprintf("creating %s for the snapshot of slot %d", tmp, slot), err)
	}
	return &fileWriter{p: p, f: f, tmp: tmp, meta: Meta{Slot: slot, Ballot: ballot}, h: NewChecksum(), buf: make([]byte, 0, p.chunk)}, nil
}

type fileWriter struct {
	p     *Pebble
	f     vfs.File // nil once closed
	tmp   string
	meta  Meta
	fixed *Meta // the metadata to record, when it is not what was written
	h     hash.Hash32
	buf   []byte
	done  bool
	err   error
}

func (w *fileWriter) Write(b []byte) (int, error) {
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
		k := min(len(b), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, b[:k]...)
		b = b[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush writes the buffer to the file.
func (w *fileWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	// (vfs.File.Write may change the slice it is given: it is w.buf.)
	if _, err := w.f.Write(w.buf); err != nil {
		w.err = w.p.failWith(fmt.Sprintf("writing the snapshot of slot %d to %s", w.meta.Slot, w.tmp), err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *fileWriter) Commit() (Meta, error) {
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
	m := w.meta
	m.Checksum = w.h.Sum32()
	if w.fixed != nil {
		m = *w.fixed
	}
	fail := func(what string, err error) (Meta, error) {
		w.err = w.p.failWith(fmt.Sprintf("committing the snapshot of slot %d: %s", m.Slot, what), err)
		w.discard()
		return Meta{}, w.err
	}
	w.buf = append(w.buf, encodeTrailer(m)...)
	if err := w.flush(); err != nil {
		w.discard()
		return Meta{}, err
	}
	if err := w.f.Sync(); err != nil {
		return fail("fsync of "+w.tmp, err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fail("closing "+w.tmp, err)
	}
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		w.err = err
		return Meta{}, err
	}
	if err := p.fs.Rename(p.path(w.tmp), p.path(snapName(m.Slot))); err != nil {
		return fail("renaming "+w.tmp, err)
	}
	// The durability point of the snapshot: the rename is durable once
	// the directory is synced.
	if err := syncDir(p.fs, p.dir); err != nil {
		return fail("fsync of the directory", err)
	}
	return m, nil
}

func (w *fileWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.discard()
}

// discard closes and deletes the writer's file. After a failure it only
// closes it: nothing more is changed on disk, and reopening the store
// deletes the file.
func (w *fileWriter) discard() error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.p.check() != nil {
		return nil
	}
	if err := w.p.fs.Remove(w.p.path(w.tmp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return w.p.failWith("deleting "+w.tmp, err)
	}
	return nil
}

func encodeTrailer(m Meta) []byte {
	b := append([]byte(nil), trailerMagic[:]...)
	b = append(b, trailerVersion)
	b = binary.BigEndian.AppendUint64(b, m.Slot)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Round)
	b = binary.BigEndian.AppendUint64(b, m.Ballot.Node)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint32(b, m.Checksum)
	return binary.BigEndian.AppendUint32(b, crc32c(b))
}

// decodeTrailer decodes the trailer of the file of the snapshot of slot.
// Whatever b holds, it returns an error naming the snapshot rather than
// panic.
func decodeTrailer(slot uint64, b []byte) (Meta, error) {
	bad := func(format string, args ...any) (Meta, error) {
		return Meta{}, fmt.Errorf("%w: the metadata of the snapshot of slot %d %s", ErrCorrupt, slot, fmt.Sprintf(format, args...))
	}
	switch {
	case len(b) != trailerLen:
		return bad("is %d bytes long, not %d", len(b), trailerLen)
	case [4]byte(b[:4]) != trailerMagic:
		return bad("does not start with %q", trailerMagic[:])
	}
	if sum, want := crc32c(b[:trailerLen-4]), binary.BigEndian.Uint32(b[trailerLen-4:]); sum != want {
		return bad("has checksum %08x, %08x recorded", sum, want)
	}
	if b[4] != trailerVersion {
		return bad("is of unknown version %d", b[4])
	}
	m := Meta{
		Slot:     binary.BigEndian.Uint64(b[5:]),
		Ballot:   Ballot{Round: binary.BigEndian.Uint64(b[13:]), Node: binary.BigEndian.Uint64(b[21:])},
		Size:     int64(binary.BigEndian.Uint64(b[29:])),
		Checksum: binary.BigEndian.Uint32(b[37:]),
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

// readTrailer reads the metadata of the snapshot of slot from its file f,
// and returns it with the length of the bytes before it.
func readTrailer(f vfs.File, slot uint64) (Meta, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return Meta{}, 0, fmt.Errorf("storage: reading the snapshot of slot %d: %w", slot, err)
	}
	size := st.Size()
	if size < trailerLen {
		return Meta{}, 0, fmt.Errorf("%w: the file of the snapshot of slot %d is %d bytes long, shorter than its metadata", ErrCorrupt, slot, size)
	}
	b := make([]byte, trailerLen)
	if _, err := f.ReadAt(b, size-trailerLen); err != nil {
		return Meta{}, 0, fmt.Errorf("storage: reading the metadata of the snapshot of slot %d: %w", slot, err)
	}
	m, err := decodeTrailer(slot, b)
	return m, size - trailerLen, err
}

// slots returns the slots of the committed snapshots, in order.
func (p *Pebble) slots() ([]uint64, error) {
	names, err := p.fs.List(p.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: listing the snapshot store: %w", err)
	}
	var slots []uint64
	for _, name := range names {
		if slot, ok := parseSnapName(name); ok {
			slots = append(slots, slot)
		}
	}
	slices.Sort(slots)
	return slots, nil
}

// meta reads the metadata of the snapshot of slot; ErrNotFound if there
// is none.
func (p *Pebble) meta(slot uint64) (Meta, error) {
	f, err := p.fs.Open(p.path(snapName(slot)))
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, ErrNotFound
	}
	if err != nil {
		return Meta{}, fmt.Errorf("storage: opening the snapshot of slot %d: %w", slot, err)
	}
	defer f.Close()
	m, _, err := readTrailer(f, slot)
	return m, err
}

// List implements SnapshotStore.
func (p *Pebble) List() ([]Meta, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.legacy != nil {
		metas, err := p.legacy.metas()
		if err != nil {
			return nil, err
		}
		l := make([]Meta, len(metas))
		for i, m := range metas {
			l[i] = m.Meta
		}
		return l, nil
	}
	slots, err := p.slots()
	if err != nil {
		return nil, err
	}
	var l []Meta
	for _, slot := range slots {
		m, err := p.meta(slot)
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, err
		}
		l = append(l, m)
	}
	return l, nil
}

// Latest implements SnapshotStore.
func (p *Pebble) Latest() (Meta, bool, error) {
	if err := p.check(); err != nil {
		return Meta{}, false, err
	}
	if p.legacy != nil {
		l, err := p.List()
		if err != nil || len(l) == 0 {
			return Meta{}, false, err
		}
		return l[len(l)-1], true, nil
	}
	slots, err := p.slots()
	if err != nil {
		return Meta{}, false, err
	}
	for i := len(slots) - 1; i >= 0; i-- {
		m, err := p.meta(slots[i])
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		return m, err == nil, err
	}
	return Meta{}, false, nil
}

// Open implements SnapshotStore. The reader sees the snapshot as of Open,
// whatever is written or pruned meanwhile.
func (p *Pebble) Open(slot uint64) (io.ReadCloser, Meta, error) {
	if err := p.check(); err != nil {
		return nil, Meta{}, err
	}
	if p.legacy != nil {
		m, err := p.legacy.meta(slot)
		if err != nil {
			return nil, Meta{}, err
		}
		r, err := p.legacy.chunks(m)
		if err != nil {
			return nil, Meta{}, err
		}
		return &verifyingCloser{Reader: VerifyingReader(r, m.Meta), c: r}, m.Meta, nil
	}
	f, err := p.fs.Open(p.path(snapName(slot)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, Meta{}, ErrNotFound
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("storage: opening the snapshot of slot %d: %w", slot, err)
	}
	m, n, err := readTrailer(f, slot)
	if err != nil {
		f.Close()
		return nil, Meta{}, err
	}
	r := &readError{r: io.NewSectionReader(f, 0, n), slot: slot}
	return &verifyingCloser{Reader: VerifyingReader(r, m), c: f}, m, nil
}

type verifyingCloser struct {
	io.Reader
	c io.Closer
}

func (v *verifyingCloser) Close() error { return v.c.Close() }

// readError names the snapshot in the errors of reading its file.
type readError struct {
	r    io.Reader
	slot uint64
}

func (r *readError) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("storage: reading the snapshot of slot %d: %w", r.slot, err)
	}
	return n, err
}

// Prune implements SnapshotStore.
func (p *Pebble) Prune(keep int) error {
	if err := p.writable(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	slots, err := p.slots()
	if err != nil {
		return err
	}
	removed := false
	for i := 0; i < len(slots)-keep; i++ {
		if err := p.fs.Remove(p.path(snapName(slots[i]))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return p.failWith(fmt.Sprintf("pruning the snapshot of slot %d", slots[i]), err)
		}
		removed = true
	}
	if removed {
		if err := syncDir(p.fs, p.dir); err != nil {
			return p.failWith("pruning: fsync of the directory", err)
		}
	}
	return nil
}

// Close implements SnapshotStore. After a failure it still releases the
// store, and returns the failure.
func (p *Pebble) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	return errors.Join(p.fail.get(), p.release())
}
