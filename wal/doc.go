// Package wal is the write-ahead log of a paxos-go replica: the accepted
// entries and the hard state (promised ballot, commit hint) that must
// survive a crash, in a directory of segment files.
//
// It knows nothing of Paxos beyond two rules: an entry for slot s replaces
// every entry from s on (logical tail overwrite), and a compaction point
// drops the entries a snapshot covers. It imports nothing else of this
// module. Record bodies are msgpack (github.com/hashicorp/go-msgpack/v2);
// entry values are opaque bytes.
//
// # Files
//
// One directory, locked with flock while a Log has it open, holds segments
// named <seq:016x>-<firstSlot:016x>.paxos. seq increases by exactly one
// from segment to segment and is never reused; firstSlot is the slot of the
// first entry the segment holds. While the log is open, the next segment is
// prepared in the background as <seq:016x>.paxos.tmp: created, filled with
// zeros to SegmentBytes and synced, so that appending later overwrites
// blocks that exist (an fdatasync after overwriting pre-written blocks was
// measured at about 150 us here, against 210 to 320 us after growing the
// file; fallocate alone does not give this). An I/O error while preparing
// it fails the log like any other. Other files are ignored.
//
// # Segment layout
//
//	+----------------+  offset 0
//	| header         |  32 bytes: magic "PXWL", version 2, seq, firstSlot,
//	+----------------+  MaxRecordBytes, crc32c of the first 28 bytes
//	|                |  (diagram in format.go)
//	| first batch    |  HardState, Compacted (if any), Commit: a copy of the
//	+----------------+  log's state when the segment was created
//	| batch          |  [HardState] [Compacted] [Entry ...] Commit
//	| ...            |
//	+----------------+
//	| zeros          |  pre-written space: length 0 means "no more records"
//	+----------------+
//
// # Records
//
//	0        4        8
//	+--------+--------+------+----------------------+-----------+
//	| crc32c | length | type | msgpack body         | 0-7 zero  |
//	|  u32   |  u32   |  u8  | (length-1 bytes)     | pad bytes |
//	+--------+--------+------+----------------------+-----------+
//
// Little-endian; every record starts on an 8-byte boundary, so its header
// never straddles a sector. The CRC-32C covers type and body and starts
// from the low 32 bits of the segment's seq, so stale bytes from another
// segment never validate. A length above the MaxRecordBytes that the
// segment's header names is refused before anything is read for it. That
// limit is the writer's, recorded per segment, so that a log reopened with a
// smaller MaxRecordBytes still reads back what it acknowledged. Version 1
// segments (which did not record it) are read with the largest limit a log
// accepts (512 MiB). Bodies are msgpack arrays:
//
//	type 1 Entry      [slot, [round, node], value]    replaces slots >= slot
//	type 2 HardState  [[round, node], commit]         the last one wins
//	type 3 Compacted  [slot, [round, node]]           drops slots <= slot
//	type 4 Commit     [syncedOffset, records]         ends a batch
//
// A commit record ends every batch and counts its records. syncedOffset is
// how much of the segment was known durable before the batch was written.
//
// # Operations and why a crash at any point is safe
//
// Save (group commit). Callers queue batches; the first caller that finds
// no write in progress writes the whole queue with one write call and, if
// any batch asked for it, one fdatasync, then releases every caller in the
// group. A caller returns only after that fdatasync returns. A crash before
// it leaves some prefix of the group's bytes, possibly torn; replay keeps a
// batch only if its commit record is there and every record of it reads
// back, so each batch is all or nothing, and no batch is acknowledged
// before it is durable. An fsync error, or any other I/O error, closes the
// log for good (ErrClosed): after one, what reached the disk is unknown, and
// retrying could report lost data as durable. From then on nothing is
// written or acknowledged: the writer checks before every write, sync,
// truncate, create and rename, Wait returns the error for every batch not
// synced before the failure (a batch only written is not acknowledged), and
// Close writes nothing.
//
// Roll. When a batch would take the tail past SegmentBytes (a segment holds
// more only when a single batch after its first is larger: record offsets
// stay far below 4 GiB, which the index needs), or an overwrite
// reaches back before the tail's firstSlot, or the tail has no entry yet
// and the batch's first one is not for its firstSlot (the batch a roll was
// made for was never written: a segment's entries must start at its
// firstSlot, or it would need its predecessor, which compaction may
// delete): (1) the tail is truncated to
// its written length and synced, and is sealed for good; (2) the prepared
// temporary file gets a header and a first batch copying the hard state and
// compaction point, and is synced; (3) it is renamed to its segment name
// and the directory is synced, and only then written to. A crash after (1)
// leaves the sealed segment as a whole tail; after (2), a temporary file
// that Open deletes; after (3) but before the directory sync, either name,
// and both recover. Because every segment starts with the state of the log,
// no other file is needed to find it.
//
// Tail overwrite. An entry for slot s is appended like any other; replay
// drops every earlier entry for slots >= s. If s is before the tail's
// firstSlot, the log rolls first, so that a segment never holds a slot
// before its firstSlot.
//
// Compact. Only after the snapshot is durable, a Compacted record is saved
// with sync; then the sealed segments whose highest slot it covers are
// deleted, oldest first, and the directory is synced. A crash midway leaves
// a suffix of consecutive segments, and the Compacted record (in the tail,
// which is never deleted) still says where the log starts. A failed
// deletion or directory sync closes the log like a failed fdatasync; a
// segment already gone is not a failure. Close waits for a deletion in
// progress and stops the rest (the next Log deletes them), so that nothing
// is deleted once the lock is free for another Log.
//
// Recovery (Open). Segments are sorted by seq, which must have no gaps,
// and each header must match its file name. Segments are replayed in
// order; each must start no later than the slot after the log so far,
// unless a compaction record read later covers the slots in between (a
// crash while compacted segments were being deleted can leave such a
// gap). A
// sealed segment (any but the last) was synced before its successor
// existed, so it must read back whole: any damage is an error naming the
// file and byte offset (ErrCorrupt). In the tail, reading stops at zeros or
// at the first record that does not read back, and what follows the last
// complete batch is judged by the rule below: an interrupted write is cut
// off, and the cut is logged; anything else is ErrCorrupt. The cut is a
// truncation of the file to the end of the last complete batch, then an
// fdatasync, and only then are zeros written again past it (and synced),
// so that stale bytes can never be read as records later: a truncation is
// done or not done after a power loss, and doing it again is harmless,
// while zeroing the stale bytes in place could be left half done, some
// sectors zeroed and others not, which the next Open would rightly take
// for damage. Open also syncs the tail, because what it read may have
// been written but not yet synced by the process that stopped, and the
// directory, because that process may have renamed a segment into place or
// deleted compacted ones without syncing it: nothing is acknowledged on top
// of a file name that a power loss could still take away. Nothing is ever
// repaired silently.
//
// Replay reads each segment through a 64 KiB window: records that fit are
// decoded from it, larger entries are checksummed through it and their
// values skipped, never held. Open's memory is that window, the batch being
// read and the index of the entries (4 bytes each), whatever the segment
// size: about 3 MiB for a full 64 MiB segment of 4 KiB entries, where
// reading whole segments took over 64 MiB (BenchmarkOpen64MiB).
//
// Inspection (Inspect, `paxos wal verify`) replays the log without writing.
// On a directory no Log holds it takes the lock while it reads and judges
// everything as Open would. On the log of a running process it cannot
// judge the tail's end: the writer appends while it reads, so bytes read a
// moment apart disagree. It checks the sealed segments whole and the tail
// up to the last complete batch it read, says the log is live, and never
// reports the tail torn or damaged; a replay that fails (a segment deleted
// by a compaction meanwhile) is made again.
//
// # Torn writes and damage
//
// Only the tail's unsynced bytes can be torn: everything before the last
// fdatasync is durable, and a sealed segment was synced whole. The space a
// write goes to always holds zeros before it, or is past the end of the
// file (segments are pre-written with zeros and synced, and Open cuts the
// file at a torn write and syncs that before it writes zeros past the cut
// again), so a write interrupted by a crash leaves, in place of the bytes
// that did not reach the disk, zeros or nothing (a file that ends early).
// It leaves them in sectors, not bytes: the page cache writes pages back in
// any order, and a disk writes the sectors of a page in any order, so any
// of the write's 512-byte sectors may be missing while later ones are
// there; and a sector being written when the power goes may be left with a
// prefix of its new bytes and zeros after.
//
// So after the last complete batch, a record that does not read back is
// taken for a torn write only if the zeros explain it:
//
//   - in-order tear: from some byte inside the record (by its length field)
//     to the end of the file everything is zero, or the file ends inside
//     the record, and no valid commit record follows it anywhere; or
//   - lost sector: some 512-byte sector that the record covers is zero from
//     the record's start (or the sector's) to the sector's end, and that
//     sector lies before the next valid commit record after the damage.
//
// A record whose bytes are all there, non-zero, and fail their checksum,
// followed by more data, is damage: a batch that was written and synced,
// then changed, which Open reports as ErrCorrupt with the file and offset,
// never cuts. So is a record whose checksum is right but whose padding is
// not zero, or whose type is unknown, or whose length is above the
// segment's record limit or, for a record that is not an entry, above 64
// bytes: a tear can only put zeros in place of bytes, which makes a length
// smaller, never larger. And so is any damage after which a valid commit
// record says that bytes past the last complete batch had been synced.
// This is etcd's rule (a torn record has an all-zero sector) extended to a
// sector torn in the middle, and tightened so that the zeros must be in
// the damaged record, not in the free space after the batch that a damaged
// length field reaches.
//
// What it cannot tell apart, and treats as torn: a synced batch whose
// sector was later lost (read back as zeros) or cut off by a lost file
// size; damage to a record that holds 512 zero bytes of its own on a sector
// boundary (a value with a run of zeros); damage to the last record of the
// tail when that record's last body byte is zero (a commit record ends in
// its record count, zero only for an empty batch). What it refuses, though
// it may be a tear: a sector torn in the middle followed by later sectors
// that were written (a disk without atomic sector writes, whose page cache
// also wrote back out of order), and a disk that writes garbage, not the
// old bytes, into a sector it tears. Those make Open fail with ErrCorrupt
// rather than guess: refusing can be undone by an operator, cutting cannot.
//
// # The test file system
//
// Crash and fault tests run on the in-memory file system of
// internal/memfs (test machinery, kept out of this package's API; FS and
// File are declared in internal/walfs so that memfs need not import wal),
// not on Pebble's vfs (NewCrashableMem, errorfs), although the module depends on Pebble and
// its crashable MemFS does model what matters most here: file data and
// directory entries not synced are lost at a power failure (CrashClone).
// It was not adopted because:
//
//   - vfs.File has no Truncate, and the log truncates a segment when it
//     seals it; an unsynced truncation must be modelled like an unsynced
//     write.
//   - CrashClone keeps unsynced data in whole 4 KiB blocks, chosen one by
//     one. It never leaves a write torn at a byte (a sector half written),
//     which is the case the torn-tail rule above is most careful about;
//     memfs's PowerLoss produces both that and whole sectors out of order.
//   - CrashClone keeps unsynced directory entries one by one, so a
//     renamed file can survive under both names; memfs keeps a prefix of
//     the directory's changes, as a journalling file system does.
//   - A process crash that is not a power loss (unsynced data still
//     visible to the next process) is just going on with the same
//     crashable MemFS, which works, but the fault hook the tests need at
//     the k-th operation of a kind would be errorfs wrapped around it,
//     with the WAL's FS seam adapted on top: more moving parts than the
//     400 lines of memfs, which implements the seam directly.
//
// Assumptions: the file system does not make a rename durable before the
// file's synced data, and a write that is synced reads back as written
// (sectors are not damaged after the fact without the checksums noticing).
package wal
